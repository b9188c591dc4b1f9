//! The client protocols the gateway speaks, and what every dialect needs to know about a call in
//! one of them: which protocol, the request as parsed at the edge, and how the answer is labelled.
//! The wire format of streams (`sse`) is shared by all of them.
//!
//! Each protocol is one module owning its translation to and from the pivot, OpenAI chat
//! completions (`chat`): a call whose provider speaks the client's protocol natively is passed
//! through untouched (only its usage is read); any other goes client protocol -> chat -> the
//! provider's dialect, and back, streams event by event ([`chat::Composed`]).

pub mod chat;
pub mod errors;
mod headers;
pub mod messages;
pub mod responses;
pub mod sse;
pub mod tools;
pub mod translate;

pub use tools::{Dropped, ToolNames};
pub use translate::{AnswerReader, BadAnswer, Prepared, StreamFault, StreamTranslator, TranslationOptions};

use serde_json::{Map, Value};

use crate::usage::TokenCounts;

/// Which client protocol a call came in on (and so which upstream endpoint it needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI chat completions, `POST /v1/chat/completions`.
    Chat,
    /// OpenAI embeddings, `POST /v1/embeddings`.
    Embeddings,
    /// Anthropic Messages, `POST /v1/messages`.
    Messages,
    /// OpenAI Responses, `POST /v1/responses`.
    Responses,
}

impl Protocol {
    pub const ALL: [Self; 4] = [Self::Chat, Self::Embeddings, Self::Messages, Self::Responses];

    /// The route name stored in usage records (and filtered on in the request log).
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::Responses => "responses",
        }
    }

    /// The protocol a stored route name stands for (records from before routes were named say
    /// `chat.completions`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "chat" | "chat.completions" => Some(Self::Chat),
            "embeddings" => Some(Self::Embeddings),
            "messages" => Some(Self::Messages),
            "responses" => Some(Self::Responses),
            _ => None,
        }
    }

    /// Whether the protocol streams when asked to.
    pub fn streams(self) -> bool {
        match self {
            Self::Chat | Self::Messages | Self::Responses => true,
            Self::Embeddings => false,
        }
    }
}

/// Longest model name accepted (names end up in records, rollups and logs).
pub const MAX_MODEL_LEN: usize = 256;

/// Why a request cannot be served as it is: a 400 with OpenAI's `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub param: Option<&'static str>,
}

impl Refusal {
    pub fn new(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self { message: message.into(), param }
    }

    /// A refusal naming the request field `param`.
    pub fn of(message: impl Into<String>, param: &'static str) -> Self {
        Self::new(message, Some(param))
    }
}

/// A client's request, checked at the edge: the JSON body as sent, and the fields routing needs.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub protocol: Protocol,
    /// The model as the client wrote it (trimmed).
    pub model: String,
    pub stream: bool,
    /// Whether the client asked for the usage chunk of a stream (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The most output the client allows, as its protocol spells it (see [`output_asked`]).
    pub output: Output,
    pub body: Map<String, Value>,
}

/// How much output a request allows: the one reading of it, used by budgets and dialects alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// TokenCounts per choice the client asked for at most (`None`: it did not say).
    pub asked: Option<u64>,
    /// Choices the answer may hold (`n` on chat; 1 elsewhere).
    pub choices: u64,
}

impl Output {
    /// The bound per choice the call is held to: the client's, else `default`.
    pub fn per_choice(&self, default: u64) -> u64 {
        self.asked.unwrap_or(default)
    }

    /// The most output tokens the whole answer may hold (every choice), saturating.
    pub fn total(&self, default: u64) -> u64 {
        self.per_choice(default).saturating_mul(self.choices)
    }
}

/// The output bound a call's upstream body carries: the one reading of the client's
/// ([`Output`]), or the gateway's default where the client gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// TokenCounts per choice.
    pub per_choice: u64,
    /// Whether the body must carry it although the client did not: a budget holds the call to
    /// what it reserved, so the provider must not write more.
    pub inject: bool,
}

/// The largest output bound accepted (beyond any model's output window).
pub const MAX_OUTPUT_TOKENS: u64 = 100_000_000;
/// The most choices a chat request may ask for (OpenAI's own limit).
pub const MAX_CHOICES: u64 = 128;

/// A positive integer field, or nothing (absent or `null`); anything else is refused.
fn positive(body: &Map<String, Value>, field: &'static str, max: u64) -> Result<Option<u64>, Refusal> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=max).contains(&n)) => Ok(n.as_u64()),
        Some(_) => Err(Refusal::new(format!("`{field}` must be an integer from 1 to {max}."), Some(field))),
    }
}

/// The output bound a request body asks for in `protocol`: chat's `max_completion_tokens` and
/// `max_tokens` (the larger when both are given: a provider may honour either), Messages'
/// `max_tokens`, Responses' `max_output_tokens`; chat's `n` multiplies it. Bad values are refused.
pub fn output_asked(protocol: Protocol, body: &Map<String, Value>) -> Result<Output, Refusal> {
    let max = MAX_OUTPUT_TOKENS;
    let (asked, choices) = match protocol {
        Protocol::Chat => {
            let newer = positive(body, "max_completion_tokens", max)?;
            let older = positive(body, "max_tokens", max)?;
            (newer.max(older), positive(body, "n", MAX_CHOICES)?.unwrap_or(1))
        }
        Protocol::Messages => (positive(body, "max_tokens", max)?, 1),
        Protocol::Responses => (positive(body, "max_output_tokens", max)?, 1),
        Protocol::Embeddings => (Some(0), 1),
    };
    Ok(Output { asked, choices })
}

impl ClientRequest {
    /// Checks a parsed body: a JSON object with a `model` of plain text and a boolean `stream`.
    pub fn parse(protocol: Protocol, value: Value) -> Result<Self, Refusal> {
        let Value::Object(body) = value else {
            return Err(Refusal::new("The request body must be a JSON object.", None));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if m.len() > MAX_MODEL_LEN || m.chars().any(char::is_control) => {
                return Err(Refusal::new(
                    format!("`model` must be at most {MAX_MODEL_LEN} characters of plain text."),
                    Some("model"),
                ));
            }
            Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Refusal::new("You must provide a model parameter.", Some("model")));
            }
            Some(_) => return Err(Refusal::new("`model` must be a string.", Some("model"))),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Refusal::new("`stream` must be true or false.", Some("stream"))),
        };
        let include_usage = body.get("stream_options").and_then(|o| o.get("include_usage")) == Some(&Value::Bool(true));
        match protocol {
            Protocol::Chat | Protocol::Embeddings => {}
            Protocol::Messages => messages::check(&body)?,
            Protocol::Responses => responses::check(&body)?,
        }
        let output = output_asked(protocol, &body)?;
        Ok(Self { protocol, model, stream: stream && protocol.streams(), include_usage, output, body })
    }
}

/// How a translated answer is labelled for the client.
#[derive(Debug, Clone)]
pub struct AnswerLabels {
    /// The request's id without its prefix (answers built by Perpetuo are named after it).
    pub id: String,
    /// The model as the client asked for it.
    pub model: String,
    /// Unix seconds of the request.
    pub created: i64,
    /// Whether the client asked for the usage chunk of a stream.
    pub include_usage: bool,
    /// The most a translated stream may keep to write its closing events (the answer cap).
    pub max_kept_bytes: usize,
}

/// The chat request a call in `protocol` becomes for a provider that does not speak it.
pub fn to_chat(request: &ClientRequest) -> Result<(std::borrow::Cow<'_, Map<String, Value>>, Dropped), Refusal> {
    use std::borrow::Cow;
    match request.protocol {
        Protocol::Chat => Ok((Cow::Borrowed(&request.body), Dropped::default())),
        Protocol::Messages => messages::to_chat_dropping(&request.body).map(|(c, d)| (Cow::Owned(c), d)),
        Protocol::Responses => responses::to_chat_dropping(&request.body).map(|(c, d)| (Cow::Owned(c), d)),
        Protocol::Embeddings => Err(Refusal::new("This model's provider does not offer embeddings.", Some("model"))),
    }
}

/// The flat names a translated request's namespaced tools were given (see `tools`).
pub fn tool_names(request: &ClientRequest) -> std::sync::Arc<ToolNames> {
    match request.protocol {
        Protocol::Responses => ToolNames::of_responses(&request.body),
        Protocol::Chat | Protocol::Messages | Protocol::Embeddings => std::sync::Arc::default(),
    }
}

/// A whole chat answer in the client's protocol, tool calls under the names it offered.
pub fn answer_from_chat(
    protocol: Protocol,
    chat: &Value,
    labels: &AnswerLabels,
    tokens: TokenCounts,
    names: &ToolNames,
) -> bytes::Bytes {
    match protocol {
        Protocol::Chat | Protocol::Embeddings => chat::answer(chat),
        Protocol::Messages => messages::answer(chat, labels, tokens),
        Protocol::Responses => responses::answer(chat, labels, tokens, names),
    }
}

/// The writer of chat chunks in the client's protocol, tool calls under the names it offered.
pub fn chat_sink(
    protocol: Protocol,
    labels: &AnswerLabels,
    names: std::sync::Arc<ToolNames>,
) -> Box<dyn chat::ChatSink> {
    match protocol {
        Protocol::Chat | Protocol::Embeddings => Box::new(chat::ChatWriter::new(labels)),
        Protocol::Messages => Box::new(messages::MessagesWriter::new(labels)),
        Protocol::Responses => Box::new(responses::ResponsesWriter::new(labels, names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_checked_at_the_edge() {
        let ok = ClientRequest::parse(
            Protocol::Chat,
            json!({"model": " gpt-4o ", "stream": true, "stream_options": {"include_usage": true}}),
        );
        let ok = ok.unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!((ok.model.as_str(), ok.stream, ok.include_usage), ("gpt-4o", true, true));
        let embeddings = ClientRequest::parse(Protocol::Embeddings, json!({"model": "m", "stream": true}));
        assert_eq!(embeddings.map(|r| r.stream).ok(), Some(false), "embeddings never stream");
        for (body, param) in [
            (json!([]), None),
            (json!({}), Some("model")),
            (json!({"model": " "}), Some("model")),
            (json!({"model": 5}), Some("model")),
            (json!({"model": "a\u{7}b"}), Some("model")),
            (json!({"model": "m".repeat(MAX_MODEL_LEN + 1)}), Some("model")),
            (json!({"model": "m", "stream": "yes"}), Some("stream")),
            (json!({"model": "m", "max_tokens": -5}), Some("max_tokens")),
            (json!({"model": "m", "max_tokens": 1.5}), Some("max_tokens")),
            (json!({"model": "m", "max_tokens": "100"}), Some("max_tokens")),
            (json!({"model": "m", "max_tokens": 0}), Some("max_tokens")),
            (json!({"model": "m", "max_completion_tokens": true}), Some("max_completion_tokens")),
            (json!({"model": "m", "n": 129}), Some("n")),
            (json!({"model": "m", "n": 0}), Some("n")),
        ] {
            assert_eq!(ClientRequest::parse(Protocol::Chat, body).err().map(|r| r.param), Some(param));
        }
    }

    #[test]
    fn one_reading_of_the_output_bound() {
        let output = |body: Value| ClientRequest::parse(Protocol::Chat, body).map(|r| r.output);
        let one = Output { asked: Some(1), choices: 1 };
        assert_eq!(output(json!({"model": "m", "max_completion_tokens": null, "max_tokens": 1})), Ok(one));
        assert_eq!(
            output(json!({"model": "m", "max_completion_tokens": 9, "max_tokens": 7})).map(|o| o.asked),
            Ok(Some(9))
        );
        assert_eq!(output(json!({"model": "m", "max_tokens": 7, "n": 3})).map(|o| o.total(100)), Ok(21));
        assert_eq!(output(json!({"model": "m", "n": 128})).map(|o| o.total(4096)), Ok(128 * 4096));
        assert_eq!(output(json!({"model": "m"})).map(|o| o.per_choice(100)), Ok(100), "the default");
        let huge = Output { asked: Some(u64::MAX), choices: MAX_CHOICES };
        assert_eq!(huge.total(0), u64::MAX, "saturates");
        let responses =
            ClientRequest::parse(Protocol::Responses, json!({"model": "m", "input": "x", "max_output_tokens": 5}));
        assert_eq!(responses.map(|r| r.output.asked), Ok(Some(5)));
    }
}
