//! Bedrock's streamed answers, `application/vnd.amazon.eventstream`, turned back into Anthropic's
//! server-sent events. Each binary frame (`total length | headers length | prelude CRC | headers
//! | payload | message CRC`) is cut out of the bytes as they arrive, at most [`MAX_FRAME`] long,
//! and decoded by the AWS SDK's own reader, which checks both CRC-32s. A `chunk` event's payload
//! is `{"bytes": "<base64>"}`, one Anthropic stream event in JSON, sent on as `event: {type}`
//! (InvokeModel); a Converse stream's event is its payload, sent on as `event: {:event-type}`;
//! an exception frame (`throttlingException`, `modelStreamErrorException`, …) becomes Anthropic's
//! `error` event, and so does a frame that is too long, cut short or fails its checksum: the
//! stream ends there and nothing after it is read.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::super::Deframer;
use crate::protocols::{messages, sse};

/// The longest frame accepted: a chunk carries one event, base64-encoded (4/3 of its size) with
/// a few headers, and no event may be longer than the stream parser's limit.
pub const MAX_FRAME: usize = sse::MAX_EVENT_BYTES * 3 / 2;
/// A frame's fixed overhead: the prelude (two lengths and their CRC) and the message CRC.
const OVERHEAD: usize = 16;

#[derive(Default)]
pub struct ToEvents {
    /// Converse's bare events rather than InvokeModel's wrapped chunks.
    bare: bool,
    buffer: BytesMut,
    /// A broken frame or an exception ended the stream: nothing more is read.
    ended: bool,
}

impl Deframer for ToEvents {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        if self.ended {
            return out.freeze();
        }
        self.buffer.extend_from_slice(chunk);
        while !self.ended && self.buffer.len() >= 4 {
            let total = u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]) as usize;
            if !(OVERHEAD..=MAX_FRAME).contains(&total) {
                self.end(
                    &mut out,
                    "api_error",
                    &format!("The provider sent a stream frame of {total} bytes (the most read is {MAX_FRAME})."),
                );
                break;
            }
            if self.buffer.len() < total {
                break;
            }
            let frame = self.buffer.split_to(total).freeze();
            match aws_smithy_eventstream::frame::read_message_from(frame) {
                Ok(message) => self.message(&message, &mut out),
                Err(_) => self.end(
                    &mut out,
                    "api_error",
                    "The provider's event stream was corrupt (a frame failed its checksum or its layout).",
                ),
            }
        }
        out.freeze()
    }
}

/// A string header of a frame.
fn header<'a>(message: &'a aws_smithy_types::event_stream::Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|v| v.as_str())
}

impl ToEvents {
    /// A ConverseStream's deframer.
    pub fn converse() -> Self {
        Self { bare: true, ..Self::default() }
    }

    fn end(&mut self, out: &mut BytesMut, kind: &str, message: &str) {
        self.ended = true;
        self.buffer.clear();
        out.extend_from_slice(&messages::error_event(kind, message));
    }

    fn message(&mut self, message: &aws_smithy_types::event_stream::Message, out: &mut BytesMut) {
        match header(message, ":message-type") {
            Some("event") => match header(message, ":event-type") {
                Some(name) if self.bare => self.bare_event(name, message.payload(), out),
                Some("chunk") => self.chunk(message.payload(), out),
                // Other events (none are documented for InvokeModel) carry nothing to relay.
                _ => {}
            },
            Some("exception") => {
                let exception = header(message, ":exception-type").unwrap_or("exception");
                let said = serde_json::from_slice::<Value>(message.payload()).ok();
                let said =
                    said.as_ref().and_then(|v| v.get("message").or_else(|| v.get("Message"))).and_then(Value::as_str);
                let kind = match exception {
                    "throttlingException" => "rate_limit_error",
                    "serviceUnavailableException" => "overloaded_error",
                    "validationException" => "invalid_request_error",
                    _ => "api_error",
                };
                let text: String = format!("Amazon Bedrock: {exception}: {}", said.unwrap_or("no message"))
                    .chars()
                    .take(300)
                    .collect();
                self.end(out, kind, &text);
            }
            _ => {
                let code = header(message, ":error-code").unwrap_or("unknown");
                let text: String =
                    format!("Amazon Bedrock: {code}: {}", header(message, ":error-message").unwrap_or("no message"))
                        .chars()
                        .take(300)
                        .collect();
                self.end(out, "api_error", &text);
            }
        }
    }

    /// A Converse event (`contentBlockDelta`, …): its payload is the event.
    fn bare_event(&mut self, name: &str, payload: &[u8], out: &mut BytesMut) {
        let event = serde_json::from_slice::<Value>(payload).ok().filter(Value::is_object);
        let named = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphabetic());
        let (Some(event), true) = (event, named) else {
            return self.end(out, "api_error", "The provider sent a stream event that is not one.");
        };
        let data = serde_json::to_string(&event).unwrap_or_default();
        out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    }

    /// `{"bytes": "<base64 of an Anthropic event>"}` sent on as that event.
    fn chunk(&mut self, payload: &[u8], out: &mut BytesMut) {
        #[derive(serde::Deserialize)]
        struct Chunk {
            bytes: String,
        }
        let event = serde_json::from_slice::<Chunk>(payload)
            .ok()
            .and_then(|chunk| base64::engine::general_purpose::STANDARD.decode(chunk.bytes).ok())
            .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
        let name = event.as_ref().and_then(|e| e.get("type")).and_then(Value::as_str);
        let (Some(event), Some(name)) = (&event, name) else {
            return self.end(out, "api_error", "The provider sent a stream chunk that is not an event.");
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return self.end(out, "api_error", "The provider sent a stream chunk that is not an event.");
        }
        // Written compact, so that the event's data is one line whatever the provider's spacing.
        let data = serde_json::to_string(event).unwrap_or_default();
        out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    }
}
