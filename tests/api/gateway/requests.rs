//! What goes upstream and what comes back: pass-through with the gateway's headers, OpenAI errors
//! for malformed requests and unknown models, embeddings, the model list, Anthropic translation.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

#[tokio::test]
async fn non_streaming_chat_passes_through_with_headers() {
    let (gw, mock) = openai_gateway().await;
    let request = json!({
        "model": "mock-small",
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_object"},
        "logprobs": true,
        "api_base": "http://evil.example", "api_key": "sk-client-chosen"
    });
    let response = gw.chat(&request).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["x-request-id"].to_str().unwrap().starts_with("req_"));
    assert_eq!(headers["x-perpetuo-provider"], "Primary");
    assert_eq!(headers["x-perpetuo-attempts"], "1");
    assert_eq!(headers["x-ratelimit-limit-requests"], "10000");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "9999");
    assert!(headers.contains_key("x-ratelimit-reset-requests"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(body["usage"]["total_tokens"], 18);

    let seen = &mock.seen()[0];
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {VALID_KEY}"),
        "the workspace's provider key, not the client's"
    );
    assert_eq!(seen.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(seen.body["logprobs"], true);
    assert_eq!(seen.body["tools"][0]["function"]["name"], "get_weather");
    assert!(seen.body.get("api_base").is_none() && seen.body.get("api_key").is_none(), "redirecting fields dropped");
    assert!(!format!("{:?}", seen.headers).contains(&gw.key), "the client's pk_ key never goes upstream");

    let records = gw.usage(1).await;
    let r = &records[0];
    assert_eq!((r["status"].as_i64(), r["ok"].as_bool(), r["attempts"].as_i64()), (Some(200), Some(true), Some(1)));
    assert_eq!((r["prompt_tokens"].as_i64(), r["completion_tokens"].as_i64()), (Some(11), Some(7)));
    assert_eq!(r["key_id"], gw.key_id.as_str());
    assert_eq!(r["provider_label"], "Primary");
    assert_eq!(r["request_id"], headers["x-request-id"].to_str().unwrap());
    assert!(r["cost_nanos"].is_null(), "no price for a self-hosted model: unknown, not zero");
}

#[tokio::test]
async fn malformed_requests_get_openai_errors() {
    let mut options = fast_options();
    options.settings.max_body_bytes = 4096;
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("P", "openai_compatible", &mock.base_url(), 1).await;
    let url = gw.app.url("/v1/chat/completions");
    let post = |body: String| {
        gw.app.client.post(&url).bearer_auth(&gw.key).header("content-type", "application/json").body(body).send()
    };

    let response = post("{not json".into()).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let response = post(json!({"messages": []}).to_string()).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");

    let response = post(json!({"model": "x", "messages": [], "padding": "y".repeat(5000)}).to_string()).await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");

    let response = post(json!({"model": "unknown-model-xyz", "messages": []}).to_string()).await.unwrap();
    // openai_compatible without an allow-list serves anything: reaches the mock.
    assert_eq!(response.status(), 200);

    let response = gw.app.client.get(gw.app.url("/v1/nope")).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(error_of(&body).1.contains("/v1/nope"));

    let response = gw.app.client.get(&url).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let records = gw.usage(4).await;
    let statuses: Vec<i64> = records.iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 2, "{statuses:?}");
    assert!(statuses.contains(&413));
}

#[tokio::test]
async fn model_without_a_provider_is_404() {
    let gw = Gateway::start(fast_options()).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 1).await;
    let response = gw.chat(&chat_body("gpt-4o")).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(anthropic.hits(), 0);
}

#[tokio::test]
async fn model_names_are_bounded() {
    let (gw, mock) = openai_gateway().await;
    let response = gw.chat(&chat_body(&"m".repeat(300))).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(gw.chat(&chat_body("line\nbreak")).await.status(), 400);
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn embeddings_and_model_list() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Local", "openai_compatible", &mock.base_url(), 1).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    let response = gw.app.post_json("/api/v1/providers", Some(&gw.token), &json!({"label": "Claude", "kind": "anthropic", "base_url": anthropic.base_url(), "api_key": VALID_KEY, "models": ["claude-3-5-haiku"]})).await;
    assert_eq!(response.status(), 201);

    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/embeddings"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "text-embedding-3-small", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(mock.seen().last().unwrap().path, "/v1/embeddings");

    let response = gw.app.client.get(gw.app.url("/v1/models")).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"mock-small") && ids.contains(&"mock-large") && ids.contains(&"claude-3-5-haiku"), "{ids:?}");
    let records = gw.usage(1).await;
    assert_eq!(records[0]["endpoint"], "embeddings");
}

#[tokio::test]
async fn anthropic_is_translated_both_ways() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 1).await;
    let request = json!({
        "model": "anthropic/claude-3-5-haiku",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "stop": ["END"]
    });
    let response = gw.chat(&request).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    let seen = &mock.seen()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["model"], "claude-3-5-haiku", "bare model upstream");
    assert_eq!(seen.body["system"][0]["text"], "Be brief.");
    assert_eq!(seen.body["max_tokens"], 4096);
    assert_eq!(seen.body["stop_sequences"], json!(["END"]));
    assert_eq!(seen.body["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(&streamed).await.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from Claude");
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

    let records = gw.usage(2).await;
    assert!(
        records
            .iter()
            .all(|r| r["provider_kind"] == "anthropic" && r["prompt_tokens"] == 11 && r["completion_tokens"] == 7)
    );
    // The price table knows claude-3-5-haiku: $0.8 in, $4 out per million.
    assert_eq!(records[0]["cost_nanos"], 11 * 800 + 7 * 4000);
}
