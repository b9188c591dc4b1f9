use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::protocols::{AnswerLabels, Protocol, TranslationOptions};
use bytes::Bytes;

fn frame(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(aws_smithy_eventstream::frame::write_message_to(message, &mut out).is_ok());
    out
}

fn chunk(event: &Value) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(event).unwrap_or_default());
    let payload = serde_json::to_vec(&json!({"bytes": bytes, "p": "abcdefgh"})).unwrap_or_default();
    frame(
        &Message::new(payload)
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
            .add_header(Header::new(":event-type", HeaderValue::String("chunk".into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into()))),
    )
}

fn events(sse: &[u8]) -> Vec<(String, Value)> {
    let mut parser = sse::Parser::default();
    parser.push(&Bytes::copy_from_slice(sse));
    std::iter::from_fn(|| parser.next_event())
        .map(|e| (e.name.unwrap_or_default(), serde_json::from_str(&e.data).unwrap_or(Value::Null)))
        .collect()
}

use crate::protocols::sse;

const BEDROCK: &dyn Dialect = &Bedrock;

#[test]
fn the_region_and_model_make_the_url() {
    let at = Address {
        model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        region: Some("eu-west-1"),
        ..Address::base(DEFAULT_HOST)
    };
    assert_eq!(
        BEDROCK.url(&at, Endpoint::Call(Protocol::Messages)),
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );
    assert_eq!(
        BEDROCK.url(&at.streamed(true), Endpoint::Call(Protocol::Chat)),
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    assert_eq!(
        BEDROCK.url(&at, Endpoint::Models),
        "https://bedrock.eu-west-1.amazonaws.com/foundation-models?byProvider=anthropic"
    );
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
    let private = Address { base_url: "http://127.0.0.1:9000", model: arn, ..at };
    assert_eq!(
        BEDROCK.url(&private, Endpoint::Call(Protocol::Messages)),
        "http://127.0.0.1:9000/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc/invoke"
    );
    assert_eq!(BEDROCK.url(&private, Endpoint::Models), "http://127.0.0.1:9000/foundation-models?byProvider=anthropic");
}

#[test]
fn api_keys_are_bearer_tokens_and_access_keys_sign() {
    let headers = BEDROCK.auth_headers(&SecretBytes::new(b"ABSKbedrockkey123".to_vec()));
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].0, http::header::AUTHORIZATION);
    assert!(headers[0].1.is_sensitive() && headers[0].1 == "Bearer ABSKbedrockkey123");
    let iam = br#"{"access_key_id":"AKIDEXAMPLE","secret_access_key":"x"}"#;
    assert!(BEDROCK.auth_headers(&SecretBytes::new(iam.to_vec())).is_empty());
}

#[test]
fn the_body_names_no_model_nor_stream_and_carries_the_betas() {
    let body: Map<String, Value> = serde_json::from_value(json!({"model": "claude-x", "stream": true,
        "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}))
    .unwrap_or_default();
    let request = ClientRequest {
        protocol: Protocol::Messages,
        model: "claude-x".into(),
        stream: true,
        include_usage: false,
        output: crate::protocols::output_asked(Protocol::Messages, &body).unwrap(),
        body,
    };
    let beta =
        http::HeaderValue::from_static("interleaved-thinking-2025-05-14, fine-grained-tool-streaming-2025-05-14");
    let forward = [
        (http::HeaderName::from_static("anthropic-version"), http::HeaderValue::from_static("2023-06-01")),
        (http::HeaderName::from_static("anthropic-beta"), beta),
    ];
    let bound = Bound { per_choice: 50, inject: false };
    let (body, headers) =
        BEDROCK.native_request(&request, "anthropic.claude-x-v1:0", bound, &forward).unwrap_or_default();
    assert!(headers.is_empty(), "no Anthropic header goes to AWS");
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(body["anthropic_version"], VERSION);
    assert!(body.get("model").is_none() && body.get("stream").is_none(), "{body}");
    assert_eq!(
        body["anthropic_beta"],
        json!(["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"])
    );
    assert_eq!(body["max_tokens"], 50);
}

#[test]
fn frames_become_anthropic_events_however_the_bytes_are_cut() {
    let start =
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 12, "output_tokens": 1}}});
    let delta =
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi\nthere"}});
    let mut wire = chunk(&start);
    wire.extend(chunk(&delta));
    // One byte at a time: frames split anywhere, even inside the prelude.
    let mut deframer = frames::ToEvents::default();
    let mut sse = Vec::new();
    for byte in &wire {
        sse.extend_from_slice(&deframer.push(std::slice::from_ref(byte)));
    }
    let got = events(&sse);
    assert_eq!(got, vec![("message_start".into(), start), ("content_block_delta".into(), delta)]);
}

#[test]
fn a_frame_failing_its_checksum_ends_the_stream_with_an_error() {
    let ok = chunk(&json!({"type": "ping"}));
    let mut bad =
        chunk(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}));
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut deframer = frames::ToEvents::default();
    let mut wire = ok.clone();
    wire.extend(&bad);
    wire.extend(&ok);
    let got = events(&deframer.push(&wire));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "ping");
    assert_eq!(got[1].0, "error");
    assert!(got[1].1["error"]["message"].as_str().unwrap_or_default().contains("checksum"));
    assert!(deframer.push(&ok).is_empty(), "nothing is read after a broken frame");
}

#[test]
fn an_absurd_frame_length_is_refused_before_it_is_buffered() {
    let mut deframer = frames::ToEvents::default();
    let got = events(&deframer.push(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "error");
}

#[test]
fn exceptions_become_error_events() {
    let exception = frame(
        &Message::new(&br#"{"message":"Too many requests, please wait before trying again."}"#[..])
            .add_header(Header::new(":message-type", HeaderValue::String("exception".into())))
            .add_header(Header::new(":exception-type", HeaderValue::String("throttlingException".into()))),
    );
    let got = events(&frames::ToEvents::default().push(&exception));
    assert_eq!(got[0].0, "error");
    assert_eq!(got[0].1["error"]["type"], "rate_limit_error");
    assert!(got[0].1["error"]["message"].as_str().unwrap_or_default().contains("throttlingException"));
    assert!(BEDROCK.starts_with_error(&frames::ToEvents::default().push(&exception)));
}

#[test]
fn aws_errors_and_catalogues_are_read() {
    let error =
        BEDROCK.client_error(StatusCode::BAD_REQUEST, br#"{"message":"The provided model identifier is invalid."}"#);
    assert_eq!(error.message, "The provided model identifier is invalid.");
    let list = br#"{"modelSummaries":[{"modelId":"anthropic.claude-3-5-haiku-20241022-v1:0"},{"modelId":"anthropic.claude-sonnet-4-5-20250929-v1:0"}]}"#;
    assert_eq!(BEDROCK.model_list(list).map(|l| l.len()), Some(2));
}

mod converse {
    use super::*;
    use crate::providers::dialects::bedrock::converse::Converse;

    fn labels() -> AnswerLabels {
        AnswerLabels {
            id: "req1".into(),
            model: "us.amazon.nova-lite-v1:0".into(),
            created: 1,
            include_usage: true,
            max_kept_bytes: 1 << 20,
        }
    }

    #[test]
    fn structured_outputs_become_converse_output_config_and_json_mode_a_forced_tool() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let chat: Map<String, Value> = serde_json::from_value(json!({"messages": [{"role": "user", "content": "n?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "count", "description": "A count", "schema": schema}}}))
        .unwrap();
        let bound = Bound { per_choice: 64, inject: true };
        let body = Converse.chat_body(&chat, "m", false, bound, TranslationOptions::default()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let definition = &body["outputConfig"]["textFormat"]["structure"]["jsonSchema"];
        assert_eq!(body["outputConfig"]["textFormat"]["type"], "json_schema");
        assert_eq!((definition["name"].as_str(), definition["description"].as_str()), (Some("count"), Some("A count")));
        let sent: Value = serde_json::from_str(definition["schema"].as_str().expect("the schema as a string")).unwrap();
        assert_eq!(sent, schema);
        // JSON mode: forced through a tool taking any object, whose input comes back as the text.
        let mut mode = chat.clone();
        mode.insert("response_format".into(), json!({"type": "json_object"}));
        let body = Converse.chat_body(&mode, "m", false, bound, TranslationOptions::default()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["toolConfig"]["tools"][0]["toolSpec"]["name"], crate::providers::dialects::turns::JSON_TOOL);
        assert_eq!(
            body["toolConfig"]["toolChoice"],
            json!({"tool": {"name": crate::providers::dialects::turns::JSON_TOOL}})
        );
        let answer = json!({"output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "t1", "name": crate::providers::dialects::turns::JSON_TOOL, "input": {"a": 1}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 2}});
        let (chat_answer, _) = Converse.chat_answer(Bytes::from(answer.to_string()), &labels()).unwrap();
        assert_eq!(chat_answer["choices"][0]["message"]["content"], "{\"a\":1}");
        assert!(chat_answer["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(chat_answer["choices"][0]["finish_reason"], "stop");
        let tool = crate::providers::dialects::turns::JSON_TOOL;
        let mut source = Converse.chat_source(&labels());
        let mut chunks = Vec::new();
        for (name, data) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t1", "name": tool}}}),
            ),
            ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\""}}})),
            ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": ":1}"}}})),
            ("messageStop", json!({"stopReason": "tool_use"})),
        ] {
            source.event(&sse::Event { name: Some(name.into()), data: data.to_string() }, &mut chunks).unwrap();
        }
        let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(streamed, "{\"a\":1}");
        assert!(chunks.iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
        // With the client's own tools, refused.
        mode.insert("tools".into(), json!([{"type": "function", "function": {"name": "f"}}]));
        let refused = Converse.chat_body(&mode, "m", false, bound, TranslationOptions::default()).unwrap_err();
        assert_eq!(refused.param, Some("response_format"));
    }

    #[test]
    fn chat_becomes_a_converse_body_with_tools_results_and_images() {
        let chat: Map<String, Value> = serde_json::from_value(json!({"model": "m", "temperature": 0.5, "stop": "END",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "tooluse_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "{\"seen\": \"a cat\"}"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": "plain"}],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
            "tool_choice": "required"}))
        .unwrap();
        let bound = Bound { per_choice: 64, inject: true };
        let body = Converse.chat_body(&chat, "m", false, bound, TranslationOptions::default()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["system"], json!([{"text": "Be brief."}]));
        assert_eq!(body["inferenceConfig"], json!({"maxTokens": 64, "temperature": 0.5, "stopSequences": ["END"]}));
        let turns = body["messages"].as_array().unwrap();
        assert_eq!(turns.len(), 3, "the two results are one user turn: {body}");
        assert_eq!(turns[0]["content"][1]["image"], json!({"format": "png", "source": {"bytes": "iVBORw0KGgo="}}));
        assert_eq!(
            turns[1]["content"],
            json!([{"toolUse": {"toolUseId": "tooluse_1", "name": "look", "input": {"q": 1}}}])
        );
        assert_eq!(turns[2]["content"][0]["toolResult"]["content"], json!([{"json": {"seen": "a cat"}}]));
        assert_eq!(turns[2]["content"][1]["toolResult"]["content"], json!([{"text": "plain"}]));
        assert_eq!(body["toolConfig"]["toolChoice"], json!({"any": {}}));
        // A history with tool calls but no tools offered any more: the used tools are declared.
        let mut bare = chat.clone();
        bare.remove("tools");
        bare.remove("tool_choice");
        let body = Converse.chat_body(&bare, "m", false, bound, TranslationOptions::default()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["toolConfig"]["tools"],
            json!([{"toolSpec": {"name": "look", "inputSchema": {"json": {"type": "object"}}}}])
        );
        let url: Map<String, Value> = serde_json::from_value(json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]})).unwrap();
        assert!(Converse.chat_body(&url, "m", false, bound, TranslationOptions::default()).is_err());
    }

    #[test]
    fn answers_become_chat_with_calls_reasoning_and_cache_counts() {
        let body = json!({"output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Thinking.", "signature": "sig"}}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_9", "name": "look", "input": {"q": 2}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 170, "cacheReadInputTokens": 40, "cacheWriteInputTokens": 10}});
        let (answer, tokens) = Converse.chat_answer(Bytes::from(body.to_string()), &labels()).unwrap();
        let message = &answer["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], "Thinking.");
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{\"q\":2}");
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        // Cache reads and writes are counted apart from `inputTokens`: all three are input.
        assert_eq!((tokens.prompt, tokens.cache_read, tokens.cache_write, tokens.completion), (150, 40, 10, 20));
    }

    #[test]
    fn a_converse_stream_becomes_chat_chunks_ending_with_its_usage() {
        let frame = |name: &str, payload: Value| {
            let message = Message::new(payload.to_string().into_bytes())
                .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
                .add_header(Header::new(":event-type", HeaderValue::String(name.to_owned().into())));
            super::frame(&message)
        };
        let mut wire = Vec::new();
        for (name, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}})),
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "look"}}}),
            ),
            ("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"q\":"}}})),
            ("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "3}"}}})),
            ("messageStop", json!({"stopReason": "tool_use"})),
            ("metadata", json!({"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}})),
        ] {
            wire.extend(frame(name, payload));
        }
        let sse = Converse.deframer().unwrap().push(&wire);
        let mut parser = sse::Parser::default();
        parser.push(&sse);
        let mut source = Converse.chat_source(&labels());
        let mut chunks = Vec::new();
        while let Some(event) = parser.next_event() {
            assert!(source.event(&event, &mut chunks).is_ok());
        }
        assert!(source.finished());
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[1]["content"], "Hi");
        assert_eq!(deltas[2]["tool_calls"][0]["id"], "t1");
        let arguments: String =
            deltas.iter().filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str()).collect();
        assert_eq!(arguments, "{\"q\":3}");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!((source.tokens().prompt, source.tokens().completion), (9, 4));
    }
}
