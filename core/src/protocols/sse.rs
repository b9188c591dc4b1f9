//! Server-sent events, incrementally: bytes in, complete events out (`event:` name and the
//! `data:` lines), however the network splits them. Linear in the bytes (the search for an
//! event's end resumes where it stopped) and bounded: an event larger than the parser's limit
//! (1 MiB by default) is not buffered; the parser reports it and keeps nothing more.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Largest event a parser holds by default.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct Parser {
    buffer: BytesMut,
    /// How far the buffer has been searched for an event's end without finding one.
    scanned: usize,
    limit: usize,
    oversized: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl Parser {
    pub fn with_limit(limit: usize) -> Self {
        Self { buffer: BytesMut::new(), scanned: 0, limit, oversized: false }
    }

    /// Adds bytes from the network (nothing more once an event was too large).
    pub fn push(&mut self, chunk: &Bytes) {
        if !self.oversized {
            self.buffer.extend_from_slice(chunk);
        }
    }

    /// Whether an event grew past the limit: the stream cannot be read further.
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let Some((end, sep)) = find_boundary(&self.buffer, self.scanned) else {
                // A separator may straddle what has arrived and what comes next.
                self.scanned = self.buffer.len().saturating_sub(2);
                if self.buffer.len() > self.limit {
                    self.oversized = true;
                    self.buffer = BytesMut::new();
                    self.scanned = 0;
                }
                return None;
            };
            self.scanned = 0;
            if end > self.limit {
                self.oversized = true;
                self.buffer = BytesMut::new();
                return None;
            }
            let raw = self.buffer.split_to(end + sep);
            let text = String::from_utf8_lossy(&raw[..end]);
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in text.split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                } else if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                }
            }
            // Comments and keep-alives carry no data: skip them.
            if data.is_empty() && name.is_none() {
                continue;
            }
            return Some(Event { name, data: data.join("\n") });
        }
    }

    /// Bytes that never formed a complete event.
    pub fn leftover(&self) -> usize {
        self.buffer.iter().filter(|b| !b.is_ascii_whitespace()).count()
    }
}

/// The end of the first event and the length of its separator (`\n\n` or `\r\n\r\n`),
/// searching from `from` (everything before it is known not to hold one).
fn find_boundary(buffer: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' {
            if buffer[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buffer[i + 1] == b'\r' && buffer.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// One `data:` event, encoded.
pub fn data(json: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// An event with its `event:` name (if any), encoded; data of several lines keeps them.
pub fn named(name: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_reassemble() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: x\r\n\r\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut p = Parser::default();
            p.push(&Bytes::copy_from_slice(&stream[..split]));
            let mut events = Vec::new();
            while let Some(e) = p.next_event() {
                events.push(e);
            }
            p.push(&Bytes::copy_from_slice(&stream[split..]));
            while let Some(e) = p.next_event() {
                events.push(e);
            }
            assert_eq!(events.len(), 3, "split at {split}: {events:?}");
            assert_eq!(events[0], Event { name: Some("message_start".into()), data: "{\"a\":1}".into() });
            assert_eq!(events[1].data, "x");
            assert_eq!(events[2].data, "[DONE]");
            assert_eq!(p.leftover(), 0);
        }
    }

    #[test]
    fn an_endless_event_is_refused_at_the_limit_in_linear_time() {
        let mut p = Parser::with_limit(64 * 1024);
        p.push(&Bytes::from_static(b"data: ok\n\n"));
        assert_eq!(p.next_event().map(|e| e.data), Some("ok".into()));
        // One line that never ends, a byte at a time would be quadratic if rescanned from the start.
        let piece = Bytes::from(vec![b'x'; 1000]);
        let mut pushes = 0;
        while !p.oversized() && pushes < 1000 {
            p.push(&piece);
            assert_eq!(p.next_event(), None);
            pushes += 1;
        }
        assert!(p.oversized(), "refused once past the limit");
        assert!(pushes <= 66, "{pushes}");
        p.push(&Bytes::from_static(b"\n\ndata: later\n\n"));
        assert_eq!(p.next_event(), None, "nothing more is read after an oversized event");
        assert!(p.buffer.is_empty(), "and nothing is kept");
    }

    #[test]
    fn a_separator_split_across_pushes_is_found() {
        for stream in [&b"data: a\n\ndata: b\n\n"[..], &b"data: a\r\n\r\ndata: b\r\n\r\n"[..]] {
            let mut p = Parser::default();
            let mut events = Vec::new();
            for byte in stream {
                p.push(&Bytes::copy_from_slice(&[*byte]));
                while let Some(e) = p.next_event() {
                    events.push(e.data);
                }
            }
            assert_eq!(events, ["a", "b"]);
        }
    }

    #[test]
    fn multi_line_data_joins_with_newlines() {
        let mut p = Parser::default();
        p.push(&Bytes::from_static(b"data: a\ndata: b\n\n"));
        assert_eq!(p.next_event().unwrap().data, "a\nb");
    }
}
