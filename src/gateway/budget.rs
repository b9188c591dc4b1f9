//! Budgets on the gateway: a call's worst case (its prompt, estimated, plus the most it may
//! write, at the dearest price among its candidates) is reserved before the first attempt, and
//! settled when the call is recorded.

use serde_json::{Map, Value};

use app::server::AppState;
use app::server::budgets::{BudgetError, Hold, Need};
use app::server::platform::db::bounded;
use app::server::protocols::{ClientRequest, Protocol};
use app::server::usage::Tokens;
use app::server::usage::prices::Overrides;

use super::call::Caller;
use super::error::GatewayError;
use super::routing::Candidate;

/// The prompt estimate is raised by this share, plus a few tokens: providers' tokenizers count
/// differently from `o200k_base`, and a reservation below the actual cost would let a budget be
/// overspent.
const ESTIMATE_MARGIN_PCT: u64 = 25;
const ESTIMATE_FLOOR: u64 = 16;

/// A call's reservation, with the prompt estimate it was made with.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub hold: Hold,
    pub prompt: u64,
}

/// The most output tokens the request allows, as its protocol spells it.
pub fn max_output(request: &ClientRequest, default: u64) -> u64 {
    let field = |name: &str| request.body.get(name).and_then(Value::as_u64);
    let asked = match request.protocol {
        Protocol::Chat => field("max_completion_tokens").or_else(|| field("max_tokens")),
        Protocol::Messages => field("max_tokens"),
        Protocol::Responses => field("max_output_tokens"),
        Protocol::Embeddings => Some(0),
    };
    asked.unwrap_or(default)
}

/// The prompt's tokens, estimated on the safe side.
pub fn prompt_estimate(body: &Map<String, Value>) -> u64 {
    let mut tokens = super::count::estimate(body) as u64;
    // The Responses API's and embeddings' own fields.
    for field in ["instructions", "input"] {
        tokens += match body.get(field) {
            Some(Value::String(text)) => tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64,
            Some(Value::Array(items)) => {
                let text: String = items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => s.clone(),
                        other => other.get("content").map(Value::to_string).unwrap_or_else(|| other.to_string()),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64
            }
            _ => 0,
        };
    }
    tokens + tokens * ESTIMATE_MARGIN_PCT / 100 + ESTIMATE_FLOOR
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
) -> Result<Option<Reservation>, GatewayError> {
    let ws = &caller.key.workspace;
    let applicable = bounded(state.budgets().applicable(ws, &caller.key.id)).await?;
    if applicable.is_empty() {
        return Ok(None);
    }
    let prompt = prompt_estimate(&request.body);
    let output = max_output(request, state.settings.budget_default_max_tokens);
    let worst = Tokens { prompt, completion: output, ..Tokens::default() };
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
    let nanos = candidates.iter().filter_map(price_of).map(|p| p.cost_nanos(worst)).max().unwrap_or(0);
    let need = Need { nanos, tokens: i64::try_from(prompt + output).unwrap_or(i64::MAX) };
    let reserved = tokio::time::timeout(
        app::server::platform::db::CALL_TIMEOUT,
        state.budgets().reserve(ws, &applicable, &caller.request_id, need),
    )
    .await;
    match reserved {
        Ok(Ok(hold)) => {
            state.metrics.budget("reserved");
            Ok(Some(Reservation { hold, prompt }))
        }
        Ok(Err(BudgetError::Exceeded(message))) => {
            state.metrics.budget("refused");
            Err(GatewayError::Budget(message))
        }
        Ok(Err(BudgetError::Service(e))) => Err(GatewayError::Internal(e)),
        Err(_) => Err(GatewayError::Internal(app::server::ServiceError::Unavailable)),
    }
}

/// Settles a hold at what the call cost and used (in the background: the answer does not wait).
pub fn settle(state: &AppState, reservation: &Reservation, cost_nanos: Option<i64>, tokens: Tokens) {
    let used = i64::try_from(tokens.prompt.saturating_add(tokens.completion)).unwrap_or(i64::MAX);
    state.metrics.budget("settled");
    state.budgets().settle_later(reservation.hold.clone(), cost_nanos.unwrap_or(0), used, SETTLE_PATIENCE);
}

/// How long a settlement keeps retrying while the database is away.
const SETTLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(protocol: Protocol, body: Value) -> ClientRequest {
        ClientRequest::parse(protocol, body).unwrap()
    }

    #[test]
    fn each_protocol_names_its_output_limit() {
        let chat = request(Protocol::Chat, json!({"model": "m", "max_tokens": 7}));
        assert_eq!(max_output(&chat, 100), 7);
        let newer = request(Protocol::Chat, json!({"model": "m", "max_completion_tokens": 9, "max_tokens": 7}));
        assert_eq!(max_output(&newer, 100), 9);
        let none = request(Protocol::Chat, json!({"model": "m"}));
        assert_eq!(max_output(&none, 100), 100, "the configured default");
        let responses = request(Protocol::Responses, json!({"model": "m", "input": "hi", "max_output_tokens": 5}));
        assert_eq!(max_output(&responses, 100), 5);
    }

    #[test]
    fn the_prompt_estimate_covers_every_protocol_and_errs_high() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let exact = tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64;
        let chat = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        let responses = json!({"model": "m", "input": text});
        for body in [chat, responses] {
            let Value::Object(body) = body else { unreachable!() };
            let estimate = prompt_estimate(&body);
            assert!(estimate >= exact + exact / 4, "{estimate} vs {exact}");
            assert!(estimate < exact * 2, "{estimate} vs {exact}");
        }
    }
}
