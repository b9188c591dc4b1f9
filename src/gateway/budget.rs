//! Budgets on the gateway: a call's worst case (its prompt, estimated on the high side, plus the
//! most it may write, every choice, at the dearest price among its candidates) is reserved before
//! the first attempt; each further attempt that may be billed (the last one reached the provider
//! and was abandoned) reserves its worst case again first; the call is settled once, when it is
//! recorded, at what it was charged.

use perpetuo_core::AppState;
use perpetuo_core::budgets::{Applicable, BudgetError, Hold, Need};
use perpetuo_core::platform::db::bounded;
use perpetuo_core::protocols::ClientRequest;
use perpetuo_core::usage::prices::Overrides;

use super::caller::Caller;
use super::charge::Charge;
use super::error::GatewayError;
use super::routing::Candidate;

/// The prompt's estimate on the high side (the most a provider could count), made once, and only
/// when a limit or a budget needs it (bounded by length when short: see
/// [`perpetuo_core::usage::estimate::Estimator::prompt_ceiling`]).
pub struct PromptCeiling<'a> {
    state: &'a AppState,
    tenant: &'a str,
    body: &'a serde_json::Map<String, serde_json::Value>,
    /// The ceiling, and whether it was counted (not bounded by length).
    counted: tokio::sync::OnceCell<(u64, bool)>,
}

impl<'a> PromptCeiling<'a> {
    pub fn new(state: &'a AppState, tenant: &'a str, body: &'a serde_json::Map<String, serde_json::Value>) -> Self {
        Self { state, tenant, body, counted: tokio::sync::OnceCell::new() }
    }

    /// The estimate, if the prompt was counted (a bound by length is too high to charge by).
    pub fn known(&self) -> Option<u64> {
        self.counted.get().filter(|(_, counted)| *counted).map(|(ceiling, _)| *ceiling)
    }

    pub async fn get(&self) -> u64 {
        self.counted.get_or_init(|| self.state.estimator().prompt_ceiling(self.tenant, self.body)).await.0
    }
}

/// A call's reservation.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub hold: Hold,
    applicable: Applicable,
    /// The prompt's estimate, on the high side (the most a provider could count).
    pub prompt: u64,
    /// What one attempt may cost at worst.
    per_attempt: Need,
    /// Attempts the hold covers.
    pub covered: u32,
}

/// Reserves the call's worst case against every budget that applies to the caller; `None` when
/// none does. Under a budget that does not allow them, candidates whose model has no known price
/// are dropped (and the call refused if none is left).
pub async fn reserve(
    state: &AppState,
    caller: &Caller,
    request: &ClientRequest,
    candidates: &mut Vec<Candidate>,
    prices: &Overrides,
    output: u64,
    prompt: &PromptCeiling<'_>,
) -> Result<Option<Reservation>, GatewayError> {
    let ws = &caller.key.workspace;
    let applicable = bounded(state.budgets().applicable(ws, &caller.key.id)).await?;
    if applicable.is_empty() {
        return Ok(None);
    }
    let price_of = |c: &Candidate| state.prices().price(prices, c.provider.kind.as_str(), &c.model);
    if !applicable.allow_unpriced() {
        candidates.retain(|c| price_of(c).is_some());
        if candidates.is_empty() {
            return Err(GatewayError::Budget(format!(
                "The model `{}` has no known price, and a dollar budget that applies to this call only allows priced models \
                 (an owner can allow unpriced models, or set a price for it).",
                request.model
            )));
        }
    }
    let counted = prompt.get().await;
    // Input stored at the provider (a conversation, a prompt, a file) is billed but not in the
    // request: each candidate holds its model's whole context window for it, and one whose window
    // is unknown cannot serve the call under a budget.
    let unseen = perpetuo_core::usage::estimate::unseen_input(&request.body);
    if let Some(field) = unseen {
        candidates.retain(|c| price_of(c).and_then(|p| p.context).is_some());
        if candidates.is_empty() {
            return Err(GatewayError::InvalidRequest {
                message: format!(
                    "`{field}` makes the provider bill input this request does not carry (a conversation, prompt or file \
                     stored at the provider). Under a budget Perpetuo reserves the model's whole context window for it, \
                     and the context window of `{}` is not known. Send the input in the request instead.",
                    request.model
                ),
                param: Some(field),
            });
        }
    }
    let prompt_at = |p: Option<perpetuo_core::usage::prices::Price>| match (unseen, p.and_then(|p| p.context)) {
        (Some(_), Some(context)) => counted.max(context),
        _ => counted,
    };
    let searches = perpetuo_core::usage::estimate::search_bound(&request.body);
    let worst = |p: perpetuo_core::usage::prices::Price| {
        p.worst_nanos(prompt_at(Some(p)), output).saturating_add(p.searches_nanos(searches))
    };
    let nanos = candidates.iter().filter_map(price_of).map(worst).max().unwrap_or(0);
    let prompt = candidates.iter().map(|c| prompt_at(price_of(c))).max().unwrap_or(counted);
    let need = Need { nanos, tokens: i64::try_from(prompt.saturating_add(output)).unwrap_or(i64::MAX) };
    let reserved = tokio::time::timeout(
        perpetuo_core::platform::db::CALL_TIMEOUT,
        state.budgets().reserve(ws, &applicable, &caller.request_id, need),
    )
    .await;
    let hold = refused_or(state, reserved)?;
    state.metrics.budget("reserved");
    Ok(Some(Reservation { hold, applicable, prompt, per_attempt: need, covered: 1 }))
}

/// Reserves one more attempt's worst case under the call's hold (the last attempt may be billed).
pub async fn extend(state: &AppState, caller: &Caller, reservation: &mut Reservation) -> Result<(), GatewayError> {
    let budgets = state.budgets();
    let (ws, need) = (&caller.key.workspace, reservation.per_attempt);
    let extended = tokio::time::timeout(
        perpetuo_core::platform::db::CALL_TIMEOUT,
        budgets.extend(ws, &reservation.applicable, &mut reservation.hold, need),
    )
    .await;
    refused_or(state, extended)?;
    reservation.covered += 1;
    state.metrics.budget("extended");
    Ok(())
}

fn refused_or<T>(
    state: &AppState,
    outcome: Result<Result<T, BudgetError>, tokio::time::error::Elapsed>,
) -> Result<T, GatewayError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(BudgetError::Exceeded(message))) => {
            state.metrics.budget("refused");
            Err(GatewayError::Budget(message))
        }
        Ok(Err(BudgetError::Service(e))) => Err(GatewayError::Internal(e)),
        Err(_) => Err(GatewayError::Internal(perpetuo_core::ServiceError::Unavailable)),
    }
}

/// Settles a hold at what the call was charged (in the background: the answer does not wait).
pub fn settle(state: &AppState, reservation: &Reservation, charge: &Charge) {
    let used = i64::try_from(charge.tokens.total()).unwrap_or(i64::MAX);
    state.metrics.budget("settled");
    state.budgets().settle_later(reservation.hold.clone(), charge.cost_nanos.unwrap_or(0), used, SETTLE_PATIENCE);
}

/// How long a settlement keeps retrying while the database is away.
const SETTLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
