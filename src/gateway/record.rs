//! One usage record per answered call, and the request metrics, however the call ended.

use std::time::Duration;

use app::server::AppState;
use app::server::protocols::Protocol;
use app::server::providers::OpenedProvider;
use app::server::usage::{Tokens, UsageRecord};

use super::call::Caller;

/// What the attempt loop learned, for the usage record.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub attempts: u32,
    /// Time spent waiting on upstreams (the rest is Perpetuo's own overhead).
    pub upstream: Duration,
    pub last_class: Option<&'static str>,
}

/// What a record says about the call itself.
pub struct Subject<'a> {
    pub caller: &'a Caller,
    pub protocol: Protocol,
    /// The model as the client wrote it (empty when the body could not be read).
    pub model: &'a str,
    pub stream: bool,
    /// The call's budget reservation, settled when it is recorded.
    pub hold: Option<&'a super::budget::Reservation>,
}

/// How the call ended.
pub struct Outcome<'a> {
    pub provider: Option<&'a OpenedProvider>,
    /// The model the provider was asked for (an alias's target, or the bare name).
    pub served_model: Option<&'a str>,
    /// The HTTP status the client got (499 when it went away first).
    pub status: u16,
    pub error_class: Option<&'static str>,
    pub tokens: Tokens,
    /// `None` when the model has no known price (or nothing was served).
    pub cost_nanos: Option<i64>,
    /// Time to the first token of a stream.
    pub ttft: Option<Duration>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Hands the call's usage record to the writer and counts it in the metrics.
pub fn submit(state: &AppState, subject: &Subject, outcome: Outcome, progress: &Progress) {
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let caller = subject.caller;
    let elapsed = caller.started.elapsed();
    let ok = outcome.error_class.is_none() && (200..300).contains(&outcome.status);
    let provider = outcome.provider;
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
        error_class: outcome.error_class.map(str::to_owned),
        attempts: i64::from(progress.attempts),
        prompt_tokens: count(outcome.tokens.prompt),
        completion_tokens: count(outcome.tokens.completion),
        cache_read_tokens: count(outcome.tokens.cache_read),
        cache_write_tokens: count(outcome.tokens.cache_write),
        reasoning_tokens: count(outcome.tokens.reasoning),
        cost_nanos: outcome.cost_nanos,
        latency_ms: millis(elapsed),
        upstream_ms: millis(progress.upstream),
        ttft_ms: outcome.ttft.map(millis),
    };
    let kind = provider.map_or("none", |p| p.kind.as_str());
    // Only a model a provider actually served becomes a label: failed calls would let anyone
    // invent label values.
    let model = if ok { subject.model } else { "other" };
    let overhead = elapsed.saturating_sub(progress.upstream);
    // Seconds with their fractions: whole milliseconds would put every sub-millisecond request at 0.
    state.metrics.request(outcome.status, kind, model, elapsed.as_secs_f64(), overhead.as_secs_f64());
    if let Some(hold) = subject.hold {
        super::budget::settle(state, hold, outcome.cost_nanos, outcome.tokens);
    }
    state.usage.record(&record);
}
