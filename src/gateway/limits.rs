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
use perpetuo_types::{ErrorClass, StepOutcome};

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

fn limited(state: &AppState, refused: Refused, provider: bool) -> GatewayError {
    let retry_after = refused.retry_after();
    let (class, limiter, standing) = match (&refused, provider) {
        (_, true) => (ErrorClass::ProviderLimited, "provider", None),
        (Refused::Tokens { standing, .. }, false) => (ErrorClass::TokenLimited, "tokens", Some(*standing)),
        (Refused::InFlight { .. }, false) => (ErrorClass::ConcurrencyLimited, "in_flight", None),
    };
    state.metrics.rate_limited(limiter);
    GatewayError::Limited { message: refused.message().to_owned(), standing, retry_after, class }
}

/// Settles what `admitted` reserved to the tokens a call was charged (in the background: the
/// answer does not wait). Outside a runtime (the process is stopping) nothing is settled, and the
/// reservation stands: never more room than was used.
pub fn settle(state: &AppState, admitted: &Arc<Admitted>, tokens: TokenCounts) {
    let used = Need { input: tokens.prompt, output: tokens.completion };
    // Buckets this instance keeps alone are settled here and now; the rest in the background.
    let left = state.limits().settle_now(admitted, used);
    if left.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let limits = state.limits().clone();
    drop(runtime.spawn(async move { limits.settle_rest(left, used).await }));
}

/// Settles every limit a call holds at what it was charged.
pub fn settle_call(state: &AppState, limits: &CallLimits, tokens: TokenCounts) {
    for admitted in [&limits.call, &limits.provider].into_iter().flatten() {
        settle(state, admitted, tokens);
    }
}

/// Whether an attempt may go to a provider now.
pub enum Gate {
    /// Go, holding what the provider's limits admitted (if it has any).
    Go(Option<Arc<Admitted>>),
    /// Not this provider, for now: the step's class and the call's error if no other serves.
    Skip(StepOutcome, GatewayError),
}

/// What to do about a provider resting until its own rate-limit reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// Nothing (the call already tried it, and backs off as the provider asked).
    Ignore,
    /// Pass it over: another candidate can serve.
    Skip,
    /// Wait for the reset when it comes within `LIMIT_WAIT_MS` and the call's deadline.
    Wait,
}

/// A provider that said it is nearly out of its own quota for the candidate's model rests (for that
/// model) until its reset (see [`Rest`]).
/// Then the provider's limits in Perpetuo (its share of the account), without waiting.
pub async fn gate(
    state: &AppState,
    ws: &WorkspaceId,
    candidate: &super::routing::Candidate,
    rest: Rest,
    deadline: std::time::Instant,
    gone: &tokio_util::sync::CancellationToken,
    need: impl AsyncFnOnce() -> Need,
) -> Gate {
    let now = state.pressure.now();
    let provider_id = candidate.provider.id.as_str();
    let resting = state.pressure.resting(provider_id, &candidate.model, now);
    if let Some(until) = resting.filter(|_| rest != Rest::Ignore) {
        let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
        let fits = std::time::Instant::now().checked_add(wait).is_some_and(|at| at < deadline);
        if rest == Rest::Skip || wait > state.settings.limit_wait || !fits {
            state.metrics.rate_limited("provider");
            let error = GatewayError::Limited {
                message: "The provider said it is out of its own rate limit; try again after its reset.".into(),
                standing: None,
                retry_after: wait,
                class: ErrorClass::ProviderResting,
            };
            return Gate::Skip(StepOutcome::ProviderResting, error);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // The loop ends the call when it sees the client gone.
            () = gone.cancelled() => return Gate::Skip(StepOutcome::Failed(ErrorClass::ClientDisconnected), GatewayError::ClientGone),
        }
    }
    let rule = match state.limits().for_provider(ws, provider_id).await {
        Ok(Some(rule)) => rule,
        Ok(None) => return Gate::Go(None),
        Err(e) => return Gate::Skip(StepOutcome::ProviderLimit, e.into()),
    };
    match state.limits().admit(ws, std::slice::from_ref(&rule), need().await, Duration::ZERO).await {
        Ok(admitted) => Gate::Go(Some(Arc::new(admitted))),
        Err(refused) => Gate::Skip(StepOutcome::ProviderLimit, limited(state, refused, true)),
    }
}

/// Whether any candidate but `index` could serve now (not resting, its key not refused).
pub fn alternative(state: &AppState, candidates: &[super::routing::Candidate], index: usize, bad: &[String]) -> bool {
    let now = state.pressure.now();
    candidates.iter().enumerate().any(|(i, c)| {
        i != index && !bad.contains(&c.provider.id) && state.pressure.resting(&c.provider.id, &c.model, now).is_none()
    })
}
