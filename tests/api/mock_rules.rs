//! What the mock providers check and count the way the real services do: tool definitions
//! (OpenAI's and Anthropic's name rules, only function tools in chat, no Anthropic server tool
//! in a request Perpetuo translated), Anthropic's limit of four cache breakpoints, its prompt-cache
//! accounting (a prefix written at a breakpoint is read by a later request that starts with it),
//! and which tool a model calls (the first offered; after a tool result, none: a round trip ends).

use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use serde_json::{Value, json};
use std::hash::{Hash as _, Hasher as _};

use super::Script;

/// The shortest prefix Anthropic caches for the mock's models (Sonnet 4.5's minimum).
const MIN_CACHEABLE: u64 = 1024;
/// How far back from a breakpoint Anthropic looks for a cached prefix.
const LOOKBACK_BLOCKS: usize = 20;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn bad_request_openai(message: String) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": "tools", "code": null}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn bad_request_anthropic(message: String) -> Response {
    let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// OpenAI chat: every tool a function with a valid name.
pub fn check_chat(request: &Value) -> Option<Response> {
    if request.pointer("/response_format/json_schema/strict") == Some(&Value::Bool(true))
        && let Some(why) = request.pointer("/response_format/json_schema/schema").and_then(strict_schema_fault)
    {
        return Some(bad_request_openai(format!("Invalid schema for response_format: {why}.")));
    }
    for (i, tool) in request["tools"].as_array().into_iter().flatten().enumerate() {
        if tool["type"] != "function" {
            return Some(bad_request_openai(format!(
                "Invalid value: '{}'. Supported values are: 'function' and 'custom'.",
                tool["type"]
            )));
        }
        let name = tool["function"]["name"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Some(bad_request_openai(format!(
                "Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
            )));
        }
    }
    None
}

/// Anthropic Messages: client tools with valid names and an `input_schema`; server tools only by
/// their known types; at most four `cache_control` blocks.
pub fn check_messages(request: &Value) -> Option<Response> {
    for (i, tool) in request["tools"].as_array().into_iter().flatten().enumerate() {
        match tool["type"].as_str() {
            None | Some("custom") => {
                let name = tool["name"].as_str().unwrap_or_default();
                if !valid_name(name) {
                    return Some(bad_request_anthropic(format!(
                        "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                    )));
                }
                if !tool["input_schema"].is_object() {
                    return Some(bad_request_anthropic(format!("tools.{i}.custom.input_schema: Field required")));
                }
            }
            Some(server)
                if server.starts_with("web_search_")
                    || server.starts_with("code_execution_")
                    || server.starts_with("web_fetch_") => {}
            Some(other) => {
                return Some(bad_request_anthropic(format!(
                    "tools.{i}: Input tag '{other}' found using 'type' does not match any of the expected tags"
                )));
            }
        }
    }
    // Anthropic refuses fields it does not know (OpenAI's name for structured outputs among them).
    if request.get("response_format").is_some() {
        return Some(bad_request_anthropic("response_format: Extra inputs are not permitted".into()));
    }
    if let Some(schema) = request.pointer("/output_config/format/schema") {
        if request.pointer("/output_config/format/type").and_then(Value::as_str) != Some("json_schema") {
            return Some(bad_request_anthropic("output_config.format.type: Input should be 'json_schema'".into()));
        }
        if let Some(why) = strict_schema_fault(schema) {
            return Some(bad_request_anthropic(format!("output_config.format.schema: {why}")));
        }
    }
    let breakpoints = blocks(request).iter().filter(|b| b.get("cache_control").is_some()).count();
    if breakpoints > 4 {
        return Some(bad_request_anthropic(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )));
    }
    None
}

/// The prompt's blocks in the order Anthropic reads them: tools, system, messages' content.
fn blocks(request: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = request["tools"].as_array().cloned().unwrap_or_default();
    match &request["system"] {
        Value::String(s) => out.push(json!({"type": "text", "text": s})),
        Value::Array(list) => out.extend(list.iter().cloned()),
        _ => {}
    }
    for message in request["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => out.push(json!({"type": "text", "text": s, "role": message["role"]})),
            Value::Array(list) => out.extend(list.iter().map(|b| {
                let mut b = b.clone();
                b["role"] = message["role"].clone();
                b
            })),
            _ => {}
        }
    }
    out
}

/// Anthropic's cache accounting for a request with breakpoints: (read, written, uncached input),
/// the cache updated; `None` without breakpoints. A block's tokens are its JSON's length over
/// four (the cache marker aside). A breakpoint reads the longest cached prefix ending at it or up
/// to 20 blocks before it, and writes its own prefix when that is long enough to cache.
pub fn cache_accounting(script: &Arc<Mutex<Script>>, request: &Value) -> Option<(u64, u64, u64)> {
    let blocks = blocks(request);
    let marks: Vec<usize> =
        blocks.iter().enumerate().filter(|(_, b)| b.get("cache_control").is_some()).map(|(i, _)| i).collect();
    if marks.is_empty() {
        return None;
    }
    let mut sizes = Vec::with_capacity(blocks.len());
    let mut digests = Vec::with_capacity(blocks.len());
    let (mut total, mut running) = (0u64, 0u64);
    for block in &blocks {
        let mut plain = block.clone();
        if let Some(o) = plain.as_object_mut() {
            o.remove("cache_control");
        }
        let text = plain.to_string();
        total += (text.len() / 4) as u64;
        // Each prefix's digest: the previous one's and this block's.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (running, &text).hash(&mut hasher);
        running = hasher.finish();
        sizes.push(total);
        digests.push(format!("{running:x}"));
    }
    let mut script = script.lock().unwrap();
    let mut read = 0;
    for &mark in &marks {
        for end in (mark.saturating_sub(LOOKBACK_BLOCKS)..=mark).rev() {
            if script.cached_prefixes.contains(&digests[end]) {
                read = read.max(sizes[end]);
                break;
            }
        }
    }
    let longest = marks.iter().map(|&m| sizes[m]).filter(|&s| s >= MIN_CACHEABLE).max().unwrap_or(0);
    let written = longest.saturating_sub(read);
    for &mark in &marks {
        if sizes[mark] >= MIN_CACHEABLE {
            script.cached_prefixes.insert(digests[mark].clone());
        }
    }
    Some((read, written, total - read - written))
}

/// The chat tool the model calls: the first offered, unless the last message is a tool result.
pub fn chat_tool_to_call(request: &Value) -> Option<String> {
    let last = request["messages"].as_array().and_then(|m| m.last());
    if last.is_some_and(|m| m["role"] == "tool") {
        return None;
    }
    request["tools"].as_array()?.first()?["function"]["name"].as_str().map(str::to_owned)
}

/// The Messages tool the model calls: the first client tool, unless the last turn carries a tool
/// result.
pub fn messages_tool_to_call(request: &Value) -> Option<String> {
    let last = request["messages"].as_array().and_then(|m| m.last());
    let answered =
        last.and_then(|m| m["content"].as_array()).is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    if answered {
        return None;
    }
    let tools = request["tools"].as_array()?;
    tools.iter().find(|t| t["type"].is_null() || t["type"] == "custom")?["name"].as_str().map(str::to_owned)
}

/// Azure OpenAI's routes: the deployment path and `api-version` are required as Azure requires
/// them (404 without a version or for an unknown deployment, 400 for a malformed version), and a
/// prompt containing `MOCK_CONTENT_FILTER` is refused by the content filter; the rest is OpenAI's.
pub fn azure_routes() -> axum::Router<super::MockState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/openai/deployments/{deployment}/chat/completions", post(azure_chat))
        .route("/openai/deployments/{deployment}/embeddings", post(azure_embeddings))
        .route("/openai/models", get(azure_models))
        .route("/openai/v1/responses", post(azure_responses))
}

/// Azure's v1 Responses surface: no `api-version`, the deployment as `model`, the key in `api-key`.
async fn azure_responses(
    state: axum::extract::State<super::MockState>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if state.0.0 != super::Flavor::Azure {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "404", "message": "Resource not found"}})))
            .into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let deployment = request["model"].as_str().unwrap_or_default().to_owned();
    let known = state.0.1.lock().unwrap().deployments.clone();
    if deployment.is_empty() || (!known.is_empty() && !known.contains(&deployment)) {
        let body = json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    super::responses(state, headers, body).await
}

type Query = axum::extract::Query<std::collections::HashMap<String, String>>;

fn azure_refusal(state: &super::MockState, deployment: Option<&str>, query: &Query, body: &[u8]) -> Option<Response> {
    let not_found = |code: &str, message: &str| {
        let body = json!({"error": {"code": code, "message": message}});
        Some((StatusCode::NOT_FOUND, axum::Json(body)).into_response())
    };
    if state.0 != super::Flavor::Azure {
        return not_found("404", "Resource not found");
    }
    let Some(version) = query.get("api-version") else { return not_found("404", "Resource not found") };
    let dated = version.len() >= 10
        && version[..10]
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !dated && version != "preview" && version != "latest" {
        let body = json!({"error": {"code": "BadRequest", "message": "API version not supported"}});
        return Some((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
    }
    if let Some(deployment) = deployment {
        let known = state.1.lock().unwrap().deployments.clone();
        if !known.is_empty() && !known.iter().any(|d| d == deployment) {
            return not_found("DeploymentNotFound", "The API deployment for this resource does not exist.");
        }
    }
    if String::from_utf8_lossy(body).contains("MOCK_CONTENT_FILTER") {
        let body = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                "hate": {"filtered": false, "severity": "safe"}, "violence": {"filtered": true, "severity": "medium"}}}}});
        return Some((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
    }
    None
}

async fn azure_chat(
    state: axum::extract::State<super::MockState>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    query: Query,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    match azure_refusal(&state, Some(&deployment), &query, &body) {
        Some(refused) => refused,
        None => super::chat(state, headers, body).await,
    }
}

async fn azure_embeddings(
    state: axum::extract::State<super::MockState>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    query: Query,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    match azure_refusal(&state, Some(&deployment), &query, &body) {
        Some(refused) => refused,
        None => super::embeddings(state, headers, body).await,
    }
}

async fn azure_models(
    state: axum::extract::State<super::MockState>,
    query: Query,
    headers: http::HeaderMap,
) -> Response {
    match azure_refusal(&state, None, &query, &[]) {
        Some(refused) => refused,
        None => super::models(state, headers).await,
    }
}

/// What structured outputs refuse in a schema (Claude's and OpenAI's strict mode alike): an
/// object that allows properties it does not list.
fn strict_schema_fault(schema: &Value) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("object")
                && map.get("additionalProperties") != Some(&Value::Bool(false))
            {
                return Some("For 'object' type, 'additionalProperties' must be explicitly set to false".into());
            }
            map.values().find_map(strict_schema_fault)
        }
        Value::Array(items) => items.iter().find_map(strict_schema_fault),
        _ => None,
    }
}

/// The smallest JSON value a schema accepts (required properties filled in, `$ref`s to `$defs`
/// followed): what a model held to the schema answers in this mock.
fn instance(schema: &Value, root: &Value) -> Value {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/")) {
        let pointer = format!("/{target}");
        return root.pointer(&pointer).map_or(Value::Null, |s| instance(s, root));
    }
    if let Some(first) = schema.get("anyOf").and_then(Value::as_array).and_then(|a| a.first()) {
        return instance(first, root);
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                out.insert(name.to_owned(), instance(&schema["properties"][name], root));
            }
            Value::Object(out)
        }
        Some("array") => Value::Array(Vec::new()),
        Some("string") => json!("mock"),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => Value::Null,
    }
}

/// The text a model held to the request's output format answers: JSON for a schema (Claude's
/// `output_config.format`, OpenAI's `response_format`), `{}` in JSON mode; `None` for free text.
pub fn structured_text(request: &Value) -> Option<String> {
    let schema = request
        .pointer("/output_config/format/schema")
        .or_else(|| request.pointer("/response_format/json_schema/schema"));
    if let Some(schema) = schema {
        return Some(instance(schema, schema).to_string());
    }
    (request.pointer("/response_format/type").and_then(Value::as_str) == Some("json_object")).then(|| "{}".to_owned())
}
