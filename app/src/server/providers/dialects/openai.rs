//! The OpenAI-style dialect, spoken by OpenAI and every OpenAI-compatible host (Gemini's, Groq,
//! Mistral, DeepSeek, OpenRouter, Together, xAI, self-hosted servers): paths under the base URL,
//! a bearer key, and chat or embeddings bodies passed through with only what must change
//! rewritten. Answers go back exactly as the provider sent them; only their usage is read.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{BadAnswer, ClientError, Dialect, Endpoint, StreamTranslator, data_ids, error_message_in};
use crate::server::platform::secret::SecretBytes;
use crate::server::protocols::chat::{self, ChatSource};
use crate::server::protocols::{AnswerLabels, ClientRequest, Protocol, Refusal};
use crate::server::protocols::{responses, sse};
use crate::server::usage::Tokens;

/// Body fields that could point the call somewhere else (or at another account): never forwarded.
const REDIRECTING_FIELDS: [&str; 7] =
    ["api_key", "api_base", "base_url", "api_version", "organization", "project", "custom_llm_provider"];

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAi;

impl Dialect for OpenAi {
    fn url(&self, base_url: &str, endpoint: Endpoint) -> String {
        let path = match endpoint {
            // Messages reach OpenAI-style providers as chat (never natively).
            Endpoint::Call(Protocol::Chat | Protocol::Messages) => "chat/completions",
            Endpoint::Call(Protocol::Embeddings) => "embeddings",
            Endpoint::Call(Protocol::Responses) => "responses",
            Endpoint::Models => "models",
            // Not an OpenAI endpoint: counted locally instead (never called).
            Endpoint::CountTokens => "messages/count_tokens",
        };
        format!("{base_url}/{path}")
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let bearer = format!("Bearer {}", key.expose_str().unwrap_or_default());
        super::secret_header(&bearer).map(|v| (http::header::AUTHORIZATION, v)).into_iter().collect()
    }

    fn native_body(&self, request: &ClientRequest, model: &str) -> Result<Vec<u8>, Refusal> {
        // Only chat asks for the usage chunk; Responses streams always end with their usage.
        let stream = request.stream && request.protocol == Protocol::Chat;
        serde_json::to_vec(&Passthrough { body: &request.body, model, stream })
            .map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, Tokens), BadAnswer> {
        let tokens = match protocol {
            // Only the usage is read; the rest is checked to be JSON and skipped without allocating.
            Protocol::Responses => {
                let parsed: ResponsesUsage = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
                parsed.usage.as_ref().map(responses::tokens).unwrap_or_default()
            }
            _ => {
                let parsed: UsageOnly = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
                parsed.usage.map(TokenCounts::tokens).unwrap_or_default()
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
                tokens: Tokens::default(),
            }),
        }
    }

    fn chat_body(&self, chat: &Map<String, Value>, model: &str, stream: bool) -> Result<Vec<u8>, Refusal> {
        serde_json::to_vec(&Passthrough { body: chat, model, stream })
            .map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))
    }

    fn chat_answer(&self, body: Bytes, _: &AnswerLabels) -> Result<(Value, Tokens), BadAnswer> {
        let json: Value = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        if json.get("choices").and_then(Value::as_array).is_none() {
            return Err(BadAnswer);
        }
        let tokens = json
            .get("usage")
            .and_then(|u| serde_json::from_value::<TokenCounts>(u.clone()).ok())
            .map(TokenCounts::tokens)
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
/// usage chunk if it asked).
struct Passthrough<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    stream: bool,
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
            map.serialize_entry(key, value)?;
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
    usage: Option<TokenCounts>,
}

/// A streamed chunk that mentions usage: the counts, and whether it also carries choices.
#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    usage: Option<TokenCounts>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// OpenAI's `usage` object (what is needed of it).
#[derive(serde::Deserialize, Default)]
struct TokenCounts {
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

impl TokenCounts {
    fn tokens(self) -> Tokens {
        Tokens {
            prompt: self.prompt_tokens.unwrap_or(0),
            completion: self.completion_tokens.unwrap_or(0),
            cache_read: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: 0,
            reasoning: self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
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
    tokens: Tokens,
}

impl StreamTranslator for Pass {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>) -> Result<(), String> {
        if event.data == "[DONE]" {
            self.done = true;
            out.push(Bytes::from_static(sse::DONE));
            return Ok(());
        }
        if let Some(message) = stream_error(&event.data) {
            return Err(message);
        }
        let mut forward = true;
        // Only chunks that mention usage are parsed; the rest pass as they are.
        let chunk =
            if event.data.contains("\"usage\"") { serde_json::from_str::<UsageChunk>(&event.data).ok() } else { None };
        if let Some(UsageChunk { usage: Some(counts), choices }) = chunk {
            self.tokens = counts.tokens();
            // The usage-only chunk (no choices) is shown only to a client that asked.
            forward = self.include_usage || choices.is_some_and(|c| !c.is_empty());
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

    fn fail(&mut self, message: &str, class: &str, out: &mut Vec<Bytes>) {
        out.push(sse::data(&chat::error_json(message, "server_error", Some(class)).to_string()));
    }

    fn tokens(&self) -> Tokens {
        self.tokens
    }
}

/// A chat stream read as chat chunks (the source of a translation to another client protocol).
#[derive(Default)]
struct ChatChunks {
    done: bool,
    finish_seen: bool,
    tokens: Tokens,
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
            && let Ok(counts) = serde_json::from_value::<TokenCounts>(usage.clone())
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

    fn tokens(&self) -> Tokens {
        self.tokens
    }
}

/// A Responses stream passed through: every event forwarded as it came; the usage read from the
/// terminal event (`response.completed`, `.incomplete` or `.failed`).
#[derive(Default)]
struct ResponsesPass {
    done: bool,
    error_forwarded: bool,
    tokens: Tokens,
}

impl StreamTranslator for ResponsesPass {
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>) -> Result<(), String> {
        out.push(sse::named(event.name.as_deref(), &event.data));
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
                Err(message.to_owned())
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

    fn fail(&mut self, message: &str, class: &str, out: &mut Vec<Bytes>) {
        if !self.error_forwarded {
            let data = serde_json::json!({"type": "error", "code": class, "message": message, "param": null});
            out.push(sse::named(Some("error"), &data.to_string()));
        }
    }

    fn tokens(&self) -> Tokens {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value, stream: bool) -> ClientRequest {
        let Value::Object(body) = body else { unreachable!("an object") };
        ClientRequest { protocol: Protocol::Chat, model: "m".into(), stream, include_usage: false, body }
    }

    fn sent(request: &ClientRequest, model: &str) -> Value {
        let bytes = OpenAi.native_body(request, model).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
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
        let (out, tokens) = OpenAi.native_answer(Protocol::Chat, body.clone()).unwrap_or_default();
        assert_eq!(out, body);
        assert_eq!(tokens, Tokens { prompt: 11, completion: 7, cache_read: 4, cache_write: 0, reasoning: 3 });
        assert_eq!(OpenAi.native_answer(Protocol::Chat, Bytes::from_static(b"not json")), Err(BadAnswer));
    }

    #[test]
    fn the_usage_chunk_is_shown_only_to_clients_that_asked() {
        let usage = sse::Event {
            name: None,
            data: r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#.into(),
        };
        for (asked, shown) in [(false, 0), (true, 1)] {
            let labels = AnswerLabels { id: "1".into(), model: "m".into(), created: 0, include_usage: asked };
            let mut pass = OpenAi.native_stream(Protocol::Chat, &labels);
            let mut out = Vec::new();
            assert_eq!(pass.event(&usage, &mut out), Ok(()));
            assert_eq!(out.len(), shown);
            assert_eq!(pass.tokens().prompt, 3);
        }
    }

    #[test]
    fn paths_follow_the_base_url() {
        assert_eq!(
            OpenAi.url("https://api.openai.com/v1", Endpoint::Call(Protocol::Chat)),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(OpenAi.url("https://h/v1", Endpoint::Models), "https://h/v1/models");
    }
}
