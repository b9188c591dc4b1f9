//! The operator's surface: `GET /healthz` (the process is up), `GET /readyz` (the database
//! answers and usage records can be kept) and `GET /metrics` (Prometheus text, behind `METRICS_TOKEN` when one is set).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};

use app::server::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Ready when the database answers and usage records can be kept: not while the spool is full
/// or cannot be written.
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.db.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response();
    }
    if state.usage.is_failing() {
        return (StatusCode::SERVICE_UNAVAILABLE, "usage spool cannot be written: its disk is full or failing")
            .into_response();
    }
    if state.usage.is_full() {
        return (StatusCode::SERVICE_UNAVAILABLE, "usage spool full: the database is behind").into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.settings.metrics_token {
        Some(token) => {
            let presented = crate::bearer::bearer(&headers).unwrap_or_default();
            if !constant_time_eq(presented.as_bytes(), token.expose()) {
                return (StatusCode::UNAUTHORIZED, "metrics need the METRICS_TOKEN bearer token").into_response();
            }
        }
        None if state.settings.metrics_public => {}
        None => {
            return (StatusCode::FORBIDDEN, "metrics are closed: set METRICS_TOKEN (or METRICS_PUBLIC=true)")
                .into_response();
        }
    }
    let body = app::server::platform::metrics::exposition(&state);
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Compares without stopping at the first difference, so the time taken does not tell how much
/// of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, y) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(!*y) ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
