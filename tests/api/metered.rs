//! A metered upstream: plays OpenAI (chat completions, Responses) and Anthropic (Messages) as
//! their billing works, and keeps a ledger of what it would bill for each call: the prompt as its
//! own tokenizer counts it, and every output token it generated, those nobody read included (a
//! stream cut short is billed up to the token it was producing when it saw the connection close;
//! a whole answer the caller gave up waiting for is billed in full). It checks what the real
//! services check (the key, Anthropic's version header, `max_tokens` required by Anthropic,
//! integer bounds) and honours the output bound and `n` it is sent. Calls are known by a tag
//! `[call:NAME]` in their prompt.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::{Value, json};

pub const KEY: &str = crate::mock::VALID_KEY;

/// Output pieces, each one token for the provider (and for `o200k_base`).
const WORDS: [&str; 8] = [" the", " of", " and", " to", " in", " a", " is", " that"];

/// What the provider would bill one call (summed over every attempt that reached it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bill {
    pub prompt: u64,
    pub output: u64,
    pub requests: u32,
}

/// How the mock answers one tag.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Output tokens per choice the model would write if nothing bounded it.
    pub length: u64,
    /// Wait before the first byte, on the tag's first request only (a provider slower than the
    /// gateway's first-byte timeout that generates the answer anyway).
    pub first_delay: Duration,
    /// Between streamed tokens.
    pub gap: Duration,
    /// How the call fails, if it does.
    pub fail: Fail,
}

/// How a planned call fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fail {
    #[default]
    Not,
    /// Refused with this status before any work (the request counted, nothing billed), with an
    /// error body in the family's own shape.
    Status(u16),
    /// A stream broken by the provider's own error event after this many tokens (billed).
    ErrorAfter(u64),
}

impl Default for Plan {
    fn default() -> Self {
        Self { length: 40, first_delay: Duration::ZERO, gap: Duration::from_millis(4), fail: Fail::Not }
    }
}

/// The status a call's plan refuses it with, if any: the request is counted, nothing is billed.
fn refused(books: &Shared, body: &Value) -> Option<StatusCode> {
    let (tag, _) = read_prompt(body);
    let mut books = books.lock().unwrap();
    let Some(Fail::Status(code)) = books.plans.get(&tag).map(|p| p.fail) else { return None };
    books.bills.entry(tag).or_default().requests += 1;
    StatusCode::from_u16(code).ok()
}

/// Tokens a stream writes before its plan's error event, if it has one.
fn until_error(plan: &Plan, total: u64) -> (u64, bool) {
    match plan.fail {
        Fail::ErrorAfter(n) => (n.min(total), true),
        Fail::Not | Fail::Status(_) => (total, false),
    }
}

const BROKE: &str = "The model broke down in the middle of the answer.";

#[derive(Default)]
struct Books {
    bills: HashMap<String, Bill>,
    plans: HashMap<String, Plan>,
}

#[derive(Clone)]
pub struct Metered {
    pub addr: SocketAddr,
    books: Arc<Mutex<Books>>,
}

impl Metered {
    pub async fn start() -> Self {
        let books = Arc::new(Mutex::new(Books::default()));
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/responses", post(responses))
            .route("/v1/messages", post(messages))
            .route("/v1/embeddings", post(embeddings))
            .route("/openai/deployments/{deployment}/embeddings", post(embeddings))
            // Azure OpenAI's paths: a deployment's chat, and the v1 Responses surface.
            .route("/openai/deployments/{deployment}/chat/completions", post(chat))
            .route("/openai/v1/responses", post(responses))
            // Vertex AI's: its token endpoint (the assertion verified) and Claude's rawPredict.
            .route("/token", post(vertex_token))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{action}",
                post(vertex_predict),
            )
            // Amazon Bedrock's InvokeModel: each request's SigV4 signature checked.
            .route("/model/{model}/{action}", post(bedrock_invoke))
            .merge(gemini::routes())
            .with_state(Arc::clone(&books));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, books }
    }

    /// The base URL for OpenAI-style kinds (with `/v1`) or Anthropic's (without).
    pub fn base_url(&self, anthropic: bool) -> String {
        if anthropic { format!("http://{}", self.addr) } else { format!("http://{}/v1", self.addr) }
    }

    pub fn plan(&self, tag: &str, plan: Plan) {
        self.books.lock().unwrap().plans.insert(tag.to_owned(), plan);
    }

    /// What the provider would bill for a tag (nothing if it never saw it).
    pub fn bill(&self, tag: &str) -> Bill {
        self.books.lock().unwrap().bills.get(tag).copied().unwrap_or_default()
    }
}

type Shared = Arc<Mutex<Books>>;

#[path = "metered_converse.rs"]
mod converse;
#[path = "metered_gemini.rs"]
mod gemini;

/// The tag in a prompt, and the prompt's tokens as this provider counts them: its tokenizer
/// counts about a tenth more than `o200k_base`, plus framing per message.
fn read_prompt(body: &Value) -> (String, u64) {
    let mut text = String::new();
    fn strings(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    // Definitions the model is given (tools, output schemas), keys and all, as providers bill them.
    fn definitions(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| definitions(v, out)),
            Value::Object(o) => o.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\n');
                definitions(v, out);
            }),
            _ => {}
        }
    }
    let mut turns = 0;
    for field in ["system", "messages", "input", "instructions", "systemInstruction", "contents"] {
        if let Some(v) = body.get(field) {
            strings(v, &mut text);
            turns += v.as_array().map_or(1, Vec::len) as u64;
        }
    }
    for field in ["tools", "tool_choice", "toolConfig", "response_format", "output_config", "outputConfig", "text"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_string()) {
            definitions(v, &mut text);
        }
    }
    if let Some(schema) = body.pointer("/generationConfig/responseJsonSchema") {
        definitions(schema, &mut text);
    }
    // Claude's tool-use system prompt, billed on top when tools are offered (Anthropic's pricing
    // page: 346 tokens with `auto` or `none`, 313 with `any` or a named tool).
    let claude_tools = body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t.get("input_schema").is_some()));
    let forced = matches!(body.pointer("/tool_choice/type").and_then(Value::as_str), Some("any" | "tool"));
    let tool_prompt = match (claude_tools, forced) {
        (false, _) => 0,
        (true, true) => 313,
        (true, false) => 346,
    };
    let tag = text.split("[call:").nth(1).and_then(|rest| rest.split(']').next()).unwrap_or("untagged").to_owned();
    let bpe = tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64;
    (tag, (bpe * 11).div_ceil(10) + 3 * turns + tool_prompt)
}

/// A positive integer bound, or none; anything else is the provider's 400.
fn bound(body: &Value, field: &str) -> Result<Option<u64>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| format!("{field} must be a positive integer"))
        }
    }
}

/// Starts billing one request: its prompt, and (for a whole answer) every token it will write.
/// Returns the tag, the plan, and the output tokens per choice.
fn admit(
    books: &Shared,
    body: &Value,
    bound_per_choice: Option<u64>,
    choices: u64,
    whole: bool,
) -> (String, Plan, u64, u64) {
    let (tag, prompt) = read_prompt(body);
    let mut books = books.lock().unwrap();
    let plan = books.plans.get(&tag).copied().unwrap_or_default();
    let first = !books.bills.contains_key(&tag);
    let per_choice = bound_per_choice.map_or(plan.length, |b| b.min(plan.length));
    let bill = books.bills.entry(tag.clone()).or_default();
    bill.prompt += prompt;
    bill.requests += 1;
    if whole {
        bill.output += per_choice * choices;
    }
    let plan = if first { plan } else { Plan { first_delay: Duration::ZERO, ..plan } };
    (tag, plan, per_choice, prompt)
}

fn produced(books: &Shared, tag: &str) {
    books.lock().unwrap().bills.entry(tag.to_owned()).or_default().output += 1;
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
        ),
    )
        .into_response()
}

/// OpenAI's bearer key, or Azure OpenAI's `api-key`.
fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
        || headers.get("api-key").and_then(|v| v.to_str().ok()) == Some(KEY)
}

fn sse(events: impl futures::Stream<Item = String> + Send + 'static) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events.map(|e| Ok::<_, std::io::Error>(Bytes::from(e)))))
        .unwrap()
}

/// TokenCounts produced one at a time, `gap` apart, each billed as it is produced; `event` writes
/// token `i` (of choice `c`).
fn token_stream(
    books: Shared,
    tag: String,
    gap: Duration,
    total: u64,
    event: impl Fn(u64) -> String + Send + 'static,
) -> impl futures::Stream<Item = String> + Send + 'static {
    futures::stream::unfold(0u64, move |i| {
        let (books, tag) = (Arc::clone(&books), tag.clone());
        let piece = (i < total).then(|| event(i));
        async move {
            let piece = piece?;
            // A provider writing as fast as it can still lets others run between tokens (a timer
            // of zero would wait for the timer's next tick, a millisecond a token).
            if gap.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(gap).await;
            }
            produced(&books, &tag);
            Some((piece, i + 1))
        }
    })
}

fn word(i: u64) -> &'static str {
    WORDS[(i % WORDS.len() as u64) as usize]
}

async fn chat(State(books): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer_ok(&headers) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return openai_error(StatusCode::BAD_REQUEST, "invalid JSON"),
    };
    let asked = match (bound(&body, "max_completion_tokens"), bound(&body, "max_tokens"), bound(&body, "n")) {
        (Ok(a), Ok(b), Ok(n)) => (a.or(b), n.unwrap_or(1)),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(status) = refused(&books, &body) {
        return openai_error(status, "The server had an error while processing your request.");
    }
    let stream = body["stream"].as_bool() == Some(true);
    let (tag, plan, per_choice, prompt) = admit(&books, &body, asked.0, asked.1, !stream);
    let choices = asked.1;
    tokio::time::sleep(plan.first_delay).await;
    let model = body["model"].as_str().unwrap_or("metered").to_owned();
    if !stream {
        let text: String = (0..per_choice).map(word).collect();
        let choices: Vec<Value> = (0..choices)
            .map(|c| json!({"index": c, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}))
            .collect();
        let completion = per_choice * asked.1;
        return axum::Json(json!({"id": "chatcmpl-m", "object": "chat.completion", "created": 1, "model": model,
            "choices": choices, "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}))
        .into_response();
    }
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let total = per_choice * choices;
    let chunk = {
        let model = model.clone();
        move |i: u64| {
            let delta = json!({"id": "chatcmpl-m", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": i % choices, "delta": {"content": word(i / choices)}, "finish_reason": null}]});
            format!("data: {delta}\n\n")
        }
    };
    let (written, breaks) = until_error(&plan, total);
    let tokens = token_stream(Arc::clone(&books), tag, plan.gap, written, chunk);
    if breaks {
        let error = json!({"error": {"message": BROKE, "type": "server_error", "param": null, "code": null}});
        return sse(tokens.chain(futures::stream::iter([format!("data: {error}\n\n")])));
    }
    let end = futures::stream::iter({
        let mut tail = Vec::new();
        for c in 0..choices {
            let finish = json!({"id": "chatcmpl-m", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": c, "delta": {}, "finish_reason": "length"}]});
            tail.push(format!("data: {finish}\n\n"));
        }
        if include_usage {
            let usage = json!({"id": "chatcmpl-m", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                "usage": {"prompt_tokens": prompt, "completion_tokens": total, "total_tokens": prompt + total}});
            tail.push(format!("data: {usage}\n\n"));
        }
        tail.push("data: [DONE]\n\n".to_owned());
        tail
    });
    sse(tokens.chain(end))
}

async fn responses(State(books): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer_ok(&headers) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return openai_error(StatusCode::BAD_REQUEST, "invalid JSON"),
    };
    let asked = match bound(&body, "max_output_tokens") {
        Ok(a) => a,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(status) = refused(&books, &body) {
        return openai_error(status, "The server had an error while processing your request.");
    }
    let stream = body["stream"].as_bool() == Some(true);
    let (tag, plan, per_choice, prompt) = admit(&books, &body, asked, 1, !stream);
    tokio::time::sleep(plan.first_delay).await;
    let model = body["model"].as_str().unwrap_or("metered").to_owned();
    let text: String = (0..per_choice).map(word).collect();
    let usage = json!({"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": per_choice,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + per_choice});
    let item = json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_m", "object": "response", "created_at": 1, "status": status, "model": model, "output": output,
               "usage": usage, "error": null, "incomplete_details": null})
    };
    if !stream {
        return axum::Json(response("completed", json!([item]), usage)).into_response();
    }
    let head = futures::stream::iter(vec![
        format!(
            "event: response.created\ndata: {}\n\n",
            json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)})
        ),
        format!(
            "event: response.output_item.added\ndata: {}\n\n",
            json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}})
        ),
    ]);
    let (written, breaks) = until_error(&plan, per_choice);
    let tokens = token_stream(Arc::clone(&books), tag, plan.gap, written, |i| {
        let delta = json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": word(i)});
        format!("event: response.output_text.delta\ndata: {delta}\n\n")
    });
    if breaks {
        let error = json!({"type": "error", "code": "server_error", "message": BROKE, "param": null});
        return sse(head.chain(tokens).chain(futures::stream::iter([format!("event: error\ndata: {error}\n\n")])));
    }
    let completed = json!({"type": "response.completed", "response": response("completed", json!([item]), usage)});
    let end = futures::stream::iter(vec![format!("event: response.completed\ndata: {completed}\n\n")]);
    sse(head.chain(tokens).chain(end))
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}}))).into_response()
}

/// The one token the metered Vertex AI issues, once an assertion checks out.
const VERTEX_TOKEN: &str = "ya29.metered";

async fn vertex_token(
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = crate::mock::vertex::verify_assertion(&form, &headers) {
        return refused;
    }
    axum::Json(json!({"access_token": VERTEX_TOKEN, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// Vertex's checks (its token, its body), then Anthropic's answer and bill for the model in the path.
async fn vertex_predict(
    books: State<Shared>,
    axum::extract::Path((_, _, action)): axum::extract::Path<(String, String, String)>,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {VERTEX_TOKEN}")) {
        return anthropic_error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid token");
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = action.rsplit_once(':').map(|(m, _)| m.to_owned()).unwrap_or_default();
    if request["anthropic_version"] != "vertex-2023-10-16" || request.get("model").is_some() {
        return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "not a Vertex AI body");
    }
    request["model"] = json!(model);
    headers.insert("x-api-key", http::HeaderValue::from_static(KEY));
    headers.insert("anthropic-version", http::HeaderValue::from_static("2023-06-01"));
    messages(books, headers, Bytes::from(request.to_string())).await
}

/// Bedrock's checks (the signature, the body), then Anthropic's answer and bill for the model in
/// the path, streamed in event-stream frames.
async fn bedrock_invoke(
    books: State<Shared>,
    axum::extract::Path((model, action)): axum::extract::Path<(String, String)>,
    method: http::Method,
    uri: http::Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::mock::bedrock;
    if let Err(refused) = bedrock::verify_sigv4(&method, &uri, &headers, &body, None) {
        return refused;
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(stream) = action.strip_prefix("converse").map(|rest| rest == "-stream") {
        return converse::converse(books.0, stream, &request).await;
    }
    if let Some(refused) = bedrock::refuse_body(&model, &request) {
        return refused;
    }
    let stream = action == "invoke-with-response-stream";
    request["model"] = json!(model);
    request["stream"] = json!(stream);
    headers.insert("x-api-key", http::HeaderValue::from_static(KEY));
    headers.insert("anthropic-version", http::HeaderValue::from_static("2023-06-01"));
    let answer = messages(books, headers, Bytes::from(request.to_string())).await;
    if stream && answer.status().is_success() { bedrock::event_stream(answer, false) } else { answer }
}

async fn messages(State(books): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return anthropic_error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key");
    }
    if headers.get("anthropic-version").and_then(|v| v.to_str().ok()) != Some("2023-06-01") {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid JSON"),
    };
    let max_tokens = match bound(&body, "max_tokens") {
        Ok(Some(n)) => n,
        Ok(None) => {
            return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "max_tokens: Field required");
        }
        Err(e) => return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &e),
    };
    if let Some(status) = refused(&books, &body) {
        let kind = if status.is_server_error() { "api_error" } else { "invalid_request_error" };
        return anthropic_error(status, kind, "The request could not be served.");
    }
    let stream = body["stream"].as_bool() == Some(true);
    let (tag, plan, per_choice, prompt) = admit(&books, &body, Some(max_tokens), 1, !stream);
    tokio::time::sleep(plan.first_delay).await;
    let model = body["model"].as_str().unwrap_or("claude-metered").to_owned();
    let stop = if per_choice < plan.length { "max_tokens" } else { "end_turn" };
    if !stream {
        let text: String = (0..per_choice).map(word).collect();
        return axum::Json(json!({"id": "msg_m", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": prompt, "output_tokens": per_choice}}))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let head = futures::stream::iter(vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_m", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ]);
    let (written, breaks) = until_error(&plan, per_choice);
    let tokens = token_stream(Arc::clone(&books), tag, plan.gap, written, |i| {
        let delta =
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word(i)}});
        format!("event: content_block_delta\ndata: {delta}\n\n")
    });
    if breaks {
        let error = event("error", json!({"type": "error", "error": {"type": "api_error", "message": BROKE}}));
        return sse(head.chain(tokens).chain(futures::stream::iter([error])));
    }
    let end = futures::stream::iter(vec![
        event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": per_choice}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ]);
    sse(head.chain(tokens).chain(end))
}

/// OpenAI's embeddings (and Azure's deployment path): every input billed as prompt tokens.
async fn embeddings(State(books): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer_ok(&headers) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return openai_error(StatusCode::BAD_REQUEST, "invalid JSON"),
    };
    let inputs = match &body["input"] {
        Value::String(_) => 1,
        Value::Array(items) if !items.is_empty() => items.len(),
        _ => return openai_error(StatusCode::BAD_REQUEST, "'input' is a required property"),
    };
    if let Some(status) = refused(&books, &body) {
        return openai_error(status, "The server had an error while processing your request.");
    }
    // Not a whole answer for `admit`: embeddings write no output, so none is billed.
    let (_, plan, _, prompt) = admit(&books, &body, Some(1), 1, false);
    tokio::time::sleep(plan.first_delay).await;
    let data: Vec<Value> =
        (0..inputs).map(|i| json!({"object": "embedding", "index": i, "embedding": [0.01, -0.02, 0.03]})).collect();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}))
    .into_response()
}
