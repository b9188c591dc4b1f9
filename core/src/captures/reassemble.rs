//! A captured stream put back together into the answer its events spell, for the call page: chat
//! chunks into each choice's text, reasoning and tool calls; Messages events into content blocks;
//! Responses events into the final response (or its text deltas when the stream was cut). Only
//! reads what was captured, so a stream cut by the size cap reassembles as far as it went.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::protocols::sse::Parser;

/// The answer a captured stream of `route` spells, as pretty JSON (`None` when nothing in it
/// could be read).
pub fn reassemble(route: &str, stream: &[u8]) -> Option<String> {
    let mut parser = Parser::default();
    parser.push(&Bytes::copy_from_slice(stream));
    let mut events = Vec::new();
    while let Some(event) = parser.next_event() {
        if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
            events.push((event.name, data));
        }
    }
    if events.is_empty() {
        return None;
    }
    let answer = match route {
        "messages" => messages(&events),
        "responses" => responses(&events),
        _ => chat(&events),
    };
    serde_json::to_string_pretty(&answer).ok()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// Chat chunks: `choices[].delta` (content, reasoning, tool calls by index), finish reasons, usage.
fn chat(events: &[(Option<String>, Value)]) -> Value {
    let mut choices: Vec<Map<String, Value>> = Vec::new();
    let (mut model, mut usage, mut error) = (Value::Null, Value::Null, Value::Null);
    for (_, chunk) in events {
        if chunk.get("error").is_some() {
            error = chunk["error"].clone();
        }
        if let Some(m) = chunk.get("model") {
            model = m.clone();
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            usage = chunk["usage"].clone();
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0).min(64) as usize;
            while choices.len() <= index {
                choices.push(Map::new());
            }
            let out = &mut choices[index];
            let delta = &choice["delta"];
            for (field, key) in [("content", "content"), ("reasoning_content", "reasoning"), ("refusal", "refusal")] {
                if let Some(piece) = delta.get(field).and_then(Value::as_str) {
                    let entry = out.entry(key).or_insert_with(|| Value::String(String::new()));
                    if let Value::String(s) = entry {
                        s.push_str(piece);
                    }
                }
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let calls = out.entry("tool_calls").or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(calls) = calls else { continue };
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(0).min(64) as usize;
                while calls.len() <= at {
                    calls.push(json!({"id": null, "name": "", "arguments": ""}));
                }
                let slot = &mut calls[at];
                if let Some(id) = call.get("id").filter(|v| v.is_string()) {
                    slot["id"] = id.clone();
                }
                let function = &call["function"];
                for field in ["name", "arguments"] {
                    if let Some(piece) = function.get(field).and_then(Value::as_str) {
                        let joined = format!("{}{piece}", text(&slot[field]));
                        slot[field] = Value::String(joined);
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                out.insert("finish_reason".into(), reason.clone());
            }
        }
    }
    let mut answer = json!({ "model": model, "choices": choices });
    if !usage.is_null() {
        answer["usage"] = usage;
    }
    if !error.is_null() {
        answer["error"] = error;
    }
    answer
}

/// Messages events: content blocks by index (text, thinking, tool input as its JSON), the stop
/// reason and the usage of `message_start` and `message_delta`.
fn messages(events: &[(Option<String>, Value)]) -> Value {
    let mut blocks: Vec<Value> = Vec::new();
    let mut answer = json!({ "model": null, "content": [], "stop_reason": null });
    let mut usage = Map::new();
    for (name, event) in events {
        let kind = event.get("type").and_then(Value::as_str).or(name.as_deref()).unwrap_or("");
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0).min(64) as usize;
        match kind {
            "message_start" => {
                answer["model"] = event["message"]["model"].clone();
                if let Some(u) = event["message"]["usage"].as_object() {
                    usage.extend(u.clone());
                }
            }
            "content_block_start" => {
                while blocks.len() <= index {
                    blocks.push(Value::Null);
                }
                blocks[index] = event["content_block"].clone();
            }
            "content_block_delta" => {
                let Some(block) = blocks.get_mut(index) else { continue };
                let delta = &event["delta"];
                let (field, piece) = match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => ("text", text(&delta["text"])),
                    Some("thinking_delta") => ("thinking", text(&delta["thinking"])),
                    Some("input_json_delta") => ("partial_json", text(&delta["partial_json"])),
                    _ => continue,
                };
                let joined = format!("{}{piece}", text(&block[field]));
                block[field] = Value::String(joined);
            }
            "content_block_stop" => {
                // A tool's input arrives as JSON text: shown as the value it spells once whole.
                if let Some(block) = blocks.get_mut(index)
                    && let Some(Value::String(json)) = block.as_object_mut().and_then(|b| b.remove("partial_json"))
                {
                    block["input"] = serde_json::from_str(&json).unwrap_or(Value::String(json));
                }
            }
            "message_delta" => {
                answer["stop_reason"] = event["delta"]["stop_reason"].clone();
                if let Some(u) = event["usage"].as_object() {
                    usage.extend(u.clone());
                }
            }
            "error" => answer["error"] = event["error"].clone(),
            _ => {}
        }
    }
    answer["content"] = Value::Array(blocks.into_iter().filter(|b| !b.is_null()).collect());
    if !usage.is_empty() {
        answer["usage"] = Value::Object(usage);
    }
    answer
}

/// Responses events: the final response when the stream got that far, else the text deltas.
fn responses(events: &[(Option<String>, Value)]) -> Value {
    let mut textual = String::new();
    let mut last = Value::Null;
    for (name, event) in events {
        let kind = event.get("type").and_then(Value::as_str).or(name.as_deref()).unwrap_or("");
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => last = event["response"].clone(),
            "response.output_text.delta" => textual.push_str(text(&event["delta"])),
            "error" => return json!({ "error": event.get("error").unwrap_or(event), "text": textual }),
            _ => {}
        }
    }
    if last.is_null() { json!({ "text": textual, "complete": false }) } else { last }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(route: &str, stream: &str) -> Value {
        let text = reassemble(route, stream.as_bytes()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    #[test]
    fn chat_chunks_become_text_and_tool_calls() {
        let stream = concat!(
            "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\",\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        let answer = parsed("chat", stream);
        assert_eq!(answer["choices"][0]["content"], "Hello");
        assert_eq!(answer["choices"][0]["tool_calls"][0]["arguments"], "{\"a\":1}");
        assert_eq!(answer["choices"][0]["tool_calls"][0]["id"], "c1");
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(answer["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn messages_events_become_blocks() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude\",\"usage\":{\"input_tokens\":9}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"x\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"2}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n"
        );
        let answer = parsed("messages", stream);
        assert_eq!(answer["content"][0]["text"], "Hi there");
        assert_eq!(answer["content"][1]["input"]["x"], 2);
        assert_eq!(answer["stop_reason"], "tool_use");
        assert_eq!(
            (answer["usage"]["input_tokens"].as_u64(), answer["usage"]["output_tokens"].as_u64()),
            (Some(9), Some(5))
        );
    }

    #[test]
    fn responses_streams_end_in_their_response_or_their_text() {
        let cut = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"par\"}\n\n\
                   event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"tial\"}\n\n";
        assert_eq!(parsed("responses", cut)["text"], "partial");
        let whole = format!(
            "{cut}event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"id\":\"r\",\"status\":\"completed\"}}}}\n\n"
        );
        assert_eq!(parsed("responses", &whole)["status"], "completed");
        assert_eq!(reassemble("chat", b"not a stream"), None);
    }
}
