//! Who is calling: the key proven at the edge (looked up, cache first), then the key's own
//! request limit, with the request's identity, span and cancellation.

use std::time::Instant;

use axum::extract::FromRequestParts;
use http::request::Parts;

use perpetuo_core::AppState;
use perpetuo_core::keys::{ApiKeyToken, CachedKey};
use perpetuo_core::platform::db::now_ms;
use perpetuo_core::platform::rate::Decision;

use super::error::GatewayError;

/// Who is calling: a valid key within its limit, and the request's identity.
#[derive(Clone)]
pub struct Caller {
    pub request_id: String,
    pub started: Instant,
    /// Unix milliseconds when the request arrived.
    pub ts: i64,
    pub key: CachedKey,
    pub limit: Decision,
    /// The call's span when traces are exported (ended with its record).
    pub trace: Option<opentelemetry::Context>,
    /// Cancelled when the client leaves before the answer began (the handler was dropped).
    pub gone: tokio_util::sync::CancellationToken,
    /// Set once the call's record is built: a call that fails without one (its task panicked)
    /// is recorded by the edge instead.
    pub recorded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The presented key: `Authorization: Bearer pk_...` (or the bare key), or `x-api-key: pk_...`.
fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    let raw = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::bearer::bearer(headers).or_else(|| raw("authorization")).or_else(|| raw("x-api-key"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = GatewayError;

    /// Key lookup (cache first), then the key's own rate limit.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GatewayError> {
        let (started, ts) = (Instant::now(), now_ms());
        let token = ApiKeyToken::parse(presented_key(&parts.headers))?;
        let key = state.keys().authenticate(&token).await?;
        let limit = state.limiters.key(&key.id, key.rate_limit_per_min).await;
        if !limit.allowed {
            state.metrics.rate_limited("key");
            return Err(GatewayError::RateLimited(limit));
        }
        state.keys().touch(&key.id, ts);
        let trace = state.telemetry.call(&parts.headers);
        let request_id = perpetuo_core::usage::record::request_id(ts);
        Ok(Self {
            request_id,
            started,
            ts,
            key,
            limit,
            trace,
            gone: tokio_util::sync::CancellationToken::new(),
            recorded: std::sync::Arc::default(),
        })
    }
}
