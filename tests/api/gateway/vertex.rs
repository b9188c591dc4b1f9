//! Claude on Google Vertex AI: a service account's JSON key exchanged for tokens at a mock token
//! endpoint that verifies the RS256 assertion as Google's does, and a mock `rawPredict` that
//! takes only live tokens, the key's project, Vertex's `anthropic_version` and no `model`.
//! Messages pass through (plain and streamed), chat and Responses are translated (a tool round
//! trip included); one token serves concurrent calls; an expired token is replaced and the call
//! still served; a key the token endpoint refuses flags the provider; costs are Anthropic's.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::vertex::{OTHER_PRIVATE_KEY, SA_PRIVATE_KEY, SA_PROJECT, service_account};
use crate::mock::{Flavor, Mock};

const MODEL: &str = "claude-sonnet-4-5@20250929";

async fn vertex(private_key: &str) -> (Gateway, Mock, String) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Vertex).await;
    let key = service_account(&format!("{}/token", mock.base_url()), private_key);
    let created = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Vertex", "kind": "vertex", "base_url": mock.base_url(), "api_key": key,
                    "region": "us-east5"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["region"], "us-east5");
    assert_eq!(created["key_preview"], "••••0123", "the key id's end, never the key");
    (gw, mock, created["id"].as_str().unwrap().to_owned())
}

async fn messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn claude_on_vertex_serves_messages_chat_and_responses() {
    let (gw, mock, id) = vertex(SA_PRIVATE_KEY).await;
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "the Test button mints a token and lists the publisher's models: {test}");

    let plain =
        messages(&gw, &json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.json::<Value>().await.unwrap()["type"], "message");
    let streamed = messages(
        &gw,
        &json!({"model": MODEL, "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.text().await.unwrap().contains("event: message_stop"));
    let calls = mock.vertex_calls();
    assert_eq!(calls[0].0, format!("{MODEL}:rawPredict"));
    assert_eq!(calls[1].0, format!("{MODEL}:streamRawPredict"));
    assert!(
        calls.iter().all(|(_, body)| body.get("model").is_none() && body["anthropic_version"] == "vertex-2023-10-16")
    );

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
        .json(&json!({"model": format!("vertex/{MODEL}"), "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 200);
    assert!(responses.text().await.unwrap().contains("response.completed"));
    assert_eq!(mock.tokens_granted(), 1, "one token served the Test button and every call");

    let records = gw.usage(5).await;
    assert!(records.iter().all(|r| r["status"] == 200 && r["model"].as_str().unwrap().ends_with(MODEL)), "{records:?}");
    // 11 input and 7 output tokens at Anthropic's $3 and $15 a million for Claude Sonnet 4.5.
    assert!(
        records.iter().all(|r| r["cost_nanos"] == 11 * 3_000 + 7 * 15_000 && r["provider_kind"] == "vertex"),
        "Anthropic's price for Claude on Vertex: {records:?}"
    );
}

#[tokio::test]
async fn one_token_is_minted_for_concurrent_calls_and_an_expired_one_is_replaced() {
    let (gw, mock, id) = vertex(SA_PRIVATE_KEY).await;
    let body = json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let calls = (0..8).map(|_| messages(&gw, &body));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.status() == 200));
    assert_eq!(mock.tokens_granted(), 1, "eight calls waited for one exchange");

    // An hour passes at Google: the cached token is refused, a new one is minted, the call served.
    mock.expire_tokens();
    assert_eq!(messages(&gw, &body).await.status(), 200);
    assert_eq!(mock.tokens_granted(), 2);
    let provider = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
    assert_eq!(provider["key_status"], "ok", "an expired token is not a bad key: {provider}");
}

#[tokio::test]
async fn a_key_the_token_endpoint_refuses_flags_the_provider() {
    let (gw, mock, id) = vertex(OTHER_PRIVATE_KEY).await;
    let body = json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let refused = messages(&gw, &body).await;
    assert!(refused.status().is_server_error(), "{}", refused.status());
    assert_eq!((mock.tokens_granted(), mock.vertex_calls().len()), (0, 0), "no token, no model call");
    let flagged = poll(std::time::Duration::from_secs(10), || async {
        let p = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
        (p["key_status"] == "rejected").then_some(())
    })
    .await;
    assert!(flagged.is_some(), "the provider's key is flagged for the dashboard");
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], false);
    assert!(test["message"].as_str().unwrap().contains("Invalid JWT"), "Google's reason is shown: {test}");
    assert!(!test["message"].as_str().unwrap().contains("PRIVATE KEY"), "{test}");
}

#[tokio::test]
async fn a_vertex_provider_needs_a_service_account_key_and_a_valid_region() {
    let gw = Gateway::start(fast_options()).await;
    let add = |key: Value, region: &str| json!({"label": "V", "kind": "vertex", "api_key": key, "region": region});
    let not_json = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add(json!("sk-abc"), "global")).await;
    let error = api_error(not_json, 400).await;
    assert!(error["error"]["message"].as_str().unwrap().contains("service account's JSON key"), "{error}");
    let key = service_account("https://oauth2.googleapis.com/token", SA_PRIVATE_KEY);
    let bad_region = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add(json!(key), "us east")).await;
    assert_eq!(bad_region.status(), 400);
    let openai_region = json!({"label": "O", "kind": "openai", "api_key": "sk-0123456789abcdef", "region": "us-east5"});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &openai_region).await.status(), 400);
    let made = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add(json!(key), "")).await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["base_url"], "https://aiplatform.googleapis.com");
    assert!(!made.to_string().contains("PRIVATE KEY") && !made.to_string().contains(SA_PROJECT), "{made}");
}

#[tokio::test]
async fn gemini_on_vertex_serves_chat_and_messages_with_the_same_key() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Vertex).await;
    let key = service_account(&format!("{}/token", mock.base_url()), SA_PRIVATE_KEY);
    let made = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Vertex Gemini", "kind": "vertex_gemini", "base_url": mock.base_url(), "api_key": key, "region": "europe-west4"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let id = made.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "{test}");
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let ask =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Weather?"}], "tools": tools});
    let called: Value = gw.chat(&ask).await.json().await.unwrap();
    let call = called["choices"][0]["message"]["tool_calls"][0].clone();
    let mut follow = ask.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}),
    ]);
    follow["stream"] = json!(true);
    let done = gw.chat(&follow).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("from Gemini"));
    let messages = messages(
        &gw,
        &json!({"model": "gemini-2.5-flash", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(messages.json::<Value>().await.unwrap()["content"][0]["text"], "Hello from Gemini");
    let calls = mock.vertex_calls();
    assert_eq!(
        calls.iter().map(|(action, _)| action.as_str()).collect::<Vec<_>>(),
        [
            "gemini-2.5-flash:generateContent",
            "gemini-2.5-flash:streamGenerateContent",
            "gemini-2.5-flash:generateContent"
        ]
    );
    assert_eq!(mock.tokens_granted(), 1);
    let records = gw.usage(3).await;
    assert!(records.iter().all(|r| r["provider_kind"] == "vertex_gemini" && r["status"] == 200), "{records:?}");
    for record in &records {
        assert_eq!(
            record["cost_nanos"].as_i64(),
            Some(list_cost("gemini", "gemini-2.5-flash", record)),
            "Gemini's list price: {record}"
        );
        assert!(record["prompt_tokens"].as_u64().unwrap() > 0, "{record}");
    }
}
