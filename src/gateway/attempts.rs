//! The attempt loop: candidates in priority order, fallback on connection errors, timeouts, 429
//! and 5xx, jittered backoff and `Retry-After` inside the total deadline, circuit breakers with a
//! single half-open probe, and a provider that refuses its stored key flagged and skipped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, StatusCode, header};
use rand::RngExt as _;

use perpetuo_core::AppState;
use perpetuo_core::limits::Need;
use perpetuo_core::protocols::{AnswerReader, Prepared, Refusal, StreamTranslator};
use perpetuo_core::providers::body::{self, ReadError};
use perpetuo_core::providers::breaker::{Admission, Breakers};
use perpetuo_core::providers::client::{SendError, UpstreamBody};
use perpetuo_core::providers::credentials::TokenError;
use perpetuo_core::providers::dialects::Deframer;
use perpetuo_core::providers::{OpenedProvider, catalog, client, translation};
use perpetuo_types::{ErrorClass, StepOutcome};

use super::answer;
use super::call::Call;
use super::error::GatewayError;
use super::limits::{Gate, Rest};
use super::record::Progress;
use super::relay::{ByteStream, Relay};
use super::routing::Candidate;

/// How one attempt ended.
enum Attempt {
    Whole {
        body: Bytes,
        tokens: perpetuo_core::usage::TokenCounts,
    },
    Stream {
        upstream: ByteStream,
        first: Bytes,
        translate: Box<dyn StreamTranslator>,
    },
    /// The client's own mistake, as the provider judged it: passed back, no fallback.
    ClientError(GatewayError),
    /// Worth trying again (elsewhere, or later here).
    Retry {
        class: ErrorClass,
        retry_after: Option<Duration>,
        counts_for_breaker: bool,
        /// Whether the provider may bill it: the request reached it and was abandoned (no answer
        /// in time, a body cut or unreadable), not refused.
        billed: bool,
    },
    /// The provider refused the stored key.
    KeyRejected,
}

impl Attempt {
    /// The error class of an attempt that did not answer.
    fn failure(&self) -> Option<ErrorClass> {
        match self {
            Self::Whole { .. } | Self::Stream { .. } => None,
            Self::ClientError(_) => Some(ErrorClass::ClientError),
            Self::Retry { class, .. } => Some(*class),
            Self::KeyRejected => Some(ErrorClass::ProviderKeyRejected),
        }
    }

    /// A failure before the provider could have done any work (it never got the request, or
    /// refused it at once).
    fn retry(class: ErrorClass) -> Self {
        Self::Retry { class, retry_after: None, counts_for_breaker: true, billed: false }
    }

    /// The request reached the provider, which may have generated (and will bill) an answer the
    /// gateway then gave up on.
    fn abandoned(class: ErrorClass) -> Self {
        Self::Retry { class, retry_after: None, counts_for_breaker: true, billed: true }
    }
}

/// Runs the call and builds the client's response. Always records usage.
pub async fn run(state: &AppState, mut call: Call) -> Response {
    let settings = &state.settings.upstream;
    let deadline = call.caller.started + settings.total_timeout;
    let mut progress = Progress::default();
    let mut retry_after: HashMap<String, Duration> = HashMap::new();
    let mut bad_keys: Vec<String> = Vec::new();
    let mut last_provider: Option<usize> = None;
    // The first candidate skipped because its breaker was open: a call that reached no provider
    // is recorded against it, so the request log says which provider is failing.
    let mut skipped_open: Option<usize> = None;
    // Why the request could not be put to a candidate (its protocol cannot say it there).
    let mut refused: Option<Refusal> = None;
    let mut round: u32 = 0;
    // Why a provider was passed over under rate limits (its own, or Perpetuo's for it).
    let mut limited: Option<GatewayError> = None;

    'rounds: loop {
        let mut tried = false;
        for index in 0..call.candidates.len() {
            let Some(candidate) = call.candidates.get(index) else { break };
            let provider = &candidate.provider;
            if progress.attempts >= settings.max_attempts {
                break 'rounds;
            }
            // The client left before an attempt could answer it: no further attempt is made (what
            // the ones before may be billed is charged).
            if call.caller.gone.is_cancelled() {
                let candidate = last_provider.and_then(|i| call.candidates.get(i));
                return answer::call_failure(state, &call, candidate, GatewayError::ClientGone, &progress);
            }
            if bad_keys.contains(&provider.id) {
                continue;
            }
            let admission = state.breakers.admit(&provider.id);
            if admission == Admission::Rejected {
                skipped_open.get_or_insert(index);
                progress.step(&call, candidate, 0, Instant::now(), StepOutcome::BreakerOpen);
                continue;
            }
            // A probe is released unless it ends in a verdict, even when this future is dropped
            // (the client went away) in the middle of the attempt.
            let mut probe =
                ProbeGuard { breakers: &state.breakers, id: &provider.id, armed: admission == Admission::Probe };
            // A request this provider cannot be asked (in its dialect) goes to the next one;
            // nothing was sent, so no verdict on the provider (the guard releases a probe).
            let prepared = match prepare(candidate, &call) {
                Ok(prepared) => prepared,
                Err(refusal) => {
                    refused.get_or_insert(refusal);
                    progress.step(&call, candidate, 0, Instant::now(), StepOutcome::CannotExpress);
                    continue;
                }
            };
            // Backoff applies when coming back to providers already tried this call.
            if round > 0 {
                let wait = backoff(round).max(retry_after.get(&provider.id).copied().unwrap_or_default());
                match Instant::now().checked_add(wait) {
                    Some(at) if at < deadline => {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = call.caller.gone.cancelled() => continue,
                        }
                    }
                    // This one cannot be retried in time; another candidate may still be.
                    _ => continue,
                }
            }
            // An attempt abandoned after it reached a provider may be billed: under a budget, the
            // next one reserves its own worst case first, or the call ends here.
            if let Some(reservation) = call.holdings.budget.as_mut()
                && progress.abandoned >= reservation.covered
                && let Err(error) = super::budget::extend(state, &call.caller, reservation).await
            {
                let candidate = last_provider.and_then(|i| call.candidates.get(i));
                return answer::call_failure(state, &call, candidate, error, &progress);
            }
            // A provider resting for its own limits is passed over while another can serve; one
            // this call already tried is waited for by the backoff above instead.
            let rest = if retry_after.contains_key(&provider.id) {
                Rest::Ignore
            } else if super::limits::alternative(state, &call.candidates, index, &bad_keys) {
                Rest::Skip
            } else {
                Rest::Wait
            };
            let ws = &call.caller.key.workspace;
            let need = async || Need { input: call.prompt_ceiling(state).await, output: call.worst_output };
            let gone = &call.caller.gone;
            let held = match super::limits::gate(state, ws, candidate, rest, deadline, gone, need).await {
                Gate::Go(held) => held,
                Gate::Skip(why, error) => {
                    limited.get_or_insert(error);
                    progress.step(&call, candidate, 0, Instant::now(), why);
                    continue;
                }
            };
            tried = true;
            progress.attempts += 1;
            progress.dropped = prepared.dropped.clone();
            last_provider = Some(index);
            let attempt_started = Instant::now();
            let span = super::trace::attempt(state, &call, candidate, progress.attempts, progress.last_class);
            let outcome = attempt(state, candidate, &call, prepared, deadline, span.as_ref()).await;
            progress.upstream += attempt_started.elapsed();
            super::trace::end_attempt(span.as_ref(), outcome.failure());
            let took = attempt_started.elapsed();
            state.health.record(&provider.id, perpetuo_core::platform::db::now_ms(), took, outcome.failure());
            let number = progress.attempts;
            progress.step(
                &call,
                candidate,
                number,
                attempt_started,
                outcome.failure().map_or(StepOutcome::Answered, StepOutcome::Failed),
            );
            match outcome {
                Attempt::Whole { body, tokens } => {
                    call.holdings.limits.provider = held;
                    state.breakers.success(&provider.id);
                    probe.settle();
                    return answer::whole(state, &call, candidate, body, tokens, &progress).await;
                }
                Attempt::Stream { upstream, first, translate } => {
                    call.holdings.limits.provider = held;
                    state.breakers.success(&provider.id);
                    probe.settle();
                    let served = candidate.clone();
                    drop(probe);
                    let relay = Relay::new(state.clone(), call, served, translate, upstream, first, progress);
                    return answer::stream(relay);
                }
                Attempt::ClientError(error) => {
                    // The provider worked; the request was wrong.
                    call.holdings.limits.provider = held;
                    state.breakers.success(&provider.id);
                    probe.settle();
                    return answer::call_failure(state, &call, Some(candidate), error, &progress);
                }
                Attempt::Retry { class, retry_after: after, counts_for_breaker, billed } => {
                    state.metrics.upstream_error(provider.kind.as_str(), class);
                    progress.last_class = Some(class);
                    // What the provider may bill stays counted against its limits.
                    if let (Some(held), false) = (&held, billed) {
                        super::limits::settle(state, held, perpetuo_core::usage::TokenCounts::default());
                    }
                    if billed {
                        progress.abandoned += 1;
                        progress.abandoned_charge =
                            progress.abandoned_charge.plus(call.worst_charge(state, candidate).await);
                    }
                    if counts_for_breaker {
                        state.breakers.failure(&provider.id);
                        probe.settle();
                    }
                    retry_after.insert(provider.id.clone(), after.unwrap_or_default());
                    tracing::warn!(request_id = %call.caller.request_id, provider = %provider.label, class = class.as_str(), "upstream attempt failed");
                }
                Attempt::KeyRejected => {
                    if let Some(held) = &held {
                        super::limits::settle(state, held, perpetuo_core::usage::TokenCounts::default());
                    }
                    state.metrics.upstream_error(provider.kind.as_str(), ErrorClass::ProviderKeyRejected);
                    progress.last_class = Some(ErrorClass::ProviderKeyRejected);
                    bad_keys.push(provider.id.clone());
                    flag_rejected_key(state, &call, provider);
                }
            }
            if Instant::now() >= deadline {
                break 'rounds;
            }
        }
        if !tried {
            break;
        }
        round += 1;
    }

    let error = if call.caller.gone.is_cancelled() {
        GatewayError::ClientGone
    } else if let (0, Some(refusal)) = (progress.attempts, refused) {
        refusal.into()
    } else if let (0, Some(limited)) = (progress.attempts, limited) {
        limited
    } else if progress.attempts == 0 && skipped_open.is_some() {
        GatewayError::ProvidersUnavailable
    } else if Instant::now() >= deadline && progress.last_class == Some(ErrorClass::Timeout) {
        GatewayError::Timeout
    } else if progress.last_class == Some(ErrorClass::UpstreamOverloaded) {
        GatewayError::Overloaded
    } else {
        GatewayError::AllProvidersFailed {
            attempts: progress.attempts,
            last: progress.last_class.map_or("no provider available", ErrorClass::as_str).to_owned(),
        }
    };
    let candidate = last_provider.or(skipped_open).and_then(|i| call.candidates.get(i));
    answer::call_failure(state, &call, candidate, error, &progress)
}

/// Jittered exponential backoff for the `round`-th return to the same providers (100 ms, 200 ms,
/// ... up to 2 s, each times 0.5 to 1.5).
fn backoff(round: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(2u32.saturating_pow(round.saturating_sub(1)));
    base.min(Duration::from_secs(2)).mul_f64(rand::rng().random_range(0.5..1.5))
}

/// The provider said the stored key is bad: mark it for the dashboard, off the request path.
fn flag_rejected_key(state: &AppState, call: &Call, provider: &OpenedProvider) {
    tracing::warn!(request_id = %call.caller.request_id, provider = %provider.label, "provider rejected its stored key; flagged in the dashboard");
    let (state, ws, id) = (state.clone(), call.caller.key.workspace.clone(), provider.id.clone());
    tokio::spawn(async move {
        if let Err(e) = state.providers().flag_rejected(&ws, &id).await {
            e.log_if_internal();
        }
    });
}

/// The wait a provider asked for (`retry-after-ms`, else `Retry-After` in seconds). Values that
/// are not finite, negative or absurd are ignored; the loop clamps the rest to the deadline.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name| headers.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text(http::HeaderName::from_static("retry-after-ms")).and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).ok();
    }
    text(header::RETRY_AFTER).and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
}

/// The call as a candidate gets it (a request its protocol cannot say there is refused).
fn prepare(candidate: &Candidate, call: &Call) -> Result<Prepared, Refusal> {
    translation::prepare(&candidate.provider, &candidate.model, &call.request, call.bound, &call.forward)
}

async fn attempt(
    state: &AppState,
    candidate: &Candidate,
    call: &Call,
    prepared: Prepared,
    deadline: Instant,
    trace: Option<&opentelemetry::Context>,
) -> Attempt {
    let provider = &candidate.provider;
    let settings = &state.settings.upstream;
    let dialect = catalog::dialect(provider.kind);
    let Ok(uri) = prepared.url.parse::<http::Uri>() else {
        return Attempt::retry(ErrorClass::Connect);
    };
    let body = Bytes::from(prepared.body);
    // A provider with minted tokens gets a second send when it refuses a token it had cached
    // (revoked, or expired early): with a new one, at most once.
    let mut refreshed = false;
    let response = loop {
        let bearer = match &provider.tokens {
            None => None,
            Some(tokens) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, tokens.bearer(state.providers().http())).await {
                    Ok(Ok(bearer)) => Some(bearer),
                    Ok(Err(TokenError::Refused(why))) => {
                        tracing::warn!(request_id = %call.caller.request_id, provider = %provider.label, reason = %client::scrub(&why, &provider.key), "the provider's credential was refused by its token endpoint");
                        return Attempt::KeyRejected;
                    }
                    Ok(Err(TokenError::Unavailable(why))) => {
                        tracing::warn!(request_id = %call.caller.request_id, provider = %provider.label, reason = %client::scrub(&why, &provider.key), "no token for the provider");
                        return Attempt::retry(ErrorClass::TokenExchange);
                    }
                    Err(_) => return Attempt::retry(ErrorClass::TokenExchange),
                }
            }
        };
        let mut request = http::Request::new(UpstreamBody::new(body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        for (name, value) in provider.auth.iter() {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &prepared.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(bearer) = &bearer {
            headers.insert(header::AUTHORIZATION, bearer.clone());
        }
        if let Some(cx) = trace {
            perpetuo_core::platform::telemetry::Telemetry::inject(cx, headers);
        }
        if let Some(signer) = &provider.signer
            && let Err(why) = signer.sign("POST", &prepared.url, request.headers_mut(), &body)
        {
            tracing::warn!(request_id = %call.caller.request_id, provider = %provider.label, reason = %why, "the request could not be signed");
            return Attempt::retry(ErrorClass::Signing);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let sent = state.providers().upstream().send(request);
        let response = match tokio::time::timeout(settings.first_byte_timeout.min(remaining), sent).await {
            // The provider had the request and may be generating the answer it will bill.
            Err(_) => return Attempt::abandoned(ErrorClass::Timeout),
            Ok(Err(SendError::Connect)) => return Attempt::retry(ErrorClass::Connect),
            // The connection broke after the request may have gone out.
            Ok(Err(SendError::Other)) => return Attempt::abandoned(ErrorClass::Connect),
            Ok(Ok(response)) => response,
        };
        match (&provider.tokens, bearer) {
            (Some(tokens), Some(bearer)) if response.status() == StatusCode::UNAUTHORIZED && !refreshed => {
                tokens.forget(&bearer);
                refreshed = true;
            }
            _ => break response,
        }
    };
    let status = response.status();
    let heard = (response.headers(), parse_retry_after(response.headers()));
    state.pressure.observe(&provider.id, &candidate.model, status.as_u16(), heard.0, heard.1);
    if status.is_success() {
        return read_success(state, prepared.reader, dialect.deframer(), call, response, deadline).await;
    }
    let retry_after = parse_retry_after(response.headers());
    match status.as_u16() {
        401 | 403 => Attempt::KeyRejected,
        429 => Attempt::Retry { class: ErrorClass::Upstream429, retry_after, counts_for_breaker: false, billed: false },
        529 => Attempt::Retry {
            class: ErrorClass::UpstreamOverloaded,
            retry_after,
            counts_for_breaker: true,
            billed: false,
        },
        408 | 500..=599 => {
            Attempt::Retry { class: ErrorClass::Upstream5xx, retry_after, counts_for_breaker: true, billed: false }
        }
        _ => {
            // Bounded by the call's deadline too: a provider trickling an error body cannot hold it.
            let text = body::read_whole(response.into_body(), ERROR_BODY_CAP, settings.idle_timeout, deadline)
                .await
                .unwrap_or_default();
            if dialect.rejects_key(status, &text) {
                return Attempt::KeyRejected;
            }
            let error = dialect.client_error(status, &text);
            Attempt::ClientError(GatewayError::Upstream {
                status,
                message: client::scrub(&error.message, &provider.key),
                kind: error.kind,
                code: error.code,
                param: error.param,
            })
        }
    }
}

/// The most of a provider's error body read (its message is in the first few hundred bytes).
const ERROR_BODY_CAP: usize = 64 * 1024;

async fn read_success(
    state: &AppState,
    reader: Box<dyn AnswerReader>,
    deframer: Option<Box<dyn Deframer>>,
    call: &Call,
    response: http::Response<hyper::body::Incoming>,
    deadline: Instant,
) -> Attempt {
    let idle = state.settings.upstream.idle_timeout;
    if !call.request.stream {
        let cap = state.settings.upstream.max_answer_bytes;
        let body = match body::read_whole(response.into_body(), cap, idle, deadline).await {
            Ok(body) => body,
            // An answer past the cap is the provider misbehaving (or endless): dropped, not held.
            Err(ReadError::TooLarge) => return Attempt::abandoned(ErrorClass::AnswerTooLarge),
            Err(ReadError::Timeout) => return Attempt::abandoned(ErrorClass::Timeout),
            Err(ReadError::Cut(_)) => return Attempt::abandoned(ErrorClass::BodyCut),
        };
        return match reader.whole(body, &call.labels) {
            Ok((body, tokens)) => Attempt::Whole { body, tokens },
            // A 200 whose answer cannot be read was still generated.
            Err(_) => Attempt::abandoned(ErrorClass::BadUpstreamBody),
        };
    }
    let mut upstream: ByteStream = Box::pin(http_body_util::BodyDataStream::new(response.into_body()));
    if let Some(mut deframer) = deframer {
        // Another framing (Bedrock's event stream) is read as the server-sent events it carries.
        upstream = Box::pin(upstream.filter_map(move |chunk| {
            let chunk = chunk.map(|bytes| deframer.push(&bytes));
            async move { chunk.map_or_else(|e| Some(Err(e)), |bytes| (!bytes.is_empty()).then_some(Ok(bytes))) }
        }));
    }
    // Fallback is still possible until the first byte reaches the client: wait for it here.
    let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(wait, upstream.next()).await {
        // An error as the very first event, instead of an answer: nothing was generated, and
        // nothing reached the client yet, so fall back.
        Ok(Some(Ok(first))) if reader.starts_with_error(&first) => Attempt::retry(ErrorClass::UpstreamStreamError),
        Ok(Some(Ok(first))) => Attempt::Stream { upstream, first, translate: reader.stream(&call.labels) },
        Err(_) => Attempt::abandoned(ErrorClass::Timeout),
        Ok(Some(Err(_)) | None) => Attempt::abandoned(ErrorClass::StreamCut),
    }
}

/// Releases a half-open breaker's probe unless [`ProbeGuard::settle`] was called: a probe that
/// ends without a verdict (or whose future is dropped) must not block the provider for good.
struct ProbeGuard<'a> {
    breakers: &'a Breakers,
    id: &'a str,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn settle(&mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breakers.abandon_probe(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use perpetuo_core::platform::rate::LimitClock;

    #[test]
    fn a_dropped_probe_is_released() {
        let clock = LimitClock::manual();
        let breakers = Breakers::new(1, Duration::from_secs(1), clock.clone());
        breakers.failure("p");
        clock.advance(Duration::from_secs(1));
        assert_eq!(breakers.admit("p"), Admission::Probe);
        assert_eq!(breakers.admit("p"), Admission::Rejected, "one probe at a time");
        drop(ProbeGuard { breakers: &breakers, id: "p", armed: true });
        assert_eq!(breakers.admit("p"), Admission::Probe, "released when the attempt ended without a verdict");
        let mut settled = ProbeGuard { breakers: &breakers, id: "p", armed: true };
        breakers.success("p");
        settled.settle();
        drop(settled);
        assert_eq!(breakers.admit("p"), Admission::Allowed);
    }

    proptest::proptest! {
        /// Whatever a provider writes in its retry headers, reading them never panics, and any
        /// wait it gives can be added to the clock.
        #[test]
        fn any_retry_header_is_read_without_panic(ms in "\\PC{0,40}", secs in "\\PC{0,40}", number in proptest::num::f64::ANY) {
            for (name, value) in [("retry-after-ms", ms.clone()), ("retry-after", secs.clone()), ("retry-after-ms", number.to_string())] {
                let mut h = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_str(&value) {
                    h.insert(name, value);
                }
                if let Some(wait) = parse_retry_after(&h) {
                    // The loop clamps to the deadline with checked arithmetic; this must not panic.
                    let _ = Instant::now().checked_add(wait);
                    proptest::prop_assert!(wait.as_secs_f64().is_finite());
                }
            }
        }
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
        // Values no clock can add are ignored rather than trusted (or panicking).
        for (absurd, expected) in
            [("inf", None), ("1e308", None), ("NaN", Some(Duration::ZERO)), ("-5", Some(Duration::ZERO))]
        {
            let mut h = HeaderMap::new();
            h.insert("retry-after-ms", HeaderValue::from_static(absurd));
            assert_eq!(parse_retry_after(&h), expected, "{absurd}");
        }
    }
}
