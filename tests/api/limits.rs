//! Limits in tokens and in flight on one instance: set through the API (owners only), a call over
//! a token limit refused with `Retry-After` and each protocol's rate-limit headers, tokens settled
//! to what calls used, places in flight held until a stream ends, and a provider that says it is
//! nearly out of its own quota passed over until its reset.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

async fn limited_gateway() -> (Gateway, Mock) {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Mock", "openai_compatible", &mock.base_url(), 1).await;
    (gw, mock)
}

async fn put(gw: &Gateway, path: &str, token: &str, body: &Value) -> reqwest::Response {
    gw.app.client.put(gw.app.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

async fn limits(gw: &Gateway) -> Vec<Value> {
    gw.app.get_value("/api/v1/limits", Some(&gw.token)).await["data"].as_array().unwrap().clone()
}

fn call(max_tokens: u64, stream: bool) -> Value {
    json!({"model": "mock-small", "max_tokens": max_tokens, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn limits_are_set_read_and_checked_through_the_api() {
    let (gw, _mock) = limited_gateway().await;
    let token = gw.token.clone();
    let empty = put(&gw, "/api/v1/limits/workspace", &token, &json!({})).await;
    assert!(api_error(empty, 400).await["error"]["message"].as_str().unwrap().starts_with("Set at least one limit"));
    let zero = put(&gw, "/api/v1/limits/workspace", &token, &json!({"max_in_flight": 0})).await;
    assert_eq!(zero.status(), 400);
    let huge = put(&gw, "/api/v1/limits/workspace", &token, &json!({"tokens_per_min": 2_000_000_000u64})).await;
    assert_eq!(huge.status(), 400);
    let negative = put(&gw, "/api/v1/limits/workspace", &token, &json!({"input_tokens_per_min": -1})).await;
    assert!(negative.status().is_client_error(), "{}", negative.status());
    assert_eq!(put(&gw, "/api/v1/keys/nope/limits", &token, &json!({"max_in_flight": 2})).await.status(), 404);
    assert_eq!(put(&gw, "/api/v1/providers/nope/limits", &token, &json!({"max_in_flight": 2})).await.status(), 404);

    let set = put(&gw, "/api/v1/limits/workspace", &token, &json!({"input_tokens_per_min": 50_000})).await;
    assert_eq!(set.status(), 200);
    let view: Value = set.json().await.unwrap();
    assert_eq!(
        (view["scope"]["kind"].as_str(), view["input_tokens_per_min"].as_u64()),
        (Some("workspace"), Some(50_000))
    );
    let key = format!("/api/v1/keys/{}/limits", gw.key_id);
    assert_eq!(put(&gw, &key, &token, &json!({"max_in_flight": 3, "output_tokens_per_min": 900})).await.status(), 200);
    let providers = gw.app.get_value("/api/v1/providers", Some(&token)).await;
    let provider_id = providers["data"][0]["id"].as_str().unwrap().to_owned();
    let provider = format!("/api/v1/providers/{provider_id}/limits");
    assert_eq!(put(&gw, &provider, &token, &json!({"tokens_per_min": 70_000})).await.status(), 200);
    let list = limits(&gw).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().any(|l| l["name"] == "app" && l["max_in_flight"] == 3 && l["output_tokens_per_min"] == 900));
    assert!(
        list.iter().any(|l| l["name"] == "Mock" && l["scope"]["kind"] == "provider" && l["tokens_per_min"] == 70_000)
    );
    // Replacing a limit replaces it, not adds another.
    assert_eq!(put(&gw, &key, &token, &json!({"max_in_flight": 5})).await.status(), 200);
    let list = limits(&gw).await;
    let mine = list.iter().find(|l| l["scope"]["kind"] == "key").unwrap();
    assert_eq!((mine["max_in_flight"].as_u64(), mine["output_tokens_per_min"].as_u64()), (Some(5), None));

    // Another workspace sees none of them and cannot touch ours.
    let (other, _, _) = gw.app.api_signup(&email("other")).await;
    assert_eq!(gw.app.get_value("/api/v1/limits", Some(&other)).await["data"], json!([]));
    assert_eq!(put(&gw, &key, &other, &json!({"max_in_flight": 1})).await.status(), 404);

    // A member reads them but cannot set or remove any.
    let invite: Value = gw.app.post_json("/api/v1/invites", Some(&token), &json!({})).await.json().await.unwrap();
    let joined = gw
        .app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": email("member"), "password": PASSWORD, "invite": invite["token"]}),
        )
        .await;
    let member = joined.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(gw.app.get_value("/api/v1/limits", Some(&member)).await["data"].as_array().unwrap().len(), 3);
    assert_eq!(put(&gw, "/api/v1/limits/workspace", &member, &json!({"max_in_flight": 1})).await.status(), 403);
    assert_eq!(gw.app.delete(&key, &member).await.status(), 403);

    assert_eq!(gw.app.delete(&key, &token).await.status(), 204);
    assert_eq!(gw.app.delete(&key, &token).await.status(), 404);
    assert_eq!(limits(&gw).await.len(), 2);
}

#[tokio::test]
async fn a_call_over_a_token_limit_is_refused_with_retry_after_and_the_headers_and_tokens_settle() {
    let (gw, mock) = limited_gateway().await;
    let key = format!("/api/v1/keys/{}/limits", gw.key_id);
    assert_eq!(put(&gw, &key, &gw.token, &json!({"output_tokens_per_min": 100})).await.status(), 200);

    // A call that may write 60 tokens reserves 60; it writes 7.
    let started = std::time::Instant::now();
    let first = gw.chat(&call(60, false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-tokens").as_deref(), Some("100"));
    let remaining: u64 = header(&first, "x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
    assert!(remaining <= 40, "the reservation is counted: {remaining} left");
    assert!(header(&first, "x-ratelimit-reset-tokens").unwrap().ends_with('s'));

    // Settled to the 7 it wrote (by the time it is recorded), the next one fits (60 more would
    // not have, unsettled).
    gw.usage(1).await;
    let settled = poll(Duration::from_secs(5), || async {
        let next = gw.chat(&call(60, false)).await;
        (next.status() == 200).then_some(next)
    })
    .await
    .expect("the first call's unused tokens came back");
    let left: u64 = header(&settled, "x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
    // The bucket refills 100 tokens a minute meanwhile (a loaded machine takes seconds here).
    let refilled = (started.elapsed().as_secs_f64() * 100.0 / 60.0).ceil() as u64;
    assert!(left <= 100 - 7 - 60 + 2 + refilled, "{left} left, {refilled} refilled");

    // A call that cannot fit is refused at once, in OpenAI's shape, with the limit's headers.
    let refused = gw.chat(&call(90, false)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&refused, "x-ratelimit-limit-tokens").as_deref(), Some("100"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert_eq!(error["error"]["type"], "tokens", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("output tokens"), "{error}");

    // On /v1/messages, Anthropic's shape and headers.
    let messages = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "mock-small", "max_tokens": 95, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 429);
    assert_eq!(header(&messages, "anthropic-ratelimit-output-tokens-limit").as_deref(), Some("100"));
    assert!(header(&messages, "anthropic-ratelimit-output-tokens-reset").unwrap().ends_with('Z'));
    assert!(header(&messages, "retry-after").is_some());
    let error: Value = messages.json().await.unwrap();
    assert_eq!(
        (error["type"].as_str(), error["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error")),
        "{error}"
    );

    // The refused calls reached no provider, and are recorded as refused.
    assert_eq!(mock.hits(), 2);
    let records = gw.usage(4).await;
    let classes: Vec<&str> = records.iter().filter_map(|r| r["error_class"].as_str()).collect();
    assert_eq!(classes, ["token_limited", "token_limited"], "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_places_until_streams_end() {
    let (gw, mock) = limited_gateway().await;
    assert_eq!(put(&gw, "/api/v1/limits/workspace", &gw.token, &json!({"max_in_flight": 2})).await.status(), 200);
    mock.set_hold(Duration::from_millis(300));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (client, url, key) = (gw.app.client.clone(), gw.app.url("/v1/chat/completions"), gw.key.clone());
        calls.spawn(async move {
            let response = client.post(url).bearer_auth(key).json(&call(7, i % 2 == 0)).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        });
    }
    let mut answered = 0;
    while let Some(done) = calls.join_next().await {
        let (status, text) = done.unwrap();
        assert_eq!(status, 200, "each waited its turn (LIMIT_WAIT_MS, 2 s by default): {text}");
        answered += 1;
    }
    eprintln!(
        "8 at once under a limit of 2 in flight: {answered} answered; the mock held {} at most",
        mock.max_in_flight()
    );
    assert_eq!(mock.max_in_flight(), 2);
    // Held past the wait, the calls beyond the limit are refused.
    mock.set_hold(Duration::from_millis(2500));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (client, url, key) = (gw.app.client.clone(), gw.app.url("/v1/chat/completions"), gw.key.clone());
        calls.spawn(async move {
            let response = client.post(url).bearer_auth(key).json(&call(7, i % 2 == 0)).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.headers().get("retry-after").is_some(), response.text().await.unwrap())
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(done) = calls.join_next().await {
        let (status, retry_after, text) = done.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert!(text.contains("in flight") && retry_after, "{text}");
                refused += 1;
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert_eq!((ok, refused), (2, 2));
    assert_eq!(mock.max_in_flight(), 2);
    // Every place came back: two more at once are both admitted.
    mock.set_hold(Duration::ZERO);
    let (one, two) = (call(7, true), call(7, false));
    let (a, b) = tokio::join!(gw.chat(&one), gw.chat(&two));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
}

#[tokio::test]
async fn a_provider_that_says_it_is_nearly_out_is_passed_over_until_its_reset() {
    let (gw, first) = limited_gateway().await;
    let second = Mock::start(Flavor::OpenAi).await;
    gw.provider("Second", "openai_compatible", &second.base_url(), 2).await;
    // The first provider answers, and says one request is left of 1,000 for two seconds.
    first.set_headers(&[
        ("x-ratelimit-limit-requests", "1000"),
        ("x-ratelimit-remaining-requests", "1"),
        ("x-ratelimit-reset-requests", "2s"),
    ]);
    let answered = gw.chat(&call(7, false)).await;
    assert_eq!(header(&answered, "x-perpetuo-provider").as_deref(), Some("Mock"));
    first.set_headers(&[]);
    // While it rests (the test's clock stands still), the second serves; the first gets nothing.
    let mut served = Vec::new();
    for i in 0..6 {
        let response = gw.chat(&call(7, i % 2 == 1)).await;
        assert_eq!(response.status(), 200);
        served.push(header(&response, "x-perpetuo-provider").unwrap());
    }
    assert!(served.iter().all(|s| s == "Second"), "{served:?}");
    assert_eq!(first.hits(), 1);
    // The providers tab's data: what it said, and until when it rests.
    let providers = gw.app.get_value("/api/v1/providers", Some(&gw.token)).await;
    let mine = providers["data"].as_array().unwrap().iter().find(|p| p["label"] == "Mock").unwrap().clone();
    assert_eq!(mine["pressure"]["requests_remaining"], 1, "{mine}");
    assert!(mine["pressure"]["resting_until"].as_i64().is_some(), "{mine}");
    // Just before its reset it still rests; at its reset it serves again.
    gw.app.clock.advance(Duration::from_millis(1_900));
    assert_eq!(header(&gw.chat(&call(7, false)).await, "x-perpetuo-provider").as_deref(), Some("Second"));
    gw.app.clock.advance(Duration::from_millis(150));
    assert_eq!(header(&gw.chat(&call(7, false)).await, "x-perpetuo-provider").as_deref(), Some("Mock"));
    assert_eq!(first.hits(), 2);
}

#[tokio::test]
async fn a_lone_provider_resting_past_the_wait_answers_429_with_its_reset() {
    let (gw, mock) = limited_gateway().await;
    mock.set_headers(&[("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "30s")]);
    assert_eq!(gw.chat(&call(7, false)).await.status(), 200);
    let refused = gw.chat(&call(7, false)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry), "{retry}");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert_eq!(mock.hits(), 1, "the resting provider got no second call");
}

#[tokio::test]
async fn a_stream_holds_its_place_until_it_ends() {
    let (gw, mock) = limited_gateway().await;
    assert_eq!(put(&gw, "/api/v1/limits/workspace", &gw.token, &json!({"max_in_flight": 1})).await.status(), 200);
    let in_flight = || async { limits(&gw).await[0]["in_flight_here"].as_u64() };
    assert_eq!(in_flight().await, Some(0));
    mock.script([crate::mock::Behavior::Drip(Duration::from_millis(150))]);
    // The answer's headers are here; its events are still coming.
    let streaming = gw.chat(&call(7, true)).await;
    assert_eq!(streaming.status(), 200);
    assert_eq!(in_flight().await, Some(1), "the stream holds its place while it runs");
    let text = streaming.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let freed = poll(Duration::from_secs(5), || async { (in_flight().await == Some(0)).then_some(()) }).await;
    assert!(freed.is_some(), "the place came back when the stream ended");
}

/// A provider's rate-limit headers describe the model called: one model out of its quota leaves
/// the provider's other models served.
#[tokio::test]
async fn a_quota_exhausted_on_one_model_leaves_the_providers_other_models_served() {
    let (gw, mock) = limited_gateway().await;
    mock.set_headers(&[("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "5m")]);
    let model =
        |name: &str| json!({"model": name, "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]});
    assert_eq!(gw.chat(&model("small")).await.status(), 200);
    mock.set_headers(&[]);
    assert_eq!(gw.chat(&model("big")).await.status(), 200, "another model of the provider is served");
    let resting = gw.chat(&model("small")).await;
    assert_eq!(resting.status(), 429, "the exhausted model rests until its reset");
    let error: Value = resting.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("rate limit"), "{error}");
    assert_eq!(mock.hits(), 2, "the resting model got no call");
}
