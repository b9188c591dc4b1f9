//! Prompt-cache breakpoints for calls translated to Anthropic. An OpenAI-style client gets prefix
//! caching from OpenAI without asking; Anthropic caches only up to `cache_control` breakpoints,
//! and a client that does not know it is talking to Claude sends none, so its long system prompt
//! or agent transcript would be paid in full on every turn. Perpetuo places them as Anthropic
//! advises for a stable prefix: at the end of the tools and system prompt, at the end of the
//! conversation so far, and at the previous user turn's end (so that the next turn, which
//! extends this one, finds the prefix it wrote), at most four with the client's own, and only
//! where the prefix is long enough for the model to cache at all.

use serde_json::{Map, Value, json};

/// Anthropic's limit on `cache_control` blocks per request.
const MAX_BREAKPOINTS: usize = 4;

/// The shortest prefix (in tokens) the model caches: shorter ones are neither written nor read,
/// so a breakpoint there would only use up one of the four. Anthropic's published minimums.
pub(super) fn min_cacheable_tokens(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    if ["opus-4-5", "opus-4-6", "opus-4-7", "haiku-4-5"].iter().any(|v| m.contains(v)) {
        4096
    } else if m.contains("haiku-3") || m.contains("3-haiku") || m.contains("3-5-haiku") || m.contains("sonnet-4-6") {
        2048
    } else {
        1024
    }
}

/// A block's size in tokens, estimated from its JSON (about four bytes a token for English and
/// code; images count by their encoded size, which overestimates, so a breakpoint after one is
/// placed rather than missed).
fn tokens(block: &Value) -> u64 {
    u64::try_from(block.to_string().len() / 4).unwrap_or(u64::MAX)
}

fn has_breakpoint(block: &Value) -> bool {
    block.get("cache_control").is_some()
}

/// Where a breakpoint can go, in the order Anthropic reads the prompt: each tool, each system
/// block, each message's content blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spot {
    Tool(usize),
    System(usize),
    Message(usize, usize),
}

fn block_at(request: &mut Map<String, Value>, spot: Spot) -> Option<&mut Value> {
    match spot {
        Spot::Tool(i) => request.get_mut("tools")?.get_mut(i),
        Spot::System(i) => request.get_mut("system")?.get_mut(i),
        Spot::Message(m, b) => request.get_mut("messages")?.get_mut(m)?.get_mut("content")?.get_mut(b),
    }
}

/// Places breakpoints on a translated request for `model` (see the module's text).
pub(super) fn place_breakpoints(request: &mut Map<String, Value>, model: &str) {
    let minimum = min_cacheable_tokens(model);
    // Every spot with the prefix size up to and including it, and the client's own breakpoints.
    let mut spots: Vec<(Spot, u64)> = Vec::new();
    let mut prefix = 0u64;
    let mut existing = 0usize;
    let mut seen = |spot: Spot, block: &Value, spots: &mut Vec<(Spot, u64)>| {
        prefix = prefix.saturating_add(tokens(block));
        existing += usize::from(has_breakpoint(block));
        spots.push((spot, prefix));
    };
    for (i, tool) in request.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        seen(Spot::Tool(i), tool, &mut spots);
    }
    for (i, block) in request.get("system").and_then(Value::as_array).into_iter().flatten().enumerate() {
        seen(Spot::System(i), block, &mut spots);
    }
    // User turns' last blocks, to mark the conversation's end and the previous turn's.
    let mut user_ends: Vec<usize> = Vec::new();
    for (m, message) in request.get("messages").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let blocks = message.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (b, block) in blocks.iter().enumerate() {
            seen(Spot::Message(m, b), block, &mut spots);
        }
        if !blocks.is_empty() && message.get("role").and_then(Value::as_str) == Some("user") {
            user_ends.push(spots.len() - 1);
        }
    }
    let last_of = |pred: &dyn Fn(&Spot) -> bool| spots.iter().rposition(|(s, _)| pred(s));
    let mut wanted: Vec<usize> = Vec::new();
    // The stable head: the system prompt's end, or the tools' end when there is no system prompt.
    if let Some(head) = last_of(&|s| matches!(s, Spot::System(_))).or_else(|| last_of(&|s| matches!(s, Spot::Tool(_))))
    {
        wanted.push(head);
    }
    // The conversation so far, and the turn before it.
    if let Some(&end) = user_ends.last() {
        wanted.push(end);
    }
    if user_ends.len() >= 2 {
        wanted.push(user_ends[user_ends.len() - 2]);
    }
    wanted.sort_unstable();
    wanted.dedup();
    // Latest first: the conversation's end caches the most.
    let mut room = MAX_BREAKPOINTS.saturating_sub(existing);
    for index in wanted.into_iter().rev() {
        let Some(&(spot, size)) = spots.get(index) else { continue };
        if room == 0 {
            break;
        }
        if size < minimum {
            continue;
        }
        if let Some(block) = block_at(request, spot).and_then(Value::as_object_mut)
            && !block.contains_key("cache_control")
        {
            block.insert("cache_control".into(), json!({"type": "ephemeral"}));
            room -= 1;
        }
    }
}

/// The client's own `cache_control` on a chat content part, kept on the block it becomes
/// (Anthropic's own marker, which OpenAI-style clients that know Claude send: LiteLLM, Portkey).
pub(super) fn keep_client_breakpoint(part: &Value, block: &mut Value) {
    if let (Some(control), Some(block)) = (part.get("cache_control").filter(|c| c.is_object()), block.as_object_mut()) {
        block.insert("cache_control".into(), control.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(n: usize) -> String {
        "All work and no play makes Jack a dull boy. ".repeat(n)
    }

    fn breakpoints(request: &Map<String, Value>) -> Vec<String> {
        let mut found = Vec::new();
        for (i, t) in request.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if has_breakpoint(t) {
                found.push(format!("tool {i}"));
            }
        }
        for (i, b) in request.get("system").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if has_breakpoint(b) {
                found.push(format!("system {i}"));
            }
        }
        for (m, message) in request["messages"].as_array().into_iter().flatten().enumerate() {
            for (b, block) in message["content"].as_array().into_iter().flatten().enumerate() {
                if has_breakpoint(block) {
                    found.push(format!("message {m}.{b}"));
                }
            }
        }
        found
    }

    fn request(system: &str, turns: usize) -> Map<String, Value> {
        let mut messages = Vec::new();
        for t in 0..turns {
            messages.push(json!({"role": "user", "content": [{"type": "text", "text": format!("question {t}")}]}));
            if t + 1 < turns {
                messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "answer"}]}));
            }
        }
        json!({"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": system}], "messages": messages})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_long_system_prompt_and_the_conversation_get_breakpoints() {
        let mut r = request(&long(200), 3);
        place_breakpoints(&mut r, "claude-sonnet-4-5");
        assert_eq!(breakpoints(&r), ["system 0", "message 2.0", "message 4.0"]);
        assert_eq!(r["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    }

    #[test]
    fn short_prefixes_get_none_and_minimums_follow_the_model() {
        let mut short = request("Be brief.", 2);
        place_breakpoints(&mut short, "claude-sonnet-4-5");
        assert!(breakpoints(&short).is_empty(), "{:?}", breakpoints(&short));
        // About 2,200 tokens: enough for Sonnet 4.5, not for Haiku 4.5 (4,096).
        let mut mid = request(&long(200), 1);
        place_breakpoints(&mut mid, "claude-haiku-4-5");
        assert!(breakpoints(&mid).is_empty());
        place_breakpoints(&mut mid, "claude-sonnet-4-5-20250929");
        assert_eq!(breakpoints(&mid), ["system 0", "message 0.0"]);
    }

    #[test]
    fn the_clients_own_breakpoints_count_toward_four() {
        let mut r = request(&long(300), 3);
        let tools: Vec<Value> = (0..3)
            .map(|i| json!({"name": format!("t{i}"), "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}))
            .collect();
        r.insert("tools".into(), Value::Array(tools));
        place_breakpoints(&mut r, "claude-sonnet-4-5");
        let found = breakpoints(&r);
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found.last().map(String::as_str), Some("message 4.0"), "the conversation's end comes first");
    }
}
