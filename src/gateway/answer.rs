//! The client's answer to a call: a whole success, a stream handed to the relay, or an error in
//! OpenAI's shape, each with the gateway's headers and its usage record.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use perpetuo_core::AppState;
use perpetuo_core::protocols::Protocol;
use perpetuo_core::providers::OpenedProvider;
use perpetuo_core::usage::TokenCounts;
use perpetuo_types::ErrorClass;

use super::call::Call;
use super::caller::Caller;
use super::error::GatewayError;
use super::record::{Charge, Outcome, Progress, Subject, submit};
use super::relay::Relay;
use super::routing::Candidate;

/// `x-request-id`, `x-perpetuo-provider`, `x-perpetuo-attempts` and the rate-limit headers.
fn decorate(
    headers: &mut HeaderMap,
    caller: &Caller,
    protocol: Protocol,
    provider: Option<&OpenedProvider>,
    attempts: u32,
) {
    if let Ok(id) = HeaderValue::from_str(&caller.request_id) {
        headers.insert("x-request-id", id);
    }
    if let Some(provider) = provider {
        let value = HeaderValue::from_str(&provider.label).unwrap_or_else(|_| {
            HeaderValue::from_str(&provider.label.chars().filter(char::is_ascii_graphic).collect::<String>())
                .unwrap_or(HeaderValue::from_static("provider"))
        });
        headers.insert("x-perpetuo-provider", value);
    }
    headers.insert("x-perpetuo-attempts", HeaderValue::from(attempts));
    protocol.request_limit_headers(headers, &caller.limit);
}

/// `x-perpetuo-dropped-tools`: the hosted tools the client offered that the provider went
/// without (their type names, comma separated), when there were any.
fn dropped_header(headers: &mut HeaderMap, dropped: &perpetuo_core::protocols::Dropped) {
    if !dropped.is_empty()
        && let Ok(value) = HeaderValue::from_str(&dropped.list())
    {
        headers.insert("x-perpetuo-dropped-tools", value);
    }
}

/// The call failed (before any attempt, or after all of them): answered and recorded (charged
/// what its abandoned attempts may be billed).
pub fn failure(
    state: &AppState,
    subject: &Subject,
    candidate: Option<&Candidate>,
    error: GatewayError,
    progress: &Progress,
) -> Response {
    let provider = candidate.map(|c| &c.provider);
    let outcome = Outcome {
        provider,
        served_model: candidate.map(|c| c.model.as_str()),
        status: error.status().as_u16(),
        error_class: Some(error.class()),
        charge: Charge::default(),
        ttft: None,
        price: None,
    };
    let error = if submit(state, subject, outcome, progress) { error } else { GatewayError::UsageLedgerUnavailable };
    let mut response = error.response_for(subject.protocol);
    decorate(response.headers_mut(), subject.caller, subject.protocol, provider, progress.attempts);
    response
}

/// A call that failed after it was built (its bodies captured when the call is).
pub fn call_failure(
    state: &AppState,
    call: &Call,
    candidate: Option<&Candidate>,
    error: GatewayError,
    progress: &Progress,
) -> Response {
    super::capture::failed(state, call, &error);
    failure(state, &Subject::of(call), candidate, error, progress)
}

/// A whole answer, as the provider's dialect turned it into the client's protocol.
pub async fn whole(
    state: &AppState,
    call: &Call,
    served: &Candidate,
    body: Bytes,
    tokens: TokenCounts,
    progress: &Progress,
) -> Response {
    let charge = whole_charge(state, call, served, &body, tokens).await;
    let provider = &served.provider;
    // A client that left while the provider answered gets nothing, but the call is charged what
    // the provider billed.
    let gone = call.caller.gone.is_cancelled();
    let outcome = Outcome {
        provider: Some(provider),
        served_model: Some(&served.model),
        status: if gone { 499 } else { 200 },
        error_class: gone.then_some(ErrorClass::ClientDisconnected),
        charge,
        ttft: None,
        price: call.price_used(state, served),
    };
    if !submit(state, &Subject::of(call), outcome, progress) {
        // The answer cannot go out without its record.
        let mut response = GatewayError::UsageLedgerUnavailable.response_for(call.request.protocol);
        decorate(response.headers_mut(), &call.caller, call.request.protocol, Some(provider), progress.attempts);
        return response;
    }
    super::capture::whole(state, call, &body);
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    decorate(response.headers_mut(), &call.caller, call.request.protocol, Some(provider), progress.attempts);
    dropped_header(response.headers_mut(), &progress.dropped);
    if let Some(standing) = call.holdings.limits.standing() {
        call.request.protocol.token_limit_headers(response.headers_mut(), &standing);
    }
    response
}

/// What a whole answer is charged: the usage its provider reported; where the provider reported
/// none (or no prompt, or no output for an answer that has some), estimated on the high side:
/// the prompt's ceiling, and the output the answer holds, never above the call's worst case.
async fn whole_charge(
    state: &AppState,
    call: &Call,
    served: &Candidate,
    body: &Bytes,
    reported: TokenCounts,
) -> Charge {
    let embeddings = call.request.protocol == Protocol::Embeddings;
    if reported.prompt > 0 && (reported.completion > 0 || embeddings) {
        return call.charge(state, served, reported);
    }
    let prompt = if reported.prompt > 0 { reported.prompt } else { call.prompt_ceiling(state).await };
    let written = if embeddings {
        0
    } else {
        serde_json::from_slice(body).map_or(call.worst_output, |answer| {
            perpetuo_core::usage::estimate::answer_output(&answer).min(call.worst_output)
        })
    };
    let tokens = TokenCounts { prompt, completion: reported.completion.max(written), ..reported };
    Charge { estimated: true, ..call.charge(state, served, tokens) }
}

/// A stream: the headers now, the events as the relay reads them (it records the call when the
/// stream ends, however it ends).
pub fn stream(relay: Relay) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    decorate(&mut headers, relay.caller(), relay.protocol(), Some(relay.provider()), relay.attempts());
    dropped_header(&mut headers, relay.dropped());
    if let Some(standing) = relay.standing() {
        relay.protocol().token_limit_headers(&mut headers, &standing);
    }
    let mut response = Response::new(Body::from_stream(relay.start()));
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = headers;
    response
}
