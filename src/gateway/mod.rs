//! The OpenAI-compatible surface under `/v1`: chat completions (plain and streamed), embeddings,
//! the model list. Every answer, errors included, is what an OpenAI client expects.

pub mod anthropic;
pub mod engine;
pub mod error;
pub mod sse;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use app::server::AppState;
use app::server::api_keys::{self, KeyRejection};
use app::server::cache::CachedKey;
use app::server::db::{new_id, now_ms};
use app::server::ratelimit::Decision;

use engine::{Call, Endpoint};
use error::GatewayError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/embeddings", post(embeddings))
        .route("/models", get(models))
        .fallback(|OriginalUri(uri): OriginalUri| async move { GatewayError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { GatewayError::MethodNotAllowed })
}

/// The presented key: `Authorization: Bearer pk_...`, or `x-api-key: pk_...`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value);
        return Some(token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Key lookup (cache first), then the key's own rate limit.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(CachedKey, Decision), GatewayError> {
    let token = presented_key(headers).filter(|t| !t.is_empty()).ok_or(GatewayError::Key(KeyRejection::Missing))?;
    let key = api_keys::authenticate(&state.db, &state.caches, token).await?.map_err(GatewayError::Key)?;
    let decision = state.limiters.check_key(&key.id, key.rate_limit_per_min);
    if !decision.allowed {
        state.metrics.rate_limited("key");
        return Err(GatewayError::RateLimited(decision));
    }
    state.caches.touch(&key.id, now_ms());
    Ok((key, decision))
}

async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Endpoint::Chat).await
}

async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Endpoint::Embeddings).await
}

async fn handle(state: AppState, request: Request, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let ts = now_ms();
    let (parts, body) = request.into_parts();
    let (key, limit) = match authenticate(&state, &parts.headers).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let mut call = Call {
        request_id: format!("req_{}", new_id()),
        started,
        ts,
        key,
        limit,
        endpoint,
        model: String::new(),
        body: Map::new(),
        stream: false,
        client_wants_usage: false,
        prices: std::sync::Arc::default(),
    };
    match parse_body(&state, &parts.headers, body).await {
        Ok((body, model, stream, wants_usage)) => {
            call.body = body;
            call.model = model;
            call.stream = stream && endpoint == Endpoint::Chat;
            call.client_wants_usage = wants_usage;
            engine::run(&state, call).await
        }
        Err(error) => engine::reject(&state, &call, error),
    }
}

/// Longest model name accepted (names end up in records, rollups and logs).
const MAX_MODEL_LEN: usize = 256;

/// Reads and checks the body: size, JSON object, `model`, `stream`.
async fn parse_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Map<String, Value>, String, bool, bool), GatewayError> {
    let limit = state.settings.max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            GatewayError::BodyTooLarge(limit)
        } else {
            GatewayError::InvalidJson("the body could not be read".into())
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::InvalidRequest {
            message: "The request body must be a JSON object.".into(),
            param: None,
        });
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if m.len() > MAX_MODEL_LEN || m.chars().any(char::is_control) => {
            return Err(GatewayError::InvalidRequest {
                message: format!("`model` must be at most {MAX_MODEL_LEN} characters of plain text."),
                param: Some("model"),
            });
        }
        Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(GatewayError::InvalidRequest {
                message: "You must provide a model parameter.".into(),
                param: Some("model"),
            });
        }
        Some(_) => {
            return Err(GatewayError::InvalidRequest {
                message: "`model` must be a string.".into(),
                param: Some("model"),
            });
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(GatewayError::InvalidRequest {
                message: "`stream` must be true or false.".into(),
                param: Some("stream"),
            });
        }
    };
    let wants_usage = body.get("stream_options").and_then(|o| o.get("include_usage")) == Some(&Value::Bool(true));
    Ok((body, model, stream, wants_usage))
}

/// `GET /v1/models`: what the workspace's enabled providers can serve. Allow-lists are used as
/// they are; other providers are asked for their list (cached for five minutes).
async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (key, limit) = match authenticate(&state, &headers).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let providers = match app::server::providers::cached_enabled(
        &state.db,
        &state.cipher,
        &state.caches,
        &key.workspace,
        state.settings.upstream.allow_private,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return GatewayError::Internal(e).into_response(),
    };
    let lookups = providers.iter().map(|provider| {
        let state = state.clone();
        async move {
            if let Some(models) = &provider.models {
                return (provider.kind, models.clone());
            }
            if let Some(entry) = state.model_lists.get(&provider.id)
                && entry.0.elapsed() < Duration::from_secs(300)
            {
                return (provider.kind, entry.1.as_ref().clone());
            }
            let result = app::server::upstream::test_provider(
                &state.http,
                provider.kind,
                &provider.base_url,
                &provider.key,
                state.settings.upstream.allow_private,
            )
            .await;
            if result.ok {
                state
                    .model_lists
                    .insert(provider.id.clone(), (Instant::now(), std::sync::Arc::new(result.models.clone())));
            }
            (provider.kind, result.models)
        }
    });
    let mut data: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (kind, models) in futures::future::join_all(lookups).await {
        for model in models {
            if seen.insert(model.clone()) {
                data.push(json!({"id": model, "object": "model", "created": 0, "owned_by": kind.as_str()}));
            }
        }
    }
    let mut response = axum::Json(json!({"object": "list", "data": data})).into_response();
    crate::ratelimit::set_headers(response.headers_mut(), &limit);
    response
}
