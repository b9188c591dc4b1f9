//! OpenAI chat completions: the client protocol of `/v1/chat/completions`, and the pivot every
//! translation goes through. A provider that does not speak the client's protocol is reached as
//! client protocol -> chat -> provider dialect; its stream comes back as provider events -> chat
//! chunks ([`ChatSource`], the dialect's side) -> client events ([`ChatSink`], the protocol's
//! side), joined by [`Composed`], one event at a time.

use bytes::Bytes;
use serde_json::{Value, json};

use super::AnswerLabels;
use super::sse;
use crate::protocols::{StreamFault, StreamTranslator};
use crate::usage::TokenCounts;
use crate::usage::estimate::OutputMeter;

/// An upstream stream read as chat completion chunks (the dialect's half of a translation).
pub trait ChatSource: Send {
    /// The chat chunks for one upstream event; `Err` with the provider's message when the event
    /// reports an error.
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Value>) -> Result<(), String>;
    /// Whether the upstream's end marker has arrived.
    fn finished(&self) -> bool;
    /// Whether a connection that ends now ended cleanly.
    fn complete_on_close(&self) -> bool;
    /// The usage reported so far.
    fn tokens(&self) -> TokenCounts;
}

/// Chat completion chunks written in a client's protocol (the protocol's half of a translation).
pub trait ChatSink: Send {
    /// The client's bytes for one chat chunk; `Err` when what the sink keeps for its closing
    /// events would pass the answer cap.
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Result<(), StreamFault>;
    /// The stream ended cleanly, with these totals: the client's closing events.
    fn end(&mut self, tokens: TokenCounts, out: &mut Vec<Bytes>);
    /// The stream failed: the client's error event.
    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>);
}

/// A translated stream: the provider's events as chat chunks, written in the client's protocol.
pub struct Composed {
    source: Box<dyn ChatSource>,
    sink: Box<dyn ChatSink>,
    ended: bool,
    chunks: Vec<Value>,
}

impl Composed {
    pub fn new(source: Box<dyn ChatSource>, sink: Box<dyn ChatSink>) -> Self {
        Self { source, sink, ended: false, chunks: Vec::new() }
    }
}

impl StreamTranslator for Composed {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>, meter: &mut OutputMeter) -> Result<(), StreamFault> {
        let result = self.source.event(event, &mut self.chunks);
        for chunk in self.chunks.drain(..) {
            let delta = Delta::of(&chunk);
            for text in [delta.text, delta.reasoning].into_iter().flatten() {
                meter.add(text);
            }
            for (_, _, name, arguments) in &delta.tool_calls {
                meter.add(name.unwrap_or_default());
                meter.add(arguments);
            }
            self.sink.chunk(&chunk, out)?;
        }
        result.map_err(StreamFault::Provider)?;
        if self.source.finished() && !self.ended {
            self.ended = true;
            self.sink.end(self.source.tokens(), out);
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.ended
    }

    fn complete_on_close(&self) -> bool {
        self.ended || self.source.complete_on_close()
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if !self.ended {
            self.ended = true;
            self.sink.end(self.source.tokens(), out);
        }
    }

    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        self.sink.fail(message, class, out);
    }

    fn tokens(&self) -> TokenCounts {
        self.source.tokens()
    }
}

/// OpenAI's error JSON: the one builder for every error in its shape (answers, a stream's error
/// events, the per-IP 429 on `/v1` and `/api`).
pub fn error_json(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// OpenAI's `usage` object for these counts.
pub fn usage(t: &TokenCounts) -> Value {
    json!({
        "prompt_tokens": t.prompt,
        "completion_tokens": t.completion,
        "total_tokens": t.prompt + t.completion,
        "prompt_tokens_details": {"cached_tokens": t.cache_read},
        "completion_tokens_details": {"reasoning_tokens": t.reasoning},
    })
}

/// Chat chunks written for a chat client (a provider of another dialect on the chat route):
/// each chunk as it is, the usage chunk if the client asked for it, and `[DONE]`.
pub struct ChatWriter {
    include_usage: bool,
    id: Value,
    model: Value,
    created: Value,
}

impl ChatWriter {
    pub fn new(labels: &AnswerLabels) -> Self {
        Self {
            include_usage: labels.include_usage,
            id: Value::String(format!("chatcmpl-{}", labels.id)),
            model: Value::String(labels.model.clone()),
            created: json!(labels.created),
        }
    }
}

impl ChatSink for ChatWriter {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Result<(), StreamFault> {
        for (field, slot) in [("id", &mut self.id), ("model", &mut self.model), ("created", &mut self.created)] {
            if let Some(v) = chunk.get(field) {
                *slot = v.clone();
            }
        }
        // The usage-only chunk is written at the end, and only if the client asked.
        if chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty) && chunk.get("usage").is_some() {
            return Ok(());
        }
        out.push(sse::data(&chunk.to_string()));
        Ok(())
    }

    fn end(&mut self, tokens: TokenCounts, out: &mut Vec<Bytes>) {
        if self.include_usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(&tokens),
            });
            out.push(sse::data(&chunk.to_string()));
        }
        out.push(Bytes::from_static(sse::DONE));
    }

    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        out.push(sse::data(&error_json(message, "server_error", None, Some(class.as_str())).to_string()));
    }
}

/// A whole chat answer for a chat client: the pivot is the protocol.
pub fn answer(chat: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(chat).unwrap_or_default())
}

/// What a chat answer says, read once for the other protocols' answers: text, reasoning text,
/// tool calls, and why it finished.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AnswerParts {
    pub text: String,
    pub reasoning: String,
    /// `(id, name, arguments as JSON text)`.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
}

impl AnswerParts {
    pub fn of(chat: &Value) -> Self {
        let choice = chat.get("choices").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
        let message = choice.get("message").cloned().unwrap_or(Value::Null);
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let tool_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|call| {
                let function = call.get("function").cloned().unwrap_or(Value::Null);
                (text(call.get("id")), text(function.get("name")), text(function.get("arguments")))
            })
            .collect();
        Self {
            text: text(message.get("content")),
            reasoning: text(message.get("reasoning_content").or_else(|| message.get("reasoning"))),
            tool_calls,
            finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

/// One streamed chat chunk, read once for the other protocols' sinks.
#[derive(Debug, Default, PartialEq)]
pub struct Delta<'a> {
    pub text: Option<&'a str>,
    pub reasoning: Option<&'a str>,
    /// `(index, id, name, argument text)` of each tool-call fragment.
    pub tool_calls: Vec<(u64, Option<&'a str>, Option<&'a str>, &'a str)>,
    pub finish_reason: Option<&'a str>,
}

impl<'a> Delta<'a> {
    pub fn of(chunk: &'a Value) -> Self {
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Self::default();
        };
        let delta = choice.get("delta");
        let field = |name: &str| delta.and_then(|d| d.get(name)).and_then(Value::as_str).filter(|s| !s.is_empty());
        let tool_calls = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|call| {
                let function = call.get("function");
                (
                    call.get("index").and_then(Value::as_u64).unwrap_or(0),
                    call.get("id").and_then(Value::as_str),
                    function.and_then(|f| f.get("name")).and_then(Value::as_str),
                    function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default(),
                )
            })
            .collect();
        Self {
            text: field("content"),
            reasoning: field("reasoning_content").or_else(|| field("reasoning")),
            tool_calls,
            finish_reason: choice.get("finish_reason").and_then(Value::as_str),
        }
    }
}
