//! Google's Gemini API (AI Studio keys), natively: `{root}/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key`. Chat completions are translated
//! both ways (system instruction, text, inline images, function declarations with JSON Schema,
//! function calls and responses, tool choice, stop sequences, JSON output, thinking); Messages and
//! Responses clients reach it through chat. Usage is read from `usageMetadata`: the prompt count
//! includes cached content, thoughts are billed as output on top of the candidates' count.
//! Embeddings stay on Google's OpenAI-compatible surface (`{root}/openai/embeddings`).
//!
//! Gemini 3 asks for each function call's `thoughtSignature` back with the call: it travels in
//! the tool call's id (`call_{index}_{signature}`, the signature base64url), which clients of
//! every protocol return unchanged.

mod answer;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::openai::OpenAi;
use super::turns::{self as read, OutputFormat, Part, ToolCall, ToolChoice, Turn};
use super::{Address, BadAnswer, ClientError, Dialect, Endpoint};
use crate::platform::secret::SecretBytes;
use crate::protocols::chat::ChatSource;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, StreamTranslator, TranslationOptions};
use crate::usage::TokenCounts;

/// The API root, the kind's default base URL.
pub const ROOT: &str = "https://generativelanguage.googleapis.com/v1beta";
/// Embeddings go to the compatibility surface under the root.
const EMBEDDINGS: OpenAi = OpenAi::COMPATIBLE;

#[derive(Debug, Clone, Copy, Default)]
pub struct Gemini;

/// The root of a stored base URL (providers saved when this kind used Google's OpenAI-compatible
/// surface have `/v1beta/openai`).
fn root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/openai").unwrap_or(base)
}

fn segment(name: &str) -> String {
    super::host::path_segment(name, b"")
}

impl Dialect for Gemini {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let root = root(at.base_url);
        let model = segment(at.model.strip_prefix("models/").unwrap_or(at.model));
        match endpoint {
            Endpoint::Call(Protocol::Embeddings) => format!("{root}/openai/embeddings"),
            Endpoint::Call(_) if at.stream => format!("{root}/models/{model}:streamGenerateContent?alt=sse"),
            Endpoint::Call(_) => format!("{root}/models/{model}:generateContent"),
            Endpoint::Models => format!("{root}/models?pageSize=1000"),
            Endpoint::CountTokens => format!("{root}/models/{model}:countTokens"),
        }
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        super::secret_header(key.expose_str().unwrap_or_default())
            .map(|v| (http::HeaderName::from_static("x-goog-api-key"), v))
            .into_iter()
            .collect()
    }

    /// Only embeddings are passed through (to the compatibility surface).
    fn native_body(&self, request: &ClientRequest, model: &str, bound: Bound) -> Result<Vec<u8>, Refusal> {
        EMBEDDINGS.native_body(request, model, bound)
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        EMBEDDINGS.native_answer(protocol, body)
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        EMBEDDINGS.native_stream(protocol, labels)
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        _model: &str,
        _stream: bool,
        bound: Bound,
        _options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        super::encode(&request(chat, bound.per_choice)?)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        let json: Value = serde_json::from_slice(&body).map_err(|_| BadAnswer)?;
        Ok(answer::response(&json, labels))
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        Box::new(answer::Chunks::new(labels))
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        let mut parser = crate::protocols::sse::Parser::default();
        parser.push(first);
        parser
            .next_event()
            .is_some_and(|event| serde_json::from_str::<Value>(&event.data).is_ok_and(|v| v.get("error").is_some()))
    }

    /// Google's `{"error": {"code", "message", "status"}}`.
    fn client_error(&self, _: StatusCode, body: &[u8]) -> ClientError {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = json.get("error").cloned().unwrap_or(Value::Null);
        let message =
            error.get("message").and_then(Value::as_str).unwrap_or("The provider refused the request.").to_owned();
        let code = error.get("status").and_then(Value::as_str).map(str::to_ascii_lowercase);
        ClientError { message, kind: "invalid_request_error".into(), code, param: None }
    }

    fn rejects_key(&self, status: StatusCode, body: &[u8]) -> bool {
        status == StatusCode::BAD_REQUEST && {
            let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let details = json["error"]["details"].as_array().cloned().unwrap_or_default();
            details.iter().any(|d| d["reason"] == "API_KEY_INVALID")
        }
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        super::error_message_in(&serde_json::from_slice(body).ok()?)
    }

    /// `{"models": [{"name": "models/gemini-2.5-flash", ...}]}`.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let mut ids: Vec<String> = json
            .get("models")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("name").and_then(Value::as_str))
            .map(|name| name.strip_prefix("models/").unwrap_or(name))
            .filter(|id| !id.is_empty() && id.len() <= super::MAX_MODEL_ID && !id.chars().any(char::is_control))
            .take(super::MAX_LISTED_MODELS)
            .map(str::to_owned)
            .collect();
        ids.sort();
        Some(ids)
    }
}

/// A user message's parts: text and images (inline `data:` URLs; Gemini fetches no URL).
fn user_parts(parts: Vec<Part<'_>>) -> Result<Vec<Value>, Refusal> {
    parts
        .into_iter()
        .map(|part| match part {
            Part::Text(text) => Ok(json!({"text": text})),
            Part::InlineImage { mime, data } => Ok(json!({"inlineData": {"mimeType": mime, "data": data}})),
            Part::ImageUrl(_) => {
                Err(Refusal::of("Gemini takes images inline: send them as data: URLs (base64).", "messages"))
            }
            Part::Other(other) => {
                Err(Refusal::of(format!("Gemini models do not take `{other}` content parts here."), "messages"))
            }
        })
        .collect()
}

/// A function call's part: its name, its arguments, and its thought signature if the id
/// carries one.
fn call_part(call: ToolCall<'_>) -> Value {
    let mut part = json!({"functionCall": {"name": call.name, "args": call.arguments}});
    if let Some(signature) = answer::signature_in(call.id) {
        part["thoughtSignature"] = json!(signature);
    }
    part
}

/// A chat completions request as a `generateContent` body, writing at most `max_tokens`.
pub(super) fn request(chat: &Map<String, Value>, max_tokens: u64) -> Result<Value, Refusal> {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Tool call id -> function name, for the results that answer them.
    let mut names: Vec<(&str, &str)> = Vec::new();
    for turn in read::turns(chat)? {
        match turn {
            Turn::System(text) => system.push(json!({"text": text})),
            Turn::User(parts) => super::push_turn(&mut contents, "user", "parts", user_parts(parts)?),
            Turn::Assistant { text, calls } => {
                let mut parts = Vec::new();
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for call in calls {
                    names.push((call.id, call.name));
                    parts.push(call_part(call));
                }
                if !parts.is_empty() {
                    super::push_turn(&mut contents, "model", "parts", parts);
                }
            }
            Turn::Tool { call_id, result } => {
                let name = names.iter().find(|(id, _)| *id == call_id).map(|(_, name)| *name).ok_or_else(|| {
                    Refusal::of("A tool result must answer a tool call made earlier in the conversation.", "messages")
                })?;
                let response = match serde_json::from_str::<Value>(&result) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({"result": result}),
                };
                super::push_turn(
                    &mut contents,
                    "user",
                    "parts",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
        }
    }
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": system});
    }
    let mut declarations = Vec::new();
    for tool in read::function_tools(chat, "Gemini models take function tools only here.")? {
        let mut declaration = json!({"name": tool.name, "description": tool.description.unwrap_or_default()});
        if let Some(parameters) = tool.parameters {
            declaration["parametersJsonSchema"] = parameters.clone();
        }
        declarations.push(declaration);
    }
    if !declarations.is_empty() {
        body["tools"] = json!([{"functionDeclarations": declarations}]);
    }
    if let Some(choice) = read::tool_choice(chat) {
        let config = match choice {
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            ToolChoice::Auto => json!({"mode": "AUTO"}),
        };
        body["toolConfig"] = json!({"functionCallingConfig": config});
    }
    body["generationConfig"] = generation_config(chat, max_tokens)?;
    Ok(body)
}

fn generation_config(chat: &Map<String, Value>, max_tokens: u64) -> Result<Value, Refusal> {
    let mut config = json!({"maxOutputTokens": max_tokens});
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = chat.get(from).filter(|v| v.is_number()) {
            config[to] = value.clone();
        }
    }
    match chat.get("stop") {
        Some(Value::String(stop)) => config["stopSequences"] = json!([stop]),
        Some(Value::Array(stops)) => config["stopSequences"] = Value::Array(stops.clone()),
        _ => {}
    }
    match read::output_format(chat)? {
        OutputFormat::Text => {}
        OutputFormat::JsonObject => config["responseMimeType"] = json!("application/json"),
        OutputFormat::JsonSchema { schema, .. } => {
            config["responseMimeType"] = json!("application/json");
            config["responseJsonSchema"] = schema.clone();
        }
    }
    // Thoughts count against `maxOutputTokens`, so the bound holds with thinking on.
    let budget = match chat.get("reasoning_effort").and_then(Value::as_str) {
        Some("minimal" | "none") => Some(0),
        Some("low") => Some(1024),
        Some("medium") => Some(8192),
        Some("high") => Some(24_576),
        _ => None,
    };
    if let Some(budget) = budget {
        let budget = budget.min(max_tokens.saturating_sub(1));
        config["thinkingConfig"] = json!({"thinkingBudget": budget, "includeThoughts": budget > 0});
    }
    Ok(config)
}
