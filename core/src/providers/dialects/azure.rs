//! Azure OpenAI: OpenAI's API under a resource endpoint, one deployment per model. Calls go to
//! `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}` (and
//! `/embeddings`), the deployment being the model the call is served as (a provider's allow-list
//! names its deployments; aliases map the names clients send to them); the key goes in
//! `api-key`. Bodies, answers, streams and usage are OpenAI's, so this dialect is the OpenAI format
//! on Azure's host: its addresses, header and content-filter refusals (see `host`).
//!
//! Responses calls pass through to Azure's v1 surface, `{endpoint}/openai/v1/responses`, which
//! takes the deployment as `model` and needs no `api-version` (it is generally available).
//!
//! The key is the resource's API key, or Microsoft Entra ID client credentials (JSON, see
//! `credentials`): then no `api-key` is sent and a bearer token minted from them is.

use http::StatusCode;
use serde_json::Value;

use super::host::{Host, path_segment};
use super::openai::OpenAi;
use super::{Address, ClientError, Dialect, Endpoint};
use crate::platform::secret::SecretBytes;
use crate::protocols::Protocol;
use crate::providers::ApiVersion;

/// The OpenAI dialect as Azure speaks it (the newer deployments take `max_completion_tokens`).
const INNER: OpenAi = OpenAi::OPENAI;

#[derive(Debug, Clone, Copy, Default)]
pub struct Azure;

impl Host for Azure {
    fn format(&self) -> &'static dyn Dialect {
        &INNER
    }

    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let version = at.api_version.unwrap_or(ApiVersion::DEFAULT);
        let base = at.base_url.trim_end_matches('/');
        let deployment = path_segment(at.model, b"");
        let path = match endpoint {
            // The v1 surface: the deployment in the body, no version in the query.
            Endpoint::Call(Protocol::Responses) => return format!("{base}/openai/v1/responses"),
            Endpoint::Call(Protocol::Embeddings) => format!("openai/deployments/{deployment}/embeddings"),
            // Messages reach Azure as chat.
            Endpoint::Call(Protocol::Chat | Protocol::Messages) => {
                format!("openai/deployments/{deployment}/chat/completions")
            }
            Endpoint::Models => "openai/models".to_owned(),
            // Not an Azure endpoint: counted locally instead (never called).
            Endpoint::CountTokens => "openai/count_tokens".to_owned(),
        };
        format!("{base}/{path}?api-version={version}")
    }

    /// The key in `api-key`; Entra ID credentials send none (their tokens go in `Authorization`).
    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        if crate::providers::credentials::is_entra(key.expose_str().unwrap_or_default()) {
            return Vec::new();
        }
        super::secret_header(key.expose_str().unwrap_or_default())
            .map(|v| (http::HeaderName::from_static("api-key"), v))
            .into_iter()
            .collect()
    }

    /// OpenAI's error fields; a prompt Azure's content filter refused says so plainly, with the
    /// categories that tripped it.
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        let mut error = INNER.client_error(status, body);
        if error.code.as_deref() == Some("content_filter") {
            let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let result = &json["error"]["innererror"]["content_filter_result"];
            let tripped: Vec<&str> = result
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.get("filtered") == Some(&Value::Bool(true)))
                .map(|(k, _)| k.as_str())
                .collect();
            let categories = if tripped.is_empty() { String::new() } else { format!(" ({})", tripped.join(", ")) };
            error.message = format!("Azure OpenAI's content filter refused the prompt{categories}: {}", error.message);
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURE: &dyn Dialect = &Azure;

    #[test]
    fn deployments_and_the_api_version_make_the_url() {
        let at = Address { model: "gpt-4o prod", ..Address::base("https://res.openai.azure.com/") };
        assert_eq!(
            AZURE.url(&at, Endpoint::Call(Protocol::Chat)),
            "https://res.openai.azure.com/openai/deployments/gpt-4o%20prod/chat/completions?api-version=2024-10-21"
        );
        let at = Address { api_version: Some("2025-04-01-preview"), model: "emb", ..at };
        assert_eq!(
            AZURE.url(&at, Endpoint::Call(Protocol::Embeddings)),
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-04-01-preview"
        );
        assert!(AZURE.url(&at, Endpoint::Models).ends_with("/openai/models?api-version=2025-04-01-preview"));
        assert_eq!(
            AZURE.url(&at, Endpoint::Call(Protocol::Responses)),
            "https://res.openai.azure.com/openai/v1/responses"
        );
        let headers = AZURE.auth_headers(&SecretBytes::new(b"k123".to_vec()));
        assert_eq!(headers[0].0.as_str(), "api-key");
        assert!(headers[0].1.is_sensitive());
    }

    #[test]
    fn a_content_filter_refusal_says_so() {
        let body = serde_json::json!({"error": {"message": "The response was filtered.", "type": null, "param": "prompt",
            "code": "content_filter", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"hate": {"filtered": false, "severity": "safe"}, "violence": {"filtered": true, "severity": "high"}}}}});
        let error = AZURE.client_error(StatusCode::BAD_REQUEST, body.to_string().as_bytes());
        assert_eq!(error.code.as_deref(), Some("content_filter"));
        assert!(
            error
                .message
                .starts_with("Azure OpenAI's content filter refused the prompt (violence): The response was filtered."),
            "{}",
            error.message
        );
    }
}
