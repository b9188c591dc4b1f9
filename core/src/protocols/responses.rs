//! OpenAI Responses (`POST /v1/responses`) as a client protocol: what the edge checks, the
//! request as chat completions for providers that do not speak it, and chat answers and chunks
//! written back as a response object and its typed, numbered events. Perpetuo keeps no response
//! state: `previous_response_id` only works where the provider keeps it (OpenAI itself).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::chat::{AnswerParts, ChatSink, Delta};
use super::tools::{Dropped, ToolNames, flat_name};
use super::{AnswerLabels, Refusal};
use crate::protocols::StreamFault;
use crate::usage::TokenCounts;

/// Checks the request's shape before anything is routed.
pub fn check(body: &Map<String, Value>) -> Result<(), Refusal> {
    match body.get("input") {
        Some(Value::String(_) | Value::Array(_)) => {}
        None | Some(Value::Null) => return Err(Refusal::new("Missing required parameter: 'input'.", Some("input"))),
        Some(_) => return Err(Refusal::new("'input' must be a string or a list of items.", Some("input"))),
    }
    match body.get("max_output_tokens") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(()),
        Some(_) => Err(Refusal::new("'max_output_tokens' must be a positive integer.", Some("max_output_tokens"))),
    }
}

/// Why a request cannot go to a provider that keeps no response state for Perpetuo.
pub fn stateless_refusal(body: &Map<String, Value>) -> Option<Refusal> {
    body.get("previous_response_id").filter(|v| !v.is_null()).map(|_| {
        Refusal::new(
            "`previous_response_id` needs a provider that stores responses (OpenAI). This model is served by \
             another provider, and Perpetuo keeps no conversation state: send the whole conversation in `input`.",
            Some("previous_response_id"),
        )
    })
}

/// The Responses API's `usage` read as token counts.
pub fn tokens(usage: &Value) -> TokenCounts {
    let field = |f: &str| usage.get(f).and_then(Value::as_u64).unwrap_or(0);
    let detail = |d: &str, f: &str| usage.get(d).and_then(|d| d.get(f)).and_then(Value::as_u64).unwrap_or(0);
    TokenCounts {
        prompt: field("input_tokens"),
        completion: field("output_tokens"),
        cache_read: detail("input_tokens_details", "cached_tokens"),
        cache_write: 0,
        reasoning: detail("output_tokens_details", "reasoning_tokens"),
        ..TokenCounts::default()
    }
}

/// The Responses API's `usage` object for these counts.
pub fn usage(t: &TokenCounts) -> Value {
    json!({
        "input_tokens": t.prompt,
        "input_tokens_details": {"cached_tokens": t.cache_read},
        "output_tokens": t.completion,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.prompt + t.completion,
    })
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(message, Some("input"))
}

/// A Responses request as a chat completions request (for providers that do not speak it).
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, Refusal> {
    to_chat_dropping(body).map(|(chat, _)| chat)
}

/// The same, and the hosted tools it goes without: a tool the client merely offers and the
/// provider cannot run is dropped (offering is permission, not a requirement); a `tool_choice`
/// that forces one is refused. Namespaced tools become function tools named
/// `namespace__tool` (see `tools::flat_name`), and calls sent back in `input` are named the same.
pub fn to_chat_dropping(body: &Map<String, Value>) -> Result<(Map<String, Value>, Dropped), Refusal> {
    let mut dropped = Dropped::default();
    if let Some(refusal) = stateless_refusal(body) {
        return Err(refusal);
    }
    let mut messages: Vec<Value> = Vec::new();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for item in items {
                input_item(item, &mut messages, &mut dropped)?;
            }
        }
        _ => return Err(invalid("'input' must be a string or a list of items.")),
    }
    let mut chat = Map::new();
    chat.insert("model".into(), body.get("model").cloned().unwrap_or(Value::Null));
    chat.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
        ("stream", "stream"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(effort) = body.get("reasoning").and_then(|r| r.get("effort")).filter(|e| e.is_string()) {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(format) = body.get("text").and_then(|t| t.get("format")) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let mut schema = json!({"name": format.get("name").cloned().unwrap_or(json!("response")), "schema": format.get("schema")});
                if let Some(strict) = format.get("strict") {
                    schema["strict"] = strict.clone();
                }
                chat.insert("response_format".into(), json!({"type": "json_schema", "json_schema": schema}));
            }
            Some("json_object") => {
                chat.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("text") | None => {}
            Some(other) => return Err(Refusal::new(format!("Unknown text.format type `{other}`."), Some("text"))),
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut functions = Vec::new();
        for offered in tools {
            match offered.get("type").and_then(Value::as_str).unwrap_or("function") {
                "function" => functions.push(tool(offered, None)),
                "namespace" => {
                    let namespace = offered.get("name").and_then(Value::as_str).unwrap_or_default();
                    for inner in offered.get("tools").and_then(Value::as_array).into_iter().flatten() {
                        match inner.get("type").and_then(Value::as_str).unwrap_or("function") {
                            "function" => functions.push(tool(inner, Some(namespace))),
                            other => dropped.add(&format!("{namespace}.{other}")),
                        }
                    }
                }
                "custom" => {
                    return Err(Refusal::new(
                        "Custom (free-form) tools cannot be sent to this model's provider yet; only function tools.",
                        Some("tools"),
                    ));
                }
                hosted => dropped.add(hosted),
            }
        }
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    match body.get("tool_choice") {
        Some(Value::String(s)) => {
            chat.insert("tool_choice".into(), Value::String(s.clone()));
        }
        Some(Value::Object(choice)) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice.get("name").and_then(Value::as_str).unwrap_or_default();
            let name = match choice.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_owned(),
            };
            chat.insert("tool_choice".into(), json!({"type": "function", "function": {"name": name}}));
        }
        Some(Value::Object(choice)) => {
            let kind = choice.get("type").and_then(Value::as_str).unwrap_or("unknown");
            return Err(Refusal::new(
                format!(
                    "`tool_choice` forces the hosted tool `{kind}`, which only OpenAI runs; this model's provider cannot. \
                     Offer it without forcing it (it is then left out here), or choose a function tool."
                ),
                Some("tool_choice"),
            ));
        }
        _ => {}
    }
    // With every offered tool dropped, a tool choice has nothing to choose from; one that
    // requires a tool call could only be met by a dropped one.
    if !chat.contains_key("tools")
        && !dropped.is_empty()
        && chat.get("tool_choice").and_then(Value::as_str) == Some("required")
    {
        return Err(Refusal::new(
            format!(
                "`tool_choice: required` with only hosted tools ({}), which this model's provider cannot run.",
                dropped.list()
            ),
            Some("tool_choice"),
        ));
    }
    if !chat.contains_key("tools") {
        chat.remove("tool_choice");
        chat.remove("parallel_tool_calls");
    }
    Ok((chat, dropped))
}

/// A function tool as chat's, named `namespace__name` when it belongs to a namespace.
fn tool(tool: &Value, namespace: Option<&str>) -> Value {
    let name = match (namespace, tool.get("name").and_then(Value::as_str)) {
        (Some(namespace), Some(name)) => Value::String(flat_name(namespace, name)),
        (_, name) => name.map_or(Value::Null, |n| Value::String(n.to_owned())),
    };
    let mut function = json!({"name": name, "parameters": tool.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
    for field in ["description", "strict"] {
        if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
            function[field] = v.clone();
        }
    }
    json!({"type": "function", "function": function})
}

/// One input item as chat messages: function calls join the assistant turn before them.
fn input_item(item: &Value, messages: &mut Vec<Value>, dropped: &mut Dropped) -> Result<(), Refusal> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let role = match role {
                "user" | "assistant" | "system" => role,
                "developer" => "system",
                other => return Err(invalid(format!("Unknown message role `{other}`."))),
            };
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) if role == "user" => {
                    Value::Array(parts.iter().map(user_part).collect::<Result<Vec<_>, _>>()?)
                }
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match part.get("type").and_then(Value::as_str) {
                            Some("output_text" | "input_text" | "text") => {
                                text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default());
                            }
                            Some("refusal") => {
                                text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or_default());
                            }
                            other => {
                                return Err(invalid(format!(
                                    "Content of type `{}` in a {role} message cannot be sent to this model's provider.",
                                    other.unwrap_or("unknown")
                                )));
                            }
                        }
                    }
                    Value::String(text)
                }
                _ => return Err(invalid("Messages need `content`: a string or a list of parts.")),
            };
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let name = match (item.get("namespace").and_then(Value::as_str), item.get("name").and_then(Value::as_str)) {
                (Some(namespace), Some(name)) => Value::String(flat_name(namespace, name)),
                (_, name) => name.map_or(Value::Null, |n| Value::String(n.to_owned())),
            };
            let call = json!({
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": name, "arguments": item.get("arguments").cloned().unwrap_or(json!("{}"))},
            });
            let joins = messages.last().is_some_and(|m| {
                m.get("role").and_then(Value::as_str) == Some("assistant") && m.get("tool_calls").is_some()
            });
            match messages.last_mut() {
                Some(last) if joins => {
                    if let Some(calls) = last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        calls.push(call);
                    }
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id"), "content": output}));
        }
        // A reasoning item is the provider's own state: nothing another provider can read.
        "reasoning" => {}
        // A hosted tool's call (and its output) from an earlier turn on OpenAI: the tool is not
        // offered here, so its traces are left out with it.
        hosted if hosted.ends_with("_call") || hosted.ends_with("_call_output") => {
            let tool = hosted.trim_end_matches("_output").trim_end_matches("_call");
            if tool == "custom_tool" {
                return Err(invalid("Custom (free-form) tool calls cannot be sent to this model's provider yet."));
            }
            dropped.add(tool);
        }
        other => {
            return Err(invalid(format!("Input items of type `{other}` cannot be sent to this model's provider.")));
        }
    }
    Ok(())
}

fn user_part(part: &Value) -> Result<Value, Refusal> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "text") => Ok(json!({"type": "text", "text": part.get("text")})),
        Some("input_image") => {
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`input_image` needs an `image_url` (file ids are OpenAI's own)."))?;
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| d.is_string()) {
                image["detail"] = detail.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => match part.get("file_data").and_then(Value::as_str) {
            Some(data) => Ok(
                json!({"type": "file", "file": {"filename": part.get("filename").cloned().unwrap_or(json!("file")), "file_data": data}}),
            ),
            None => {
                Err(invalid("`input_file` needs `file_data` for this model's provider (file ids are OpenAI's own)."))
            }
        },
        other => Err(invalid(format!(
            "Content of type `{}` cannot be sent to this model's provider.",
            other.unwrap_or("unknown")
        ))),
    }
}

/// The response object around `output`: the fields the SDKs read.
fn response_object(labels: &AnswerLabels, status: &str, output: Vec<Value>, tokens: Option<&TokenCounts>) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": format!("resp_{}", labels.id),
        "object": "response",
        "created_at": labels.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "model": labels.model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "metadata": {},
        "usage": tokens.map(usage),
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": if status == "in_progress" { json!([]) } else { json!([{"type": "output_text", "text": text, "annotations": []}]) },
    })
}

/// A function call item, under the name the client offered (a namespaced tool's own name and
/// its `namespace`).
fn call_item(names: &ToolNames, id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    let mut item = json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status});
    if let Some((namespace, own)) = names.split(name) {
        item["name"] = json!(own);
        item["namespace"] = json!(namespace);
    }
    item
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

/// A whole chat answer as a response object.
pub fn answer(chat: &Value, labels: &AnswerLabels, tokens: TokenCounts, names: &ToolNames) -> Bytes {
    let parts = AnswerParts::of(chat);
    let mut output = Vec::new();
    if !parts.reasoning.is_empty() {
        output.push(reasoning_item(&format!("rs_{}", labels.id), &parts.reasoning));
    }
    if !parts.text.is_empty() || parts.tool_calls.is_empty() {
        output.push(message_item(&format!("msg_{}", labels.id), &parts.text, "completed"));
    }
    for (n, (call_id, name, arguments)) in parts.tool_calls.iter().enumerate() {
        output.push(call_item(names, &format!("fc_{}_{n}", labels.id), call_id, name, arguments, "completed"));
    }
    let status = if parts.finish_reason.as_deref() == Some("length") { "incomplete" } else { "completed" };
    Bytes::from(serde_json::to_vec(&response_object(labels, status, output, Some(&tokens))).unwrap_or_default())
}

mod stream;

pub use stream::ResponsesWriter;

#[cfg(test)]
mod tests;
