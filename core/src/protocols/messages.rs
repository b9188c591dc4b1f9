//! Anthropic Messages (`POST /v1/messages`, version 2023-06-01) as a client protocol: what the
//! edge checks, the request as chat completions for providers that do not speak it, and chat
//! answers and chunks written back as Messages answers and events. Providers that speak it
//! (Anthropic) get the request untouched; see `dialects::anthropic`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::chat::{AnswerParts, ChatSink, Delta};
use super::tools::Dropped;
use super::{AnswerLabels, Refusal};
use crate::protocols::StreamFault;
use crate::usage::TokenCounts;

/// Checks what Anthropic itself requires before anything is routed.
pub fn check(body: &Map<String, Value>) -> Result<(), Refusal> {
    match body.get("max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
        None | Some(Value::Null) => return Err(Refusal::new("max_tokens: Field required", Some("max_tokens"))),
        Some(_) => {
            return Err(Refusal::new("max_tokens: Input should be a positive integer", Some("max_tokens")));
        }
    }
    match body.get("messages") {
        Some(Value::Array(_)) => {}
        None => return Err(Refusal::new("messages: Field required", Some("messages"))),
        Some(_) => return Err(Refusal::new("messages: Input should be a valid list", Some("messages"))),
    }
    match body.get("system") {
        None | Some(Value::Null | Value::String(_) | Value::Array(_)) => Ok(()),
        Some(_) => Err(Refusal::new("system: Input should be a string or a list of text blocks", Some("system"))),
    }
}

/// Anthropic's usage as token counts: every input token is a prompt token, and the cached ones
/// are also counted apart (they are billed differently), the 1-hour cache writes
/// (`cache_creation.ephemeral_1h_input_tokens`) apart again; web searches the server ran
/// (`server_tool_use.web_search_requests`, billed per search).
pub fn tokens(usage: &Value) -> TokenCounts {
    let field = |f: &str| usage.get(f).and_then(Value::as_u64).unwrap_or(0);
    let inner = |outer: &str, f: &str| usage.get(outer).and_then(|o| o.get(f)).and_then(Value::as_u64).unwrap_or(0);
    let (cache_read, cache_write) = (field("cache_read_input_tokens"), field("cache_creation_input_tokens"));
    TokenCounts {
        prompt: field("input_tokens") + cache_read + cache_write,
        completion: field("output_tokens"),
        cache_read,
        cache_write,
        // Anthropic counts thinking inside the output tokens and does not report it apart.
        reasoning: 0,
        cache_write_1h: inner("cache_creation", "ephemeral_1h_input_tokens").min(cache_write),
        web_searches: inner("server_tool_use", "web_search_requests"),
    }
}

/// Anthropic's `usage` object for these counts (input tokens exclude the cached ones); the
/// 1-hour cache writes and the web searches when there were some.
pub fn usage(t: &TokenCounts) -> Value {
    let mut usage = json!({
        "input_tokens": t.prompt.saturating_sub(t.cache_read + t.cache_write),
        "output_tokens": t.completion,
        "cache_read_input_tokens": t.cache_read,
        "cache_creation_input_tokens": t.cache_write,
    });
    if t.cache_write_1h > 0 {
        usage["cache_creation"] = json!({
            "ephemeral_5m_input_tokens": t.cache_write.saturating_sub(t.cache_write_1h),
            "ephemeral_1h_input_tokens": t.cache_write_1h,
        });
    }
    if t.web_searches > 0 {
        usage["server_tool_use"] = json!({"web_search_requests": t.web_searches});
    }
    usage
}

/// Anthropic's error object.
pub fn error_json(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// A stream's `error` event.
pub fn error_event(kind: &str, message: &str) -> Bytes {
    event("error", &error_json(kind, message))
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A chat `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(message, Some("messages"))
}

/// A Messages request as a chat completions request (for providers that speak only chat).
/// What chat has no way to say is refused with a 400 rather than silently dropped, except hints
/// that change nothing in the answer (`cache_control`: an OpenAI-style provider caches prefixes
/// by itself; `top_k`, `thinking`) and server tools merely offered (see `to_chat_dropping`).
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, Refusal> {
    to_chat_dropping(body).map(|(chat, _)| chat)
}

/// The same, and the Anthropic server tools (web search, code execution, ...) it goes without:
/// offered, they are dropped (the provider cannot run them); forced by `tool_choice`, refused.
/// Their earlier calls and results in assistant turns are left out with them.
pub fn to_chat_dropping(body: &Map<String, Value>) -> Result<(Map<String, Value>, Dropped), Refusal> {
    let mut dropped = Dropped::default();
    let mut messages: Vec<Value> = Vec::new();
    match body.get("system") {
        Some(Value::String(s)) if !s.is_empty() => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = text_of(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        _ => {}
    }
    for message in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let blocks: Vec<Value> = match message.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => return Err(invalid("Each message needs `content`: a string or a list of blocks.")),
        };
        match role {
            "user" => user_turn(&blocks, &mut messages)?,
            "assistant" => messages.push(assistant_turn(&blocks)?),
            other => return Err(invalid(format!("messages: unexpected role `{other}` (user or assistant)."))),
        }
    }
    let mut chat = Map::new();
    chat.insert("model".into(), body.get("model").cloned().unwrap_or(Value::Null));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = body.get("max_tokens") {
        chat.insert("max_tokens".into(), max.clone());
    }
    for field in ["temperature", "top_p", "stream"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            chat.insert(field.into(), v.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences").filter(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
        chat.insert("stop".into(), stop.clone());
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")).filter(|u| u.is_string()) {
        chat.insert("user".into(), user.clone());
    }
    if let Some(format) = output_format(body)? {
        chat.insert("response_format".into(), format);
    }
    let mut server_tools: Vec<&str> = Vec::new();
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut functions = Vec::new();
        for offered in tools {
            match offered.get("type").and_then(Value::as_str) {
                None | Some("custom") => functions.push(tool(offered)),
                Some(server) => {
                    server_tools.push(offered.get("name").and_then(Value::as_str).unwrap_or(server));
                    dropped.add(server);
                }
            }
        }
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|c| c.is_object()) {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("tool") if choice.get("name").and_then(Value::as_str).is_some_and(|n| server_tools.contains(&n)) => {
                return Err(Refusal::new(
                    "tool_choice forces an Anthropic server tool, which this model's provider cannot run. Offer it \
                     without forcing it (it is then left out here), or choose a client tool.",
                    Some("tool_choice"),
                ));
            }
            Some("any") if !chat.contains_key("tools") && !server_tools.is_empty() => {
                return Err(Refusal::new(
                    "tool_choice `any` with only Anthropic server tools, which this model's provider cannot run.",
                    Some("tool_choice"),
                ));
            }
            Some(_) if !chat.contains_key("tools") => Value::Null,
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice.get("name")}}),
            _ => return Err(Refusal::new("tool_choice: unknown type", Some("tool_choice"))),
        };
        if !mapped.is_null() {
            chat.insert("tool_choice".into(), mapped);
        }
        if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) && chat.contains_key("tools") {
            chat.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok((chat, dropped))
}

/// Structured outputs (`output_config.format`, or the beta's `output_format`) as chat's
/// `response_format`: a JSON Schema the answer's text must match, strictly (as Claude holds it).
fn output_format(body: &Map<String, Value>) -> Result<Option<Value>, Refusal> {
    let (format, field) = match body.get("output_config").and_then(|c| c.get("format")).filter(|f| !f.is_null()) {
        Some(format) => (format, "output_config"),
        None => match body.get("output_format").filter(|f| !f.is_null()) {
            Some(format) => (format, "output_format"),
            None => return Ok(None),
        },
    };
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err(Refusal::of(format!("`{field}`: the format's `type` must be `json_schema`."), field));
    }
    let schema = format
        .get("schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| Refusal::of(format!("`{field}`: the format's `schema` must be a JSON Schema object."), field))?;
    Ok(Some(json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}})))
}

/// The text of text blocks, joined (system prompts, tool results).
fn text_of(blocks: &[Value], what: &str) -> Result<String, Refusal> {
    let mut text = String::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default());
            }
            other => {
                return Err(invalid(format!(
                    "{what}: blocks of type `{}` cannot be sent to this model's provider.",
                    other.unwrap_or("unknown")
                )));
            }
        }
    }
    Ok(text)
}

/// A user turn: its tool results become `tool` messages (first, as chat wants them right after
/// the assistant's calls), the rest one user message.
fn user_turn(blocks: &[Value], messages: &mut Vec<Value>) -> Result<(), Refusal> {
    let mut parts = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
                let content = match block.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => text_of(inner, "tool_result")?,
                    _ => String::new(),
                };
                let content = if block.get("is_error") == Some(&Value::Bool(true)) {
                    format!("Error: {content}")
                } else {
                    content
                };
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => {
                parts.push(json!({"type": "image_url", "image_url": {"url": source_url(block, "image")?}}))
            }
            Some("document") => parts.push(document(block)?),
            other => {
                return Err(invalid(format!(
                    "Content blocks of type `{}` cannot be sent to this model's provider.",
                    other.unwrap_or("unknown")
                )));
            }
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An image's or document's `source` as a URL (a data URL for base64).
fn source_url(block: &Value, what: &str) -> Result<String, Refusal> {
    let source = block.get("source").cloned().unwrap_or(Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str).unwrap_or("application/octet-stream");
            let data = source.get("data").and_then(Value::as_str).unwrap_or_default();
            Ok(format!("data:{media};base64,{data}"))
        }
        Some("url") => Ok(source.get("url").and_then(Value::as_str).unwrap_or_default().to_owned()),
        _ => Err(invalid(format!("{what} blocks need a `base64` or `url` source for this model's provider."))),
    }
}

/// A document block: PDF data as a chat `file` part, plain text as text.
fn document(block: &Value) -> Result<Value, Refusal> {
    let source = block.get("source").cloned().unwrap_or(Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({"type": "text", "text": source.get("data").and_then(Value::as_str).unwrap_or_default()}))
        }
        Some("base64") => {
            let name = block.get("title").and_then(Value::as_str).unwrap_or("document.pdf");
            Ok(json!({"type": "file", "file": {"filename": name, "file_data": source_url(block, "document")?}}))
        }
        _ => Err(invalid("document blocks need a `base64` or `text` source for this model's provider.")),
    }
}

/// An assistant turn: text, and tool uses as tool calls (thinking blocks are the provider's own
/// and are not sent to another).
fn assistant_turn(blocks: &[Value]) -> Result<Value, Refusal> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id"),
                "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            Some("thinking" | "redacted_thinking") => {}
            // A server tool's use and result from an earlier turn: the tool is not offered here.
            Some(server)
                if server == "server_tool_use" || server == "mcp_tool_use" || server.ends_with("_tool_result") => {}
            other => {
                return Err(invalid(format!(
                    "Assistant blocks of type `{}` cannot be sent to this model's provider.",
                    other.unwrap_or("unknown")
                )));
            }
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

fn tool(tool: &Value) -> Value {
    let mut function = json!({
        "name": tool.get("name"),
        "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    });
    if let Some(d) = tool.get("description") {
        function["description"] = d.clone();
    }
    json!({"type": "function", "function": function})
}

/// A whole chat answer as a Messages answer.
pub fn answer(chat: &Value, labels: &AnswerLabels, tokens: TokenCounts) -> Bytes {
    let parts = AnswerParts::of(chat);
    let mut content = Vec::new();
    if !parts.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": parts.reasoning, "signature": ""}));
    }
    if !parts.text.is_empty() {
        content.push(json!({"type": "text", "text": parts.text}));
    }
    for (id, name, arguments) in &parts.tool_calls {
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    let message = json!({
        "id": format!("msg_{}", labels.id),
        "type": "message",
        "role": "assistant",
        "model": labels.model,
        "content": content,
        "stop_reason": stop_reason(parts.finish_reason.as_deref()),
        "stop_sequence": null,
        "usage": usage(&tokens),
    });
    Bytes::from(serde_json::to_vec(&message).unwrap_or_default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text,
    Thinking,
    /// A tool use, by the chat tool-call index it comes from.
    Tool(u64),
}

/// Chat chunks written as Anthropic's event sequence: `message_start`, content blocks opened,
/// filled and closed in order (text, thinking, tool use with its JSON streamed as
/// `input_json_delta`), `message_delta` with the stop reason and usage, `message_stop`.
pub struct MessagesWriter {
    id: String,
    model: String,
    started: bool,
    block: Block,
    index: u64,
    stop_reason: &'static str,
}

impl MessagesWriter {
    pub fn new(labels: &AnswerLabels) -> Self {
        Self {
            id: format!("msg_{}", labels.id),
            model: labels.model.clone(),
            started: false,
            block: Block::None,
            index: 0,
            stop_reason: "end_turn",
        }
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        });
        out.push(event("message_start", &json!({"type": "message_start", "message": message})));
        out.push(event("ping", &json!({"type": "ping"})));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if self.block != Block::None {
            out.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": self.index})));
            self.index += 1;
            self.block = Block::None;
        }
    }

    fn open(&mut self, block: Block, content_block: Value, out: &mut Vec<Bytes>) {
        self.close_block(out);
        self.block = block;
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": content_block}),
        ));
    }

    fn delta(&self, delta: Value, out: &mut Vec<Bytes>) {
        out.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        ));
    }
}

impl ChatSink for MessagesWriter {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Result<(), StreamFault> {
        self.start(out);
        let delta = Delta::of(chunk);
        if let Some(reasoning) = delta.reasoning {
            if self.block != Block::Thinking {
                self.open(Block::Thinking, json!({"type": "thinking", "thinking": "", "signature": ""}), out);
            }
            self.delta(json!({"type": "thinking_delta", "thinking": reasoning}), out);
        }
        if let Some(text) = delta.text {
            if self.block != Block::Text {
                self.open(Block::Text, json!({"type": "text", "text": ""}), out);
            }
            self.delta(json!({"type": "text_delta", "text": text}), out);
        }
        for (index, id, name, arguments) in delta.tool_calls {
            if self.block != Block::Tool(index) {
                let block = json!({"type": "tool_use", "id": id.unwrap_or_default(), "name": name.unwrap_or_default(), "input": {}});
                self.open(Block::Tool(index), block, out);
            }
            if !arguments.is_empty() {
                self.delta(json!({"type": "input_json_delta", "partial_json": arguments}), out);
            }
        }
        if let Some(reason) = delta.finish_reason {
            self.stop_reason = stop_reason(Some(reason));
        }
        // Nothing is kept but the block being written: no cap to watch.
        Ok(())
    }

    fn end(&mut self, tokens: TokenCounts, out: &mut Vec<Bytes>) {
        self.start(out);
        self.close_block(out);
        out.push(event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": null}, "usage": usage(&tokens)}),
        ));
        out.push(event("message_stop", &json!({"type": "message_stop"})));
    }

    fn fail(&mut self, message: &str, _: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        out.push(error_event("api_error", message));
    }
}

#[cfg(test)]
mod tests;
