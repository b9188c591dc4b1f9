//! Messages <-> chat, against Anthropic's documented shapes; streams as golden transcripts.

use super::*;
use crate::protocols::sse;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn labels() -> AnswerLabels {
    AnswerLabels {
        id: "r1".into(),
        model: "claude-sonnet-4-5".into(),
        created: 7,
        include_usage: false,
        max_kept_bytes: 1 << 20,
    }
}

/// A chat chunk with this delta (and finish reason).
fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// The events a writer produced: `(name, data)`.
fn events(out: &[Bytes]) -> Vec<(String, Value)> {
    let mut parser = sse::Parser::default();
    for bytes in out {
        parser.push(bytes);
    }
    std::iter::from_fn(|| parser.next_event())
        .map(|e| (e.name.unwrap_or_default(), serde_json::from_str(&e.data).unwrap_or(Value::Null)))
        .collect()
}

#[test]
fn the_edge_requires_what_anthropic_requires() {
    assert!(check(&map(json!({"max_tokens": 10, "messages": []}))).is_ok());
    let missing = check(&map(json!({"messages": []}))).err().map(|r| r.param);
    assert_eq!(missing, Some(Some("max_tokens")));
    assert!(check(&map(json!({"max_tokens": 0, "messages": []}))).is_err());
    assert!(check(&map(json!({"max_tokens": "5", "messages": []}))).is_err());
    assert_eq!(check(&map(json!({"max_tokens": 5}))).err().map(|r| r.param), Some(Some("messages")));
    assert!(check(&map(json!({"max_tokens": 5, "messages": [], "system": 3}))).is_err());
}

#[test]
fn requests_become_chat_with_tools_results_images_and_documents() {
    let body = map(json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use tools."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}, "title": "a.pdf"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 0.2, "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "stream": true
    }));
    let chat = to_chat(&body).unwrap_or_else(|e| unreachable!("{e:?}"));
    let messages = chat["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages[0], json!({"role": "system", "content": "Be brief.\nUse tools."}));
    assert_eq!(
        messages[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}})
    );
    assert_eq!(messages[1]["content"][2]["file"]["file_data"], "data:application/pdf;base64,JVBER");
    assert_eq!(messages[2]["content"], "Checking.");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}));
    assert_eq!(messages[4]["content"][0]["text"], "And tomorrow?");
    assert_eq!(chat["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
    assert_eq!((chat["tool_choice"].clone(), chat["parallel_tool_calls"].clone()), (json!("required"), json!(false)));
    assert_eq!(
        (chat["stop"].clone(), chat["user"].clone(), chat["max_tokens"].clone()),
        (json!(["END"]), json!("u-1"), json!(300))
    );
    assert_eq!(chat["stream"], true);
    assert!(chat.get("top_k").is_none(), "chat has no top_k");
}

/// Offered server tools are dropped (and named), client tools kept; earlier server-tool blocks in
/// assistant turns are left out with them.
#[test]
fn offered_server_tools_are_dropped_not_refused() {
    let body = map(json!({
        "max_tokens": 5,
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"name": "read_file", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "text", "text": "found it"},
            ]},
            {"role": "user", "content": "thanks"},
        ],
    }));
    let (chat, dropped) = to_chat_dropping(&body).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(dropped.list(), "web_search_20250305");
    let tools = chat["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["function"]["name"], "read_file");
    assert_eq!(chat["tool_choice"], "auto");
    assert_eq!(chat["messages"][1], json!({"role": "assistant", "content": "found it"}));
    // Only server tools offered: no tools and no tool choice left.
    let only = map(
        json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "auto"}}),
    );
    let (chat, dropped) = to_chat_dropping(&only).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert!(chat.get("tools").is_none() && chat.get("tool_choice").is_none(), "{chat:?}");
    assert!(!dropped.is_empty());
    // Requiring a tool call when only server tools are offered cannot be met.
    let mut any = only.clone();
    any.insert("tool_choice".into(), json!({"type": "any"}));
    assert_eq!(to_chat_dropping(&any).err().map(|r| r.param), Some(Some("tool_choice")));
}

#[test]
fn what_chat_cannot_say_is_refused() {
    // A server tool forced by tool_choice cannot be honoured by another provider.
    let forced = map(
        json!({"max_tokens": 5, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "tool", "name": "web_search"}}),
    );
    assert_eq!(to_chat(&forced).err().map(|r| r.param), Some(Some("tool_choice")));
    let file = map(
        json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
    );
    assert!(to_chat(&file).is_err());
    let role = map(json!({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}));
    assert!(to_chat(&role).is_err());
}

#[test]
fn answers_become_messages() {
    let chat = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me check.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}]});
    let tokens = TokenCounts {
        prompt: 20,
        completion: 9,
        cache_read: 8,
        cache_write: 0,
        reasoning: 0,
        ..TokenCounts::default()
    };
    let message: Value = serde_json::from_slice(&answer(&chat, &labels(), tokens)).unwrap_or_default();
    assert_eq!(message["type"], "message");
    assert_eq!(message["id"], "msg_r1");
    assert_eq!(message["model"], "claude-sonnet-4-5");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0], json!({"type": "text", "text": "Let me check."}));
    assert_eq!(
        message["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 0})
    );
    let length = json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
    let message: Value =
        serde_json::from_slice(&answer(&length, &labels(), TokenCounts::default())).unwrap_or_default();
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[test]
fn streams_become_anthropics_event_sequence_with_tool_json_in_order() {
    let mut writer = MessagesWriter::new(&labels());
    let mut out = Vec::new();
    let arguments = "{\"city\": \"Paris\", \"unit\": \"celsius\"}";
    writer.chunk(&chunk(json!({"role": "assistant", "content": ""}), Value::Null), &mut out).unwrap();
    for word in ["Let", " me", " check."] {
        writer.chunk(&chunk(json!({"content": word}), Value::Null), &mut out).unwrap();
    }
    writer.chunk(
        &chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), Value::Null),
        &mut out,
    ).unwrap();
    // The arguments split into many small pieces, as providers stream them.
    for piece in arguments.as_bytes().chunks(3) {
        let piece = String::from_utf8_lossy(piece).into_owned();
        writer
            .chunk(
                &chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), Value::Null),
                &mut out,
            )
            .unwrap();
    }
    writer.chunk(&chunk(json!({}), json!("tool_calls")), &mut out).unwrap();
    writer.end(
        TokenCounts {
            prompt: 30,
            completion: 12,
            cache_read: 0,
            cache_write: 0,
            reasoning: 0,
            ..TokenCounts::default()
        },
        &mut out,
    );
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let pieces = arguments.len().div_ceil(3);
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(["content_block_delta"; 3]);
    expected.extend(["content_block_stop", "content_block_start"]);
    expected.extend(std::iter::repeat_n("content_block_delta", pieces));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "each event's data names its type");
    }
    assert_eq!(events[0].1["message"]["id"], "msg_r1");
    assert_eq!(events[2].1["content_block"], json!({"type": "text", "text": ""}));
    assert_eq!(events[7].1["index"], 1);
    assert_eq!(events[7].1["content_block"]["id"], "call_1");
    let json: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(json, arguments);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert_eq!(delta["usage"]["input_tokens"], 30);
}

#[test]
fn reasoning_becomes_a_thinking_block_and_failures_an_error_event() {
    let mut writer = MessagesWriter::new(&labels());
    let mut out = Vec::new();
    writer.chunk(&chunk(json!({"reasoning_content": "Think."}), Value::Null), &mut out).unwrap();
    writer.chunk(&chunk(json!({"content": "Answer."}), Value::Null), &mut out).unwrap();
    writer.fail("upstream broke", perpetuo_types::ErrorClass::StreamCut, &mut out);
    let events = events(&out);
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(events[3].1["delta"], json!({"type": "thinking_delta", "thinking": "Think."}));
    assert_eq!(events[5].1["content_block"]["type"], "text");
    let last = &events[events.len() - 1];
    assert_eq!(last.0, "error");
    assert_eq!(last.1, json!({"type": "error", "error": {"type": "api_error", "message": "upstream broke"}}));
}

#[test]
fn an_empty_stream_still_has_a_whole_sequence() {
    let mut writer = MessagesWriter::new(&labels());
    let mut out = Vec::new();
    writer.end(TokenCounts::default(), &mut out);
    let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["message_start", "ping", "message_delta", "message_stop"]);
}

#[test]
fn one_hour_cache_writes_and_web_searches_are_read_and_written_back() {
    let usage = json!({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 300, "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "server_tool_use": {"web_search_requests": 2}});
    let counts = tokens(&usage);
    assert_eq!((counts.prompt, counts.cache_write, counts.cache_write_1h, counts.web_searches), (410, 300, 200, 2));
    assert_eq!(tokens(&super::usage(&counts)), counts, "usage reads back as it was written");
    // A report claiming more 1-hour writes than writes is held to the writes.
    let odd = json!({"input_tokens": 1, "cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 50}});
    assert_eq!(tokens(&odd).cache_write_1h, 5);
}

#[test]
fn structured_outputs_reach_chat_as_a_strict_json_schema() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
    let expected = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
    for body in [
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "output_format": {"type": "json_schema", "schema": schema}}),
    ] {
        let chat = to_chat(&map(body)).unwrap();
        assert_eq!(chat["response_format"], expected);
    }
    let plain = to_chat(&map(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})));
    assert!(plain.unwrap().get("response_format").is_none());
    let bad = map(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "xml"}}}));
    assert_eq!(to_chat(&bad).unwrap_err().param, Some("output_config"));
}
