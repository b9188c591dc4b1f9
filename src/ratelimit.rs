//! The per-IP limit, first thing on every route: no database or crypto work before it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use perpetuo_core::AppState;
use perpetuo_core::platform::ratelimit::{ClientIp, Decision, format_reset};
use perpetuo_core::protocols::Protocol;

/// An RFC 3339 UTC timestamp (second precision), as Anthropic's reset headers give it.
fn httpdate_rfc3339(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ms = i64::try_from(secs).unwrap_or(0).saturating_mul(1000);
    perpetuo_types::time::rfc3339_utc(ms)
}

pub async fn ip_limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = state.limiters.client_ip(peer, request.headers());
    let decision = state.limiters.ip(ip).await;
    if !decision.allowed {
        state.metrics.rate_limited("ip");
        return too_many_requests(request.uri().path(), &decision);
    }
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// A 429 in the shape the caller expects: OpenAI's error JSON on `/v1`, the API's JSON on
/// `/api/v1`, a short readable page elsewhere.
pub fn too_many_requests(path: &str, decision: &Decision) -> Response {
    let retry = decision.retry_after_secs().max(1);
    let message = format!("Too many requests from your address. Try again in {retry} seconds.");
    let anthropic = path.starts_with("/v1/messages");
    let mut response = if anthropic {
        let body = perpetuo_core::protocols::messages::error_json("rate_limit_error", &message);
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
    } else if path.starts_with("/v1") || path.starts_with("/api/") {
        let body = perpetuo_core::protocols::chat::error_json(
            &message,
            "rate_limit_exceeded",
            None,
            Some("rate_limit_exceeded"),
        );
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
    } else {
        let html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many requests</title></head>\
             <body><h1>Too many requests</h1><p>{message}</p></body></html>"
        );
        (StatusCode::TOO_MANY_REQUESTS, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
    };
    let protocol = if anthropic { Protocol::Messages } else { Protocol::Chat };
    set_headers(response.headers_mut(), decision, protocol);
    response
}

/// `Retry-After` (when refused) and the `x-ratelimit-*` headers OpenAI clients read; on the
/// Messages route, Anthropic's `anthropic-ratelimit-requests-*` too.
pub fn set_headers(headers: &mut http::HeaderMap, decision: &Decision, protocol: Protocol) {
    if protocol == Protocol::Messages {
        headers.insert("anthropic-ratelimit-requests-limit", HeaderValue::from(decision.limit));
        headers.insert("anthropic-ratelimit-requests-remaining", HeaderValue::from(decision.remaining));
        let reset = std::time::SystemTime::now() + decision.reset;
        if let Ok(reset) = HeaderValue::from_str(&httpdate_rfc3339(reset)) {
            headers.insert("anthropic-ratelimit-requests-reset", reset);
        }
    }
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs().max(1)));
    }
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(decision.remaining));
    if let Ok(reset) = HeaderValue::from_str(&format_reset(decision.reset)) {
        headers.insert("x-ratelimit-reset-requests", reset);
    }
}

/// A token limit's standing: OpenAI's `x-ratelimit-{limit,remaining,reset}-tokens`, and on the
/// Messages route Anthropic's `anthropic-ratelimit-{input-tokens,output-tokens,tokens}-*` (by what
/// the limit counts).
pub fn set_token_headers(
    headers: &mut http::HeaderMap,
    standing: &perpetuo_core::limits::Standing,
    protocol: Protocol,
) {
    use perpetuo_core::limits::Counted;
    if protocol == Protocol::Messages {
        let (limit, remaining, reset) = match standing.counted {
            Counted::Input => (
                "anthropic-ratelimit-input-tokens-limit",
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ),
            Counted::Output => (
                "anthropic-ratelimit-output-tokens-limit",
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ),
            Counted::Total => (
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ),
        };
        headers.insert(limit, HeaderValue::from(standing.limit));
        headers.insert(remaining, HeaderValue::from(standing.remaining));
        if let Ok(at) = HeaderValue::from_str(&httpdate_rfc3339(std::time::SystemTime::now() + standing.reset)) {
            headers.insert(reset, at);
        }
    }
    headers.insert("x-ratelimit-limit-tokens", HeaderValue::from(standing.limit));
    headers.insert("x-ratelimit-remaining-tokens", HeaderValue::from(standing.remaining));
    if let Ok(reset) = HeaderValue::from_str(&format_reset(standing.reset)) {
        headers.insert("x-ratelimit-reset-tokens", reset);
    }
}
