//! Translation between OpenAI's chat completions and Anthropic's Messages API, both ways:
//! requests, responses, errors and streams, event by event.

use serde_json::{Map, Value, json};

use app::server::prices::Tokens;

use super::error::GatewayError;
use super::sse;

/// `max_tokens` is required by Anthropic; OpenAI clients often leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn invalid(message: impl Into<String>, param: Option<&'static str>) -> GatewayError {
    GatewayError::InvalidRequest { message: message.into(), param }
}

/// An OpenAI chat request to an Anthropic Messages request for `model`.
pub fn request(body: &Map<String, Value>, model: &str, stream: bool) -> Result<Value, GatewayError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array.", Some("messages")))?;
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("Every message needs a `role`.", Some("messages")))?;
        match role {
            "system" | "developer" => system.extend(text_blocks(message.get("content"))?),
            "user" => push(&mut out, "user", content_blocks(message.get("content"))?),
            "assistant" => {
                let mut blocks = match message.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    other => content_blocks(other)?,
                };
                for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let function = call.get("function").cloned().unwrap_or(Value::Null);
                    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = if arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(arguments)
                            .map_err(|_| invalid("Tool call arguments must be a JSON object.", Some("messages")))?
                    };
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                        "name": function.get("name").and_then(Value::as_str).unwrap_or_default(),
                        "input": input,
                    }));
                }
                if !blocks.is_empty() {
                    push(&mut out, "assistant", blocks);
                }
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("Tool messages need `tool_call_id`.", Some("messages")))?;
                let content: Vec<Value> = match message.get("content") {
                    Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
                    other => text_blocks(other)?,
                };
                push(&mut out, "user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})]);
            }
            other => return Err(invalid(format!("Unknown message role `{other}`."), Some("messages"))),
        }
    }
    let mut request = Map::new();
    request.insert("model".into(), Value::String(model.to_owned()));
    request.insert(
        "messages".into(),
        Value::Array(out.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect()),
    );
    if !system.is_empty() {
        request.insert("system".into(), Value::Array(system));
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    request.insert("max_tokens".into(), json!(max_tokens));
    for field in ["temperature", "top_p"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            request.insert(field.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            request.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            request.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut tool = json!({
                    "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = f.get("description") {
                    tool["description"] = d.clone();
                }
                tool
            })
            .collect();
        if !tools.is_empty() {
            request.insert("tools".into(), Value::Array(tools));
        }
    }
    let parallel_off = body.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let choice = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::Object(o)) => {
            o.get("function").and_then(|f| f.get("name")).map(|name| json!({"type": "tool", "name": name}))
        }
        _ => None,
    };
    let choice = match (choice, parallel_off) {
        (Some(mut c), true) if c["type"] != "none" => {
            c["disable_parallel_tool_use"] = Value::Bool(true);
            Some(c)
        }
        (None, true) if request.contains_key("tools") => {
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        }
        (c, _) => c,
    };
    if let Some(choice) = choice {
        request.insert("tool_choice".into(), choice);
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        request.insert("metadata".into(), json!({"user_id": user}));
    }
    if stream {
        request.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(request))
}

/// Consecutive messages of one role merge: Anthropic wants turns to alternate.
fn push(out: &mut Vec<(String, Vec<Value>)>, role: &str, blocks: Vec<Value>) {
    match out.last_mut() {
        Some((last, content)) if last == role => content.extend(blocks),
        _ => out.push((role.to_owned(), blocks)),
    }
}

fn text_blocks(content: Option<&Value>) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        // Anthropic refuses empty text blocks; OpenAI clients often send `""`.
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .map(|t| json!({"type": "text", "text": t}))
            .collect()),
        Some(_) => Err(invalid("Message content must be a string or an array of parts.", Some("messages"))),
    }
}

fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts.iter().filter(|p| !is_empty_text(p)).map(part).collect(),
        Some(_) => Err(invalid("Message content must be a string or an array of parts.", Some("messages"))),
    }
}

fn is_empty_text(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("text") && part.get("text").and_then(Value::as_str) == Some("")
}

fn part(part: &Value) -> Result<Value, GatewayError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()})),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`image_url` parts need a `url`.", Some("messages")))?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (meta, data) = rest
                    .split_once(',')
                    .ok_or_else(|| invalid("Malformed data URL in `image_url`.", Some("messages")))?;
                let media_type = meta
                    .strip_suffix(";base64")
                    .ok_or_else(|| invalid("Image data URLs must be base64.", Some("messages")))?;
                Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
            } else {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        }
        other => Err(invalid(
            format!("Content parts of type {} are not supported for Anthropic models.", other.unwrap_or("unknown")),
            Some("messages"),
        )),
    }
}

pub fn finish_reason(stop_reason: Option<&str>) -> Value {
    match stop_reason {
        Some("end_turn" | "stop_sequence" | "pause_turn") => json!("stop"),
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Value::Null,
    }
}

/// Anthropic's usage as token counts: every input token is a prompt token, and the cached ones
/// are also counted apart (they are billed differently).
fn tokens(usage: &Value) -> Tokens {
    let field = |f: &str| usage.get(f).and_then(Value::as_u64).unwrap_or(0);
    let (cache_read, cache_write) = (field("cache_read_input_tokens"), field("cache_creation_input_tokens"));
    Tokens {
        prompt: field("input_tokens") + cache_read + cache_write,
        completion: field("output_tokens"),
        cache_read,
        cache_write,
    }
}

/// OpenAI's `usage` object for these counts.
fn openai_usage(t: &Tokens) -> Value {
    json!({
        "prompt_tokens": t.prompt,
        "completion_tokens": t.completion,
        "total_tokens": t.prompt + t.completion,
        "prompt_tokens_details": {"cached_tokens": t.cache_read},
    })
}

/// An Anthropic response to an OpenAI chat completion, and its token counts.
pub fn response(body: &Value, model_label: &str, created: i64) -> (Value, Tokens) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in body.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": serde_json::to_string(block.get("input").unwrap_or(&json!({}))).unwrap_or_else(|_| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let usage = body.get("usage").cloned().unwrap_or(Value::Null);
    let counts = tokens(&usage);
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let openai = json!({
        "id": body.get("id").and_then(Value::as_str).map_or_else(|| "chatcmpl-anthropic".to_owned(), |id| format!("chatcmpl-{id}")),
        "object": "chat.completion",
        "created": created,
        "model": body.get("model").and_then(Value::as_str).unwrap_or(model_label),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(body.get("stop_reason").and_then(Value::as_str)), "logprobs": null}],
        "usage": openai_usage(&counts),
    });
    (openai, counts)
}

/// An Anthropic error body to OpenAI's error fields: (message, type).
pub fn error_parts(body: &Value) -> (String, String) {
    let error = body.get("error").cloned().unwrap_or(Value::Null);
    let message =
        error.get("message").and_then(Value::as_str).unwrap_or("The provider refused the request.").to_owned();
    let kind = match error.get("type").and_then(Value::as_str) {
        Some("invalid_request_error") | None => "invalid_request_error",
        Some("not_found_error") => "invalid_request_error",
        Some("request_too_large") => "invalid_request_error",
        Some(_) => "api_error",
    };
    (message, kind.to_owned())
}

/// Turns an Anthropic event stream into OpenAI chunks, one event at a time.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    /// Anthropic content-block index -> OpenAI tool-call index.
    tool_index: Vec<(u64, usize)>,
    pub tokens: Tokens,
    pub finished: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            id: "chatcmpl-anthropic".into(),
            model: model.to_owned(),
            created,
            include_usage,
            tool_index: Vec::new(),
            tokens: Tokens::default(),
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> bytes::Bytes {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        sse::data(&chunk.to_string())
    }

    /// The OpenAI chunks for one Anthropic event. An `error` event becomes `Err` with its message.
    pub fn event(&mut self, event: &sse::Event, out: &mut Vec<bytes::Bytes>) -> Result<(), String> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let kind = event.name.as_deref().or_else(|| data.get("type").and_then(Value::as_str)).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message").cloned().unwrap_or(Value::Null);
                if let Some(id) = message.get("id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                if let Some(model) = message.get("model").and_then(Value::as_str) {
                    self.model = model.to_owned();
                }
                let usage = message.get("usage").cloned().unwrap_or(Value::Null);
                self.tokens = tokens(&usage);
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = self.tool_index.len();
                    self.tool_index.push((data.get("index").and_then(Value::as_u64).unwrap_or(0), index));
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": ""}}]}),
                        Value::Null,
                    ));
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        out.push(self.chunk(json!({"content": delta.get("text")}), Value::Null));
                    }
                    Some("input_json_delta") => {
                        let block = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let index = self.tool_index.iter().find(|(b, _)| *b == block).map_or(0, |(_, i)| *i);
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json")}}]}),
                            Value::Null,
                        ));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(output) = data.get("usage").and_then(|u| u.get("output_tokens")).and_then(Value::as_u64) {
                    self.tokens.completion = output;
                }
                let reason = data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str);
                out.push(self.chunk(json!({}), finish_reason(reason)));
            }
            "message_stop" => {
                if self.include_usage {
                    let usage = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [],
                        "usage": openai_usage(&self.tokens),
                    });
                    out.push(sse::data(&usage.to_string()));
                }
                out.push(bytes::Bytes::from_static(sse::DONE));
                self.finished = true;
            }
            "error" => {
                let message = data
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("provider stream error");
                return Err(message.to_owned());
            }
            // `ping`, `content_block_stop` and future events carry nothing for OpenAI clients.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn request_translation_covers_system_images_tools_and_results() {
        let body = map(json!({
            "model": "anthropic/claude-3-5-haiku",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "parallel_tool_calls": false,
            "stop": "END",
            "temperature": 0.2,
            "user": "u-1"
        }));
        let out = request(&body, "claude-3-5-haiku", true).unwrap();
        assert_eq!(out["model"], "claude-3-5-haiku");
        assert_eq!(out["system"], json!([{"type": "text", "text": "Be brief."}]));
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["temperature"], 0.2);
        assert_eq!(out["stream"], true);
        assert_eq!(out["metadata"]["user_id"], "u-1");
        assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "lookup", "disable_parallel_tool_use": true}));
        assert_eq!(out["tools"][0]["input_schema"]["properties"]["q"]["type"], "string");
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "tool result and the next user turn merge: {messages:?}");
        assert_eq!(
            messages[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
        );
        assert_eq!(messages[0]["content"][2]["source"], json!({"type": "url", "url": "https://example.com/cat.png"}));
        assert_eq!(
            messages[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}})
        );
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(messages[2]["content"][1], json!({"type": "text", "text": "Thanks"}));
    }

    #[test]
    fn empty_text_is_left_out() {
        let body = map(json!({"messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}
        ]}));
        let out = request(&body, "m", false).unwrap();
        assert!(out.get("system").is_none());
        assert_eq!(out["messages"][0]["content"], json!([{"type": "text", "text": "hi"}]));
        assert_eq!(out["messages"][1]["content"], json!([{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]));
    }

    #[test]
    fn tool_choice_variants() {
        for (choice, expected) in
            [("auto", json!({"type": "auto"})), ("required", json!({"type": "any"})), ("none", json!({"type": "none"}))]
        {
            let body =
                map(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice, "max_tokens": 10}));
            let out = request(&body, "m", false).unwrap();
            assert_eq!(out["tool_choice"], expected);
            assert_eq!(out["max_tokens"], 10);
            assert!(out.get("stream").is_none());
        }
    }

    #[test]
    fn bad_messages_are_client_errors() {
        for body in [
            json!({}),
            json!({"messages": [{"content": "x"}]}),
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
        ] {
            assert!(matches!(request(&map(body), "m", false), Err(GatewayError::InvalidRequest { .. })));
        }
    }

    #[test]
    fn response_translation() {
        let body = json!({
            "id": "msg_1", "model": "claude-x", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
        });
        let (out, counts) = response(&body, "claude-x", 42);
        assert_eq!(counts, Tokens { prompt: 15, completion: 7, cache_read: 5, cache_write: 0 });
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["content"], "Checking.");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"q\":\"cat\"}");
        assert_eq!(out["usage"]["total_tokens"], 22);
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("end_turn")), "stop");
    }

    #[test]
    fn stream_translation_keeps_tool_arguments_in_order() {
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "m1", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let mut t = StreamTranslator::new("claude-x", 1, true);
        let mut out = Vec::new();
        for (name, data) in events {
            t.event(&sse::Event { name: Some(name.into()), data: data.to_string() }, &mut out).unwrap();
        }
        let chunks: Vec<Value> = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).trim().trim_start_matches("data: ").to_owned())
            .filter(|s| s != "[DONE]")
            .map(|s| serde_json::from_str(&s).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
        let args: String = chunks[3..5]
            .iter()
            .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
            .collect();
        assert_eq!(args, "{\"a\":1}");
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[6]["usage"]["completion_tokens"], 12);
        assert_eq!(chunks[6]["usage"]["prompt_tokens"], 9);
        assert!(t.finished);
        assert_eq!(out.last().map(|b| &b[..]), Some(sse::DONE));
    }
}
