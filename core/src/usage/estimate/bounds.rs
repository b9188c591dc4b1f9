//! Bounds on what a provider bills beyond the prompt's text: input it keeps (a stored
//! conversation), hosted searches, and the output an answer without usage holds.

use serde_json::{Map, Value};

use super::*;

/// The field of a request that makes the provider bill input the request does not carry: a
/// conversation or prompt stored at the provider (`previous_response_id`, `conversation`,
/// `prompt` by id) or an uploaded file (`file_id`). A reservation cannot count that input from
/// the request; it holds the model's context window instead.
pub fn unseen_input(body: &Map<String, Value>) -> Option<&'static str> {
    let present = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    for field in ["previous_response_id", "conversation"] {
        if present(field) {
            return Some(field);
        }
    }
    if body.get("prompt").and_then(|p| p.get("id")).is_some() {
        return Some("prompt");
    }
    fn has_file_id(value: &Value, depth: usize) -> bool {
        match value {
            Value::Object(map) => {
                map.get("file_id").is_some_and(|id| !id.is_null())
                    || (depth < 8 && map.values().any(|v| has_file_id(v, depth + 1)))
            }
            Value::Array(items) => depth < 8 && items.iter().any(|v| has_file_id(v, depth + 1)),
            _ => false,
        }
    }
    ["input", "messages"].iter().any(|field| body.get(*field).is_some_and(|v| has_file_id(v, 0))).then_some("file_id")
}

/// Hosted web searches a request allows when its tool names no `max_uses`: what a reservation
/// holds for each (a call that searches more than this may cost more than was reserved).
pub const DEFAULT_SEARCHES: u64 = 10;

/// The most hosted web searches a request may make the provider run (billed per search): each
/// web-search tool's `max_uses`, or [`DEFAULT_SEARCHES`].
pub fn search_bound(body: &Map<String, Value>) -> u64 {
    let tools = body.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str).is_some_and(|k| k.starts_with("web_search")))
        .map(|t| t.get("max_uses").and_then(Value::as_u64).unwrap_or(DEFAULT_SEARCHES).min(1_000))
        .fold(0u64, u64::saturating_add)
}

/// The output a whole answer holds, on the high side, for an answer whose provider reported no
/// usage: every string the model may have written (text, reasoning, tool names and arguments,
/// refusals), tool inputs given as objects counted as their JSON, metadata (ids, roles, types,
/// reasons, model names) left out. Counted like a stream's output (the meter's margin and bounds).
pub fn answer_output(answer: &Value) -> u64 {
    /// Fields that are the answer's envelope, not the model's words.
    const ENVELOPE: &[&str] = &[
        "id",
        "object",
        "model",
        "role",
        "type",
        "finish_reason",
        "stop_reason",
        "status",
        "system_fingerprint",
        "service_tier",
        "call_id",
        "created",
        "created_at",
        "encoding_format",
    ];
    fn walk(value: &Value, meter: &mut OutputMeter, depth: usize) {
        if depth > 64 {
            return;
        }
        match value {
            Value::String(text) => meter.add(text),
            Value::Array(items) => items.iter().for_each(|v| walk(v, meter, depth + 1)),
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("usage" | "embedding", _) => {}
                        (key, _) if ENVELOPE.contains(&key) => {}
                        // A tool's input as an object: the model wrote it as JSON.
                        ("input" | "arguments" | "args", Value::Object(_)) => meter.add(&value.to_string()),
                        _ => walk(value, meter, depth + 1),
                    }
                }
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
    let mut meter = OutputMeter::default();
    walk(answer, &mut meter, 0);
    meter.tokens()
}
