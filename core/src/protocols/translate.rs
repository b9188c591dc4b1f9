//! The seam between the client protocols and the upstream dialects. For each candidate, routing
//! gets one [`Prepared`] call (`providers::translation` builds it where the protocol meets the
//! dialect): where it goes, what it sends, and the [`AnswerReader`] that turns the provider's
//! whole answer or stream back into the client's protocol. The engine runs attempts with it and
//! never asks whether the call is passed through or translated; the relay drives the
//! [`StreamTranslator`] the reader gives it.

use bytes::Bytes;

use super::{AnswerLabels, sse};
use crate::usage::TokenCounts;
use crate::usage::estimate::OutputMeter;

/// How calls translated for one provider are shaped (its owner's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationOptions {
    /// Place prompt-cache breakpoints where the dialect needs them (Anthropic's).
    pub auto_cache: bool,
    /// Refuse a call that offers hosted tools the provider cannot run, instead of dropping them.
    pub refuse_hosted_tools: bool,
}

impl Default for TranslationOptions {
    fn default() -> Self {
        Self { auto_cache: true, refuse_hosted_tools: false }
    }
}

/// A successful answer that could not be read: the provider misbehaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAnswer;

/// A call as one candidate gets it.
pub struct Prepared {
    /// Where it is sent.
    pub url: String,
    /// What is sent.
    pub body: Vec<u8>,
    /// Client headers the provider reads too (a protocol's own version and beta headers, when the
    /// call is passed through as it came).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// How the answer comes back in the client's protocol.
    pub reader: Box<dyn AnswerReader>,
    /// The hosted tools the client offered that this provider goes without.
    pub dropped: super::Dropped,
}

/// How a candidate's answers are read back into the client's protocol.
pub trait AnswerReader: Send + Sync {
    /// A whole answer, as the client gets it, and the tokens it reports.
    fn whole(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Bytes, TokenCounts), BadAnswer>;
    /// The translator of a stream, event by event.
    fn stream(&self, labels: &AnswerLabels) -> Box<dyn StreamTranslator>;
    /// Whether a stream's first bytes already carry an error (nothing has reached the client yet,
    /// so the call can still fall back).
    fn starts_with_error(&self, first: &Bytes) -> bool;
}

/// Why a stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFault {
    /// The provider's own error event, with its message.
    Provider(String),
    /// What the translation keeps for its closing events grew past the answer cap.
    TooLarge,
}

/// An upstream stream, one event at a time, as the client's protocol wants it.
pub trait StreamTranslator: Send {
    /// The client's bytes for one upstream event, pushed onto `out`, with the output text it
    /// carries (content, reasoning, tool arguments) added to `meter`; `Err` when the stream
    /// cannot go on (the provider's error event, or a translation grown too large).
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>, meter: &mut OutputMeter) -> Result<(), StreamFault>;
    /// Whether the stream has reached its end marker (nothing more is expected).
    fn finished(&self) -> bool;
    /// Whether a stream whose connection ends now has ended cleanly (some servers close after
    /// the last chunk without an end marker).
    fn complete_on_close(&self) -> bool;
    /// The connection ended cleanly without the end marker: what the client still needs.
    fn close(&mut self, out: &mut Vec<Bytes>);
    /// The stream failed (`class` says how): the client's error event, unless the provider's own
    /// was already passed on.
    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>);
    /// The usage the stream has reported so far.
    fn tokens(&self) -> TokenCounts;
}
