//! A gateway call's data: the body read within its limit, and the call's whole context (its
//! [`Caller`], request, candidates, prices and holdings), built once by `serve` before the first
//! attempt. Later stages only read it.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use perpetuo_core::AppState;
use perpetuo_core::protocols::{AnswerLabels, Bound, ClientRequest, Protocol};
use perpetuo_core::usage::TokenCounts;
use perpetuo_core::usage::prices::Overrides;

use super::budget::Reservation;
use super::caller::Caller;
use super::charge::Charge;
use super::error::GatewayError;
use super::holdings::Holdings;
use super::routing::Candidate;

/// A JSON body read within the gateway's size limit (its rejection is rendered in the route's
/// protocol by the handler).
pub struct OpenAiJson(pub Value);

impl FromRequest<AppState> for OpenAiJson {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, GatewayError> {
        let limit = state.settings.max_body_bytes;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(GatewayError::BodyTooLarge(limit));
        }
        // A client trickling its body cannot hold a serving task (and its connection) for long.
        let read = tokio::time::timeout(state.settings.clients.read_timeout, Bytes::from_request(request, state));
        let bytes = read
            .await
            .map_err(|_| GatewayError::InvalidJson("the body did not arrive within the read timeout".into()))?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    GatewayError::BodyTooLarge(limit)
                } else {
                    GatewayError::InvalidJson("the body could not be read".into())
                }
            })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|e| GatewayError::InvalidJson(e.to_string()))
    }
}

/// A request's whole context, built once before the first attempt.
pub struct Call {
    pub caller: Caller,
    pub request: ClientRequest,
    /// The providers that may serve it, in priority order, each with the model it is asked for.
    pub candidates: Vec<Candidate>,
    /// The workspace's own prices.
    pub prices: Arc<Overrides>,
    pub labels: AnswerLabels,
    /// Client headers passed on to providers that speak the call's protocol natively
    /// (`anthropic-version`, `anthropic-beta`).
    pub forward: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Its budget reservation and what it holds under limits, settled when it is recorded.
    pub holdings: Holdings,
    /// The output bound the upstream body carries (and, under a budget, holds the call to).
    pub bound: Bound,
    /// The most output the whole answer may hold (every choice): what a stream cut short or an
    /// abandoned attempt is charged at most.
    pub worst_output: u64,
    /// Whether the call's bodies are captured, and how (decided when it arrived).
    pub capture: Option<perpetuo_core::captures::Plan>,
    /// The prompt's estimate on the high side, once made (a reservation makes it first).
    prompt: tokio::sync::OnceCell<u64>,
}

/// The client headers a native provider of `protocol` should see (bounded: at most 4 KiB each).
pub fn forwarded(protocol: Protocol, headers: &http::HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let names: &[&str] = match protocol {
        Protocol::Messages => &["anthropic-version", "anthropic-beta"],
        Protocol::Chat | Protocol::Embeddings | Protocol::Responses => &[],
    };
    names
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name).filter(|v| v.len() <= 4096)?;
            Some((http::HeaderName::from_static(name), value.clone()))
        })
        .collect()
}

impl Call {
    /// The call's whole context (the prompt's estimate is the reservation's, when one was made).
    #[expect(clippy::too_many_arguments, reason = "one call site, the edge; each part is the call's")]
    pub fn new(
        caller: Caller,
        request: ClientRequest,
        candidates: Vec<Candidate>,
        prices: Arc<Overrides>,
        labels: AnswerLabels,
        forward: Vec<(http::HeaderName, http::HeaderValue)>,
        hold: Option<Reservation>,
        bound: Bound,
        worst_output: u64,
    ) -> Self {
        let holdings = Holdings::new(hold);
        let prompt = tokio::sync::OnceCell::new_with(holdings.prompt());
        Self {
            caller,
            request,
            candidates,
            prices,
            labels,
            forward,
            holdings,
            bound,
            worst_output,
            capture: None,
            prompt,
        }
    }

    /// The price of the model a candidate serves, if known.
    pub fn price(&self, state: &AppState, served: &Candidate) -> Option<perpetuo_core::usage::prices::Price> {
        state.prices().price(&self.prices, served.provider.kind.as_str(), &served.model)
    }

    /// The price of the model a candidate serves, as the call's record keeps it.
    pub fn price_used(&self, state: &AppState, served: &Candidate) -> Option<perpetuo_types::PriceUsed> {
        state.prices().price_used(&self.prices, served.provider.kind.as_str(), &served.model)
    }

    /// What these reported tokens cost at a candidate.
    pub fn charge(&self, state: &AppState, served: &Candidate, tokens: TokenCounts) -> Charge {
        Charge::reported(tokens, self.price(state, served).map(|p| p.cost_nanos(tokens)))
    }

    /// The prompt's estimate on the high side (made once, off the serving thread when large).
    pub async fn prompt_ceiling(&self, state: &AppState) -> u64 {
        *self
            .prompt
            .get_or_init(|| async {
                state.estimator().prompt(self.caller.key.workspace.as_str(), &self.request.body).await.ceiling()
            })
            .await
    }

    /// The prompt's estimate, when it was made before the call was built (for its limits).
    pub fn knows_prompt(&self, prompt: u64) {
        let _ = self.prompt.set(prompt);
    }

    /// The prompt's estimate, if it was made.
    pub fn known_prompt(&self) -> Option<u64> {
        self.prompt.get().copied()
    }

    /// What an attempt at a candidate that reached the provider and was abandoned is charged: its
    /// worst case (the prompt on the high side and the most it may write), estimated.
    pub async fn worst_charge(&self, state: &AppState, candidate: &Candidate) -> Charge {
        let prompt = self.prompt_ceiling(state).await;
        let output = self.worst_output;
        let tokens = TokenCounts { prompt, completion: output, ..TokenCounts::default() };
        let searches = perpetuo_core::usage::estimate::search_bound(&self.request.body);
        let cost_nanos = self
            .price(state, candidate)
            .map(|p| p.worst_nanos(prompt, output).saturating_add(p.searches_nanos(searches)));
        Charge { tokens, cost_nanos, estimated: true }
    }
}
