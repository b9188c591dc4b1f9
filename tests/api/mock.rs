//! A mock upstream LLM provider on its own random port. It plays OpenAI (`/v1/chat/completions`,
//! `/v1/responses`, `/v1/embeddings`, `/v1/models`) or Anthropic (`/v1/messages`,
//! `/v1/messages/count_tokens`, `/v1/models`), streaming or not,
//! and misbehaves on demand: error statuses (with `Retry-After`), hanging before the first byte,
//! cutting a stream, dripping slowly. It records every request it sees.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const VALID_KEY: &str = "sk-test-valid-key-0001";

/// What the mock does with the next request.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// Answer normally.
    Ok,
    /// Answer with this status and an error body, optionally with `Retry-After` seconds.
    Status(u16, Option<u64>),
    /// Accept the request and never send a byte.
    Hang,
    /// Stream `n` content chunks, then drop the connection (no `[DONE]`).
    CutAfter(usize),
    /// Stream chunks `gap` apart.
    Drip(Duration),
    /// Stream `n` content chunks, then an error event, then `[DONE]` (as vLLM does); with 0 the
    /// error is the first event. OpenAI flavour only.
    ErrorAfter(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Anthropic,
    /// Azure OpenAI: OpenAI's API under `/openai/deployments/{deployment}/...?api-version=`,
    /// the key in `api-key`.
    Azure,
    /// Vertex AI: Claude at `rawPredict`, tokens from the mock's own `/token` for a service
    /// account (`mock_vertex`).
    Vertex,
    /// Gemini's own API under `/v1beta`, the key in `x-goog-api-key` (`mock_gemini`).
    Gemini,
    /// Amazon Bedrock: Claude at `/model/{id}/invoke`, SigV4 or a bearer API key (`mock_bedrock`).
    Bedrock,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub struct Script {
    queue: VecDeque<Behavior>,
    default: Option<Behavior>,
    seen: Vec<Seen>,
    key: String,
    /// TokenCounts reported in usage.
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Prompt-cache tokens reported: (read, written).
    cache: (u64, u64),
    /// More of Anthropic's usage fields, as reported (1-hour cache writes, server tool use).
    usage_extra: Option<Value>,
    /// Whole answers come without their usage (as some OpenAI-compatible servers send them).
    no_usage: bool,
    /// The prompt prefixes Anthropic's cache holds (their digests), for its cache accounting.
    cached_prefixes: std::collections::HashSet<String>,
    /// Azure's deployments (empty: any name is one).
    deployments: Vec<String>,
    /// Vertex AI's tokens and calls.
    vertex: vertex::VertexState,
    /// Amazon Bedrock's credentials and calls.
    bedrock: bedrock::BedrockState,
    /// How long each answer is held before it starts (calls pile up in flight).
    hold: Duration,
    /// Headers added to every answer (a provider's rate-limit headers).
    extra_headers: Vec<(String, String)>,
}

/// The calls the mock holds at once, and the most it ever held.
#[derive(Default)]
struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

/// One call held, until its answer's body ends (or is dropped).
struct Holding(Arc<Gauge>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    pub flavor: Flavor,
    script: Arc<Mutex<Script>>,
    gauge: Arc<Gauge>,
}

impl Mock {
    pub async fn start(flavor: Flavor) -> Self {
        let script = Arc::new(Mutex::new(Script {
            key: VALID_KEY.to_owned(),
            prompt_tokens: 11,
            completion_tokens: 7,
            ..Script::default()
        }));
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(messages_route))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/responses", post(responses))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .merge(rules::azure_routes())
            .merge(vertex::routes())
            .merge(vertex::entra_routes())
            .merge(gemini::routes())
            .merge(bedrock::routes())
            .with_state((flavor, Arc::clone(&script)));
        let gauge = Arc::new(Gauge::default());
        let router =
            router.layer(axum::middleware::from_fn_with_state((Arc::clone(&script), Arc::clone(&gauge)), held));
        let router = router.layer(axum::middleware::from_fn_with_state(flavor, serves));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, flavor, script, gauge }
    }

    /// Holds each answer this long before it starts.
    pub fn set_hold(&self, hold: Duration) {
        self.script.lock().unwrap().hold = hold;
    }

    /// Headers every answer carries from now on (replacing those set before).
    pub fn set_headers(&self, headers: &[(&str, &str)]) {
        self.script.lock().unwrap().extra_headers =
            headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    }

    /// The most calls the mock held at once (a stream until its body ended).
    pub fn max_in_flight(&self) -> usize {
        self.gauge.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The base URL a provider record should use (OpenAI-style kinds include `/v1`).
    pub fn base_url(&self) -> String {
        match self.flavor {
            Flavor::OpenAi => format!("http://{}/v1", self.addr),
            Flavor::Gemini => format!("http://{}/v1beta", self.addr),
            Flavor::Anthropic | Flavor::Azure | Flavor::Vertex | Flavor::Bedrock => format!("http://{}", self.addr),
        }
    }

    /// Behaviours for the next requests, in order; then `set_default` applies.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.script.lock().unwrap().queue.extend(behaviors);
    }

    /// Azure: the deployments the resource has (others answer DeploymentNotFound).
    pub fn set_deployments(&self, names: &[&str]) {
        self.script.lock().unwrap().deployments = names.iter().map(|n| (*n).to_owned()).collect();
    }

    pub fn set_default(&self, behavior: Behavior) {
        self.script.lock().unwrap().default = Some(behavior);
    }

    /// Reports prompt-cache use: OpenAI's `cached_tokens` (read), Anthropic's cache read and
    /// creation tokens.
    pub fn set_cache(&self, read: u64, write: u64) {
        self.script.lock().unwrap().cache = (read, write);
    }

    /// More of Anthropic's usage, merged into each whole answer's `usage` (its `cache_creation`
    /// split, its `server_tool_use`).
    pub fn set_usage_extra(&self, extra: Value) {
        self.script.lock().unwrap().usage_extra = Some(extra);
    }

    /// Whole answers without their `usage` (or Gemini's `usageMetadata`).
    pub fn set_no_usage(&self) {
        self.script.lock().unwrap().no_usage = true;
    }

    /// The prompt and completion tokens reported in usage (11 and 7 unless set).
    pub fn set_tokens(&self, prompt: u64, completion: u64) {
        let mut script = self.script.lock().unwrap();
        (script.prompt_tokens, script.completion_tokens) = (prompt, completion);
    }

    pub fn set_key(&self, key: &str) {
        self.script.lock().unwrap().key = key.to_owned();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Vertex AI: expires every token issued so far (as an hour passing would).
    pub fn expire_tokens(&self) {
        self.script.lock().unwrap().vertex.live.clear();
    }

    /// Vertex AI: tokens granted so far, and the (action, body) of each model call received.
    pub fn tokens_granted(&self) -> usize {
        self.script.lock().unwrap().vertex.granted
    }

    /// Bedrock's calls: model id, headers, body as received.
    pub fn bedrock_calls(&self) -> Vec<(String, HeaderMap, Value)> {
        self.script.lock().unwrap().bedrock.calls.clone()
    }

    /// The session token Bedrock's temporary credentials carry.
    pub fn set_session_token(&self, token: &str) {
        self.script.lock().unwrap().bedrock.session_token = Some(token.to_owned());
    }

    pub fn vertex_calls(&self) -> Vec<(String, Value)> {
        self.script.lock().unwrap().vertex.bodies.clone()
    }

    pub fn hits(&self) -> usize {
        self.script.lock().unwrap().seen.len()
    }
}

type MockState = (Flavor, Arc<Mutex<Script>>);

/// Counts the call in flight until its body ends, holds it as set, adds the set headers.
async fn held(
    State((script, gauge)): State<(Arc<Mutex<Script>>, Arc<Gauge>)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use std::sync::atomic::Ordering;
    let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.most.fetch_max(now, Ordering::SeqCst);
    let holding = Holding(Arc::clone(&gauge));
    let (hold, extra, no_usage) = {
        let s = script.lock().unwrap();
        (s.hold, s.extra_headers.clone(), s.no_usage)
    };
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let json = parts.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let body = if no_usage && json && parts.status.is_success() {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(answer) = answer.as_object_mut() {
            answer.remove("usage");
            answer.remove("usageMetadata");
        }
        parts.headers.remove("content-length");
        Body::from(answer.to_string())
    } else {
        body
    };
    for (name, value) in extra {
        parts.headers.insert(axum::http::HeaderName::try_from(name).unwrap(), value.parse().unwrap());
    }
    let body = body.into_data_stream().map(move |chunk| {
        let _ = &holding;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// The paths the service a flavour plays answers; any other is its 404 (an OpenAI account has no
/// `/v1/messages`, Anthropic's no `/v1/chat/completions`).
fn flavor_serves(flavor: Flavor, path: &str) -> bool {
    let openai = ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"];
    match flavor {
        Flavor::OpenAi => openai.contains(&path) || path == "/v1/models",
        Flavor::Anthropic => path.starts_with("/v1/messages") || path == "/v1/models",
        Flavor::Azure => path.starts_with("/openai/") || path.ends_with("/oauth2/v2.0/token"),
        Flavor::Vertex => path == "/token" || path.starts_with("/v1/projects/") || path.starts_with("/v1beta1/"),
        Flavor::Gemini => path.starts_with("/v1beta/"),
        Flavor::Bedrock => path.starts_with("/model/") || path == "/foundation-models",
    }
}

async fn serves(
    State(flavor): State<Flavor>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if flavor_serves(flavor, request.uri().path()) {
        next.run(request).await
    } else {
        (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "Not found", "type": "invalid_request_error"}})))
            .into_response()
    }
}

/// Records the request, checks the key, picks the behaviour.
#[allow(clippy::result_large_err, reason = "a test mock; the error is the response to send")]
fn admit(
    state: &MockState,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Behavior, Value, u64, u64), Response> {
    let (flavor, script) = state;
    let body_json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = script.lock().unwrap();
    s.seen.push(Seen { path: path.to_owned(), headers: headers.clone(), body: body_json.clone() });
    let presented = match flavor {
        Flavor::OpenAi => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned),
        Flavor::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
        // The key, or a token Entra ID issued for the resource.
        Flavor::Azure => headers
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| vertex::presented_live_token(&s, headers).then(|| s.key.clone())),
        // Checked by the Vertex routes before they hand over: a live token stands for the key.
        Flavor::Vertex => vertex::presented_live_token(&s, headers).then(|| s.key.clone()),
        Flavor::Gemini => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
        // Checked by the Bedrock routes (signature or API key), which hand over with a mark they
        // strip from what arrives.
        Flavor::Bedrock => headers.get(bedrock::VERIFIED).map(|_| s.key.clone()),
    };
    if presented.as_deref() != Some(s.key.as_str()) {
        let body = match flavor {
            Flavor::Azure => {
                json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}})
            }
            Flavor::OpenAi => {
                json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}})
            }
            Flavor::Anthropic | Flavor::Vertex => {
                json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            }
            Flavor::Bedrock => json!({"message": "Missing Authentication Token"}),
            Flavor::Gemini => {
                // Google answers a bad key with a 400, naming the reason in the details.
                let body = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
                return Err((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
            }
        };
        return Err((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response());
    }
    let behavior = s.queue.pop_front().or_else(|| s.default.clone()).unwrap_or(Behavior::Ok);
    Ok((behavior, body_json, s.prompt_tokens, s.completion_tokens))
}

fn error_response(flavor: Flavor, status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = match flavor {
        Flavor::OpenAi | Flavor::Azure | Flavor::Gemini => {
            json!({"error": {"message": format!("mock says {}", status.as_u16()), "type": "server_error"}})
        }
        Flavor::Anthropic | Flavor::Vertex => {
            json!({"type": "error", "error": {"type": "api_error", "message": format!("mock says {}", status.as_u16())}})
        }
        Flavor::Bedrock => json!({"message": format!("mock says {}", status.as_u16())}),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

async fn models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    match admit(&state, "/v1/models", &headers, &Bytes::new()) {
        Err(denied) => denied,
        Ok(_) => axum::Json(json!({"object": "list", "data": [{"id": "mock-small", "object": "model"}, {"id": "mock-large", "object": "model"}]})).into_response(),
    }
}

async fn embeddings(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&state, "/v1/embeddings", &headers, &body) {
        Err(denied) => denied,
        Ok((Behavior::Status(code, retry), ..)) => error_response(state.0, code, retry),
        Ok((_, request, prompt, _)) => axum::Json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "model": request["model"],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}
        }))
        .into_response(),
    }
}

/// The SSE body of a stream: `events` are sent with `gap` between them; `cut` drops the
/// connection after that many events, before the end.
fn sse(events: Vec<String>, gap: Duration, cut: Option<usize>, done: bool) -> Response {
    let stream = async_stream_like(events, gap, cut, done);
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn async_stream_like(
    events: Vec<String>,
    gap: Duration,
    cut: Option<usize>,
    done: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let limit = cut.unwrap_or(usize::MAX);
    let cutting = cut.is_some();
    let mut items: Vec<Result<Bytes, std::io::Error>> =
        events.into_iter().take(limit).map(|e| Ok(Bytes::from(e))).collect();
    if cutting {
        items.push(Err(std::io::Error::other("mock cut the stream")));
    } else if done {
        items.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    }
    futures::stream::iter(items).then(move |item| async move {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        item
    })
}

use futures::StreamExt as _;

#[path = "mock_bedrock.rs"]
pub mod bedrock;
#[path = "mock_gemini.rs"]
pub mod gemini;
#[path = "mock_rules.rs"]
mod rules;
#[path = "mock_vertex.rs"]
pub mod vertex;

async fn chat(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let (behavior, request, prompt, completion) = match admit(&state, "/v1/chat/completions", &headers, &body) {
        Err(denied) => return denied,
        Ok(x) => x,
    };
    let model = request["model"].as_str().unwrap_or("mock").to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    match behavior {
        Behavior::Status(code, retry) => return error_response(state.0, code, retry),
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }
    if let Some(refused) = rules::check_chat(&request) {
        return refused;
    }
    let tool = rules::chat_tool_to_call(&request);
    let tool_call = tool.is_some();
    let tool = tool.unwrap_or_default();
    if !stream {
        let message = if tool_call {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": tool, "arguments": "{\"city\":\"Paris\"}"}}]})
        } else {
            let text = rules::structured_text(&request).unwrap_or_else(|| "Hello from the mock".to_owned());
            json!({"role": "assistant", "content": text})
        };
        return axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": if tool_call { "tool_calls" } else { "stop" }, "logprobs": null}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": state.1.lock().unwrap().cache.0},
                      "completion_tokens_details": {"reasoning_tokens": 2}}
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    if state.0 == Flavor::Azure {
        // Azure's streams open with the prompt's filter results and no choices.
        events.insert(0, format!("data: {}\n\n", json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]})));
    }
    if tool_call {
        events.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": tool, "arguments": ""}}]}), Value::Null));
        events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null));
        events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null));
        events.push(chunk(json!({}), json!("tool_calls")));
    } else {
        for word in ["Hello", " from", " the", " mock"] {
            events.push(chunk(json!({"content": word}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
    }
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
        ));
    }
    match behavior {
        // A gap, so the first chunks are on the wire before the cut.
        Behavior::CutAfter(n) => sse(events, Duration::from_millis(30), Some(n), false),
        Behavior::Drip(gap) => sse(events, gap, None, true),
        Behavior::ErrorAfter(n) => {
            let mut events: Vec<String> = events.into_iter().take(n).collect();
            let error =
                json!({"error": {"message": format!("generation failed (key {VALID_KEY})"), "type": "server_error"}});
            events.push(format!("data: {error}\n\n"));
            sse(events, Duration::from_millis(20), None, true)
        }
        _ => sse(events, Duration::ZERO, None, true),
    }
}

/// Anthropic's own `/v1/messages`: refuses what Anthropic refuses before anything else, a request
/// without `anthropic-version` (Vertex AI and Bedrock carry the version in their bodies, and come
/// to `messages` through their own checks).
async fn messages_route(state: State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    if state.0.0 == Flavor::Anthropic && !headers.contains_key("anthropic-version") {
        let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    messages(state, headers, body).await
}

async fn messages(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let (behavior, request, prompt, completion) = match admit(&state, "/v1/messages", &headers, &body) {
        Err(denied) => return denied,
        Ok(x) => x,
    };
    let model = request["model"].as_str().unwrap_or("claude-mock").to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    match behavior {
        Behavior::Status(code, retry) => return error_response(state.0, code, retry),
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }
    if let Some(refused) = rules::check_messages(&request) {
        return refused;
    }
    // Anthropic (and the clouds that serve Claude) require the output bound.
    if request["max_tokens"].as_u64().is_none_or(|n| n < 1) {
        let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    // What the test set, or else Anthropic's cache accounting when the request has breakpoints.
    let set = state.1.lock().unwrap().cache;
    let (cache_read, cache_write, prompt) = match (set, rules::cache_accounting(&state.1, &request)) {
        ((0, 0), Some(counted)) => counted,
        ((read, write), _) => (read, write, prompt),
    };
    let tool = rules::messages_tool_to_call(&request);
    let tool_call = tool.is_some();
    let tool = tool.unwrap_or_default();
    // A forced tool (`tool_choice` `tool` or `any`) is called straight away, with no text first.
    let forced = tool_call && matches!(request["tool_choice"]["type"].as_str(), Some("tool" | "any"));
    if !stream {
        let content = if forced {
            json!([{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"city": "Paris"}}])
        } else if tool_call {
            json!([{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"city": "Paris"}}])
        } else {
            let text = rules::structured_text(&request).unwrap_or_else(|| "Hello from Claude mock".to_owned());
            json!([{"type": "text", "text": text}])
        };
        let mut usage = json!({"input_tokens": prompt, "output_tokens": completion,
                               "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write});
        if let (Some(extra), Some(usage)) = (state.1.lock().unwrap().usage_extra.clone(), usage.as_object_mut()) {
            usage.extend(extra.as_object().cloned().unwrap_or_default());
        }
        return axum::Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": if tool_call { "tool_use" } else { "end_turn" }, "stop_sequence": null,
            "usage": usage
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": prompt, "output_tokens": 1, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}}}),
    )];
    if forced {
        events.push(event("ping", json!({"type": "ping"})));
    } else {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        events.push(event("ping", json!({"type": "ping"})));
        for word in ["Hello", " from", " Claude"] {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
            ));
        }
        events.push(event("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    }
    if tool_call {
        let index = if forced { 0 } else { 1 };
        events.push(event("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}})));
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})));
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})));
        events.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": if tool_call { "tool_use" } else { "end_turn" }, "stop_sequence": null}, "usage": {"output_tokens": completion}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    match behavior {
        Behavior::CutAfter(n) => sse(events, Duration::from_millis(30), Some(n), false),
        Behavior::Drip(gap) => sse(events, gap, None, false),
        _ => sse(events, Duration::ZERO, None, false),
    }
}

async fn count_tokens(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&state, "/v1/messages/count_tokens", &headers, &body) {
        Err(denied) => denied,
        Ok((Behavior::Status(code, retry), ..)) => error_response(state.0, code, retry),
        Ok(_) => axum::Json(json!({"input_tokens": 42})).into_response(),
    }
}

/// OpenAI's Responses API: a text answer, or a function call when tools are offered; streams
/// with the typed, numbered events.
async fn responses(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let (behavior, request, prompt, completion) = match admit(&state, "/v1/responses", &headers, &body) {
        Err(denied) => return denied,
        Ok(x) => x,
    };
    if let Behavior::Status(code, retry) = behavior {
        return error_response(state.0, code, retry);
    }
    let model = request["model"].as_str().unwrap_or("mock").to_owned();
    let tool_call = request["tools"].is_array();
    let cached = state.1.lock().unwrap().cache.0;
    let usage = json!({"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                       "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": prompt + completion});
    let item = if tool_call {
        json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"})
    } else {
        json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hello from the mock", "annotations": []}]})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_mock", "object": "response", "created_at": 1, "status": status, "model": model, "output": output, "usage": usage,
               "error": null, "incomplete_details": null, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "metadata": {}})
    };
    if !request["stream"].as_bool().unwrap_or(false) {
        return axum::Json(response("completed", json!([item]), usage)).into_response();
    }
    let mut n = 0;
    let mut event = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(n);
        n += 1;
        format!("event: {name}\ndata: {data}\n\n")
    };
    let mut events = vec![
        event("response.created", json!({"response": response("in_progress", json!([]), Value::Null)})),
        event("response.in_progress", json!({"response": response("in_progress", json!([]), Value::Null)})),
    ];
    if tool_call {
        events.push(event("response.output_item.added", json!({"output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}})));
        for piece in ["{\"city\":", "\"Paris\"}"] {
            events.push(event(
                "response.function_call_arguments.delta",
                json!({"item_id": "fc_1", "output_index": 0, "delta": piece}),
            ));
        }
        events.push(event(
            "response.function_call_arguments.done",
            json!({"item_id": "fc_1", "output_index": 0, "arguments": "{\"city\":\"Paris\"}"}),
        ));
    } else {
        events.push(event("response.output_item.added", json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}})));
        events.push(event("response.content_part.added", json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})));
        for word in ["Hello", " from", " the", " mock"] {
            events.push(event(
                "response.output_text.delta",
                json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": word, "logprobs": []}),
            ));
        }
        events.push(event("response.output_text.done", json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "Hello from the mock", "logprobs": []})));
        events.push(event("response.content_part.done", json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "Hello from the mock", "annotations": []}})));
    }
    events.push(event("response.output_item.done", json!({"output_index": 0, "item": item})));
    events.push(event("response.completed", json!({"response": response("completed", json!([item]), usage)})));
    match behavior {
        Behavior::CutAfter(n) => sse(events, Duration::from_millis(30), Some(n), false),
        _ => sse(events, Duration::ZERO, None, false),
    }
}
