//! Translation both ways, against Anthropic's documented shapes.

use super::stream::{ChatChunks, finish_reason, response};
use super::*;
use crate::protocols::chat::{ChatWriter, Composed};
use crate::protocols::sse;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn request_translation_covers_system_images_tools_and_results() {
    let body = map(json!({
        "model": "anthropic/claude-3-5-haiku",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 0.2,
        "user": "u-1"
    }));
    let out = request(&body, "claude-3-5-haiku", true, 4096).unwrap();
    assert_eq!(out["model"], "claude-3-5-haiku");
    assert_eq!(out["system"], json!([{"type": "text", "text": "Be brief."}]));
    assert_eq!(out["max_tokens"], 4096, "the call's bound");
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["temperature"], 0.2);
    assert_eq!(out["stream"], true);
    assert_eq!(out["metadata"]["user_id"], "u-1");
    assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "lookup", "disable_parallel_tool_use": true}));
    assert_eq!(out["tools"][0]["input_schema"]["properties"]["q"]["type"], "string");
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "tool result and the next user turn merge: {messages:?}");
    assert_eq!(
        messages[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(messages[0]["content"][2]["source"], json!({"type": "url", "url": "https://example.com/cat.png"}));
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}})
    );
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
    assert_eq!(messages[2]["content"][1], json!({"type": "text", "text": "Thanks"}));
}

#[test]
fn empty_text_is_left_out() {
    let body = map(json!({"messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]}));
    let out = request(&body, "m", false, 4096).unwrap();
    assert!(out.get("system").is_none());
    assert_eq!(out["messages"][0]["content"], json!([{"type": "text", "text": "hi"}]));
    assert_eq!(out["messages"][1]["content"], json!([{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]));
}

#[test]
fn tool_choice_variants() {
    for (choice, expected) in
        [("auto", json!({"type": "auto"})), ("required", json!({"type": "any"})), ("none", json!({"type": "none"}))]
    {
        let body =
            map(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice, "max_tokens": 10}));
        let out = request(&body, "m", false, 10).unwrap();
        assert_eq!(out["tool_choice"], expected);
        assert_eq!(out["max_tokens"], 10);
        assert!(out.get("stream").is_none());
    }
}

#[test]
fn bad_messages_are_client_errors() {
    for body in
        [json!({}), json!({"messages": [{"content": "x"}]}), json!({"messages": [{"role": "wizard", "content": "x"}]})]
    {
        assert!(request(&map(body), "m", false, 4096).is_err());
    }
}

#[test]
fn response_translation() {
    let body = json!({
        "id": "msg_1", "model": "claude-x", "stop_reason": "tool_use",
        "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
    });
    let (out, counts) = response(&body, "claude-x", 42);
    assert_eq!(
        counts,
        TokenCounts {
            prompt: 15,
            completion: 7,
            cache_read: 5,
            cache_write: 0,
            reasoning: 0,
            ..TokenCounts::default()
        }
    );
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["choices"][0]["message"]["content"], "Checking.");
    assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"q\":\"cat\"}");
    assert_eq!(out["usage"]["total_tokens"], 22);
    assert_eq!(finish_reason(Some("max_tokens")), "length");
    assert_eq!(finish_reason(Some("end_turn")), "stop");
}

#[test]
fn stream_translation_keeps_tool_arguments_in_order() {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "m1", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let labels = AnswerLabels {
        id: "1".into(),
        model: "claude-x".into(),
        created: 1,
        include_usage: true,
        max_kept_bytes: 1 << 20,
    };
    let mut t = Composed::new(Box::new(ChatChunks::new("claude-x", 1)), Box::new(ChatWriter::new(&labels)));
    let mut out = Vec::new();
    for (name, data) in events {
        t.event(
            &sse::Event { name: Some(name.into()), data: data.to_string() },
            &mut out,
            &mut crate::usage::estimate::OutputMeter::default(),
        )
        .unwrap();
    }
    let chunks: Vec<Value> = out
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().trim_start_matches("data: ").to_owned())
        .filter(|s| s != "[DONE]")
        .map(|s| serde_json::from_str(&s).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
    let args: String = chunks[3..5]
        .iter()
        .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{\"a\":1}");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 12);
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 9);
    assert!(t.finished());
    assert_eq!(out.last().map(|b| &b[..]), Some(sse::DONE));
    assert_eq!(t.tokens().completion, 12);
}

#[test]
fn client_errors_keep_the_providers_words_in_openai_types() {
    let body = br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}"#;
    let error = Anthropic.client_error(http::StatusCode::NOT_FOUND, body);
    assert_eq!((error.message.as_str(), error.kind.as_str()), ("model: claude-nope", "invalid_request_error"));
    let overloaded = Anthropic
        .client_error(http::StatusCode::BAD_REQUEST, br#"{"error":{"type":"overloaded_error","message":"busy"}}"#);
    assert_eq!(overloaded.kind, "api_error");
    assert_eq!(
        Anthropic.url(&super::Address::base("https://api.anthropic.com"), Endpoint::Call(Protocol::Chat)),
        "https://api.anthropic.com/v1/messages"
    );
}

#[test]
fn structured_outputs_become_claudes_output_config_and_json_mode_a_forced_tool() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    let body = map(json!({
        "messages": [{"role": "user", "content": "Where?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}}
    }));
    let out = request(&body, "claude-sonnet-4-5", false, 1024).unwrap();
    assert_eq!(out["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    assert!(out.get("response_format").is_none(), "not passed on under OpenAI's name");

    // JSON mode: forced through a tool taking any object; with the client's own tools, refused.
    let mode = map(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}));
    let forced = request(&mode, "claude-sonnet-4-5", false, 1024).unwrap();
    assert_eq!(forced["tools"][0]["name"], stream::JSON_TOOL);
    assert_eq!(forced["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(forced["tool_choice"], json!({"type": "tool", "name": stream::JSON_TOOL}));
    let mut with_tools = mode.clone();
    with_tools.insert(
        "tools".into(),
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    );
    let refused = request(&with_tools, "claude-sonnet-4-5", false, 1024).unwrap_err();
    assert_eq!(refused.param, Some("response_format"));
    assert!(refused.message.contains("json_schema"), "{}", refused.message);

    let text = map(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}));
    assert!(request(&text, "claude-sonnet-4-5", false, 1024).unwrap().get("output_config").is_none());
}

#[test]
fn a_json_mode_answer_through_the_forced_tool_comes_back_as_text_whole_and_streamed() {
    let whole = json!({"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": stream::JSON_TOOL, "input": {"a": 1}}],
        "usage": {"input_tokens": 5, "output_tokens": 3}});
    let (chat, _) = response(&whole, "claude", 1);
    assert_eq!(chat["choices"][0]["message"]["content"], "{\"a\":1}");
    assert!(chat["choices"][0]["message"].get("tool_calls").is_none(), "not a tool call for the client");
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");

    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": stream::JSON_TOOL, "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ":1}"}}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        ),
    ];
    let mut source = ChatChunks::new("claude", 1);
    let mut chunks = Vec::new();
    for (name, data) in events {
        let event = sse::Event { name: Some(name.into()), data: data.to_string() };
        source.event(&event, &mut chunks).unwrap();
    }
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "{\"a\":1}");
    assert!(chunks.iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
}
