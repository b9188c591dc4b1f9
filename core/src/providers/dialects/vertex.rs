//! Claude on Google Vertex AI: Anthropic's Messages API behind Vertex's `rawPredict`. Calls go to
//! `{host}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//! (`:streamRawPredict` when streamed), the model named in the path and not in the body, whose
//! `anthropic_version` is `vertex-2023-10-16`. The host is `aiplatform.googleapis.com` for the
//! `global` region and `{region}-aiplatform.googleapis.com` for the others, unless the provider
//! names its own (a Private Service Connect endpoint, a test). Authentication is a bearer token
//! minted from the provider's service account key (`credentials`), so no static header is sent.
//! Answers, streams, usage and errors are Anthropic's, so everything else is that dialect's.
//! `VertexGemini` is the Google publisher's Gemini the same way, on Gemini's dialect.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::anthropic::{Anthropic, CloudBody};
use super::{Address, BadAnswer, ClientError, Dialect, Endpoint};
use crate::platform::secret::SecretBytes;
use crate::protocols::chat::ChatSource;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, StreamTranslator, TranslationOptions};
use crate::providers::Region;
use crate::usage::TokenCounts;

/// The version Vertex AI's Claude bodies carry.
pub const VERSION: &str = "vertex-2023-10-16";
/// The global host, the kind's default base URL.
pub const GLOBAL_HOST: &str = "https://aiplatform.googleapis.com";

#[derive(Debug, Clone, Copy, Default)]
pub struct Vertex;

/// A model id as one path segment (`claude-sonnet-4-5@20250929` keeps its `@`).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The body Vertex gets: the Messages body without `model`, with Vertex's version.
fn cloud_body(body: &Map<String, Value>) -> Result<Vec<u8>, Refusal> {
    super::encode(&CloudBody { body, version: VERSION })
}

/// The host and the `.../publishers/{publisher}/models` URL of a provider's project and region.
fn publisher(at: &Address<'_>, publisher: &str) -> (String, String) {
    let region = at.region.unwrap_or(Region::DEFAULT);
    let base = at.base_url.trim_end_matches('/');
    let host = if base == GLOBAL_HOST && region != "global" {
        format!("https://{region}-aiplatform.googleapis.com")
    } else {
        base.to_owned()
    };
    let project = segment(at.project.unwrap_or_default());
    let models = format!("{host}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models");
    (host, models)
}

impl Dialect for Vertex {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let (host, models) = publisher(at, "anthropic");
        match endpoint {
            Endpoint::Call(_) => {
                let method = if at.stream { "streamRawPredict" } else { "rawPredict" };
                format!("{models}/{}:{method}", segment(at.model))
            }
            Endpoint::CountTokens => format!("{models}/count-tokens:rawPredict"),
            // The publisher's model catalogue (the "Test" button: the token works, the API answers).
            Endpoint::Models => format!("{host}/v1beta1/publishers/anthropic/models"),
        }
    }

    fn auth_headers(&self, _: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        Vec::new()
    }

    fn native_body(&self, request: &ClientRequest, model: &str, bound: Bound) -> Result<Vec<u8>, Refusal> {
        // Anthropic's checks, then the cloud's shape.
        Anthropic.native_body(request, model, bound)?;
        cloud_body(&request.body)
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        Anthropic.native_answer(protocol, body)
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        Anthropic.native_stream(protocol, labels)
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        let body = Anthropic.chat_body(chat, model, stream, bound, options)?;
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))?;
        cloud_body(&body)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        Anthropic.chat_answer(body, labels)
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        Anthropic.chat_source(labels)
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        Anthropic.starts_with_error(first)
    }

    /// Anthropic's errors, or Google's (`{"error": {"code", "message", "status"}}`) from Vertex
    /// itself: both carry `error.message`.
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        Anthropic.client_error(status, body)
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        Anthropic.error_message(body)
    }

    /// `{"publisherModels": [{"name": "publishers/anthropic/models/claude-…"}]}`.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let mut ids: Vec<String> = json
            .get("publisherModels")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("name").and_then(Value::as_str))
            .filter_map(|name| name.rsplit('/').next())
            .filter(|id| !id.is_empty() && id.len() <= super::MAX_MODEL_ID && !id.chars().any(char::is_control))
            .take(super::MAX_LISTED_MODELS)
            .map(str::to_owned)
            .collect();
        ids.sort();
        Some(ids)
    }
}

/// Gemini on Vertex AI: Gemini's own API (`super::gemini`) under
/// `.../publishers/google/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`),
/// with the service account's tokens. No embeddings here (Vertex's are another API).
#[derive(Debug, Clone, Copy, Default)]
pub struct VertexGemini;

const GEMINI: super::gemini::Gemini = super::gemini::Gemini;

impl Dialect for VertexGemini {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let (host, models) = publisher(at, "google");
        let model = segment(at.model);
        match endpoint {
            Endpoint::Call(_) if at.stream => format!("{models}/{model}:streamGenerateContent?alt=sse"),
            Endpoint::Call(_) => format!("{models}/{model}:generateContent"),
            Endpoint::CountTokens => format!("{models}/{model}:countTokens"),
            Endpoint::Models => format!("{host}/v1beta1/publishers/google/models"),
        }
    }

    fn auth_headers(&self, _: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        Vec::new()
    }

    fn native_body(&self, _: &ClientRequest, _: &str, _: Bound) -> Result<Vec<u8>, Refusal> {
        // The catalog gives this kind no native protocol: every call is translated.
        Err(Refusal::new("Gemini on Vertex AI does not offer this endpoint here.", Some("model")))
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        GEMINI.native_answer(protocol, body)
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        GEMINI.native_stream(protocol, labels)
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        GEMINI.chat_body(chat, model, stream, bound, options)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        GEMINI.chat_answer(body, labels)
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        GEMINI.chat_source(labels)
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        GEMINI.starts_with_error(first)
    }

    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        GEMINI.client_error(status, body)
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        GEMINI.error_message(body)
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        Vertex.model_list(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_and_project_make_the_url() {
        let at =
            Address { model: "claude-sonnet-4-5@20250929", project: Some("acme-prod"), ..Address::base(GLOBAL_HOST) };
        assert_eq!(
            Vertex.url(&at, Endpoint::Call(Protocol::Messages)),
            "https://aiplatform.googleapis.com/v1/projects/acme-prod/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        let at = Address { region: Some("us-east5"), ..at }.streamed(true);
        assert_eq!(
            Vertex.url(&at, Endpoint::Call(Protocol::Chat)),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        let private = Address { base_url: "http://127.0.0.1:9000", ..at };
        assert!(
            Vertex
                .url(&private, Endpoint::Call(Protocol::Chat))
                .starts_with("http://127.0.0.1:9000/v1/projects/acme-prod/locations/us-east5/")
        );
    }

    #[test]
    fn the_body_names_no_model_and_carries_vertex_version() {
        let chat: Map<String, Value> = serde_json::from_value(serde_json::json!({"model": "x",
            "messages": [{"role": "user", "content": "Hi"}], "stream": true}))
        .unwrap_or_default();
        let bound = Bound { per_choice: 100, inject: true };
        let body = Vertex.chat_body(&chat, "claude-sonnet-4-5@20250929", true, bound, TranslationOptions::default());
        let body: Value = serde_json::from_slice(&body.unwrap_or_default()).unwrap_or_default();
        assert_eq!(body["anthropic_version"], VERSION);
        assert!(body.get("model").is_none(), "{body}");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 100);
    }

    #[test]
    fn gemini_on_vertex_is_the_google_publisher() {
        let at = Address {
            model: "gemini-2.5-flash",
            project: Some("p"),
            region: Some("europe-west4"),
            ..Address::base(GLOBAL_HOST)
        };
        assert_eq!(
            VertexGemini.url(&at.streamed(true), Endpoint::Call(Protocol::Chat)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn the_model_catalogue_is_read() {
        let body = br#"{"publisherModels": [{"name": "publishers/anthropic/models/claude-sonnet-4-5"}, {"name": "publishers/anthropic/models/claude-haiku-4-5"}]}"#;
        assert_eq!(Vertex.model_list(body), Some(vec!["claude-haiku-4-5".into(), "claude-sonnet-4-5".into()]));
    }
}
