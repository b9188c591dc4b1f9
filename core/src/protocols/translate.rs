//! The seam between the client protocols and the upstream dialects: what the relay drives for a
//! stream, however it is passed through or translated. Dialects implement it; the engine only
//! ever holds one.

use bytes::Bytes;

use super::sse;
use crate::usage::Tokens;
use crate::usage::estimate::OutputMeter;

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
    fn fail(&mut self, message: &str, class: &str, out: &mut Vec<Bytes>);
    /// The usage the stream has reported so far.
    fn tokens(&self) -> Tokens;
}
