//! Claude on Google Vertex AI: Anthropic's Messages API behind Vertex's `rawPredict`. Calls go to
//! `{host}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//! (`:streamRawPredict` when streamed), the model named in the path and not in the body, whose
//! `anthropic_version` is `vertex-2023-10-16`. The host is `aiplatform.googleapis.com` for the
//! `global` region and `{region}-aiplatform.googleapis.com` for the others, unless the provider
//! names its own (a Private Service Connect endpoint, a test). Authentication is a bearer token
//! minted from the provider's service account key (`credentials`), so no static header is sent.
//! Answers, streams, usage and errors are Anthropic's: this is a `Host` of that format.
//! `VertexGemini` is the Google publisher's Gemini the same way, on Gemini's dialect.

use http::StatusCode;
use serde_json::{Map, Value};

use super::anthropic::{Anthropic, CloudBody};
use super::gemini::Gemini;
use super::host::{Host, path_segment};
use super::{Address, Dialect, Endpoint, Headers};
use crate::platform::secret::SecretBytes;
use crate::protocols::{Bound, ClientRequest, Refusal};
use crate::providers::Region;

/// The version Vertex AI's Claude bodies carry.
pub const VERSION: &str = "vertex-2023-10-16";
/// The global host, the kind's default base URL.
pub const GLOBAL_HOST: &str = "https://aiplatform.googleapis.com";

#[derive(Debug, Clone, Copy, Default)]
pub struct Vertex;

/// A model id as one path segment (`claude-sonnet-4-5@20250929` keeps its `@`).
fn segment(name: &str) -> String {
    path_segment(name, b"@")
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

impl Host for Vertex {
    fn format(&self) -> &'static dyn Dialect {
        &Anthropic
    }

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

    /// The Messages body without `model`, with Vertex's version.
    fn envelope(&self, body: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))?;
        cloud_body(&body)
    }

    /// Anthropic's checks, then the client's body in the cloud's shape (not parsed again).
    fn native_request(
        &self,
        request: &ClientRequest,
        model: &str,
        bound: Bound,
        forward: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        Anthropic.native_body(request, model, bound)?;
        Ok((cloud_body(&request.body)?, forward.to_vec()))
    }

    // Errors: Anthropic's, or Google's (`{"error": {"code", "message", "status"}}`) from Vertex
    // itself; both carry `error.message`, which the format reads.

    /// `{"publisherModels": [{"name": "publishers/anthropic/models/claude-…"}]}`.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        publisher_models(body)
    }
}

/// The ids of a Vertex AI publisher's model catalogue.
fn publisher_models(body: &[u8]) -> Option<Vec<String>> {
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

/// Gemini on Vertex AI: Gemini's own API (`super::gemini`) under
/// `.../publishers/google/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`),
/// with the service account's tokens. No embeddings here (Vertex's are another API).
#[derive(Debug, Clone, Copy, Default)]
pub struct VertexGemini;

impl Host for VertexGemini {
    fn format(&self) -> &'static dyn Dialect {
        &Gemini
    }

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

    fn native_request(
        &self,
        _: &ClientRequest,
        _: &str,
        _: Bound,
        _: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        // The catalog gives this kind no native protocol: every call is translated.
        Err(Refusal::new("Gemini on Vertex AI does not offer this endpoint here.", Some("model")))
    }

    /// A service account's token, never an API key: a 400 is the request's, not the key's.
    fn rejects_key(&self, _: StatusCode, _: &[u8]) -> bool {
        false
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        publisher_models(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::{Protocol, TranslationOptions};

    const VERTEX: &dyn Dialect = &Vertex;
    const VERTEX_GEMINI: &dyn Dialect = &VertexGemini;

    #[test]
    fn the_region_and_project_make_the_url() {
        let at =
            Address { model: "claude-sonnet-4-5@20250929", project: Some("acme-prod"), ..Address::base(GLOBAL_HOST) };
        assert_eq!(
            VERTEX.url(&at, Endpoint::Call(Protocol::Messages)),
            "https://aiplatform.googleapis.com/v1/projects/acme-prod/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        let at = Address { region: Some("us-east5"), ..at }.streamed(true);
        assert_eq!(
            VERTEX.url(&at, Endpoint::Call(Protocol::Chat)),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        let private = Address { base_url: "http://127.0.0.1:9000", ..at };
        assert!(
            VERTEX
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
        let body = VERTEX.chat_body(&chat, "claude-sonnet-4-5@20250929", true, bound, TranslationOptions::default());
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
            VERTEX_GEMINI.url(&at.streamed(true), Endpoint::Call(Protocol::Chat)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn the_model_catalogue_is_read() {
        let body = br#"{"publisherModels": [{"name": "publishers/anthropic/models/claude-sonnet-4-5"}, {"name": "publishers/anthropic/models/claude-haiku-4-5"}]}"#;
        assert_eq!(VERTEX.model_list(body), Some(vec!["claude-haiku-4-5".into(), "claude-sonnet-4-5".into()]));
    }
}
