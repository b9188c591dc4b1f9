//! The Anthropic Messages dialect: `/v1/...` under the base URL, `x-api-key` plus
//! `anthropic-version`, and OpenAI chat completions translated both ways (system prompts, images,
//! tools and tool results, stop sequences, answers, errors, and streams event by event in
//! `stream`).

mod cache;
mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::turns::OutputFormat;
use super::{Address, BadAnswer, ClientError, Dialect, Endpoint, data_ids, error_message_in};
use crate::platform::secret::SecretBytes;
use crate::protocols::StreamTranslator;
use crate::protocols::chat::ChatSource;
use crate::protocols::sse;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, TranslationOptions};
use crate::usage::TokenCounts;

/// The Messages API version spoken.
pub const VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Copy, Default)]
pub struct Anthropic;

impl Dialect for Anthropic {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let path = match endpoint {
            // Chat bodies are translated to Messages; Responses arrive here as chat.
            Endpoint::Call(Protocol::Chat | Protocol::Messages | Protocol::Responses) => "messages",
            // Never routed here (the catalog offers no embeddings for this kind); a call that got
            // here anyway meets the provider's own 404.
            Endpoint::Call(Protocol::Embeddings) => "embeddings",
            Endpoint::CountTokens => "messages/count_tokens",
            Endpoint::Models => "models",
        };
        format!("{}/v1/{path}", at.base_url)
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut headers: Vec<(http::HeaderName, http::HeaderValue)> =
            super::secret_header(key.expose_str().unwrap_or_default())
                .map(|v| (http::HeaderName::from_static("x-api-key"), v))
                .into_iter()
                .collect();
        headers.push((http::HeaderName::from_static("anthropic-version"), http::HeaderValue::from_static(VERSION)));
        headers
    }

    fn native_body(&self, request: &ClientRequest, model: &str, _: Bound) -> Result<Vec<u8>, Refusal> {
        // Messages always carry `max_tokens` (the edge requires it): nothing to add.
        match request.protocol {
            Protocol::Messages => super::encode(&WithModel { body: &request.body, model }),
            Protocol::Chat | Protocol::Embeddings | Protocol::Responses => {
                Err(Refusal::new("Anthropic models do not offer this endpoint.", Some("model")))
            }
        }
    }

    fn native_answer(&self, _: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        // Only the usage is read; the answer goes back as it came.
        let parsed: UsageOnly = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        Ok((body, parsed.usage.as_ref().map(stream::tokens).unwrap_or_default()))
    }

    fn native_stream(&self, _: Protocol, _: &AnswerLabels) -> Box<dyn StreamTranslator> {
        Box::new(stream::MessagesPass::default())
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        let mut translated = self::request(chat, model, stream, bound.per_choice)?;
        if options.auto_cache
            && let Some(request) = translated.as_object_mut()
        {
            cache::place_breakpoints(request, model);
        }
        super::encode(&translated)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        let json: Value = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        Ok(stream::response(&json, &labels.model, labels.created))
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        Box::new(stream::ChatChunks::new(&labels.model, labels.created))
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        let mut parser = sse::Parser::default();
        parser.push(first);
        parser.next_event().is_some_and(|event| event.name.as_deref() == Some("error"))
    }

    fn client_error(&self, _: StatusCode, body: &[u8]) -> ClientError {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = json.get("error").cloned().unwrap_or(Value::Null);
        let message =
            error.get("message").and_then(Value::as_str).unwrap_or("The provider refused the request.").to_owned();
        let kind = match error.get("type").and_then(Value::as_str) {
            Some("invalid_request_error" | "not_found_error" | "request_too_large") | None => "invalid_request_error",
            Some(_) => "api_error",
        };
        ClientError { message, kind: kind.to_owned(), code: None, param: None }
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        error_message_in(&serde_json::from_slice(body).ok()?)
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        data_ids(body)
    }
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Value>,
}

/// A native body as sent upstream: the client's, with the provider's model name (or, for clouds
/// that name the model in the URL, with their `anthropic_version` in its place).
pub(super) struct WithModel<'a> {
    pub body: &'a Map<String, Value>,
    pub model: &'a str,
}

/// The `anthropic_version` a cloud's body carries instead of `model` (Vertex AI's, Bedrock's).
pub(super) struct CloudBody<'a> {
    pub body: &'a Map<String, Value>,
    pub version: &'static str,
}

impl serde::Serialize for CloudBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("anthropic_version", self.version)?;
        for (key, value) in self.body {
            if key != "model" && key != "anthropic_version" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl serde::Serialize for WithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (key, value) in self.body {
            if key != "model" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// An OpenAI chat request to an Anthropic Messages request for `model`, writing at most
/// `max_tokens` (the call's bound: the client's as the edge read it, or the gateway's default).
pub(super) fn request(body: &Map<String, Value>, model: &str, stream: bool, max_tokens: u64) -> Result<Value, Refusal> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::new("`messages` must be an array.", Some("messages")))?;
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::new("Every message needs a `role`.", Some("messages")))?;
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
                            .map_err(|_| Refusal::new("Tool call arguments must be a JSON object.", Some("messages")))?
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
                    .ok_or_else(|| Refusal::new("Tool messages need `tool_call_id`.", Some("messages")))?;
                let content: Vec<Value> = match message.get("content") {
                    Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
                    other => text_blocks(other)?,
                };
                push(&mut out, "user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})]);
            }
            other => return Err(Refusal::new(format!("Unknown message role `{other}`."), Some("messages"))),
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
    match super::turns::output_format(body)? {
        OutputFormat::Text => {}
        OutputFormat::JsonSchema { schema, .. } => {
            // Claude's structured outputs: the text answer is JSON matching the schema.
            request.insert("output_config".into(), json!({"format": {"type": "json_schema", "schema": schema}}));
        }
        OutputFormat::JsonObject => {
            // Claude has no JSON mode: the answer is forced through a tool taking any object, whose
            // input comes back as the message's text (`stream::JSON_TOOL`).
            if request.contains_key("tools") {
                return Err(Refusal::of(
                    "JSON mode together with tools has no Claude form: ask for `response_format` of type \
                     `json_schema` (structured outputs), or send the tools without JSON mode.",
                    "response_format",
                ));
            }
            request.insert(
                "tools".into(),
                json!([{"name": stream::JSON_TOOL, "description": "Give your whole answer as this tool's input: one JSON object.",
                    "input_schema": {"type": "object"}}]),
            );
            request.insert("tool_choice".into(), json!({"type": "tool", "name": stream::JSON_TOOL}));
        }
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

fn text_blocks(content: Option<&Value>) -> Result<Vec<Value>, Refusal> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        // Anthropic refuses empty text blocks; OpenAI clients often send `""`.
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()).map(|t| (p, t)))
            .map(|(p, t)| {
                let mut block = json!({"type": "text", "text": t});
                cache::keep_client_breakpoint(p, &mut block);
                block
            })
            .collect()),
        Some(_) => Err(Refusal::new("Message content must be a string or an array of parts.", Some("messages"))),
    }
}

fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, Refusal> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| !is_empty_text(p))
            .map(|p| {
                let mut block = part(p)?;
                cache::keep_client_breakpoint(p, &mut block);
                Ok(block)
            })
            .collect(),
        Some(_) => Err(Refusal::new("Message content must be a string or an array of parts.", Some("messages"))),
    }
}

fn is_empty_text(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("text") && part.get("text").and_then(Value::as_str) == Some("")
}

fn part(part: &Value) -> Result<Value, Refusal> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()})),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("`image_url` parts need a `url`.", Some("messages")))?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (meta, data) = rest
                    .split_once(',')
                    .ok_or_else(|| Refusal::new("Malformed data URL in `image_url`.", Some("messages")))?;
                let media_type = meta
                    .strip_suffix(";base64")
                    .ok_or_else(|| Refusal::new("Image data URLs must be base64.", Some("messages")))?;
                Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
            } else {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        }
        other => Err(Refusal::new(
            format!("Content parts of type {} are not supported for Anthropic models.", other.unwrap_or("unknown")),
            Some("messages"),
        )),
    }
}
