//! Gemini's own API (AI Studio keys) against a mock that checks what Google does (roles, one
//! datum per part, function results answering calls, thought signatures sent back with calls):
//! chat plain and streamed with a tool round trip, Messages and Responses clients translated,
//! a bad key flagged although Google answers it with a 400, costs from the price table.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

const MODEL: &str = "gemini-2.5-flash";

async fn gemini() -> (Gateway, Mock, String) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Gemini).await;
    let id = gw.provider("Gemini", "gemini", &mock.base_url(), 1).await;
    let price = json!({"kind": "gemini", "model": MODEL, "input_per_million": 1.0, "output_per_million": 2.0});
    assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    (gw, mock, id)
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[tokio::test]
async fn chat_reaches_gemini_natively_with_a_tool_round_trip() {
    let (gw, mock, id) = gemini().await;
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "{test}");

    let plain: Value = gw.chat(&chat_body(MODEL)).await.json().await.unwrap();
    assert_eq!(plain["choices"][0]["message"]["content"], "Hello from Gemini", "{plain}");
    let seen = mock.seen().last().unwrap().clone();
    assert_eq!(seen.path, format!("/v1beta/models/{MODEL}:generateContent"));
    assert_eq!(seen.headers["x-goog-api-key"], VALID_KEY);
    assert!(seen.headers.get("authorization").is_none());

    let mut streamed = chat_body(MODEL);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(&streamed).await.text().await.unwrap();
    assert!(text.contains("\"content\":\"Hello\"") && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"prompt_tokens\":11"), "the usage chunk: {text}");

    let ask = json!({"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools()});
    let called: Value = gw.chat(&ask).await.json().await.unwrap();
    let call = called["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(
        (call["function"]["name"].as_str(), called["choices"][0]["finish_reason"].as_str()),
        (Some("get_weather"), Some("tool_calls"))
    );
    let mut follow = ask.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}),
    ]);
    follow["stream"] = json!(true);
    let done = gw.chat(&follow).await;
    assert_eq!(done.status(), 200, "the mock refuses a call sent back without its signature");
    assert!(done.text().await.unwrap().contains("from Gemini"));

    let records = gw.usage(4).await;
    assert!(records.iter().all(|r| r["status"] == 200 && r["cost_nanos"] == 11 * 1_000 + 7 * 2_000), "{records:?}");
}

#[tokio::test]
async fn messages_and_responses_clients_reach_gemini_translated() {
    let (gw, mock, _) = gemini().await;
    let ask = json!({"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
    let send = |body: Value| {
        gw.app
            .client
            .post(gw.app.url("/v1/messages"))
            .header("x-api-key", &gw.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let called: Value = send(ask.clone()).await.unwrap().json().await.unwrap();
    let use_block = called["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").cloned().unwrap();
    assert_eq!(called["stop_reason"], "tool_use", "{called}");
    let mut follow = ask.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [use_block.clone()]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_block["id"], "content": "18C"}]}),
    ]);
    let done = send(follow).await.unwrap();
    assert_eq!(done.status(), 200, "Anthropic-shaped ids carry the signature back too");
    assert_eq!(done.json::<Value>().await.unwrap()["content"][0]["text"], "Hello from Gemini");

    let responses = gw
        .app
        .client
        .post(gw.app.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": MODEL, "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 200);
    assert!(responses.text().await.unwrap().contains("response.completed"));
    assert!(mock.seen().last().unwrap().path.ends_with(":streamGenerateContent"));
}

#[tokio::test]
async fn a_bad_gemini_key_is_flagged_although_google_answers_400() {
    let (gw, mock, id) = gemini().await;
    mock.set_key("another-key");
    let refused = gw.chat(&chat_body(MODEL)).await;
    assert!(refused.status().is_server_error(), "not the client's fault: {}", refused.status());
    let flagged = poll(std::time::Duration::from_secs(10), || async {
        let p = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
        (p["key_status"] == "rejected").then_some(())
    })
    .await;
    assert!(flagged.is_some());
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(test["message"].as_str().unwrap().starts_with("The provider rejected the API key"), "{test}");
}
