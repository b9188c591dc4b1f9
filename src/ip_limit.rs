//! The per-IP limit, first thing on every route: no database or crypto work before it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use perpetuo_core::AppState;
use perpetuo_core::platform::rate::{ClientIp, Decision};
use perpetuo_core::protocols::Protocol;
use perpetuo_core::protocols::errors::ErrorParts;

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

/// A 429 in the shape the caller expects. This runs before routing, so the path says which
/// protocol: Anthropic's on `/v1/messages`, OpenAI's elsewhere on `/v1` and on `/api/v1` (the
/// management API speaks OpenAI's error shape), a short readable page for the dashboard.
fn too_many_requests(path: &str, decision: &Decision) -> Response {
    let retry = decision.retry_after_secs().max(1);
    let message = format!("Too many requests from your address. Try again in {retry} seconds.");
    let protocol = if path.starts_with("/v1/messages") {
        Some(Protocol::Messages)
    } else if path.starts_with("/v1") || path.starts_with("/api/") {
        Some(Protocol::Chat)
    } else {
        None
    };
    let mut response = match protocol {
        Some(protocol) => {
            let parts = ErrorParts {
                message,
                kind: "rate_limit_exceeded".into(),
                param: None,
                code: Some("rate_limit_exceeded".into()),
            };
            let body = protocol.error_json(StatusCode::TOO_MANY_REQUESTS.as_u16(), &parts);
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
        }
        None => {
            let html = format!(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many requests</title></head>\
                 <body><h1>Too many requests</h1><p>{message}</p></body></html>"
            );
            (StatusCode::TOO_MANY_REQUESTS, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
    };
    protocol.unwrap_or(Protocol::Chat).request_limit_headers(response.headers_mut(), decision);
    response
}
