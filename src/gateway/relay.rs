//! Relays an upstream stream to the client, event by event through the provider's dialect, and
//! records the call when the stream ends, however it ends: completed, cut, timed out, an error
//! event, or the client gone.
//!
//! The relay is a task of its own that reads the provider at the provider's pace, whatever the
//! client does: what it translates waits for the client in a bounded queue. A client that leaves,
//! or leaves the queue full for `CLIENT_WRITE_TIMEOUT_MS` in all, loses its side of the call; the
//! provider's answer is still read to its end (within the call's deadline) and metered, its own
//! usage included, so the record holds what the provider billed. The call's deadline and idle
//! timeout hold with or without the client, and with them its places and holds.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use perpetuo_core::AppState;
use perpetuo_core::protocols::sse;
use perpetuo_core::protocols::{StreamFault, StreamTranslator};
use perpetuo_core::providers::{OpenedProvider, client};
use perpetuo_core::usage::TokenCounts;
use perpetuo_core::usage::estimate::OutputMeter;
use perpetuo_types::ErrorClass;

use super::call::Call;
use super::caller::Caller;
use super::record::{Charge, Outcome, Progress, Subject, build, keep};
use super::routing::Candidate;

/// TokenCounts added to what a stream cut short relayed: what the provider may have generated after
/// the last event read and before it saw the connection close.
pub const CUT_SLACK: u64 = 16;

/// The upstream's bytes as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// Pieces of the answer (events, mostly) that may wait for a slow client: what a stalled client
/// holds in memory is bounded by this and the largest event.
const CLIENT_QUEUE: usize = 64;

/// What became of a piece of the answer handed to the client.
enum Sent {
    Taken,
    Left(Left),
    /// The call's deadline came while the client was slow to take it.
    Deadline,
}

/// How the client's side of a stream ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// It closed the connection.
    Gone,
    /// It left the answer unread past the write timeout (or the call's deadline).
    Stalled,
}

pub struct Relay {
    state: AppState,
    call: Call,
    served: Candidate,
    upstream: ByteStream,
    parser: sse::Parser,
    translate: Box<dyn StreamTranslator>,
    pending: VecDeque<Bytes>,
    finished: bool,
    progress: Progress,
    upstream_wait: Duration,
    ttft: Option<Duration>,
    recorded: bool,
    /// The output text read from the upstream: what a stream cut short is charged (at least).
    meter: OutputMeter,
    /// When the call is captured: its request, and the stream as the client gets it (until the
    /// stream ends or the client goes, when they are handed over).
    tap: Option<(perpetuo_core::captures::Plan, perpetuo_core::captures::Raw, perpetuo_core::captures::Raw)>,
    /// Whether (and how) the client's side ended before the stream did.
    left: Option<Left>,
    /// Set while the relay is dropped: nothing may be left to another task then.
    dropping: bool,
}

impl Relay {
    /// Starts with the first bytes the attempt already read (they decided the stream was good).
    pub fn new(
        state: AppState,
        call: Call,
        served: Candidate,
        translate: Box<dyn StreamTranslator>,
        upstream: ByteStream,
        first: Bytes,
        progress: Progress,
    ) -> Self {
        let tap = super::capture::request(&call).map(|(plan, request)| (plan, request, plan.body()));
        let mut relay = Self {
            tap,
            state,
            call,
            served,
            upstream,
            parser: sse::Parser::default(),
            translate,
            pending: VecDeque::new(),
            finished: false,
            progress,
            upstream_wait: Duration::ZERO,
            ttft: None,
            recorded: false,
            meter: OutputMeter::default(),
            left: None,
            dropping: false,
        };
        relay.feed(&first);
        relay
    }

    pub fn caller(&self) -> &Caller {
        &self.call.caller
    }

    pub fn protocol(&self) -> perpetuo_core::protocols::Protocol {
        self.call.request.protocol
    }

    pub fn provider(&self) -> &OpenedProvider {
        &self.served.provider
    }

    pub fn attempts(&self) -> u32 {
        self.progress.attempts
    }

    /// Where the call's tightest token limit stands, for the rate-limit headers.
    pub fn standing(&self) -> Option<perpetuo_core::limits::Standing> {
        self.call.holdings.limits.standing()
    }

    /// The hosted tools the serving provider goes without.
    pub fn dropped(&self) -> &perpetuo_core::protocols::Dropped {
        &self.progress.dropped
    }

    /// Parses what arrived and queues what the client should get.
    fn feed(&mut self, chunk: &Bytes) {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event() {
            let mut out = Vec::new();
            if let Err(fault) = self.translate.event(&event, &mut out, &mut self.meter) {
                self.pending.extend(out);
                match fault {
                    StreamFault::Provider(message) => self.fail(ErrorClass::UpstreamStreamError, &message),
                    StreamFault::TooLarge => {
                        let limit = self.call.labels.max_kept_bytes;
                        self.fail(
                            ErrorClass::AnswerTooLarge,
                            &format!("The answer grew past the {limit} bytes this gateway keeps."),
                        );
                    }
                }
                return;
            }
            if self.ttft.is_none() && !out.is_empty() {
                self.ttft = Some(self.call.caller.started.elapsed());
            }
            self.pending.extend(out);
            if self.translate.finished() {
                self.finish(None);
                return;
            }
        }
        if self.parser.oversized() {
            let limit = sse::MAX_EVENT_BYTES;
            self.fail(ErrorClass::EventTooLarge, &format!("The provider sent a stream event over {limit} bytes."));
        }
    }

    /// Ends the stream with an error event and no end marker, recorded as failed.
    fn fail(&mut self, class: ErrorClass, message: &str) {
        // A provider's own words may echo its key back: never pass that on.
        let message = client::scrub(message, &self.served.provider.key);
        let mut out = Vec::new();
        self.translate.fail(&message, class, &mut out);
        self.pending.extend(out);
        self.state.metrics.upstream_error(self.served.provider.kind.as_str(), class);
        if class != ErrorClass::ClientDisconnected {
            self.state.breakers.failure(&self.served.provider.id);
        }
        self.finish(Some((502, class)));
    }

    fn finish(&mut self, failure: Option<(u16, ErrorClass)>) {
        self.finished = true;
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (status, class) = match (self.left, failure) {
            // The provider's answer was read whatever the client did; the record says the client
            // did not get it all.
            (Some(_), _) => (499, Some(ErrorClass::ClientDisconnected)),
            (None, failure) => failure.map_or((200, None), |(s, c)| (s, Some(c))),
        };
        let progress = Progress {
            upstream: self.progress.upstream + self.upstream_wait,
            last_class: class,
            ..self.progress.clone()
        };
        let reported = self.translate.tokens();
        let (tokens, estimated) = self.charged_tokens(failure.is_none(), reported);
        let price = self.call.price(&self.state, &self.served);
        let price_used = self.call.price_used(&self.state, &self.served);
        let charge =
            move |tokens: TokenCounts| Charge { tokens, cost_nanos: price.map(|p| p.cost_nanos(tokens)), estimated };
        let outcome = |charge| Outcome {
            provider: Some(&self.served.provider),
            served_model: Some(&self.served.model),
            status,
            error_class: class,
            charge,
            ttft: self.ttft,
            price: price_used,
        };
        match (tokens.prompt, self.call.known_prompt()) {
            // The provider never said what the prompt counted, and no estimate was made yet: it is
            // made off this thread, and the record kept once it is (the client has had the stream).
            (0, None) if estimated => {
                let (mut record, _) = build(&self.state, &Subject::of(&self.call), outcome(charge(tokens)), &progress);
                let abandoned = progress.abandoned_charge;
                let finish = move |state: &AppState, record: &mut perpetuo_core::usage::UsageRecord, prompt: u64| {
                    let charge = charge(TokenCounts { prompt, ..tokens }).plus(abandoned);
                    record.tokens = charge.tokens;
                    record.cost_nanos = charge.cost_nanos;
                    // Only a call without a budget or token limit gets here (a reservation makes
                    // the estimate first).
                    keep(state, None, record, &charge);
                };
                if self.dropping || tokio::runtime::Handle::try_current().is_err() {
                    // The relay is being dropped (the server is stopping, its runtime with it):
                    // counted by length, here, so the record is kept whatever happens next.
                    let prompt = perpetuo_core::usage::estimate::ceiling_by_length(&self.call.request.body);
                    finish(&self.state, &mut record, prompt);
                } else {
                    // One of the server's calls: a stopping server waits for it.
                    let (state, body) = (self.state.clone(), std::mem::take(&mut self.call.request.body));
                    let tenant = self.call.caller.key.workspace.as_str().to_owned();
                    drop(self.state.calls.spawn(async move {
                        let prompt = state.estimator().prompt(&tenant, &body).await.ceiling();
                        finish(&state, &mut record, prompt);
                    }));
                }
            }
            (prompt, known) => {
                let tokens = TokenCounts {
                    prompt: if prompt == 0 && estimated { known.unwrap_or(0) } else { prompt },
                    ..tokens
                };
                let (record, charge) = build(&self.state, &Subject::of(&self.call), outcome(charge(tokens)), &progress);
                if !keep(&self.state, Some(&self.call.holdings), &record, &charge) && failure.is_none() {
                    // The record could not be kept: the client is not told the call succeeded.
                    self.pending.clear();
                    let mut out = Vec::new();
                    let message = "The gateway cannot write usage records right now (its disk is full or failing).";
                    self.translate.fail(message, ErrorClass::UsageLedgerUnavailable, &mut out);
                    self.pending.extend(out);
                }
            }
        }
    }

    /// The tokens a stream is charged, and whether they are estimated: what the provider reported
    /// when the stream completed with its usage; otherwise at least the output relayed (counted,
    /// plus [`CUT_SLACK`]) and never more than the call's worst case, with the prompt estimated
    /// when the provider never said it.
    fn charged_tokens(&mut self, completed: bool, reported: TokenCounts) -> (TokenCounts, bool) {
        if completed && reported.completion > 0 && reported.prompt > 0 {
            return (reported, false);
        }
        let relayed = self.meter.tokens().saturating_add(if completed { 0 } else { CUT_SLACK });
        let completion = reported.completion.max(relayed.min(self.call.worst_output));
        // A prompt of 0 is filled in by the caller (from the estimate).
        (TokenCounts { completion, ..reported }, true)
    }

    /// The next bytes for the client.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.finished {
                self.hand_over_capture();
                return None;
            }
            let settings = &self.state.settings.upstream;
            let deadline = self.call.caller.started + settings.total_timeout;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.fail(ErrorClass::Deadline, "The stream took longer than the gateway's deadline.");
                continue;
            }
            let idle = settings.idle_timeout;
            let waited = Instant::now();
            let next = tokio::time::timeout(idle.min(remaining), self.upstream.next()).await;
            self.upstream_wait += waited.elapsed();
            match next {
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
                Ok(None) if self.translate.complete_on_close() => {
                    if !self.translate.finished() {
                        // Ended after its last chunk without the end marker: the client gets one.
                        let mut out = Vec::new();
                        self.translate.close(&mut out);
                        self.pending.extend(out);
                    }
                    self.finish(None);
                }
                Ok(None) => self.fail(ErrorClass::StreamCut, "The provider ended the stream before it was complete."),
                Ok(Some(Err(_))) => {
                    self.fail(ErrorClass::StreamCut, "The connection to the provider broke during the stream.")
                }
                Err(_) if remaining <= idle => {
                    self.fail(ErrorClass::Deadline, "The stream took longer than the gateway's deadline.")
                }
                Err(_) => {
                    self.fail(ErrorClass::IdleTimeout, "The provider stopped sending in the middle of the stream.")
                }
            }
        }
    }

    /// Hands the captured bodies over (once): the stream as far as the client got it.
    fn hand_over_capture(&mut self) {
        if let Some((plan, request, response)) = self.tap.take() {
            super::capture::keep(&self.state, &self.call, plan, request, Some(response));
        }
    }

    /// Starts the relay as a task of the server's calls, and returns what the client reads: the
    /// answer's bytes as they come, and an error (the connection is cut) when its side was ended
    /// for leaving the answer unread.
    pub fn start(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let (to_client, from_relay) = tokio::sync::mpsc::channel(CLIENT_QUEUE);
        let cut = Arc::new(AtomicBool::new(false));
        let tasks = self.state.calls.clone();
        drop(tasks.spawn(self.pump(to_client, Arc::clone(&cut))));
        futures::stream::unfold((from_relay, cut, false), |(mut from_relay, cut, ended)| async move {
            if ended {
                return None;
            }
            match from_relay.recv().await {
                Some(bytes) => Some((Ok(bytes), (from_relay, cut, false))),
                None if cut.load(Ordering::Acquire) => {
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading");
                    Some((Err(error), (from_relay, cut, true)))
                }
                None => None,
            }
        })
    }

    /// Reads the provider to the end of the stream (or the call's deadline), handing the client
    /// what it translates while the client takes it.
    async fn pump(mut self, to_client: tokio::sync::mpsc::Sender<Bytes>, cut: Arc<AtomicBool>) {
        let write_timeout = self.state.settings.clients.write_timeout;
        let deadline = self.call.caller.started + self.state.settings.upstream.total_timeout;
        let mut client = Some(to_client);
        // How long, in all, the relay has waited for the client to make room.
        let mut waited = Duration::ZERO;
        while let Some(bytes) = self.next().await {
            let Some(to_client) = &client else { continue };
            if let Some((_, _, response)) = self.tap.as_mut() {
                response.push(&bytes);
            }
            let sent = match to_client.try_send(bytes) {
                Ok(()) => Sent::Taken,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Sent::Left(Left::Gone),
                Err(tokio::sync::mpsc::error::TrySendError::Full(bytes)) => {
                    let (budget, remaining) =
                        (write_timeout.saturating_sub(waited), deadline.saturating_duration_since(Instant::now()));
                    let started = Instant::now();
                    let sent = tokio::time::timeout(budget.min(remaining), to_client.send(bytes)).await;
                    waited += started.elapsed();
                    match sent {
                        Ok(Ok(())) => Sent::Taken,
                        Ok(Err(_)) => Sent::Left(Left::Gone),
                        // The call's deadline came while the client was slow: the deadline ends
                        // the stream (the client's side with it), not the client.
                        Err(_) if remaining < budget => Sent::Deadline,
                        Err(_) => Sent::Left(Left::Stalled),
                    }
                }
            };
            match sent {
                Sent::Taken => {}
                Sent::Deadline => {
                    cut.store(true, Ordering::Release);
                    client = None;
                    self.fail(ErrorClass::Deadline, "The stream took longer than the gateway's deadline.");
                }
                Sent::Left(left) => {
                    if left == Left::Stalled {
                        cut.store(true, Ordering::Release);
                    }
                    self.client_left(left);
                    client = None;
                }
            }
        }
    }

    /// The client's side ended before the stream: the provider is read on, for the record.
    fn client_left(&mut self, left: Left) {
        self.left = Some(left);
        self.state.metrics.upstream_error(self.served.provider.kind.as_str(), ErrorClass::ClientDisconnected);
        tracing::debug!(request_id = %self.call.caller.request_id, ?left, "the client left a stream; reading the provider to its end");
        self.hand_over_capture();
    }
}

impl Drop for Relay {
    /// The relay stopped before the stream ended (the server is stopping): the upstream request
    /// is dropped with it (which closes its connection), and the call is recorded as cut short.
    fn drop(&mut self) {
        self.dropping = true;
        if !self.recorded {
            self.state.metrics.upstream_error(self.served.provider.kind.as_str(), ErrorClass::ClientDisconnected);
            self.finish(Some((499, ErrorClass::ClientDisconnected)));
        }
        self.hand_over_capture();
    }
}
