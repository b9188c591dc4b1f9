//! Hosts apart from wire formats. A format (OpenAI's, Anthropic's, Gemini's, Converse) is how
//! bodies, answers, streams, usage and errors look; a host is where and how they travel: its
//! URLs, authentication, the envelope a body is put in, a stream's framing. A cloud that serves a
//! vendor's format (Azure OpenAI, Claude and Gemini on Vertex AI, Claude on Bedrock) is a
//! [`Host`] of that format: it writes only what it changes, and is a [`Dialect`] by the impl
//! below, so the engine never tells the two apart.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{Address, BadAnswer, ClientError, Deframer, Dialect, Endpoint, Headers};
use crate::platform::secret::SecretBytes;
use crate::protocols::chat::ChatSource;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, StreamTranslator, TranslationOptions};
use crate::usage::TokenCounts;

/// Where and how a wire format is reached. Everything not written here is the format's: its
/// answers, streams and usage always; its bodies, errors and model lists unless the host changes
/// them.
pub trait Host: Send + Sync {
    /// The wire format the host serves.
    fn format(&self) -> &'static dyn Dialect;

    /// The URL of `endpoint` at a provider's address.
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String;

    /// The static authentication headers for this key (none where each request is signed or
    /// carries a minted token).
    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)>;

    /// A body of the format, in the host's envelope (as is, by default).
    fn envelope(&self, body: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        Ok(body)
    }

    /// The body and headers of a passed-through call: the format's body in the host's envelope
    /// and the client's protocol headers.
    fn native_request(
        &self,
        request: &ClientRequest,
        model: &str,
        bound: Bound,
        forward: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        let body = self.envelope(self.format().native_body(request, model, bound)?)?;
        Ok((body, forward.to_vec()))
    }

    /// A stream's framing, when the host's is not server-sent events.
    fn deframer(&self) -> Option<Box<dyn Deframer>> {
        self.format().deframer()
    }

    /// The refusal of a client's request, as the host words it.
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        self.format().client_error(status, body)
    }

    fn rejects_key(&self, status: StatusCode, body: &[u8]) -> bool {
        self.format().rejects_key(status, body)
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        self.format().error_message(body)
    }

    /// The model ids of the host's catalogue.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        self.format().model_list(body)
    }
}

impl<H: Host> Dialect for H {
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String {
        Host::url(self, at, endpoint)
    }

    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)> {
        Host::auth_headers(self, key)
    }

    fn native_body(&self, request: &ClientRequest, model: &str, bound: Bound) -> Result<Vec<u8>, Refusal> {
        Ok(Host::native_request(self, request, model, bound, &[])?.0)
    }

    fn native_request(
        &self,
        request: &ClientRequest,
        model: &str,
        bound: Bound,
        forward: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        Host::native_request(self, request, model, bound, forward)
    }

    fn deframer(&self) -> Option<Box<dyn Deframer>> {
        Host::deframer(self)
    }

    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer> {
        self.format().native_answer(protocol, body)
    }

    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        self.format().native_stream(protocol, labels)
    }

    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal> {
        self.envelope(self.format().chat_body(chat, model, stream, bound, options)?)
    }

    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer> {
        self.format().chat_answer(body, labels)
    }

    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource> {
        self.format().chat_source(labels)
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        self.format().starts_with_error(first)
    }

    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError {
        Host::client_error(self, status, body)
    }

    fn rejects_key(&self, status: StatusCode, body: &[u8]) -> bool {
        Host::rejects_key(self, status, body)
    }

    fn error_message(&self, body: &[u8]) -> Option<String> {
        Host::error_message(self, body)
    }

    fn model_list(&self, body: &[u8]) -> Option<Vec<String>> {
        Host::model_list(self, body)
    }
}

/// A name as one URL path segment: anything but the unreserved characters (and `keep`)
/// percent-encoded.
pub fn path_segment(name: &str, keep: &[u8]) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_encode_all_but_the_unreserved() {
        assert_eq!(path_segment("gpt-4o prod/x", b""), "gpt-4o%20prod%2Fx");
        assert_eq!(path_segment("anthropic.claude-v1:0", b""), "anthropic.claude-v1%3A0");
        assert_eq!(path_segment("claude@2025", b"@"), "claude@2025");
    }
}
