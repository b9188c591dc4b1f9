//! Claude on Amazon Bedrock: IAM access keys (SigV4, recomputed and checked by the mock with its
//! own code), temporary credentials with a session token, and Bedrock API keys (bearer). Messages
//! pass through InvokeModel (plain, and streamed in AWS's event-stream framing, turned back into
//! Anthropic's events), chat and Responses are translated (a tool round trip included); a
//! cross-region inference profile id routes as a model id; a frame that fails its checksum ends
//! the stream with an error; a wrong secret or region flags the provider; costs are Anthropic's.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::bedrock::{CORRUPT_MODEL, REGION, access_key_json};
use crate::mock::{Flavor, Mock, VALID_KEY};

const MODEL: &str = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0";

async fn bedrock(gw: &Gateway, mock: &Mock, key: &str, region: &str) -> String {
    let created = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Bedrock", "kind": "bedrock", "base_url": mock.base_url(), "api_key": key, "region": region}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["region"], if region.is_empty() { Value::Null } else { json!(region) });
    created["id"].as_str().unwrap().to_owned()
}

async fn messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn test_button(gw: &Gateway, id: &str) -> Value {
    gw.app.post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({})).await.json().await.unwrap()
}

#[tokio::test]
async fn claude_on_bedrock_serves_messages_chat_and_responses_signed_with_sigv4() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Bedrock).await;
    let id = bedrock(&gw, &mock, &access_key_json(None), REGION).await;
    let provider = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
    assert_eq!(provider["key_preview"], "••••0001", "the key id's end, never the secret: {provider}");
    assert!(!provider.to_string().contains("SECRET"), "{provider}");
    let test = test_button(&gw, &id).await;
    assert_eq!(test["ok"], true, "the Test button signs its model list request: {test}");

    let ask = json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let plain = messages(&gw, &ask).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.json::<Value>().await.unwrap()["content"][0]["text"], "Hello from Claude mock");
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let streamed = messages(&gw, &streamed).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed.headers()["content-type"], "text/event-stream");
    let text = streamed.text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    assert!(text.contains(r#""text":" Claude""#), "the deltas come through: {text}");

    let calls = mock.bedrock_calls();
    assert_eq!(calls.len(), 2);
    for (model, headers, body) in &calls {
        assert_eq!(model, MODEL);
        assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(body["anthropic_beta"], json!(["interleaved-thinking-2025-05-14"]), "betas go in the body");
        assert!(body.get("model").is_none() && body.get("stream").is_none(), "{body}");
        assert!(headers.get("anthropic-version").is_none() && headers.get("anthropic-beta").is_none());
        assert!(headers.get("x-api-key").is_none(), "the gateway key never reaches AWS");
    }

    let tools = json!({"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    let called: Value = gw.chat(&tools).await.json().await.unwrap();
    let call = &called["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{called}");
    let mut follow = tools.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}),
    ]);
    follow["stream"] = json!(true);
    let done = gw.chat(&follow).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().trim_end().ends_with("data: [DONE]"));
    let responses = gw
        .app
        .client
        .post(gw.app.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": format!("bedrock/{MODEL}"), "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 200);
    assert!(responses.text().await.unwrap().contains("response.completed"));
    let streamed_calls = mock.bedrock_calls();
    assert!(streamed_calls[3..].iter().all(|(_, _, b)| b.get("stream").is_none() && b.get("model").is_none()));

    let records = gw.usage(5).await;
    // 11 input and 7 output tokens at Anthropic's $3 and $15 a million for Claude Sonnet 4.5.
    assert!(
        records.iter().all(|r| r["status"] == 200
            && r["provider_kind"] == "bedrock"
            && r["cost_nanos"] == 11 * 3_000 + 7 * 15_000),
        "Anthropic's price for Claude on Bedrock: {records:?}"
    );
}

#[tokio::test]
async fn temporary_credentials_and_bedrock_api_keys_authenticate() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Bedrock).await;
    let token = "IQoJb3JpZ2luX2VjEPerpetuoSessionToken0001";
    mock.set_session_token(token);
    bedrock(&gw, &mock, &access_key_json(Some(token)), REGION).await;
    let ask = json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(messages(&gw, &ask).await.status(), 200);
    let (_, headers, _) = mock.bedrock_calls().pop().unwrap();
    assert_eq!(headers["x-amz-security-token"], token);

    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Bedrock).await;
    let id = bedrock(&gw, &mock, VALID_KEY, "").await;
    assert_eq!(test_button(&gw, &id).await["ok"], true);
    assert_eq!(messages(&gw, &ask).await.status(), 200);
    let (_, headers, _) = mock.bedrock_calls().pop().unwrap();
    assert_eq!(headers["authorization"], format!("Bearer {VALID_KEY}"));
}

#[tokio::test]
async fn a_wrong_secret_or_region_flags_the_provider() {
    for (key, region, reason) in [
        (access_key_json(None).replace("SECRET", "secret"), REGION, "signature"),
        (access_key_json(None), "us-west-2", "region"),
    ] {
        let gw = Gateway::start(fast_options()).await;
        let mock = Mock::start(Flavor::Bedrock).await;
        let id = bedrock(&gw, &mock, &key, region).await;
        let ask = json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
        let refused = messages(&gw, &ask).await;
        assert!(refused.status().is_server_error(), "{}", refused.status());
        assert!(mock.bedrock_calls().is_empty(), "AWS refused the signature before any model ran");
        let flagged = poll(std::time::Duration::from_secs(10), || async {
            let p = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
            (p["key_status"] == "rejected").then_some(())
        })
        .await;
        assert!(flagged.is_some(), "the provider's key is flagged for the dashboard");
        let test = test_button(&gw, &id).await;
        assert_eq!(test["ok"], false);
        assert!(test["message"].as_str().unwrap().contains(reason), "AWS's reason is shown: {test}");
        assert!(!test.to_string().contains("SECRET/0001"), "{test}");
    }
}

#[tokio::test]
async fn a_frame_failing_its_checksum_ends_the_stream_with_an_error() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Bedrock).await;
    bedrock(&gw, &mock, &access_key_json(None), REGION).await;
    let ask = json!({"model": CORRUPT_MODEL, "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let streamed = messages(&gw, &ask).await;
    assert_eq!(streamed.status(), 200, "the first frames were good, so the stream had started");
    let text = streamed.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: error") && text.contains("checksum"), "{text}");
    assert!(!text.contains("message_stop") && !text.contains("from"), "nothing after the broken frame: {text}");
    let records = gw.usage(1).await;
    assert_eq!(records[0]["status"], 502);
    assert_eq!(records[0]["error_class"], "upstream_stream_error");
    assert_eq!(records[0]["prompt_tokens"], 11, "the prompt the provider counted is charged: {records:?}");
    assert_eq!(records[0]["estimated"], true, "the output of a broken stream is estimated: {records:?}");
}

#[tokio::test]
async fn a_bedrock_provider_checks_its_credentials_and_region() {
    let gw = Gateway::start(fast_options()).await;
    let add = |key: &str, region: &str| json!({"label": "B", "kind": "bedrock", "api_key": key, "region": region});
    let half = gw
        .app
        .post_json("/api/v1/providers", Some(&gw.token), &add(r#"{"access_key_id": "AKIA0123456789ABCDEF"}"#, ""))
        .await;
    let error = api_error(half, 400).await;
    assert!(error["error"]["message"].as_str().unwrap().contains("secret_access_key"), "{error}");
    let bad_region =
        gw.app.post_json("/api/v1/providers", Some(&gw.token), &add(&access_key_json(None), "EU West")).await;
    assert_eq!(bad_region.status(), 400);
    let made = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add(&access_key_json(None), "")).await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["base_url"], "https://bedrock-runtime.us-east-1.amazonaws.com");
    assert!(!made.to_string().contains("SECRET"), "{made}");
}

#[tokio::test]
async fn converse_serves_nova_to_chat_messages_and_responses_with_a_tool_round_trip() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Bedrock).await;
    let made = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Nova", "kind": "bedrock_converse", "base_url": mock.base_url(),
                    "api_key": access_key_json(None), "region": REGION}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let id = made.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(test_button(&gw, &id).await["ok"], true);
    let nova = "us.amazon.nova-lite-v1:0";
    let tools = json!({"model": nova, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "stop": ["END"], "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    let called: Value = gw.chat(&tools).await.json().await.unwrap();
    let call = &called["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        (call["id"].as_str(), call["function"]["name"].as_str()),
        (Some("tooluse_1"), Some("get_weather")),
        "{called}"
    );
    assert_eq!(called["choices"][0]["finish_reason"], "tool_calls");
    let mut follow = tools.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}),
    ]);
    follow["stream"] = json!(true);
    follow["stream_options"] = json!({"include_usage": true});
    let done = gw.chat(&follow).await;
    assert_eq!(done.status(), 200);
    let text = done.text().await.unwrap();
    assert!(text.contains(r#""content":" Nova""#) && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains(r#""prompt_tokens":11"#), "the usage chunk carries Bedrock's counts: {text}");
    // A streamed tool call, its arguments in order.
    let mut streamed = tools.clone();
    streamed["stream"] = json!(true);
    let text = gw.chat(&streamed).await.text().await.unwrap();
    assert!(text.contains(r#""arguments":"{\"city\":""#) && text.contains(r#""finish_reason":"tool_calls""#), "{text}");
    let messages = messages(
        &gw,
        &json!({"model": nova, "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = messages.text().await.unwrap();
    assert!(text.contains("event: message_stop") && text.contains("Nova"), "{text}");
    let responses = gw
        .app
        .client
        .post(gw.app.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": format!("bedrock_converse/{nova}"), "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.json::<Value>().await.unwrap()["output"][0]["content"][0]["text"], "Hello from Nova");

    let calls = mock.bedrock_calls();
    let (model, _, first) = &calls[0];
    assert_eq!(model, nova);
    assert_eq!(first["system"], json!([{"text": "Be brief."}]));
    assert_eq!(first["inferenceConfig"]["stopSequences"], json!(["END"]));
    assert_eq!(first["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");
    let results = &calls[1].2["messages"][2]["content"][0]["toolResult"];
    assert_eq!(results["toolUseId"], "tooluse_1", "{:?}", calls[1].2);
    let records = gw.usage(5).await;
    // Amazon Nova Lite: $0.06 in and $0.24 out a million tokens.
    assert!(
        records.iter().all(|r| r["status"] == 200
            && r["provider_kind"] == "bedrock_converse"
            && r["cost_nanos"] == 11 * 60 + 7 * 240),
        "{records:?}"
    );
}
