//! The limit headers each client protocol's SDKs read: OpenAI's `x-ratelimit-*` on every route,
//! and on Messages Anthropic's `anthropic-ratelimit-*` as well (Anthropic's SDKs and Claude Code
//! read those); `Retry-After` on a refusal.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};

use super::Protocol;
use crate::limits::{Counted, Standing};
use crate::platform::rate::{Decision, format_reset};

/// An RFC 3339 UTC timestamp (second precision), as Anthropic's reset headers give it.
fn rfc3339_after(wait: Duration) -> Option<HeaderValue> {
    let at = SystemTime::now() + wait;
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ms = i64::try_from(secs).unwrap_or(0).saturating_mul(1000);
    HeaderValue::from_str(&perpetuo_types::time::rfc3339_utc(ms)).ok()
}

impl Protocol {
    /// A request-rate check's headers: `Retry-After` when refused, `x-ratelimit-*-requests`, and
    /// on Messages `anthropic-ratelimit-requests-*`.
    pub fn request_limit_headers(self, headers: &mut HeaderMap, decision: &Decision) {
        match self {
            Self::Messages => {
                headers.insert("anthropic-ratelimit-requests-limit", HeaderValue::from(decision.limit));
                headers.insert("anthropic-ratelimit-requests-remaining", HeaderValue::from(decision.remaining));
                if let Some(reset) = rfc3339_after(decision.reset) {
                    headers.insert("anthropic-ratelimit-requests-reset", reset);
                }
            }
            Self::Chat | Self::Embeddings | Self::Responses => {}
        }
        if !decision.allowed {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs().max(1)));
        }
        headers.insert("x-ratelimit-limit-requests", HeaderValue::from(decision.limit));
        headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(decision.remaining));
        if let Ok(reset) = HeaderValue::from_str(&format_reset(decision.reset)) {
            headers.insert("x-ratelimit-reset-requests", reset);
        }
    }

    /// A token limit's standing: `x-ratelimit-{limit,remaining,reset}-tokens`, and on Messages
    /// `anthropic-ratelimit-{input-tokens,output-tokens,tokens}-*` (by what the limit counts).
    pub fn token_limit_headers(self, headers: &mut HeaderMap, standing: &Standing) {
        match self {
            Self::Messages => {
                let (limit, remaining, reset) = match standing.counted {
                    Counted::Input => (
                        "anthropic-ratelimit-input-tokens-limit",
                        "anthropic-ratelimit-input-tokens-remaining",
                        "anthropic-ratelimit-input-tokens-reset",
                    ),
                    Counted::Output => (
                        "anthropic-ratelimit-output-tokens-limit",
                        "anthropic-ratelimit-output-tokens-remaining",
                        "anthropic-ratelimit-output-tokens-reset",
                    ),
                    Counted::Total => (
                        "anthropic-ratelimit-tokens-limit",
                        "anthropic-ratelimit-tokens-remaining",
                        "anthropic-ratelimit-tokens-reset",
                    ),
                };
                headers.insert(limit, HeaderValue::from(standing.limit));
                headers.insert(remaining, HeaderValue::from(standing.remaining));
                if let Some(at) = rfc3339_after(standing.reset) {
                    headers.insert(reset, at);
                }
            }
            Self::Chat | Self::Embeddings | Self::Responses => {}
        }
        headers.insert("x-ratelimit-limit-tokens", HeaderValue::from(standing.limit));
        headers.insert("x-ratelimit-remaining-tokens", HeaderValue::from(standing.remaining));
        if let Ok(reset) = HeaderValue::from_str(&format_reset(standing.reset)) {
            headers.insert("x-ratelimit-reset-tokens", reset);
        }
    }
}
