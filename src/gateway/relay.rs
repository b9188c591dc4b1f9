//! Relays an upstream stream to the client, event by event through the provider's dialect, and
//! records the call when the stream ends, however it ends: completed, cut, timed out, an error
//! event, or the client gone (dropping the relay drops the upstream request with it).

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use app::server::AppState;
use app::server::protocols::sse;
use app::server::providers::dialects::StreamTranslator;
use app::server::providers::{OpenedProvider, client};

use super::call::{Call, Caller};
use super::record::{Outcome, Progress, submit};
use super::routing::Candidate;

/// The upstream's bytes as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

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
    /// Events handed to the client: what a call cut short is charged for when the upstream never
    /// said its usage.
    relayed: u64,
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
        let mut relay = Self {
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
            relayed: 0,
        };
        relay.feed(&first);
        relay
    }

    pub fn caller(&self) -> &Caller {
        &self.call.caller
    }

    pub fn protocol(&self) -> app::server::protocols::Protocol {
        self.call.request.protocol
    }

    pub fn provider(&self) -> &OpenedProvider {
        &self.served.provider
    }

    pub fn attempts(&self) -> u32 {
        self.progress.attempts
    }

    /// Parses what arrived and queues what the client should get.
    fn feed(&mut self, chunk: &Bytes) {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event() {
            let mut out = Vec::new();
            if let Err(message) = self.translate.event(&event, &mut out) {
                self.pending.extend(out);
                self.fail("upstream_stream_error", &message);
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
            self.fail("event_too_large", &format!("The provider sent a stream event over {limit} bytes."));
        }
    }

    /// Ends the stream with an error event and no end marker, recorded as failed.
    fn fail(&mut self, class: &'static str, message: &str) {
        // A provider's own words may echo its key back: never pass that on.
        let message = client::scrub(message, &self.served.provider.key);
        let mut out = Vec::new();
        self.translate.fail(&message, class, &mut out);
        self.pending.extend(out);
        self.state.metrics.upstream_error(self.served.provider.kind.as_str(), class);
        if class != "client_disconnected" {
            self.state.breakers.failure(&self.served.provider.id);
        }
        self.finish(Some((502, class)));
    }

    fn finish(&mut self, failure: Option<(u16, &'static str)>) {
        self.finished = true;
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (status, class) = failure.map_or((200, None), |(s, c)| (s, Some(c)));
        let progress = Progress {
            attempts: self.progress.attempts,
            upstream: self.progress.upstream + self.upstream_wait,
            last_class: class,
        };
        let mut tokens = self.translate.tokens();
        if let Some(reservation) = &self.call.hold
            && tokens.prompt == 0
            && tokens.completion == 0
            && self.relayed > 0
        {
            // Cut short before the upstream said its usage: the budget is charged the prompt's
            // estimate and a token per event relayed (a delta carries at least one).
            tokens.prompt = reservation.prompt;
            tokens.completion = self.relayed;
        }
        let outcome = Outcome {
            provider: Some(&self.served.provider),
            served_model: Some(&self.served.model),
            status,
            error_class: class,
            tokens,
            cost_nanos: self.call.cost(&self.state, &self.served, tokens),
            ttft: self.ttft,
        };
        submit(&self.state, &self.call.subject(), outcome, &progress);
    }

    /// The next bytes for the client.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                self.relayed += 1;
                return Some(bytes);
            }
            if self.finished {
                return None;
            }
            let settings = &self.state.settings.upstream;
            let deadline = self.call.caller.started + settings.total_timeout;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.fail("deadline", "The stream took longer than the gateway's deadline.");
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
                Ok(None) => self.fail("stream_cut", "The provider ended the stream before it was complete."),
                Ok(Some(Err(_))) => self.fail("stream_cut", "The connection to the provider broke during the stream."),
                Err(_) if remaining <= idle => {
                    self.fail("deadline", "The stream took longer than the gateway's deadline.")
                }
                Err(_) => self.fail("idle_timeout", "The provider stopped sending in the middle of the stream."),
            }
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures::stream::unfold(self, |mut relay| async move { relay.next().await.map(|bytes| (Ok(bytes), relay)) })
    }
}

impl Drop for Relay {
    /// The client went away before the end: the upstream request is dropped with us (which
    /// closes its connection), and the call is recorded as such.
    fn drop(&mut self) {
        if !self.recorded {
            self.state.metrics.upstream_error(self.served.provider.kind.as_str(), "client_disconnected");
            self.finish(Some((499, "client_disconnected")));
        }
    }
}
