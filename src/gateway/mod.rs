//! The OpenAI-compatible surface under `/v1`: chat completions (plain and streamed), embeddings,
//! the model list. Every answer, errors included, is what an OpenAI client expects.
//!
//! A call goes edge (`call`: the caller and the body, checked, then the whole context) ->
//! `routing` (the candidate providers) -> `attempts` (the loop: fallback, retries, breakers) ->
//! `answer` (a whole answer) or `relay` (a stream) -> `record` (usage and metrics). What differs
//! between providers lives in their dialects (`app::server::providers::dialects`).

mod answer;
mod attempts;
mod call;
pub mod error;
mod record;
mod relay;
mod routing;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use app::server::AppState;
use app::server::protocols::Protocol;

use call::{Caller, OpenAiJson};
use error::GatewayError;

/// The `/v1` routes; bodies over `max_body_bytes` are refused with OpenAI's 413.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/embeddings", post(embeddings))
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
    call::serve(state, caller, Protocol::Chat, body).await
}

async fn embeddings(State(state): State<AppState>, caller: Caller, body: Result<OpenAiJson, GatewayError>) -> Response {
    call::serve(state, caller, Protocol::Embeddings, body).await
}

/// `GET /v1/models`: what the workspace's enabled providers can serve.
async fn models(State(state): State<AppState>, caller: Caller) -> Response {
    let models = match state.providers().models(&caller.key.workspace).await {
        Ok(models) => models,
        Err(e) => return GatewayError::Internal(e).into_response(),
    };
    let data: Vec<Value> = models
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by.as_str()}))
        .collect();
    let mut response = axum::Json(json!({"object": "list", "data": data})).into_response();
    crate::ratelimit::set_headers(response.headers_mut(), &caller.limit);
    response
}
