//! Anthropic's answers as OpenAI chat completions: whole answers, usage, stop reasons, and the
//! event stream turned into chunks one event at a time.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::protocols::chat::{self, ChatSource};
use crate::protocols::{StreamFault, StreamTranslator};
use crate::protocols::{messages, sse};
use crate::usage::TokenCounts;
use crate::usage::estimate::OutputMeter;

pub(super) use crate::providers::dialects::turns::JSON_TOOL;

pub(super) fn finish_reason(stop_reason: Option<&str>) -> Value {
    match stop_reason {
        Some("end_turn" | "stop_sequence" | "pause_turn") => json!("stop"),
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Value::Null,
    }
}

/// The chat finish reason, where a JSON-mode answer (a call of [`JSON_TOOL`]) is a plain stop.
fn stop(stop_reason: Option<&str>, json_answer: bool) -> Value {
    match stop_reason {
        Some("tool_use") if json_answer => json!("stop"),
        other => finish_reason(other),
    }
}

/// Anthropic's usage as token counts.
pub(super) fn tokens(usage: &Value) -> TokenCounts {
    messages::tokens(usage)
}

/// OpenAI's `usage` object for these counts.
fn openai_usage(t: &TokenCounts) -> Value {
    chat::usage(t)
}

/// An Anthropic response to an OpenAI chat completion, and its token counts.
pub(super) fn response(body: &Value, model_label: &str, created: i64) -> (Value, TokenCounts) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = false;
    for block in body.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") if block.get("name").and_then(Value::as_str) == Some(JSON_TOOL) => {
                // JSON mode's answer: the object is the text (what came before it is left out).
                text = serde_json::to_string(block.get("input").unwrap_or(&json!({}))).unwrap_or_else(|_| "{}".into());
                json_answer = true;
            }
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
        "choices": [{"index": 0, "message": message, "finish_reason": stop(body.get("stop_reason").and_then(Value::as_str), json_answer), "logprobs": null}],
        "usage": openai_usage(&counts),
    });
    (openai, counts)
}

/// Reads an Anthropic event stream as OpenAI chat chunks, one event at a time.
#[derive(Debug)]
pub struct ChatChunks {
    id: String,
    model: String,
    created: i64,
    /// Anthropic content-block index -> OpenAI tool-call index.
    tool_index: Vec<(u64, usize)>,
    /// The content block of a JSON-mode answer ([`JSON_TOOL`]): its input streams as text.
    json_block: Option<u64>,
    tokens: TokenCounts,
    finished: bool,
}

impl ChatChunks {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            id: "chatcmpl-anthropic".into(),
            model: model.to_owned(),
            created,
            tool_index: Vec::new(),
            json_block: None,
            tokens: TokenCounts::default(),
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    }
}

impl ChatSource for ChatChunks {
    /// The chat chunks for one Anthropic event. An `error` event becomes `Err` with its message.
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Value>) -> Result<(), String> {
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
                let json_answer = block.get("name").and_then(Value::as_str) == Some(JSON_TOOL);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") && json_answer {
                    self.json_block = data.get("index").and_then(Value::as_u64);
                } else if block.get("type").and_then(Value::as_str) == Some("tool_use") {
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
                    Some("input_json_delta")
                        if self.json_block.is_some()
                            && data.get("index").and_then(Value::as_u64) == self.json_block =>
                    {
                        out.push(self.chunk(json!({"content": delta.get("partial_json")}), Value::Null));
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
                if let Some(usage) = data.get("usage") {
                    if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
                        self.tokens.completion = output;
                    }
                    // The searches the server ran come with the final counts.
                    self.tokens.web_searches = self.tokens.web_searches.max(tokens(usage).web_searches);
                    // Newer versions also report the final input counts here.
                    if usage.get("input_tokens").and_then(Value::as_u64).is_some() {
                        let completion = self.tokens.completion;
                        self.tokens = TokenCounts { completion, ..tokens(usage) };
                    }
                }
                let reason = data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str);
                out.push(self.chunk(json!({}), stop(reason, self.json_block.is_some())));
            }
            "message_stop" => self.finished = true,
            "error" => {
                let message = data
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("provider stream error");
                return Err(message.to_owned());
            }
            // `ping`, `content_block_stop`, thinking and future events carry nothing for chat.
            _ => {}
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn complete_on_close(&self) -> bool {
        self.finished
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}

/// A Messages stream passed through to a Messages client: every event forwarded as it came, the
/// usage read from `message_start` and `message_delta`; an `error` event is the provider's own
/// and goes to the client as it is.
#[derive(Debug, Default)]
pub struct MessagesPass {
    tokens: TokenCounts,
    finished: bool,
    error_forwarded: bool,
}

/// A `content_block_delta` event's output text: text, thinking, or a tool's JSON.
#[derive(serde::Deserialize)]
struct BlockDelta<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaText<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaText<'a> {
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
}

impl StreamTranslator for MessagesPass {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>, meter: &mut OutputMeter) -> Result<(), StreamFault> {
        out.push(sse::named(event.name.as_deref(), &event.data));
        match event.name.as_deref() {
            Some("content_block_delta") => {
                if let Ok(BlockDelta { delta: Some(delta) }) = serde_json::from_str::<BlockDelta>(&event.data) {
                    for text in [&delta.text, &delta.thinking, &delta.partial_json].into_iter().flatten() {
                        meter.add(text);
                    }
                }
            }
            Some("message_start") => {
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                self.tokens = tokens(data.get("message").and_then(|m| m.get("usage")).unwrap_or(&Value::Null));
            }
            Some("message_delta") => {
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                if let Some(usage) = data.get("usage") {
                    let reported = tokens(usage);
                    if usage.get("input_tokens").and_then(Value::as_u64).is_some() {
                        self.tokens = reported;
                    } else {
                        self.tokens.completion = reported.completion;
                        self.tokens.web_searches = self.tokens.web_searches.max(reported.web_searches);
                    }
                }
            }
            Some("message_stop") => self.finished = true,
            Some("error") => {
                self.error_forwarded = true;
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                let message = data.get("error").and_then(|e| e.get("message")).and_then(Value::as_str);
                return Err(StreamFault::Provider(message.unwrap_or("provider stream error").to_owned()));
            }
            _ => {}
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn complete_on_close(&self) -> bool {
        self.finished
    }

    fn close(&mut self, _: &mut Vec<Bytes>) {}

    fn fail(&mut self, message: &str, _: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        if !self.error_forwarded {
            out.push(messages::error_event("api_error", message));
        }
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}
