//! The gateway end to end: auth, errors in OpenAI's shape, pass-through, Anthropic translation,
//! streaming, fallback, retries, breakers, timeouts, disconnects, and the usage records.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock, VALID_KEY};

fn fast_options() -> Options {
    let mut options = Options::default();
    options.settings.upstream.first_byte_timeout = Duration::from_millis(1500);
    options.settings.upstream.idle_timeout = Duration::from_millis(1500);
    options.settings.upstream.total_timeout = Duration::from_secs(10);
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(10_000).unwrap();
    options
}

async fn openai_gateway() -> (Gateway, Mock) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Primary", "openai_compatible", &mock.base_url(), 10).await;
    (gw, mock)
}

fn error_of(body: &Value) -> (&str, &str) {
    (body["error"]["type"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

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
async fn x_api_key_header_is_accepted() {
    let (gw, _mock) = openai_gateway().await;
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .header("x-api-key", &gw.key)
        .json(&chat_body("mock-small"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bad_keys_get_401_in_openai_shape() {
    let (gw, mock) = openai_gateway().await;
    let url = gw.app.url("/v1/chat/completions");
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "didn't provide an API key"),
        (Some("pk_nope".into()), "Incorrect API key"),
        (Some(format!("pk_{}", "A".repeat(43))), "Incorrect API key"),
        (Some("sk-something-else".into()), "Incorrect API key"),
    ];
    for (key, fragment) in cases {
        let mut request = gw.app.client.post(&url).json(&chat_body("mock-small"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(body["error"].as_object().unwrap().contains_key("param"));
        assert!(error_of(&body).1.contains(fragment), "{body}");
    }
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn revoked_key_is_refused_on_the_very_next_request() {
    let (gw, _mock) = openai_gateway().await;
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200, "key cached by a first use");
    let revoked = gw.app.post_json(&format!("/api/v1/keys/{}/revoke", gw.key_id), Some(&gw.token), &json!({})).await;
    assert_eq!(revoked.status(), 200);
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(error_of(&body).1.contains("revoked"));
}

#[tokio::test]
async fn expired_key_is_refused() {
    let (gw, _mock) = openai_gateway().await;
    let expires_at = app::server::platform::db::now_ms() + 2500;
    let created: Value = gw
        .app
        .post_json("/api/v1/keys", Some(&gw.token), &json!({"name": "short", "expires_at": expires_at}))
        .await
        .json()
        .await
        .unwrap();
    let key = created["token"].as_str().unwrap().to_owned();
    let call = || {
        gw.app.client.post(gw.app.url("/v1/chat/completions")).bearer_auth(&key).json(&chat_body("mock-small")).send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let response = call().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(error_of(&body).1.contains("expired"));
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
async fn streaming_forwards_chunks_and_hides_the_usage_chunk_unless_asked() {
    let (gw, mock) = openai_gateway().await;
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let content: String = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(content, "Hello from the mock");
    assert!(!text.contains("\"usage\""), "no usage chunk the client did not ask for");
    assert_eq!(mock.seen()[0].body["stream_options"]["include_usage"], true, "usage asked for upstream");

    body["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(&body).await.text().await.unwrap();
    assert!(text.contains("\"usage\""), "asked for: present");

    let records = gw.usage(2).await;
    for r in &records {
        assert_eq!((r["stream"].as_bool(), r["ok"].as_bool()), (Some(true), Some(true)));
        assert_eq!(
            (r["prompt_tokens"].as_i64(), r["completion_tokens"].as_i64()),
            (Some(11), Some(7)),
            "streamed tokens counted: {r}"
        );
        assert!(r["ttft_ms"].is_i64());
    }
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

#[tokio::test]
async fn falls_back_in_priority_order_on_5xx_and_never_on_client_errors() {
    let gw = Gateway::start(fast_options()).await;
    let first = Mock::start(Flavor::OpenAi).await;
    let second = Mock::start(Flavor::OpenAi).await;
    let third = Mock::start(Flavor::OpenAi).await;
    gw.provider("Third", "openai_compatible", &third.base_url(), 30).await;
    gw.provider("First", "openai_compatible", &first.base_url(), 10).await;
    gw.provider("Second", "openai_compatible", &second.base_url(), 20).await;

    first.script([Behavior::Status(500, None)]);
    second.script([Behavior::Status(503, None)]);
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-provider"], "Third");
    assert_eq!(response.headers()["x-perpetuo-attempts"], "3");
    assert_eq!((first.hits(), second.hits(), third.hits()), (1, 1, 1));

    // The client's own mistake (400) comes back as is: no fallback.
    first.script([Behavior::Status(400, None)]);
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-perpetuo-attempts"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "mock says 400");
    assert_eq!((first.hits(), second.hits(), third.hits()), (2, 1, 1));

    let records = gw.usage(2).await;
    assert_eq!(records[0]["attempts"], 3);
    assert_eq!(records[1]["status"], 400);
}

#[tokio::test]
async fn retries_honour_retry_after() {
    let gw = Gateway::start(fast_options()).await;
    let only = Mock::start(Flavor::OpenAi).await;
    gw.provider("Only", "openai_compatible", &only.base_url(), 1).await;
    only.script([Behavior::Status(429, Some(1))]);
    let started = Instant::now();
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-attempts"], "2");
    assert!(started.elapsed() >= Duration::from_millis(950), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(only.hits(), 2);
}

#[tokio::test]
async fn attempts_are_bounded_and_failure_is_a_502() {
    let mut options = fast_options();
    options.settings.upstream.max_attempts = 3;
    options.settings.upstream.breaker_failure_threshold = 100;
    let gw = Gateway::start(options).await;
    let only = Mock::start(Flavor::OpenAi).await;
    only.set_default(Behavior::Status(500, None));
    gw.provider("Broken", "openai_compatible", &only.base_url(), 1).await;
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-perpetuo-attempts"], "3");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(only.hits(), 3);
    let records = gw.usage(1).await;
    assert_eq!(
        (records[0]["ok"].as_bool(), records[0]["error_class"].as_str()),
        (Some(false), Some("all_providers_failed"))
    );
}

#[tokio::test]
async fn provider_401_falls_back_flags_the_key_and_never_reaches_the_client() {
    let gw = Gateway::start(fast_options()).await;
    let bad = Mock::start(Flavor::OpenAi).await;
    bad.set_key("sk-a-different-key");
    let good = Mock::start(Flavor::OpenAi).await;
    let bad_id = gw.provider("Bad key", "openai_compatible", &bad.base_url(), 1).await;
    gw.provider("Good", "openai_compatible", &good.base_url(), 2).await;
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-provider"], "Good");
    // Flagged for the dashboard.
    let mut flagged = false;
    for _ in 0..40 {
        let p: Value = gw.app.get_value(&format!("/api/v1/providers/{bad_id}"), Some(&gw.token)).await;
        if p["key_status"] == "rejected" {
            flagged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flagged, "provider flagged as having a rejected key");

    // With only the bad provider left, the client gets a 502, not the provider's 401.
    gw.app.patch_json(&format!("/api/v1/providers/{bad_id}"), &gw.token, &json!({"priority": 1})).await;
    let solo = Gateway::start(fast_options()).await;
    solo.provider("Bad key", "openai_compatible", &bad.base_url(), 1).await;
    let response = solo.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert!(!body.to_string().contains("Incorrect API key"), "{body}");
}

#[tokio::test]
async fn circuit_breaker_opens_then_probes_once() {
    let mut options = fast_options();
    options.settings.upstream.breaker_failure_threshold = 2;
    options.settings.upstream.breaker_cooldown = Duration::from_millis(600);
    let gw = Gateway::start(options).await;
    let flaky = Mock::start(Flavor::OpenAi).await;
    let backup = Mock::start(Flavor::OpenAi).await;
    gw.provider("Flaky", "openai_compatible", &flaky.base_url(), 1).await;
    gw.provider("Backup", "openai_compatible", &backup.base_url(), 2).await;
    flaky.set_default(Behavior::Status(500, None));

    for _ in 0..2 {
        assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    }
    assert_eq!(flaky.hits(), 2);
    // Open: the flaky provider is skipped entirely.
    for _ in 0..3 {
        let response = gw.chat(&chat_body("mock-small")).await;
        assert_eq!(response.headers()["x-perpetuo-attempts"], "1");
        assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    }
    assert_eq!(flaky.hits(), 2, "skipped while open");
    // After the cool-down one probe goes through; it succeeds and closes the breaker.
    gw.app.clock.advance(Duration::from_millis(600));
    flaky.set_default(Behavior::Ok);
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Flaky");
    assert_eq!(flaky.hits(), 3);
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Flaky", "closed again");
}

#[tokio::test]
async fn half_open_probe_failure_reopens() {
    let mut options = fast_options();
    options.settings.upstream.breaker_failure_threshold = 1;
    options.settings.upstream.breaker_cooldown = Duration::from_millis(400);
    options.settings.upstream.max_attempts = 1;
    let gw = Gateway::start(options).await;
    let flaky = Mock::start(Flavor::OpenAi).await;
    flaky.set_default(Behavior::Status(500, None));
    gw.provider("Flaky", "openai_compatible", &flaky.base_url(), 1).await;
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 502);
    let open = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(open.status(), 503, "all breakers open: fail fast");
    assert_eq!(flaky.hits(), 1);
    gw.app.clock.advance(Duration::from_millis(400));
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 502, "the probe fails");
    assert_eq!(flaky.hits(), 2);
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 503, "open again");
    assert_eq!(flaky.hits(), 2);
}

#[tokio::test]
async fn a_provider_that_hangs_is_abandoned_for_the_next() {
    let mut options = fast_options();
    options.settings.upstream.first_byte_timeout = Duration::from_millis(300);
    let gw = Gateway::start(options).await;
    let hanging = Mock::start(Flavor::OpenAi).await;
    hanging.set_default(Behavior::Hang);
    let backup = Mock::start(Flavor::OpenAi).await;
    gw.provider("Hangs", "openai_compatible", &hanging.base_url(), 1).await;
    gw.provider("Backup", "openai_compatible", &backup.base_url(), 2).await;
    let started = Instant::now();
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // Streaming too: fallback before the first byte reaches the client.
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_and_is_recorded_as_failed() {
    let (gw, mock) = openai_gateway().await;
    mock.script([Behavior::CutAfter(3)]);
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200, "the stream had started");
    assert_eq!(response.headers()["x-perpetuo-attempts"], "1");
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert!(!events.iter().any(|e| e == "[DONE]"), "no [DONE] after a cut: {text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_cut");
    let records = gw.usage(1).await;
    assert_eq!((records[0]["ok"].as_bool(), records[0]["status"].as_i64()), (Some(false), Some(502)));
    assert_eq!(records[0]["error_class"], "stream_cut");
}

#[tokio::test]
async fn a_slow_drip_is_relayed_chunk_by_chunk() {
    let (gw, mock) = openai_gateway().await;
    mock.script([Behavior::Drip(Duration::from_millis(150))]);
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    let mut stream = response.bytes_stream();
    use futures::StreamExt as _;
    let started = Instant::now();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if !chunk.is_empty() {
            arrivals.push(started.elapsed());
        }
    }
    assert!(arrivals.len() >= 4, "chunks arrive separately, not buffered whole: {arrivals:?}");
    assert!(arrivals[1] + Duration::from_millis(100) < *arrivals.last().unwrap());
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let (gw, mock) = openai_gateway().await;
    mock.script([Behavior::Drip(Duration::from_millis(300))]);
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    let mut stream = response.bytes_stream();
    use futures::StreamExt as _;
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let records = gw.usage(1).await;
    assert_eq!(
        (records[0]["status"].as_i64(), records[0]["error_class"].as_str()),
        (Some(499), Some("client_disconnected"))
    );
    // Recorded well before the drip would have finished (7 events x 300 ms): the upstream was dropped.
    assert!(records[0]["latency_ms"].as_i64().unwrap() < 1500, "{}", records[0]);
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
async fn provider_keys_and_api_keys_never_reach_the_logs() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let provider_secret = "sk-log-probe-PROVIDER-5f3a9c";
    mock.set_key(provider_secret);
    let created = gw.app.post_json("/api/v1/providers", Some(&gw.token), &json!({"label": "Logged", "kind": "openai_compatible", "base_url": mock.base_url(), "api_key": provider_secret})).await;
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    gw.app.post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({})).await;
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    mock.set_default(Behavior::Status(500, None));
    gw.chat(&chat_body("mock-small")).await;
    mock.set_key("sk-other");
    gw.chat(&chat_body("mock-small")).await;
    gw.app.post_json(&format!("/api/v1/keys/{}/revoke", gw.key_id), Some(&gw.token), &json!({})).await;
    gw.chat(&chat_body("mock-small")).await;
    gw.usage(3).await;
    let logs = captured_logs();
    assert!(logs.contains("upstream attempt failed"), "the failures were logged");
    for secret in [provider_secret, gw.key.as_str(), &gw.key[3..], gw.token.as_str()] {
        assert!(!logs.contains(secret), "secret material in the logs");
    }
}

#[tokio::test]
async fn revocation_reaches_another_instance_on_the_same_database() {
    let options = fast_options();
    let db = app::server::platform::db::Db::open(&options.settings).await.unwrap();
    let mut first_options = fast_options();
    first_options.db = Some(db.clone());
    let gw = Gateway::start(first_options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("P", "openai_compatible", &mock.base_url(), 1).await;
    let mut second_options = fast_options();
    second_options.db = Some(db);
    let second = spawn_app_with(second_options).await;
    let call_second = || {
        second
            .client
            .post(second.url("/v1/chat/completions"))
            .bearer_auth(&gw.key)
            .json(&chat_body("mock-small"))
            .send()
    };
    assert_eq!(call_second().await.unwrap().status(), 200, "the second instance caches the key");
    assert_eq!(call_second().await.unwrap().status(), 200);

    gw.app.post_json(&format!("/api/v1/keys/{}/revoke", gw.key_id), Some(&gw.token), &json!({})).await;
    let revoked_at = Instant::now();
    let mut refused_after = None;
    for _ in 0..100 {
        if call_second().await.unwrap().status() == 401 {
            refused_after = Some(revoked_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after = refused_after.expect("the other instance never saw the revocation");
    assert!(refused_after < Duration::from_millis(500), "took {refused_after:?}");
}

#[tokio::test]
async fn an_error_event_inside_a_stream_is_a_failure_not_a_success() {
    let (gw, mock) = openai_gateway().await;
    mock.script([Behavior::ErrorAfter(2)]);
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let text = gw.chat(&body).await.text().await.unwrap();
    let events = sse_data(&text);
    assert!(!events.iter().any(|e| e == "[DONE]"), "no [DONE] after an error: {text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error");
    assert!(!text.contains(VALID_KEY), "the provider's key is scrubbed from its error: {text}");
    let records = gw.usage(1).await;
    assert_eq!(
        (records[0]["ok"].as_bool(), records[0]["error_class"].as_str()),
        (Some(false), Some("upstream_stream_error"))
    );
}

/// A stream from a first provider that misbehaves before its first byte reaches the client,
/// with a healthy second provider behind it (the gateway and mocks are returned to stay up while
/// the body is read).
async fn stream_with_backup(first: Behavior) -> (Gateway, [Mock; 2], reqwest::Response) {
    let gw = Gateway::start(fast_options()).await;
    let failing = Mock::start(Flavor::OpenAi).await;
    failing.script([first]);
    let backup = Mock::start(Flavor::OpenAi).await;
    gw.provider("Fails", "openai_compatible", &failing.base_url(), 1).await;
    gw.provider("Backup", "openai_compatible", &backup.base_url(), 2).await;
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    (gw, [failing, backup], response)
}

#[tokio::test]
async fn a_stream_that_starts_with_an_error_falls_back() {
    let (_gw, _mocks, response) = stream_with_backup(Behavior::ErrorAfter(0)).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
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
async fn a_stream_that_dies_before_its_first_byte_falls_back() {
    let (_gw, _mocks, response) = stream_with_backup(Behavior::CutAfter(0)).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert_eq!(response.headers()["x-perpetuo-attempts"], "2");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}
