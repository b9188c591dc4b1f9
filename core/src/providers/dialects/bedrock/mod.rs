//! Claude on Amazon Bedrock: Anthropic's Messages API behind Bedrock's InvokeModel. Calls go to
//! `{host}/model/{model}/invoke` (`/invoke-with-response-stream` when streamed), the model id
//! (`anthropic.claude-…-v1:0`, a cross-region inference profile such as `us.anthropic.…` or
//! `global.anthropic.…`, or an ARN) percent-encoded as one path segment. The body is the Messages
//! body without `model` or `stream`, carrying `anthropic_version: bedrock-2023-05-31`, and the
//! client's `anthropic-beta` header becomes its `anthropic_beta` list. The host is
//! `bedrock-runtime.{region}.amazonaws.com` unless the provider names its own (a VPC endpoint, a
//! test). Authentication is a SigV4 signature over each request (`providers::aws`) or a Bedrock
//! API key as a bearer token. Answers and usage are Anthropic's; streams arrive in AWS's binary
//! event-stream framing and are turned back into Anthropic's events by `frames`.

pub mod converse;
mod frames;
#[cfg(test)]
mod tests;

use http::StatusCode;
use serde_json::{Map, Value};

use super::anthropic::Anthropic;
use super::host::{Host, path_segment};
use super::{Address, ClientError, Deframer, Dialect, Endpoint, Headers};
use crate::platform::secret::SecretBytes;
use crate::protocols::{Bound, ClientRequest, Refusal};

/// The version Bedrock's Claude bodies carry.
pub const VERSION: &str = "bedrock-2023-05-31";
/// The region a provider without one is in.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The default region's runtime host, the kind's default base URL.
pub const DEFAULT_HOST: &str = "https://bedrock-runtime.us-east-1.amazonaws.com";

#[derive(Debug, Clone, Copy, Default)]
pub struct Bedrock;

/// A model id or ARN as one path segment: everything but the unreserved characters encoded
/// (`anthropic.claude-3-5-haiku-20241022-v1:0` goes as `…-v1%3A0`).
fn segment(name: &str) -> String {
    path_segment(name, b"")
}

/// The runtime host of a provider's address: its region's, unless it names its own.
fn runtime_host(at: &Address<'_>) -> String {
    let base = at.base_url.trim_end_matches('/');
    match at.region {
        Some(region) if base == DEFAULT_HOST && region != DEFAULT_REGION => {
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        }
        _ => base.to_owned(),
    }
}

/// The body Bedrock gets: the Messages body without `model` and `stream` (the URL says both),
/// with Bedrock's version and the client's betas.
struct BedrockBody<'a> {
    body: &'a Map<String, Value>,
    betas: Vec<&'a str>,
}

impl serde::Serialize for BedrockBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("anthropic_version", VERSION)?;
        if !self.betas.is_empty() && !self.body.contains_key("anthropic_beta") {
            map.serialize_entry("anthropic_beta", &self.betas)?;
        }
        for (key, value) in self.body {
            if !matches!(key.as_str(), "model" | "stream" | "anthropic_version") {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// The betas named in `anthropic-beta` headers (comma-separated, at most 32).
fn betas(forward: &[(http::HeaderName, http::HeaderValue)]) -> Vec<&str> {
    forward
        .iter()
        .filter(|(name, _)| name.as_str() == "anthropic-beta")
        .filter_map(|(_, value)| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|beta| !beta.is_empty())
        .take(32)
        .collect()
}

impl Host for Bedrock {
    fn format(&self) -> &'static dyn Dialect {
        &Anthropic
    }

    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        let host = runtime_host(at);
        let model = segment(at.model);
        match endpoint {
            Endpoint::Call(_) if at.stream => format!("{host}/model/{model}/invoke-with-response-stream"),
            Endpoint::Call(_) => format!("{host}/model/{model}/invoke"),
            Endpoint::CountTokens => format!("{host}/model/{model}/count-tokens"),
            // The control plane's catalogue, on `bedrock.{region}` beside `bedrock-runtime.{region}`.
            Endpoint::Models => {
                let control = match host.strip_prefix("https://bedrock-runtime.") {
                    Some(rest) if rest.ends_with(".amazonaws.com") => format!("https://bedrock.{rest}"),
                    _ => host,
                };
                format!("{control}/foundation-models?byProvider=anthropic")
            }
        }
    }

    /// A Bedrock API key is a bearer token; an IAM access key signs each request instead.
    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let key = key.expose_str().unwrap_or_default();
        if crate::providers::aws::is_access_key(key) {
            return Vec::new();
        }
        super::secret_header(&format!("Bearer {key}"))
            .map(|value| vec![(http::header::AUTHORIZATION, value)])
            .unwrap_or_default()
    }

    /// The client's betas move into the body; no Anthropic header goes to AWS.
    fn native_request(
        &self,
        request: &ClientRequest,
        model: &str,
        bound: Bound,
        forward: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        // Anthropic's checks, then the cloud's shape.
        Anthropic.native_body(request, model, bound)?;
        Ok((super::encode(&BedrockBody { body: &request.body, betas: betas(forward) })?, Vec::new()))
    }

    fn deframer(&self) -> Option<Box<dyn Deframer>> {
        Some(Box::new(frames::ToEvents::default()))
    }

    /// Bedrock's body: without `model` and `stream`, with its version (a translated call has no
    /// betas).
    fn envelope(&self, body: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))?;
        super::encode(&BedrockBody { body: &body, betas: Vec::new() })
    }

    /// AWS's errors (`{"message": "…"}`, the kind in `x-amzn-errortype`), or Anthropic's own.
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        let mut error = Anthropic.client_error(status, body);
        if let Some(message) = aws_message(body) {
            error.message = message;
        }
        error
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        aws_message(body).or_else(|| Anthropic.error_message(body))
    }

    /// `{"modelSummaries": [{"modelId": "anthropic.claude-…"}]}`.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let mut ids: Vec<String> = json
            .get("modelSummaries")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("modelId").and_then(Value::as_str))
            .filter(|id| !id.is_empty() && id.len() <= super::MAX_MODEL_ID && !id.chars().any(char::is_control))
            .take(super::MAX_LISTED_MODELS)
            .map(str::to_owned)
            .collect();
        ids.sort();
        Some(ids)
    }
}

/// The message of an AWS error body (`{"message": …}` or `{"Message": …}`), shortened.
fn aws_message(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let message = json.get("message").or_else(|| json.get("Message"))?.as_str()?;
    Some(message.chars().take(300).collect())
}
