//! The gateway under `/v1`: OpenAI chat completions, embeddings and Responses, Anthropic Messages
//! (and its token count), the model list. Every answer, errors included, is what the client of
//! that route expects from its vendor.
//!
//! A call goes edge (`call`: the caller and the body, checked, then the whole context) ->
//! `routing` (the candidate providers) -> `attempts` (the loop: fallback, retries, breakers) ->
//! `answer` (a whole answer) or `relay` (a stream) -> `record` (usage and metrics). What differs
//! between providers lives in their dialects (`perpetuo_core::providers::dialects`).

mod answer;
mod attempts;
mod budget;
mod call;
mod caller;
mod capture;
mod charge;
mod count;
pub mod error;
mod holdings;
mod limits;
mod record;
mod relay;
mod routing;
mod serve;
mod trace;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use serde_json::{Value, json};

use perpetuo_core::AppState;
use perpetuo_core::protocols::Protocol;

use call::OpenAiJson;
use caller::Caller;
use error::GatewayError;

/// The `/v1` routes; bodies over `max_body_bytes` are refused with OpenAI's 413.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/embeddings", post(embeddings))
        .route("/responses", post(responses))
        .route("/messages", post(messages))
        .route("/messages/count_tokens", post(count_tokens))
        .route("/models", get(models))
        .fallback(|OriginalUri(uri): OriginalUri| async move { GatewayError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { GatewayError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    serve::serve(state, caller, Protocol::Chat, Vec::new(), body).await
}

async fn embeddings(State(state): State<AppState>, caller: Caller, body: Result<OpenAiJson, GatewayError>) -> Response {
    serve::serve(state, caller, Protocol::Embeddings, Vec::new(), body).await
}

async fn responses(State(state): State<AppState>, caller: Caller, body: Result<OpenAiJson, GatewayError>) -> Response {
    serve::serve(state, caller, Protocol::Responses, Vec::new(), body).await
}

/// `POST /v1/messages`: Anthropic's errors from the first check on.
async fn messages(
    State(state): State<AppState>,
    caller: Result<Caller, GatewayError>,
    headers: HeaderMap,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    match caller {
        Ok(caller) => {
            let forward = call::forwarded(Protocol::Messages, &headers);
            serve::serve(state, caller, Protocol::Messages, forward, body).await
        }
        Err(error) => error.response_for(Protocol::Messages),
    }
}

/// `POST /v1/messages/count_tokens`.
async fn count_tokens(
    State(state): State<AppState>,
    caller: Result<Caller, GatewayError>,
    headers: HeaderMap,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    match caller {
        Ok(caller) => count::count_tokens(&state, &caller, &headers, body).await,
        Err(error) => error.response_for(Protocol::Messages),
    }
}

/// `GET /v1/models`: what the workspace's enabled providers can serve, in Anthropic's list
/// shape for Anthropic clients (they send `anthropic-version`), else OpenAI's.
async fn models(State(state): State<AppState>, caller: Result<Caller, GatewayError>, headers: HeaderMap) -> Response {
    let protocol = if headers.contains_key("anthropic-version") { Protocol::Messages } else { Protocol::Chat };
    let caller = match caller {
        Ok(caller) => caller,
        Err(error) => return error.response_for(protocol),
    };
    let models = match state.providers().models(&caller.key.workspace).await {
        Ok(models) => models,
        Err(e) => return GatewayError::Internal(e).response_for(protocol),
    };
    let body = if protocol == Protocol::Messages {
        let data: Vec<Value> = models
            .iter()
            .map(|m| json!({"type": "model", "id": m.id, "display_name": m.id, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        json!({"data": data, "has_more": false, "first_id": models.first().map(|m| &m.id), "last_id": models.last().map(|m| &m.id)})
    } else {
        let data: Vec<Value> = models
            .into_iter()
            .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by.as_str()}))
            .collect();
        json!({"object": "list", "data": data})
    };
    let mut response = axum::Json(body).into_response();
    protocol.request_limit_headers(response.headers_mut(), &caller.limit);
    response
}
