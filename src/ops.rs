//! The operator's surface: `GET /healthz` (the process is up), `GET /readyz` (the database
//! answers and usage records can be kept) and `GET /metrics` (Prometheus text, behind `METRICS_TOKEN` when one is set).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};

use perpetuo_core::AppState;

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
    let body = exposition(&state);
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

/// The whole `GET /metrics` exposition for this instance: the request metrics above, then the
/// state of the usage queue, breakers, caches and limiters. Every metric name lives here.
pub fn exposition(state: &AppState) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let (usage, stats) = (&state.usage, &state.usage.stats);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    state.metrics.render(
        &[
            (
                "perpetuo_usage_spool_bytes",
                "Bytes of usage records waiting on local disk for the database.",
                usage.pending_bytes() as f64,
            ),
            (
                "perpetuo_usage_spool_max_bytes",
                "The most bytes the usage spool may hold (USAGE_SPOOL_MAX_BYTES).",
                usage.max_bytes() as f64,
            ),
            (
                "perpetuo_usage_spool_full",
                "1 while the usage spool is full and new gateway calls are refused.",
                flag(usage.is_full()),
            ),
            (
                "perpetuo_usage_database_failing",
                "1 while writing usage records to the database fails.",
                flag(usage.database_failing()),
            ),
            (
                "perpetuo_open_circuit_breakers",
                "Providers whose circuit breaker is open or probing.",
                state.breakers.open_count() as f64,
            ),
            ("perpetuo_cached_api_keys", "API keys held in this instance's cache.", state.keys().cached() as f64),
            ("perpetuo_open_connections", "Client connections open now.", state.metrics.open_connections() as f64),
            (
                "perpetuo_rate_limiter_keys",
                "Clients and keys tracked by the rate limiters.",
                state.limiters.tracked_keys() as f64,
            ),
        ],
        &[
            (
                "perpetuo_usage_records_written_total",
                "Usage records written to the database.",
                stats.written.load(Relaxed),
            ),
            (
                "perpetuo_usage_records_dropped_total",
                "Usage records that could not be kept (the spool could not be written).",
                stats.lost.load(Relaxed),
            ),
            (
                "perpetuo_usage_write_retries_total",
                "Usage batch writes retried after a failure.",
                stats.retried.load(Relaxed),
            ),
            (
                "perpetuo_shared_limit_fallbacks_total",
                "Rate-limit checks this instance decided alone because the database did not answer in time.",
                state.limiters.shared_fallbacks(),
            ),
            (
                "perpetuo_trace_spans_exported_total",
                "Spans sent to the OTLP collector.",
                state.telemetry.counters.exported.load(Relaxed),
            ),
            (
                "perpetuo_trace_spans_dropped_total",
                "Spans dropped because the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE).",
                state.telemetry.counters.dropped.load(Relaxed),
            ),
            (
                "perpetuo_captures_stored_total",
                "Calls whose bodies were captured and written (sealed).",
                state.captures().counters.stored.load(Relaxed),
            ),
            (
                "perpetuo_captures_dropped_total",
                "Captured bodies dropped because the capture writer's queue was full.",
                state.captures().counters.dropped.load(Relaxed),
            ),
            (
                "perpetuo_captures_failed_total",
                "Captured bodies lost because sealing or writing them failed.",
                state.captures().counters.failed.load(Relaxed),
            ),
            (
                "perpetuo_count_tokens_total",
                "Token counts answered on /v1/messages/count_tokens (each under its key's request limit).",
                state.metrics.count_tokens(),
            ),
            (
                "perpetuo_estimates_offloaded_total",
                "Prompt estimates counted on the estimator's threads (large prompts, each workspace in turn).",
                state.estimator().stats().offloaded.load(Relaxed),
            ),
            (
                "perpetuo_estimates_by_length_total",
                "Prompt estimates counted (partly) by length: past the deadline, or over the workspace's share of the queue.",
                state.estimator().stats().by_length.load(Relaxed),
            ),
            (
                "perpetuo_trace_export_failures_total",
                "Span batches the collector did not take (refused, unreachable or too slow).",
                state.telemetry.counters.export_failures.load(Relaxed),
            ),
        ],
    )
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
