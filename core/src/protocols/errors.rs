//! An error as each client protocol shapes it: OpenAI's `{"error":{"message","type","param",
//! "code"}}` on chat completions, embeddings and Responses; Anthropic's
//! `{"type":"error","error":{"type","message"}}`, with Anthropic's type for each status, on
//! Messages. The gateway says what went wrong once ([`ErrorParts`]); the protocol decides how
//! it looks.

use serde_json::Value;

use super::{Protocol, chat, messages};

/// What an error says, in OpenAI's terms: its message, `type`, `param` and `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorParts {
    pub message: String,
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl Protocol {
    /// The error body a client of this protocol expects for an answer with `status`.
    pub fn error_json(self, status: u16, parts: &ErrorParts) -> Value {
        match self {
            Self::Messages => messages::error_json(anthropic_type(status), &parts.message),
            Self::Chat | Self::Embeddings | Self::Responses => {
                chat::error_json(&parts.message, &parts.kind, parts.param.as_deref(), parts.code.as_deref())
            }
        }
    }
}

/// Anthropic's error type for a status.
pub fn anthropic_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> ErrorParts {
        ErrorParts {
            message: "Too many requests.".into(),
            kind: "rate_limit_exceeded".into(),
            param: Some("model".into()),
            code: Some("rate_limit_exceeded".into()),
        }
    }

    #[test]
    fn each_protocol_shapes_the_same_error_its_own_way() {
        for protocol in Protocol::ALL {
            let body = protocol.error_json(429, &parts());
            match protocol {
                Protocol::Messages => {
                    assert_eq!(body["type"], "error");
                    assert_eq!(body["error"]["type"], "rate_limit_error");
                    assert_eq!(body["error"]["message"], "Too many requests.");
                    assert!(body["error"].get("param").is_none());
                }
                Protocol::Chat | Protocol::Embeddings | Protocol::Responses => {
                    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
                    assert_eq!(body["error"]["param"], "model");
                    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
                }
            }
        }
    }

    #[test]
    fn anthropic_types_follow_the_status() {
        assert_eq!(anthropic_type(401), "authentication_error");
        assert_eq!(anthropic_type(529), "overloaded_error");
        assert_eq!(anthropic_type(503), "api_error");
    }
}
