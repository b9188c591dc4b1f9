//! `POST /v1/messages/count_tokens`: Anthropic's own count when the model routes to an Anthropic
//! provider first; otherwise (or when that provider cannot be reached) a local estimate with
//! OpenAI's `o200k_base` encoding (`usage::estimate`: linear in the text, large prompts counted
//! off the serving thread), said so in `x-perpetuo-token-count: estimate`.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use perpetuo_core::AppState;
use perpetuo_core::protocols::{MAX_MODEL_LEN, Protocol};
use perpetuo_core::providers::dialects::Endpoint;
use perpetuo_core::providers::{body, catalog, client};
use perpetuo_types::ProviderKind;

use super::call::{OpenAiJson, forwarded};
use super::caller::Caller;
use super::error::GatewayError;
use super::routing::{Candidate, Route, candidates};

/// Largest count answer read from a provider.
const MAX_ANSWER: usize = 64 * 1024;

pub async fn count_tokens(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    state.metrics.counted_tokens();
    let refuse = |e: GatewayError| e.response_for(Protocol::Messages);
    let invalid =
        |message: &str, param| GatewayError::InvalidRequest { message: message.to_owned(), param: Some(param) };
    let body = match body {
        Ok(OpenAiJson(Value::Object(body))) => body,
        Ok(_) => return refuse(invalid("The request body must be a JSON object.", "body")),
        Err(e) => return refuse(e),
    };
    let model = match body.get("model").and_then(Value::as_str).map(str::trim) {
        Some(m) if !m.is_empty() && m.len() <= MAX_MODEL_LEN && !m.chars().any(char::is_control) => m.to_owned(),
        _ => return refuse(invalid("model: Field required", "model")),
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        return refuse(invalid("messages: Field required", "messages"));
    }
    let providers = match state.providers().enabled(&caller.key.workspace).await {
        Ok(providers) => providers,
        Err(e) => return refuse(GatewayError::Internal(e)),
    };
    let route = Route::parse(&model);
    let candidates = candidates(&providers, &route, Protocol::Messages);
    let Some(first) = candidates.first() else {
        return refuse(GatewayError::ModelNotFound(model));
    };
    if first.provider.kind == ProviderKind::Anthropic
        && let Some(response) = ask_provider(state, first, headers, &body).await
    {
        return response;
    }
    // Counted off the serving thread when large, within a deadline (past it, by length).
    let estimate = state.estimator().prompt(caller.key.workspace.as_str(), &body).await;
    let mut response = axum::Json(json!({"input_tokens": estimate.typical()})).into_response();
    let how = if estimate.complete() {
        "estimate; encoding=o200k_base"
    } else {
        "estimate; encoding=o200k_base; partly by length"
    };
    response.headers_mut().insert("x-perpetuo-token-count", HeaderValue::from_static(how));
    response
}

/// The provider's own count (or its refusal of the request); `None` when it could not answer.
async fn ask_provider(
    state: &AppState,
    candidate: &Candidate,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Option<Response> {
    let provider = &candidate.provider;
    let dialect = catalog::dialect(provider.kind);
    let mut sent = body.clone();
    sent.insert("model".into(), Value::String(candidate.model.clone()));
    let url = dialect
        .url(&perpetuo_core::providers::dialects::Address::of(provider, &candidate.model), Endpoint::CountTokens);
    let mut request = perpetuo_core::providers::dialects::authorize(state.providers().http().post(url), &provider.auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&sent).ok()?);
    for (name, value) in forwarded(Protocol::Messages, headers) {
        request = request.header(name, value);
    }
    let timeout = state.settings.upstream.first_byte_timeout;
    let deadline = std::time::Instant::now() + timeout * 2;
    let response = tokio::time::timeout(timeout, request.send()).await.ok()?.ok()?;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 401 | 403) {
        // Its trouble, not the client's: the estimate answers instead.
        return None;
    }
    let text = body::read_reqwest(response, MAX_ANSWER, timeout, deadline).await.ok()?;
    let text = client::scrub(&String::from_utf8_lossy(&text), &provider.key);
    let json: Value = serde_json::from_str(&text).ok()?;
    if status.is_success() && json.get("input_tokens").and_then(Value::as_u64).is_none() {
        return None;
    }
    Some((status, axum::Json(json)).into_response())
}
