//! The OpenAI-style dialect, spoken by OpenAI and every OpenAI-compatible host (Gemini's, Groq,
//! Mistral, DeepSeek, OpenRouter, Together, xAI, self-hosted servers): paths under the base URL,
//! a bearer key, and chat or embeddings bodies passed through with only what must change
//! rewritten. Answers go back exactly as the provider sent them; only their usage is read.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{Address, BadAnswer, ClientError, Dialect, Endpoint, data_ids, error_message_in};
use crate::platform::secret::SecretBytes;
use crate::protocols::chat::{self, ChatSource};
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal};
use crate::protocols::{StreamFault, StreamTranslator};
use crate::protocols::{responses, sse};
use crate::usage::TokenCounts;
use crate::usage::estimate::OutputMeter;

/// Body fields that could point the call somewhere else (or at another account): never forwarded.
const REDIRECTING_FIELDS: [&str; 7] =
    ["api_key", "api_base", "base_url", "api_version", "organization", "project", "custom_llm_provider"];

/// The OpenAI-style dialect, with the name its host gives chat's output bound.
#[derive(Debug, Clone, Copy)]
pub struct OpenAi {
    /// `max_completion_tokens` for OpenAI itself (its reasoning models refuse `max_tokens`);
    /// `max_tokens` for the compatible hosts, some of which know no other.
    chat_bound: &'static str,
}

impl OpenAi {
    /// OpenAI's own API.
    pub const OPENAI: Self = Self { chat_bound: "max_completion_tokens" };
    /// Every other host that speaks OpenAI's API.
    pub const COMPATIBLE: Self = Self { chat_bound: "max_tokens" };
}

impl Dialect for OpenAi {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let path = match endpoint {
            // Messages reach OpenAI-style providers as chat (never natively).
            Endpoint::Call(Protocol::Chat | Protocol::Messages) => "chat/completions",
            Endpoint::Call(Protocol::Embeddings) => "embeddings",
            Endpoint::Call(Protocol::Responses) => "responses",
            Endpoint::Models => "models",
            // Not an OpenAI endpoint: counted locally instead (never called).
            Endpoint::CountTokens => "messages/count_tokens",
        };
        format!("{}/{path}", at.base_url)
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let bearer = format!("Bearer {}", key.expose_str().unwrap_or_default());
        super::secret_header(&bearer).map(|v| (http::header::AUTHORIZATION, v)).into_iter().collect()
    }

    fn native_body(&self, request: &ClientRequest, model: &str, bound: Bound) -> Result<Vec<u8>, Refusal> {
        // Only chat asks for the usage chunk; Responses streams always end with their usage.
        let stream = request.stream && request.protocol == Protocol::Chat;
        let field = match request.protocol {
            Protocol::Chat => Some(self.chat_bound),
            Protocol::Responses => Some("max_output_tokens"),
            Protocol::Embeddings | Protocol::Messages => None,
        };
        let add = field.filter(|_| bound.inject).map(|f| (f, bound.per_choice));
        super::encode(&Passthrough { body: &request.body, model, stream, add, rename: None })
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        let tokens = match protocol {
            // Only the usage is read; the rest is checked to be JSON and skipped without allocating.
            Protocol::Responses => {
                let parsed: ResponsesUsage = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
                parsed.usage.as_ref().map(responses::tokens).unwrap_or_default()
            }
            _ => {
                let parsed: UsageOnly = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
                parsed.usage.map(OpenAiUsage::tokens).unwrap_or_default()
            }
        };
        Ok((body, tokens))
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        match protocol {
            Protocol::Responses => Box::new(ResponsesPass::default()),
            _ => Box::new(Pass {
                include_usage: labels.include_usage,
                done: false,
                finish_seen: false,
                tokens: TokenCounts::default(),
            }),
        }
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        // OpenAI-style hosts cache prefixes by themselves: nothing to place.
        _: crate::protocols::TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        // A translation says `max_tokens`; this host may want it under another name.
        let said = chat.contains_key("max_tokens") || chat.contains_key("max_completion_tokens");
        let add = (bound.inject && !said).then_some((self.chat_bound, bound.per_choice));
        let rename = (self.chat_bound != "max_tokens").then_some(("max_tokens", self.chat_bound));
        super::encode(&Passthrough { body: chat, model, stream, add, rename })
    }

    fn chat_answer(&self, body: Bytes, _: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        let json: Value = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        if json.get("choices").and_then(Value::as_array).is_none() {
            return Err(BadAnswer);
        }
        let tokens = json
            .get("usage")
            .and_then(|u| serde_json::from_value::<OpenAiUsage>(u.clone()).ok())
            .map(OpenAiUsage::tokens)
            .unwrap_or_default();
        Ok((json, tokens))
    }

    fn chat_source(&self, _: &AnswerLabels) -> Box<dyn ChatSource> {
        Box::new(ChatChunks::default())
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        let mut parser = sse::Parser::default();
        parser.push(first);
        parser.next_event().is_some_and(|event| {
            matches!(event.name.as_deref(), Some("error" | "response.failed")) || stream_error(&event.data).is_some()
        })
    }

    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = json.get("error").cloned().unwrap_or(Value::Null);
        let text = |field: &str| error.get(field).and_then(Value::as_str).map(str::to_owned);
        ClientError {
            message: error_message_in(&json)
                .unwrap_or_else(|| format!("The provider refused the request (HTTP {}).", status.as_u16())),
            kind: text("type").unwrap_or_else(|| "invalid_request_error".to_owned()),
            code: text("code"),
            param: text("param"),
        }
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        error_message_in(&serde_json::from_slice(body).ok()?)
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        data_ids(body)
    }
}

/// The client's body as sent upstream, serialised straight from the parsed request (no copy of
/// the messages): the bare model name, redirecting fields left out, and for streams
/// `stream_options.include_usage` set so the usage record is right (the client only sees the
/// usage chunk if it asked); an output bound added (`add`) or a field renamed (`rename`).
struct Passthrough<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    stream: bool,
    add: Option<(&'static str, u64)>,
    rename: Option<(&'static str, &'static str)>,
}

impl serde::Serialize for Passthrough<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (key, value) in self.body {
            if key == "model" || key == "stream_options" || REDIRECTING_FIELDS.contains(&key.as_str()) {
                continue;
            }
            match self.rename {
                Some((from, to)) if key == from && !self.body.contains_key(to) => map.serialize_entry(to, value)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        if let Some((field, bound)) = self.add {
            map.serialize_entry(field, &bound)?;
        }
        match (self.stream, self.body.get("stream_options")) {
            (true, Some(Value::Object(options))) => {
                let mut options = options.clone();
                options.insert("include_usage".into(), Value::Bool(true));
                map.serialize_entry("stream_options", &options)?;
            }
            (true, _) => map.serialize_entry("stream_options", &serde_json::json!({"include_usage": true}))?,
            (false, Some(options)) => map.serialize_entry("stream_options", options)?,
            (false, None) => {}
        }
        map.end()
    }
}

#[derive(serde::Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

/// A streamed chunk as the pass-through reads it: its usage, and the output text of its choices
/// (borrowed from the event where it has no escapes).
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceText<'a>>>,
}

#[derive(serde::Deserialize)]
struct ChoiceText<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaText<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaText<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolText<'a>>>,
}

#[derive(serde::Deserialize)]
struct ToolText<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionText<'a>>,
}

#[derive(serde::Deserialize)]
struct FunctionText<'a> {
    #[serde(default, borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

impl ChoiceText<'_> {
    fn meter(&self, meter: &mut OutputMeter) {
        let Some(delta) = &self.delta else { return };
        for text in [&delta.content, &delta.reasoning_content, &delta.reasoning].into_iter().flatten() {
            meter.add(text);
        }
        for call in delta.tool_calls.iter().flatten() {
            if let Some(function) = &call.function {
                for text in [&function.name, &function.arguments].into_iter().flatten() {
                    meter.add(text);
                }
            }
        }
    }
}

/// OpenAI's `usage` object (what is needed of it).
#[derive(serde::Deserialize, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(serde::Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    fn tokens(self) -> TokenCounts {
        TokenCounts {
            prompt: self.prompt_tokens.unwrap_or(0),
            completion: self.completion_tokens.unwrap_or(0),
            cache_read: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: 0,
            reasoning: self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            ..TokenCounts::default()
        }
    }
}

/// The error an OpenAI-style stream event carries: a top-level `error` object, or a choice that
/// finished with `"error"` (OpenRouter). `None` for ordinary chunks (checked cheaply first).
fn stream_error(data: &str) -> Option<String> {
    if !data.contains("\"error") {
        return None;
    }
    let json: Value = serde_json::from_str(data).ok()?;
    if let Some(error) = json.get("error").filter(|e| !e.is_null()) {
        let message =
            error.get("message").and_then(Value::as_str).or_else(|| error.as_str()).unwrap_or("provider stream error");
        return Some(message.to_owned());
    }
    let finished_in_error = json
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| choices.iter().any(|c| c.get("finish_reason").and_then(Value::as_str) == Some("error")));
    finished_in_error.then(|| "The provider ended the stream with an error.".to_owned())
}

/// An OpenAI-style stream passed through: events forwarded as they come; the usage chunk is read
/// (and hidden when the client did not ask for it).
struct Pass {
    include_usage: bool,
    done: bool,
    finish_seen: bool,
    tokens: TokenCounts,
}

impl StreamTranslator for Pass {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>, meter: &mut OutputMeter) -> Result<(), StreamFault> {
        if event.data == "[DONE]" {
            self.done = true;
            out.push(Bytes::from_static(sse::DONE));
            return Ok(());
        }
        if let Some(message) = stream_error(&event.data) {
            return Err(StreamFault::Provider(message));
        }
        let mut forward = true;
        // The chunk passes as it came; only its usage and output text are read.
        if let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) {
            for choice in chunk.choices.iter().flatten() {
                choice.meter(meter);
            }
            if let Some(counts) = chunk.usage {
                self.tokens = counts.tokens();
                // The usage-only chunk (no choices) is shown only to a client that asked.
                forward = self.include_usage || chunk.choices.is_some_and(|c| !c.is_empty());
            }
        }
        if event.data.contains("\"finish_reason\":\"") || event.data.contains("\"finish_reason\": \"") {
            self.finish_seen = true;
        }
        if forward {
            out.push(sse::data(&event.data));
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn complete_on_close(&self) -> bool {
        self.finish_seen
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if !self.done {
            self.done = true;
            out.push(Bytes::from_static(sse::DONE));
        }
    }

    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        out.push(sse::data(&chat::error_json(message, "server_error", None, Some(class.as_str())).to_string()));
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}

/// A chat stream read as chat chunks (the source of a translation to another client protocol).
#[derive(Default)]
struct ChatChunks {
    done: bool,
    finish_seen: bool,
    tokens: TokenCounts,
}

impl ChatSource for ChatChunks {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Value>) -> Result<(), String> {
        if event.data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if let Some(message) = stream_error(&event.data) {
            return Err(message);
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
            // Not a chunk (a comment-like line some servers send): nothing to translate.
            return Ok(());
        };
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null())
            && let Ok(counts) = serde_json::from_value::<OpenAiUsage>(usage.clone())
        {
            self.tokens = counts.tokens();
        }
        if chunk
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("finish_reason"))
            .is_some_and(Value::is_string)
        {
            self.finish_seen = true;
        }
        out.push(chunk);
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn complete_on_close(&self) -> bool {
        self.finish_seen
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}

/// A Responses stream passed through: every event forwarded as it came; the usage read from the
/// terminal event (`response.completed`, `.incomplete` or `.failed`).
#[derive(Default)]
struct ResponsesPass {
    done: bool,
    error_forwarded: bool,
    tokens: TokenCounts,
}

/// A Responses delta event's text (`response.output_text.delta`, `.function_call_arguments.delta`,
/// `.reasoning_summary_text.delta`, ...).
#[derive(serde::Deserialize)]
struct DeltaEvent<'a> {
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
}

impl StreamTranslator for ResponsesPass {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>, meter: &mut OutputMeter) -> Result<(), StreamFault> {
        out.push(sse::named(event.name.as_deref(), &event.data));
        if event.name.as_deref().is_some_and(|n| n.ends_with(".delta"))
            && let Ok(DeltaEvent { delta: Some(text) }) = serde_json::from_str::<DeltaEvent>(&event.data)
        {
            meter.add(&text);
        }
        let terminal = matches!(
            event.name.as_deref(),
            Some("response.completed" | "response.incomplete" | "response.failed" | "error")
        );
        if !terminal {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        if let Some(usage) = data.get("response").and_then(|r| r.get("usage")).filter(|u| u.is_object()) {
            self.tokens = responses::tokens(usage);
        }
        self.done = true;
        match event.name.as_deref() {
            Some("response.failed" | "error") => {
                self.error_forwarded = true;
                let message = data
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .unwrap_or(&data)
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("The provider failed the response.");
                Err(StreamFault::Provider(message.to_owned()))
            }
            _ => Ok(()),
        }
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn complete_on_close(&self) -> bool {
        self.done
    }

    fn close(&mut self, _: &mut Vec<Bytes>) {}

    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        if !self.error_forwarded {
            let data = serde_json::json!({"type": "error", "code": class.as_str(), "message": message, "param": null});
            out.push(sse::named(Some("error"), &data.to_string()));
        }
    }

    fn tokens(&self) -> TokenCounts {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value, stream: bool) -> ClientRequest {
        let Value::Object(body) = body else { unreachable!("an object") };
        let output = crate::protocols::Output { asked: None, choices: 1 };
        ClientRequest { protocol: Protocol::Chat, model: "m".into(), stream, include_usage: false, output, body }
    }

    const FREE: Bound = Bound { per_choice: 4096, inject: false };

    fn sent(request: &ClientRequest, model: &str) -> Value {
        let bytes = OpenAi::OPENAI.native_body(request, model, FREE).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    #[test]
    fn a_bound_the_client_did_not_give_is_sent_when_a_budget_needs_it() {
        let body = serde_json::json!({"model": "m", "messages": []});
        let held = Bound { per_choice: 1000, inject: true };
        let to = |dialect: OpenAi, bound: Bound| -> Value {
            serde_json::from_slice(&dialect.native_body(&request(body.clone(), false), "m", bound).unwrap_or_default())
                .unwrap_or(Value::Null)
        };
        assert_eq!(to(OpenAi::OPENAI, held)["max_completion_tokens"], 1000);
        assert_eq!(to(OpenAi::COMPATIBLE, held)["max_tokens"], 1000);
        assert!(to(OpenAi::OPENAI, FREE).get("max_completion_tokens").is_none());
        // A translation's `max_tokens` reaches OpenAI under the name its reasoning models accept.
        let chat = serde_json::json!({"model": "m", "messages": [], "max_tokens": 50});
        let Value::Object(chat) = chat else { unreachable!() };
        let out: Value = serde_json::from_slice(
            &OpenAi::OPENAI.chat_body(&chat, "m", false, held, Default::default()).unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!((out.get("max_tokens"), out["max_completion_tokens"].as_u64()), (None, Some(50)));
    }

    #[test]
    fn passthrough_body_rewrites_only_what_it_must() {
        let body = serde_json::json!({
            "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "api_base": "http://evil",
            "api_key": "sk-x", "stream": true, "stream_options": {"include_usage": false, "other": 1}, "tools": []
        });
        let out = sent(&request(body.clone(), true), "gpt-4o");
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true, "other": 1}));
        assert!(out.get("api_base").is_none() && out.get("api_key").is_none());
        assert_eq!(out["messages"], body["messages"]);
        assert_eq!(out["tools"], serde_json::json!([]));
        let plain = sent(&request(body.clone(), false), "gpt-4o");
        assert_eq!(plain["stream_options"]["include_usage"], false, "untouched when not streaming");
        let mut bare = body;
        bare.as_object_mut().map(|o| o.remove("stream_options"));
        let out = sent(&request(bare, true), "m");
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true}));
    }

    #[test]
    fn stream_errors_are_recognised() {
        assert_eq!(stream_error(r#"{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"#), None);
        assert!(stream_error(r#"{"error":{"message":"boom"}}"#).is_some_and(|m| m == "boom"));
        assert!(stream_error(r#"{"choices":[{"delta":{},"finish_reason":"error"}]}"#).is_some());
        assert_eq!(
            stream_error(r#"{"choices":[{"delta":{"content":"an error occurred"}}]}"#),
            None,
            "content that mentions errors is fine"
        );
    }

    #[test]
    fn answers_keep_their_bytes_and_give_their_usage() {
        let body = Bytes::from_static(
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":3}}}"#,
        );
        let (out, tokens) = OpenAi::OPENAI.native_answer(Protocol::Chat, body.clone()).unwrap_or_default();
        assert_eq!(out, body);
        assert_eq!(
            tokens,
            TokenCounts {
                prompt: 11,
                completion: 7,
                cache_read: 4,
                cache_write: 0,
                reasoning: 3,
                ..TokenCounts::default()
            }
        );
        assert_eq!(OpenAi::OPENAI.native_answer(Protocol::Chat, Bytes::from_static(b"not json")), Err(BadAnswer));
    }

    #[test]
    fn the_usage_chunk_is_shown_only_to_clients_that_asked() {
        let usage = sse::Event {
            name: None,
            data: r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#.into(),
        };
        for (asked, shown) in [(false, 0), (true, 1)] {
            let labels = AnswerLabels {
                id: "1".into(),
                model: "m".into(),
                created: 0,
                include_usage: asked,
                max_kept_bytes: 1 << 20,
            };
            let mut pass = OpenAi::OPENAI.native_stream(Protocol::Chat, &labels);
            let mut out = Vec::new();
            assert_eq!(pass.event(&usage, &mut out, &mut OutputMeter::default()), Ok(()));
            assert_eq!(out.len(), shown);
            assert_eq!(pass.tokens().prompt, 3);
        }
    }

    #[test]
    fn paths_follow_the_base_url() {
        assert_eq!(
            OpenAi::OPENAI.url(&Address::base("https://api.openai.com/v1"), Endpoint::Call(Protocol::Chat)),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(OpenAi::OPENAI.url(&Address::base("https://h/v1"), Endpoint::Models), "https://h/v1/models");
    }
}
