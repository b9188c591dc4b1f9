//! Gemini's answers as chat completions: a whole `GenerateContentResponse`, or its stream (each
//! SSE event one response chunk, no end marker: a chunk with a `finishReason` ends it). Function
//! calls arrive whole, each carrying its thought signature into the tool call's id.

use serde_json::{Value, json};

use crate::protocols::chat::{self, ChatSource};
use crate::protocols::{AnswerLabels, sse};
use crate::usage::TokenCounts;

/// The tokens a `usageMetadata` reports, as Google bills them: the prompt (cached content
/// included, plus tool-use prompts), the candidates plus the thoughts as output.
pub(super) fn tokens(usage: &Value) -> TokenCounts {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    TokenCounts {
        prompt: count("promptTokenCount").saturating_add(count("toolUsePromptTokenCount")),
        completion: count("candidatesTokenCount").saturating_add(thoughts),
        cache_read: count("cachedContentTokenCount"),
        cache_write: 0,
        reasoning: thoughts,
        ..TokenCounts::default()
    }
}

/// The tool call id for the `index`-th call of an answer, carrying its thought signature.
fn call_id(index: usize, signature: Option<&str>) -> String {
    match signature {
        // Base64 to base64url: ids must be `[A-Za-z0-9_-]` for Anthropic's clients too.
        Some(sig) => format!("call_{index}_{}", sig.trim_end_matches('=').replace('+', "-").replace('/', "_")),
        None => format!("call_{index}"),
    }
}

/// The thought signature a tool call id carries (as Gemini sent it: standard base64, padded).
pub(super) fn signature_in(id: &str) -> Option<String> {
    let rest = id.strip_prefix("call_")?;
    let (_, sig) = rest.split_once('_')?;
    if sig.is_empty() {
        return None;
    }
    let mut standard = sig.replace('-', "+").replace('_', "/");
    while standard.len() % 4 != 0 {
        standard.push('=');
    }
    Some(standard)
}

fn finish_reason(reason: Option<&str>, called: bool) -> Value {
    match reason {
        None => Value::Null,
        Some("MAX_TOKENS") => json!("length"),
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT",
        ) => json!("content_filter"),
        Some(_) if called => json!("tool_calls"),
        Some(_) => json!("stop"),
    }
}

/// One chunk's parts: answer text, thought text, and function calls (numbered from `first`).
struct Parts {
    text: String,
    thoughts: String,
    calls: Vec<Value>,
}

fn parts(candidate: &Value, first: usize) -> Parts {
    let mut out = Parts { text: String::new(), thoughts: String::new(), calls: Vec::new() };
    let list = candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array);
    for part in list.into_iter().flatten() {
        if let Some(call) = part.get("functionCall") {
            let signature = part.get("thoughtSignature").and_then(Value::as_str);
            let arguments =
                serde_json::to_string(call.get("args").unwrap_or(&json!({}))).unwrap_or_else(|_| "{}".into());
            out.calls.push(json!({"id": call_id(first + out.calls.len(), signature), "type": "function",
                "function": {"name": call.get("name").cloned().unwrap_or_default(), "arguments": arguments}}));
        } else if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.thoughts.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
    }
    out
}

/// A whole answer as a chat completion, and its tokens. A prompt Gemini blocked has no
/// candidate: an empty answer ending `content_filter`.
pub(super) fn response(body: &Value, labels: &AnswerLabels) -> (Value, TokenCounts) {
    let counts = tokens(body.get("usageMetadata").unwrap_or(&Value::Null));
    let candidate = body.get("candidates").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
    let found = parts(&candidate, 0);
    let mut message = json!({"role": "assistant",
        "content": if found.text.is_empty() && !found.calls.is_empty() { Value::Null } else { Value::String(found.text) }});
    if !found.thoughts.is_empty() {
        message["reasoning_content"] = json!(found.thoughts);
    }
    let called = !found.calls.is_empty();
    if called {
        message["tool_calls"] = Value::Array(found.calls);
    }
    let reason = candidate.get("finishReason").and_then(Value::as_str);
    let blocked = candidate.is_null() && body.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
    let finish = if blocked { json!("content_filter") } else { finish_reason(reason.or(Some("STOP")), called) };
    let id = body
        .get("responseId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("chatcmpl-{}", labels.id), |id| format!("chatcmpl-{id}"));
    let answer = json!({
        "id": id, "object": "chat.completion", "created": labels.created,
        "model": body.get("modelVersion").and_then(Value::as_str).unwrap_or(&labels.model),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": chat::usage(&counts),
    });
    (answer, counts)
}

/// Reads a Gemini stream as chat chunks.
pub(super) struct Chunks {
    id: String,
    model: String,
    created: i64,
    started: bool,
    calls: usize,
    tokens: TokenCounts,
    finished: bool,
}

impl Chunks {
    pub(super) fn new(labels: &AnswerLabels) -> Self {
        Self {
            id: format!("chatcmpl-{}", labels.id),
            model: labels.model.clone(),
            created: labels.created,
            started: false,
            calls: 0,
            tokens: TokenCounts::default(),
            finished: false,
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
        if let Some(error) = data.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("provider stream error");
            return Err(message.to_owned());
        }
        if let Some(usage) = data.get("usageMetadata") {
            // Each chunk reports the counts so far; the last one is the answer's.
            self.tokens = tokens(usage);
        }
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        }
        let candidate = data.get("candidates").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
        let found = parts(&candidate, self.calls);
        if !found.thoughts.is_empty() {
            out.push(self.chunk(json!({"reasoning_content": found.thoughts}), Value::Null));
        }
        if !found.text.is_empty() {
            out.push(self.chunk(json!({"content": found.text}), Value::Null));
        }
        for call in found.calls {
            let mut call = call;
            call["index"] = json!(self.calls);
            self.calls += 1;
            out.push(self.chunk(json!({"tool_calls": [call]}), Value::Null));
        }
        let blocked = candidate.is_null() && data.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            out.push(self.chunk(json!({}), finish_reason(Some(reason), self.calls > 0)));
            self.finished = true;
        } else if blocked {
            out.push(self.chunk(json!({}), json!("content_filter")));
            self.finished = true;
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
