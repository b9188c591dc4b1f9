//! Token and in-flight limits on the gateway. A call is admitted under its workspace's and key's
//! limits before its budget is reserved (its estimate: the prompt on the high side and the most it
//! may write), and under a provider's own limits before each attempt there. Places in flight are
//! held by the call (a stream's until it ends) and given back when it is dropped; tokens are
//! settled once, when the call is recorded, to what it was charged.

use std::sync::Arc;
use std::time::Duration;

use perpetuo_core::AppState;
use perpetuo_core::limits::{Admitted, Need, Refused, Standing};
use perpetuo_core::usage::TokenCounts;
use perpetuo_core::workspaces::WorkspaceId;

use super::error::GatewayError;

/// What a call holds under limits: its own (workspace and key) and the serving provider's.
#[derive(Debug, Default)]
pub struct CallLimits {
    pub call: Option<Arc<Admitted>>,
    pub provider: Option<Arc<Admitted>>,
}

impl CallLimits {
    /// The tightest token limit of the call's own, for the answer's rate-limit headers.
    pub fn standing(&self) -> Option<Standing> {
        self.call.as_ref().and_then(|a| a.standing)
    }
}

/// Admits a call under its workspace's and key's limits (waiting up to `LIMIT_WAIT_MS` for room)
/// at the estimate `need` makes (only made when a limit applies); `None` when none does.
pub async fn admit_call(
    state: &AppState,
    ws: &WorkspaceId,
    key_id: &str,
    need: impl AsyncFnOnce() -> Need,
) -> Result<Option<(Arc<Admitted>, Need)>, GatewayError> {
    let rules = state.limits().for_call(ws, key_id).await?;
    if rules.is_empty() {
        return Ok(None);
    }
    let need = need().await;
    match state.limits().admit(ws, &rules, need, state.settings.limit_wait).await {
        Ok(admitted) => Ok(Some((Arc::new(admitted), need))),
        Err(refused) => Err(limited(state, refused, false)),
    }
}

/// Admits an attempt at a provider under that provider's limits, without waiting (the next
/// candidate may have room now); `Ok(None)` when it has none.
pub async fn admit_provider(
    state: &AppState,
    ws: &WorkspaceId,
    provider_id: &str,
    need: Need,
) -> Result<Option<Arc<Admitted>>, GatewayError> {
    let Some(rule) = state.limits().for_provider(ws, provider_id).await? else { return Ok(None) };
    match state.limits().admit(ws, std::slice::from_ref(&rule), need, Duration::ZERO).await {
        Ok(admitted) => Ok(Some(Arc::new(admitted))),
        Err(refused) => Err(limited(state, refused, true)),
    }
}

fn limited(state: &AppState, refused: Refused, provider: bool) -> GatewayError {
    let retry_after = refused.retry_after();
    let (class, limiter, standing) = match (&refused, provider) {
        (_, true) => ("provider_limited", "provider", None),
        (Refused::Tokens { standing, .. }, false) => ("token_limited", "tokens", Some(*standing)),
        (Refused::InFlight { .. }, false) => ("concurrency_limited", "in_flight", None),
    };
    state.metrics.rate_limited(limiter);
    GatewayError::Limited { message: refused.message().to_owned(), standing, retry_after, class }
}

/// Settles what `admitted` reserved to the tokens a call was charged (in the background: the
/// answer does not wait). Outside a runtime (the process is stopping) nothing is settled, and the
/// reservation stands: never more room than was used.
pub fn settle(state: &AppState, admitted: &Arc<Admitted>, tokens: TokenCounts) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let (limits, admitted) = (state.limits().clone(), admitted.clone());
    let used = Need { input: tokens.prompt, output: tokens.completion };
    drop(runtime.spawn(async move { limits.settle(&admitted, used).await }));
}

/// Settles every limit a call holds at what it was charged.
pub fn settle_call(state: &AppState, limits: &CallLimits, tokens: TokenCounts) {
    for admitted in [&limits.call, &limits.provider].into_iter().flatten() {
        settle(state, admitted, tokens);
    }
}
