//! Amazon Bedrock's Converse API, the one shape for every model Bedrock serves (Amazon Nova,
//! Meta Llama, Mistral, Cohere, DeepSeek, OpenAI's open-weight models, Claude too):
//! `{host}/model/{model}/converse` and `/converse-stream`, with Bedrock's credentials and hosts.
//! Chat completions are translated both ways: system prompts, text, inline images, tools and
//! tool results, tool choice, stop sequences and the inference settings; answers with their
//! tool calls and reasoning text; usage with cache reads and writes; streams event by event
//! (`messageStart`, `contentBlockStart` / `Delta` / `Stop`, `messageStop`, then `metadata` with
//! the usage), which arrive in AWS's event-stream framing. Messages and Responses clients reach
//! it through chat.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::turns::{self as read, OutputFormat, Part, ToolChoice, Turn};
use super::super::{Address, BadAnswer, ClientError, Deframer, Dialect, Endpoint};
use super::{Bedrock, frames, runtime_host, segment};
use crate::platform::secret::SecretBytes;
use crate::protocols::chat::{self, ChatSource};
use crate::protocols::sse;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, StreamTranslator, TranslationOptions};
use crate::usage::TokenCounts;

#[derive(Debug, Clone, Copy, Default)]
pub struct Converse;

impl Dialect for Converse {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let model = segment(at.model);
        match endpoint {
            Endpoint::Call(_) if at.stream => format!("{}/model/{model}/converse-stream", runtime_host(at)),
            Endpoint::Call(_) => format!("{}/model/{model}/converse", runtime_host(at)),
            Endpoint::CountTokens => format!("{}/model/{model}/count-tokens", runtime_host(at)),
            Endpoint::Models => {
                Bedrock.url(at, Endpoint::Models).replace("?byProvider=anthropic", "?byOutputModality=TEXT")
            }
        }
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        Bedrock.auth_headers(key)
    }

    fn native_body(&self, _: &ClientRequest, _: &str, _: Bound) -> Result<Vec<u8>, Refusal> {
        // The catalog gives this kind no native protocol: every call is translated.
        Err(Refusal::new("Bedrock's Converse API does not offer this endpoint here.", Some("model")))
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        Bedrock.native_answer(protocol, body)
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        Bedrock.native_stream(protocol, labels)
    }

    fn deframer(&self) -> Option<Box<dyn Deframer>> {
        Some(Box::new(frames::ToEvents::converse()))
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        _model: &str,
        _stream: bool,
        bound: Bound,
        _options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        super::super::encode(&request(chat, bound.per_choice)?)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        let json: Value = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        Ok(response(&json, labels))
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        Box::new(Chunks::new(labels))
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        Bedrock.starts_with_error(first)
    }

    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        Bedrock.client_error(status, body)
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        Bedrock.error_message(body)
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        Bedrock.model_list(body)
    }
}

/// A user message's content blocks: text (Bedrock refuses empty text blocks) and inline images.
fn user_blocks(parts: Vec<Part<'_>>) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for part in parts {
        match part {
            Part::Text(text) if text.is_empty() => {}
            Part::Text(text) => out.push(json!({"text": text})),
            Part::InlineImage { mime, data } => {
                let format = mime.strip_prefix("image/").filter(|f| matches!(*f, "png" | "jpeg" | "gif" | "webp"));
                let Some(format) = format else { return Err(inline_only()) };
                out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
            }
            Part::ImageUrl(_) => return Err(inline_only()),
            Part::Other(other) => {
                return Err(Refusal::of(
                    format!("Bedrock's Converse API does not take `{other}` content parts here."),
                    "messages",
                ));
            }
        }
    }
    Ok(out)
}

fn inline_only() -> Refusal {
    Refusal::of("Bedrock takes images inline: send PNG, JPEG, GIF or WebP as data: URLs (base64).", "messages")
}

/// Appends `blocks` as a turn of `role` (none when empty): Converse wants turns to alternate; a
/// model's tool results are one user turn.
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if !blocks.is_empty() {
        super::super::push_turn(turns, role, "content", blocks);
    }
}

/// A chat completions request as a Converse body, writing at most `max_tokens`.
pub(super) fn request(chat: &Map<String, Value>, max_tokens: u64) -> Result<Value, Refusal> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for turn in read::turns(chat)? {
        match turn {
            Turn::System(text) if text.is_empty() => {}
            Turn::System(text) => system.push(json!({"text": text})),
            Turn::User(parts) => push_turn(&mut turns, "user", user_blocks(parts)?),
            Turn::Assistant { text, calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
                for call in calls {
                    blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Turn::Tool { call_id, result } => {
                let content = match serde_json::from_str::<Value>(&result) {
                    Ok(Value::Object(object)) => json!([{"json": object}]),
                    _ => json!([{"text": if result.is_empty() { " ".to_owned() } else { result }}]),
                };
                push_turn(&mut turns, "user", vec![json!({"toolResult": {"toolUseId": call_id, "content": content}})]);
            }
        }
    }
    let mut body = json!({"messages": turns, "inferenceConfig": inference_config(chat, max_tokens)});
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    let json_mode = match read::output_format(chat)? {
        OutputFormat::Text => false,
        OutputFormat::JsonSchema { name, description, schema, .. } => {
            // Converse takes the schema as a JSON string.
            let mut definition = json!({"schema": schema.to_string(), "name": name});
            if let Some(description) = description {
                definition["description"] = json!(description);
            }
            body["outputConfig"] =
                json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}});
            false
        }
        OutputFormat::JsonObject if chat.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) => {
            return Err(Refusal::of(
                "JSON mode together with tools has no Converse form: ask for `response_format` of type \
                 `json_schema` (structured outputs), or send the tools without JSON mode.",
                "response_format",
            ));
        }
        // No JSON mode on Converse: the answer is forced through a tool taking any object, whose
        // input comes back as the message's text.
        OutputFormat::JsonObject => true,
    };
    let mut tools = Vec::new();
    for tool in read::function_tools(chat, "Bedrock's Converse API takes function tools only here.")? {
        let schema = tool.parameters.cloned().unwrap_or_else(|| json!({"type": "object"}));
        let mut spec = json!({"name": tool.name, "inputSchema": {"json": schema}});
        if let Some(description) = tool.description {
            spec["description"] = json!(description);
        }
        tools.push(json!({"toolSpec": spec}));
    }
    if json_mode {
        tools.push(json!({"toolSpec": {"name": read::JSON_TOOL, "description": "Give your whole answer as this tool's input: one JSON object.",
            "inputSchema": {"json": {"type": "object"}}}}));
    }
    if tools.is_empty() {
        // Converse refuses a history with tool calls and results but no tools declared (a
        // client that stopped offering them): the tools it used are declared, taking any input.
        let mut used: Vec<Value> = Vec::new();
        for turn in body["messages"].as_array().into_iter().flatten() {
            for block in turn["content"].as_array().into_iter().flatten() {
                if let Some(name) = block.pointer("/toolUse/name").filter(|n| !used.contains(n)) {
                    used.push(name.clone());
                }
            }
        }
        let declared: Vec<Value> = used
            .into_iter()
            .map(|name| json!({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}}))
            .collect();
        if !declared.is_empty() {
            body["toolConfig"] = json!({"tools": declared});
        }
    } else {
        let mut config = json!({"tools": tools});
        match read::tool_choice(chat) {
            Some(ToolChoice::Required) => config["toolChoice"] = json!({"any": {}}),
            Some(ToolChoice::Function(name)) => config["toolChoice"] = json!({"tool": {"name": name}}),
            // `none` has no Converse form: the tools stay declared (earlier turns may use them).
            Some(ToolChoice::None | ToolChoice::Auto) | None => {}
        }
        if json_mode {
            config["toolChoice"] = json!({"tool": {"name": read::JSON_TOOL}});
        }
        body["toolConfig"] = config;
    }
    Ok(body)
}

fn inference_config(chat: &Map<String, Value>, max_tokens: u64) -> Value {
    let mut config = json!({"maxTokens": max_tokens});
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = chat.get(from).filter(|v| v.is_number()) {
            config[to] = value.clone();
        }
    }
    match chat.get("stop") {
        Some(Value::String(stop)) => config["stopSequences"] = json!([stop]),
        Some(Value::Array(stops)) => config["stopSequences"] = Value::Array(stops.clone()),
        _ => {}
    }
    config
}

/// The tokens a Converse `usage` reports: input, with the cache's reads and writes on top (they
/// are counted apart from `inputTokens`), and output.
fn tokens(usage: &Value) -> TokenCounts {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (count("cacheReadInputTokens"), count("cacheWriteInputTokens"));
    TokenCounts {
        prompt: count("inputTokens").saturating_add(read).saturating_add(write),
        completion: count("outputTokens"),
        cache_read: read,
        cache_write: write,
        reasoning: 0,
        ..TokenCounts::default()
    }
}

/// The chat finish reason; a JSON-mode answer (a call of `JSON_TOOL`) is a plain stop.
fn finish(reason: Option<&str>, json_answer: bool) -> Value {
    match reason {
        Some("tool_use") if json_answer => json!("stop"),
        other => finish_reason(other),
    }
}

fn finish_reason(reason: Option<&str>) -> Value {
    match reason {
        Some("tool_use") => json!("tool_calls"),
        Some("max_tokens" | "model_context_window_exceeded") => json!("length"),
        Some("guardrail_intervened" | "content_filtered") => json!("content_filter"),
        _ => json!("stop"),
    }
}

/// A whole Converse answer as a chat completion, and its tokens.
pub(super) fn response(body: &Value, labels: &AnswerLabels) -> (Value, TokenCounts) {
    let counts = tokens(body.get("usage").unwrap_or(&Value::Null));
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    let mut json_answer = false;
    let blocks = body.pointer("/output/message/content").and_then(Value::as_array);
    for block in blocks.into_iter().flatten() {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(use_) =
            block.get("toolUse").filter(|u| u.get("name").and_then(Value::as_str) == Some(read::JSON_TOOL))
        {
            // JSON mode's answer: the object is the text.
            text = serde_json::to_string(use_.get("input").unwrap_or(&json!({}))).unwrap_or_else(|_| "{}".into());
            json_answer = true;
        } else if let Some(use_) = block.get("toolUse") {
            let arguments =
                serde_json::to_string(use_.get("input").unwrap_or(&json!({}))).unwrap_or_else(|_| "{}".into());
            calls.push(json!({"id": use_.get("toolUseId").cloned().unwrap_or_default(), "type": "function",
                "function": {"name": use_.get("name").cloned().unwrap_or_default(), "arguments": arguments}}));
        } else if let Some(t) = block.pointer("/reasoningContent/reasoningText/text").and_then(Value::as_str) {
            reasoning.push_str(t);
        }
    }
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let finish = finish(body.get("stopReason").and_then(Value::as_str), json_answer);
    let answer = json!({
        "id": format!("chatcmpl-{}", labels.id), "object": "chat.completion", "created": labels.created,
        "model": labels.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": chat::usage(&counts),
    });
    (answer, counts)
}

/// Reads a ConverseStream (its events as `frames` turned them into server-sent events) as chat
/// chunks. The stream ends with `metadata`, after `messageStop`.
pub(super) struct Chunks {
    id: String,
    model: String,
    created: i64,
    /// Content block index -> the tool call's index among the answer's calls.
    calls: Vec<(u64, usize)>,
    /// The content block of a JSON-mode answer (`JSON_TOOL`): its input streams as text.
    json_block: Option<u64>,
    stopped: bool,
    finished: bool,
    tokens: TokenCounts,
}

impl Chunks {
    fn new(labels: &AnswerLabels) -> Self {
        Self {
            id: format!("chatcmpl-{}", labels.id),
            model: labels.model.clone(),
            created: labels.created,
            calls: Vec::new(),
            json_block: None,
            stopped: false,
            finished: false,
            tokens: TokenCounts::default(),
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
    }
}

impl ChatSource for Chunks {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Value>) -> Result<(), String> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let block = data.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
        match event.name.as_deref().unwrap_or_default() {
            "error" => {
                let message = data.pointer("/error/message").and_then(Value::as_str);
                return Err(message.unwrap_or("provider stream error").to_owned());
            }
            "messageStart" => out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)),
            "contentBlockStart" => {
                let use_ = data.pointer("/start/toolUse");
                if use_.and_then(|u| u.get("name")).and_then(Value::as_str) == Some(read::JSON_TOOL) {
                    self.json_block = Some(block);
                } else if let Some(use_) = use_ {
                    let index = self.calls.len();
                    self.calls.push((block, index));
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "id": use_.get("toolUseId"), "type": "function",
                            "function": {"name": use_.get("name"), "arguments": ""}}]}),
                        Value::Null,
                    ));
                }
            }
            "contentBlockDelta" => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    out.push(self.chunk(json!({"content": text}), Value::Null));
                } else if let Some(input) =
                    delta.pointer("/toolUse/input").and_then(Value::as_str).filter(|_| self.json_block == Some(block))
                {
                    out.push(self.chunk(json!({"content": input}), Value::Null));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str) {
                    let index = self.calls.iter().find(|(b, _)| *b == block).map_or(0, |(_, i)| *i);
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": input}}]}),
                        Value::Null,
                    ));
                } else if let Some(text) = delta.pointer("/reasoningContent/text").and_then(Value::as_str) {
                    out.push(self.chunk(json!({"reasoning_content": text}), Value::Null));
                }
            }
            "messageStop" => {
                self.stopped = true;
                let reason = data.get("stopReason").and_then(Value::as_str);
                out.push(self.chunk(json!({}), finish(reason, self.json_block.is_some())));
            }
            "metadata" => {
                self.tokens = tokens(data.get("usage").unwrap_or(&Value::Null));
                self.finished = true;
            }
            // `contentBlockStop`, and whatever Bedrock adds later.
            _ => {}
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.finished
    }

    /// A stream that stopped its message and then closed lost only its usage (estimated then).
    fn complete_on_close(&self) -> bool {
        self.stopped
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}
