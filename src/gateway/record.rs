//! One usage record per answered call, and the request metrics, however the call ended.

use std::time::Duration;

use perpetuo_core::AppState;
use perpetuo_core::protocols::Protocol;
use perpetuo_core::providers::OpenedProvider;
use perpetuo_core::usage::UsageRecord;
use perpetuo_types::{ErrorClass, StepOutcome};

use super::call::Call;
use super::caller::Caller;
pub use super::charge::Charge;
use super::holdings::Holdings;

/// What the attempt loop learned, for the usage record.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub attempts: u32,
    /// Time spent waiting on upstreams (the rest is Perpetuo's own overhead).
    pub upstream: Duration,
    pub last_class: Option<ErrorClass>,
    /// Attempts that reached a provider and were abandoned (timed out, cut, unreadable): the
    /// provider may bill them, so they are charged at their worst case.
    pub abandoned: u32,
    /// What those attempts are charged.
    pub abandoned_charge: Charge,
    /// The hosted tools the client offered that the provider last tried goes without.
    pub dropped: perpetuo_core::protocols::Dropped,
    /// The attempts, and the candidates passed over, in order.
    pub timeline: Vec<perpetuo_types::AttemptStep>,
}

/// What a record says about the call itself.
pub struct Subject<'a> {
    pub caller: &'a Caller,
    pub protocol: Protocol,
    /// The model as the client wrote it (empty when the body could not be read).
    pub model: &'a str,
    pub stream: bool,
    /// What the call holds (budget, limits), settled when it is recorded; none for a call
    /// refused before it held anything.
    pub holdings: Option<&'a Holdings>,
}

impl<'a> Subject<'a> {
    /// A call that was built (and may hold a reservation and limits).
    pub fn of(call: &'a Call) -> Self {
        Self {
            caller: &call.caller,
            protocol: call.request.protocol,
            model: &call.request.model,
            stream: call.request.stream,
            holdings: Some(&call.holdings),
        }
    }

    /// A call refused or failed before it held anything.
    pub fn bare(caller: &'a Caller, protocol: Protocol, model: &'a str, stream: bool) -> Self {
        Self { caller, protocol, model, stream, holdings: None }
    }

    fn reservation(&self) -> Option<&'a super::budget::Reservation> {
        self.holdings.and_then(|h| h.budget.as_ref())
    }
}

/// How the call ended.
pub struct Outcome<'a> {
    pub provider: Option<&'a OpenedProvider>,
    /// The model the provider was asked for (an alias's target, or the bare name).
    pub served_model: Option<&'a str>,
    /// The HTTP status the client got (499 when it went away first).
    pub status: u16,
    pub error_class: Option<ErrorClass>,
    /// What the answer (the last attempt) is charged; abandoned attempts are added from the
    /// progress.
    pub charge: Charge,
    /// Time to the first token of a stream.
    pub ttft: Option<Duration>,
    /// The price the answer was charged at.
    pub price: Option<perpetuo_types::PriceUsed>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The call's usage record, counted in the metrics (not yet kept: see [`keep`]). The charge is
/// the answer's plus every abandoned attempt's.
pub fn build(state: &AppState, subject: &Subject, outcome: Outcome, progress: &Progress) -> (UsageRecord, Charge) {
    let caller = subject.caller;
    caller.recorded.store(true, std::sync::atomic::Ordering::Release);
    let elapsed = caller.started.elapsed();
    let ok = outcome.error_class.is_none() && (200..300).contains(&outcome.status);
    let provider = outcome.provider;
    let charge = outcome.charge.plus(progress.abandoned_charge);
    let record = UsageRecord {
        ts: caller.ts,
        workspace: caller.key.workspace.as_str().to_owned(),
        request_id: caller.request_id.clone(),
        key_id: caller.key.id.clone(),
        provider_id: provider.map(|p| p.id.clone()),
        provider_label: provider.map(|p| p.label.clone()),
        provider_kind: provider.map(|p| p.kind.as_str().to_owned()),
        model: subject.model.to_owned(),
        served_model: outcome.served_model.filter(|m| *m != subject.model).map(str::to_owned),
        endpoint: subject.protocol.name().to_owned(),
        stream: subject.stream,
        status: i64::from(outcome.status),
        ok,
        error_class: outcome.error_class.map(|c| c.as_str().to_owned()),
        attempts: i64::from(progress.attempts),
        tokens: charge.tokens,
        cost_nanos: charge.cost_nanos,
        latency_ms: millis(elapsed),
        upstream_ms: millis(progress.upstream),
        ttft_ms: outcome.ttft.map(millis),
        estimated: charge.estimated,
        abandoned: i64::from(progress.abandoned),
        reserved_nanos: subject.reservation().map(|h| h.hold.need.nanos),
        reserved_tokens: subject.reservation().map(|h| h.hold.need.tokens),
        dropped_tools: (!progress.dropped.is_empty()).then(|| progress.dropped.list()),
        timeline: progress.timeline.clone(),
        price: outcome.price,
    };
    let kind = provider.map_or("none", |p| p.kind.as_str());
    // Only a model a provider actually served becomes a label: failed calls would let anyone
    // invent label values.
    let model = if ok { subject.model } else { "other" };
    let overhead = elapsed.saturating_sub(progress.upstream);
    // Seconds with their fractions: whole milliseconds would put every sub-millisecond request at 0.
    state.metrics.request(outcome.status, kind, model, elapsed.as_secs_f64(), overhead.as_secs_f64());
    access_line(&record);
    super::trace::end_call(caller, &record);
    (record, charge)
}

/// One line per gateway call at `info` under `perpetuo::access` (off in the default filter):
/// what an operator greps for, never a key, a prompt or an answer. Text a client or an owner chose
/// (the model, the provider's label) is quoted and escaped.
fn access_line(record: &UsageRecord) {
    tracing::info!(
        target: "perpetuo::access",
        request_id = %record.request_id,
        route = %record.endpoint,
        stream = record.stream,
        status = record.status,
        latency_ms = record.latency_ms,
        upstream_ms = record.upstream_ms,
        attempts = record.attempts,
        provider = ?record.provider_label.as_deref().unwrap_or("-"),
        model = ?record.model,
        key_id = %record.key_id,
        input_tokens = record.tokens.prompt,
        output_tokens = record.tokens.completion,
        error = record.error_class.as_deref().unwrap_or("-"),
        "call"
    );
}

/// Settles what the call holds at its charge and keeps the record (in the spool, before the
/// answer completes); false when the record could not be kept, and the call must fail.
pub fn keep(state: &AppState, holdings: Option<&Holdings>, record: &UsageRecord, charge: &Charge) -> bool {
    if let Some(holdings) = holdings {
        holdings.settle(state, charge);
    }
    state.usage.record(record)
}

/// Builds and keeps the call's record (see [`build`] and [`keep`]).
pub fn submit(state: &AppState, subject: &Subject, outcome: Outcome, progress: &Progress) -> bool {
    let (record, charge) = build(state, subject, outcome, progress);
    keep(state, subject.holdings, &record, &charge)
}

/// The most steps a record keeps (attempts are bounded by `UPSTREAM_MAX_ATTEMPTS`; candidates
/// passed over, by the workspace's providers).
const MAX_STEPS: usize = 32;

impl Progress {
    /// Notes a step of the call: attempt `number` at `candidate` (0: passed over) that started at
    /// `started` and ended now with `outcome`.
    pub fn step(
        &mut self,
        call: &Call,
        candidate: &super::routing::Candidate,
        number: u32,
        started: std::time::Instant,
        outcome: StepOutcome,
    ) {
        if self.timeline.len() >= MAX_STEPS {
            return;
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let provider = &candidate.provider;
        self.timeline.push(perpetuo_types::AttemptStep {
            attempt: number,
            provider_id: provider.id.clone(),
            provider_label: provider.label.clone(),
            provider_kind: provider.kind.as_str().to_owned(),
            model: candidate.model.clone(),
            started_ms: ms(started.saturating_duration_since(call.caller.started)),
            duration_ms: ms(started.elapsed()),
            outcome: outcome.as_str().to_owned(),
        });
    }
}
