//! Responses <-> chat, against OpenAI's documented shapes; streams as golden transcripts.

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

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

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
fn the_edge_checks_input() {
    assert!(check(&map(json!({"input": "hi"}))).is_ok());
    assert!(check(&map(json!({"input": []}))).is_ok());
    assert_eq!(check(&map(json!({}))).err().map(|r| r.param), Some(Some("input")));
    assert!(check(&map(json!({"input": 3}))).is_err());
    assert!(check(&map(json!({"input": "x", "max_output_tokens": -1}))).is_err());
}

#[test]
fn requests_become_chat_with_items_tools_and_formats() {
    let body = map(json!({
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}, {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "18C at noon."}]},
            {"role": "developer", "content": "Answer in French."}
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": false,
        "max_output_tokens": 100,
        "temperature": 0.5,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "reasoning": {"effort": "low"},
        "store": true,
        "stream": true
    }));
    let chat = to_chat(&body).unwrap_or_else(|e| unreachable!("{e:?}"));
    let messages = chat["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(messages[1]["content"][0], json!({"type": "text", "text": "Weather?"}));
    assert_eq!(messages[1]["content"][1]["image_url"], json!({"url": "https://x/y.png", "detail": "low"}));
    assert_eq!(
        messages[2]["tool_calls"].as_array().map(Vec::len),
        Some(2),
        "consecutive calls join one assistant turn"
    );
    assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"}));
    assert_eq!(messages[5], json!({"role": "assistant", "content": "18C at noon."}));
    assert_eq!(messages[6], json!({"role": "system", "content": "Answer in French."}));
    assert_eq!(chat["tools"][0]["function"]["strict"], true);
    assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!((chat["max_tokens"].clone(), chat["reasoning_effort"].clone()), (json!(100), json!("low")));
    assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert!(chat.get("store").is_none(), "Perpetuo keeps nothing; the provider is not asked to");
    assert_eq!(
        to_chat(&map(json!({"input": "hi"}))).map(|c| c["messages"].clone()).ok(),
        Some(json!([{"role": "user", "content": "hi"}]))
    );
}

#[test]
fn stateful_features_and_forced_hosted_tools_are_refused_away_from_openai() {
    let previous = map(json!({"input": "more", "previous_response_id": "resp_1"}));
    let refusal = to_chat(&previous).err();
    assert_eq!(refusal.as_ref().map(|r| r.param), Some(Some("previous_response_id")));
    assert!(refusal.is_some_and(|r| r.message.contains("Perpetuo keeps no conversation state")));
    let hosted = map(json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}));
    assert_eq!(to_chat(&hosted).err().map(|r| r.param), Some(Some("tool_choice")));
    let custom = map(json!({"input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}));
    assert_eq!(to_chat(&custom).err().map(|r| r.param), Some(Some("tools")));
    let reference = map(json!({"input": [{"type": "item_reference", "id": "msg_1"}]}));
    assert!(to_chat(&reference).is_err());
}

#[test]
fn answers_become_response_objects() {
    let chat = json!({"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}]});
    let tokens = TokenCounts {
        prompt: 20,
        completion: 9,
        cache_read: 4,
        cache_write: 0,
        reasoning: 2,
        ..TokenCounts::default()
    };
    let response: Value =
        serde_json::from_slice(&answer(&chat, &labels(), tokens, &ToolNames::default())).unwrap_or_default();
    assert_eq!((response["object"].clone(), response["status"].clone()), (json!("response"), json!("completed")));
    assert_eq!(response["id"], "resp_r1");
    assert_eq!(
        response["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Checking.", "annotations": []})
    );
    assert_eq!(response["output"][1]["type"], "function_call");
    assert_eq!(response["output"][1]["call_id"], "call_1");
    assert_eq!(response["output"][1]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(response["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(response["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(response["usage"]["total_tokens"], 29);
    let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
    let response: Value =
        serde_json::from_slice(&answer(&cut, &labels(), TokenCounts::default(), &ToolNames::default()))
            .unwrap_or_default();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(tokens, super::tokens(&usage(&tokens)), "usage reads back as it was written");
}

#[test]
fn streams_become_numbered_typed_events_with_arguments_in_order() {
    let mut writer = ResponsesWriter::new(&labels(), Default::default());
    let mut out = Vec::new();
    writer.chunk(&chunk(json!({"role": "assistant", "content": ""}), Value::Null), &mut out).unwrap();
    for word in ["Let", " me", " check."] {
        writer.chunk(&chunk(json!({"content": word}), Value::Null), &mut out).unwrap();
    }
    let arguments = "{\"city\": \"Paris\"}";
    writer.chunk(
        &chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        &mut out,
    ).unwrap();
    for piece in arguments.as_bytes().chunks(2) {
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
        TokenCounts { prompt: 5, completion: 6, cache_read: 0, cache_write: 0, reasoning: 0, ..TokenCounts::default() },
        &mut out,
    );
    let events = events(&out);
    for (n, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], n, "numbered from 0 without gaps");
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let pieces = arguments.len().div_ceil(2);
    let mut expected =
        vec!["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"];
    expected.extend(["response.output_text.delta"; 3]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]);
    expected.extend(std::iter::repeat_n("response.function_call_arguments.delta", pieces));
    expected.extend(["response.function_call_arguments.done", "response.output_item.done", "response.completed"]);
    assert_eq!(names, expected);
    let text_done = &events[7].1;
    assert_eq!((text_done["text"].clone(), text_done["output_index"].clone()), (json!("Let me check."), json!(0)));
    let call_added = &events[10].1;
    assert_eq!(call_added["output_index"], 1);
    assert_eq!(call_added["item"]["call_id"], "call_1");
    let streamed: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(streamed, arguments);
    let completed = &events[events.len() - 1].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], "Let me check.");
    assert_eq!(completed["output"][1]["arguments"], arguments);
    assert_eq!(completed["usage"]["output_tokens"], 6);
}

#[test]
fn a_cut_answer_is_incomplete_and_a_failure_says_so() {
    let mut writer = ResponsesWriter::new(&labels(), Default::default());
    let mut out = Vec::new();
    writer.chunk(&chunk(json!({"content": "abc"}), json!("length")), &mut out).unwrap();
    writer.end(TokenCounts::default(), &mut out);
    assert_eq!(events(&out).last().map(|(n, _)| n.clone()), Some("response.incomplete".into()));
    let mut writer = ResponsesWriter::new(&labels(), Default::default());
    let mut out = Vec::new();
    writer.chunk(&chunk(json!({"content": "abc"}), Value::Null), &mut out).unwrap();
    writer.fail("cut", perpetuo_types::ErrorClass::StreamCut, &mut out);
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[names.len() - 2..], ["error", "response.failed"]);
    assert_eq!(events[events.len() - 2].1["code"], "stream_cut");
}

#[test]
fn a_stream_that_keeps_more_than_the_cap_ends_with_an_error() {
    let mut labels = labels();
    labels.max_kept_bytes = 1000;
    let mut writer = ResponsesWriter::new(&labels, Default::default());
    let mut out = Vec::new();
    let piece = "x".repeat(300);
    for _ in 0..3 {
        writer.chunk(&chunk(json!({"content": piece}), Value::Null), &mut out).unwrap();
    }
    assert_eq!(
        writer.chunk(&chunk(json!({"content": piece}), Value::Null), &mut out),
        Err(crate::protocols::StreamFault::TooLarge),
        "past the cap: the relay ends the stream with an error event"
    );
}

/// A request shaped like Codex's: function tools, a namespace of function tools, a hosted
/// `web_search`, `include`, `prompt_cache_key`, `client_metadata`, and an earlier turn's
/// namespaced call and web search in `input`.
fn codex_request() -> Map<String, Value> {
    map(json!({
        "model": "claude-sonnet-4-5",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "spawn a helper"}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
            {"type": "function_call", "call_id": "call_1", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{\"task\":\"a\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "spawned"},
        ],
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Spawn.", "parameters": {"type": "object"}},
                {"type": "function", "name": "wait", "parameters": {"type": "object"}},
            ]},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "client_metadata": {"originator": "codex_cli_rs"},
        "store": false,
        "stream": true,
    }))
}

#[test]
fn a_codex_request_translates_with_namespaces_flattened_and_hosted_tools_dropped() {
    let (chat, dropped) = to_chat_dropping(&codex_request()).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(dropped.list(), "web_search");
    let names: Vec<&str> =
        chat["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(names, ["shell", "multi_agent_v1__spawn_agent", "multi_agent_v1__wait"]);
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "multi_agent_v1__spawn_agent", "{messages:?}");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(chat["tool_choice"], "auto");
    for absent in ["include", "prompt_cache_key", "client_metadata", "store"] {
        assert!(chat.get(absent).is_none(), "{absent} is OpenAI's own");
    }
    // Forcing the hosted tool is refused, clearly.
    let mut forced = codex_request();
    forced.insert("tool_choice".into(), json!({"type": "web_search"}));
    let refusal = to_chat_dropping(&forced).err().unwrap_or_else(|| unreachable!());
    assert_eq!(refusal.param, Some("tool_choice"));
    assert!(refusal.message.contains("web_search"), "{}", refusal.message);
    // Requiring a call when only hosted tools are offered cannot be met either.
    let required = map(json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"}));
    assert_eq!(to_chat_dropping(&required).err().map(|r| r.param), Some(Some("tool_choice")));
    let auto = map(json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto"}));
    let (chat, dropped) = to_chat_dropping(&auto).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert!(chat.get("tool_choice").is_none() && chat.get("tools").is_none() && dropped.list() == "web_search");
}

#[test]
fn namespaced_calls_come_back_under_the_names_offered() {
    let names = crate::protocols::ToolNames::of_responses(&codex_request());
    let chat = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_2", "type": "function", "function": {"name": "multi_agent_v1__wait", "arguments": "{}"}},
        {"id": "call_3", "type": "function", "function": {"name": "shell", "arguments": "{}"}},
    ]}, "finish_reason": "tool_calls"}]});
    let response: Value = serde_json::from_slice(&answer(&chat, &labels(), TokenCounts::default(), &names)).unwrap();
    let calls: Vec<&Value> =
        response["output"].as_array().unwrap().iter().filter(|i| i["type"] == "function_call").collect();
    assert_eq!((calls[0]["name"].as_str(), calls[0]["namespace"].as_str()), (Some("wait"), Some("multi_agent_v1")));
    assert_eq!((calls[1]["name"].as_str(), calls[1].get("namespace")), (Some("shell"), None));

    // Streamed: the added and done items carry the name the client offered.
    let mut writer = ResponsesWriter::new(&labels(), names);
    let mut out = Vec::new();
    let chunk = json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_4", "type": "function", "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}]}}]});
    writer.chunk(&chunk, &mut out).unwrap();
    writer.end(TokenCounts::default(), &mut out);
    let text: String = out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(text.contains(r#""name":"spawn_agent""#) && text.contains(r#""namespace":"multi_agent_v1""#), "{text}");
    assert!(!text.contains("multi_agent_v1__"), "the flat name never reaches the client: {text}");
}
