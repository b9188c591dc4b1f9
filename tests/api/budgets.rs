//! Budgets on one instance: set through the API, refused in each protocol's shape, held under
//! concurrency, settled at the actual cost (a stream cut short too), unpriced models refused.

use std::sync::Arc;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock};

/// One call: 7 output tokens at $1 per million output tokens (input free) = 7,000 nano-dollars.
const CALL_NANOS: i64 = 7_000;

async fn budget_gateway() -> (Gateway, Mock) {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Mock", "openai_compatible", &mock.base_url(), 1).await;
    let price = json!({"kind": "openai_compatible", "model": "mock-small", "input_per_million": 0.0, "output_per_million": 1.0});
    assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    (gw, mock)
}

fn call_body(stream: bool) -> Value {
    json!({"model": "mock-small", "max_tokens": 7, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn put(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    gw.app.client.put(gw.app.url(path)).bearer_auth(&gw.token).json(body).send().await.unwrap()
}

async fn budgets(gw: &Gateway) -> Vec<Value> {
    let list = gw.app.get_value("/api/v1/budgets", Some(&gw.token)).await;
    list["data"].as_array().unwrap().clone()
}

/// The workspace budget's view once nothing is reserved any more (every call settled).
async fn settled(gw: &Gateway) -> Value {
    let view = poll(std::time::Duration::from_secs(10), || async {
        let list = budgets(gw).await;
        let view = list.into_iter().find(|b| b["scope"]["kind"] == "workspace")?;
        (view["reserved_usd"].as_f64() == Some(0.0) && view["reserved_tokens"].as_i64() == Some(0)).then_some(view)
    })
    .await;
    view.expect("every hold was settled")
}

#[tokio::test]
async fn budgets_are_set_read_and_checked_through_the_api() {
    let (gw, _mock) = budget_gateway().await;
    let bad = put(&gw, "/api/v1/budgets/workspace", &json!({})).await;
    assert_eq!(api_error(bad, 400).await["error"]["message"], "Set a dollar limit, a token limit, or both.");
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": -5})).await.status(), 400);
    assert_eq!(put(&gw, "/api/v1/keys/nope/budget", &json!({"usd_limit": 5})).await.status(), 404);
    let set = put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": 20.0, "period_days": 7})).await;
    assert_eq!(set.status(), 200);
    let view: Value = set.json().await.unwrap();
    assert_eq!((view["usd_limit"].as_f64(), view["period_days"].as_u64()), (Some(20.0), Some(7)));
    let path = format!("/api/v1/keys/{}/budget", gw.key_id);
    let key = put(&gw, &path, &json!({"token_limit": 1000})).await;
    assert_eq!(key.status(), 200);
    let list = budgets(&gw).await;
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|b| b["key_name"] == "app" && b["token_limit"] == 1000), "{list:?}");
    // Another workspace sees none of them.
    let (other, _, _) = gw.app.api_signup(&email("other")).await;
    let theirs = gw.app.get_value("/api/v1/budgets", Some(&other)).await;
    assert_eq!(theirs["data"], json!([]));
    let deleted = gw.app.client.delete(gw.app.url(&path)).bearer_auth(&gw.token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(budgets(&gw).await.len(), 1);
}

#[tokio::test]
async fn a_budget_worth_50_calls_admits_at_most_50_of_200_concurrent_ones() {
    let (gw, _mock) = budget_gateway().await;
    let usd = (50 * CALL_NANOS) as f64 / 1e9;
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": usd})).await.status(), 200);
    let gw = Arc::new(gw);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let gw = Arc::clone(&gw);
        calls.spawn(async move {
            let response = gw.chat(&call_body(i % 2 == 1)).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(result) = calls.join_next().await {
        let (status, text) = result.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
                assert_eq!(body["error"]["code"], "insufficient_quota");
                assert!(body["error"]["message"].as_str().unwrap().contains("workspace's budget"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    eprintln!("budget worth 50 calls, 200 concurrent (half streaming): {ok} answered, {refused} refused");
    assert_eq!(ok + refused, 200);
    assert_eq!(ok, 50, "every call cost its worst case, so exactly 50 fit");
    let view = settled(&gw).await;
    let spent = (view["spent_usd"].as_f64().unwrap() * 1e9).round() as i64;
    assert_eq!(spent, 50 * CALL_NANOS);
    let records = gw.usage(200).await;
    let recorded: i64 = records.iter().filter_map(|r| r["cost_nanos"].as_i64()).sum();
    assert!(recorded <= 50 * CALL_NANOS, "recorded spend {recorded} is within the budget");
    assert_eq!(records.iter().filter(|r| r["error_class"] == "budget_exceeded").count(), 150);
}

#[tokio::test]
async fn refusals_speak_each_protocol_and_settling_frees_what_was_not_used() {
    let (gw, mock) = budget_gateway().await;
    // Room for one worst case (7 tokens) but not two at once.
    let usd = (2 * CALL_NANOS - 1_000) as f64 / 1e9;
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": usd})).await.status(), 200);
    // The answer used 2 of its 7 tokens: 5 are free again once it settles.
    mock.set_tokens(11, 2);
    assert_eq!(gw.chat(&call_body(false)).await.status(), 200);
    let view = settled(&gw).await;
    assert_eq!((view["spent_usd"].as_f64().unwrap() * 1e9).round() as i64, 2_000);
    assert_eq!(gw.chat(&call_body(false)).await.status(), 200);
    settled(&gw).await;
    mock.set_tokens(11, 7);
    assert_eq!(gw.chat(&call_body(false)).await.status(), 200, "4,000 spent: a 7,000 worst case still fits in 13,000");
    settled(&gw).await;
    let refused = gw.chat(&call_body(false)).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("left"), "{body}");
    // The Messages route answers in Anthropic's shape.
    let messages = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .json(&json!({"model": "mock-small", "max_tokens": 7, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 429);
    let body: Value = messages.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));
    assert!(body["error"]["message"].as_str().unwrap().contains("budget"), "{body}");
}

#[tokio::test]
async fn models_without_a_price_are_refused_under_a_budget_unless_allowed() {
    let (gw, _mock) = budget_gateway().await;
    let unpriced = json!({"model": "no-such-price", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(gw.chat(&unpriced).await.status(), 200, "no budget, no question");
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": 1.0})).await.status(), 200);
    let refused = gw.chat(&unpriced).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("no known price"), "{body}");
    let allow = json!({"usd_limit": 1.0, "allow_unpriced": true, "token_limit": 1000});
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &allow).await.status(), 200);
    assert_eq!(gw.chat(&unpriced).await.status(), 200);
    let view = settled(&gw).await;
    assert_eq!(view["spent_tokens"], 18, "11 prompt + 7 completion tokens counted");
    assert_eq!(view["spent_usd"], 0.0);
}

#[tokio::test]
async fn a_key_budget_binds_only_its_key() {
    let (gw, _mock) = budget_gateway().await;
    let path = format!("/api/v1/keys/{}/budget", gw.key_id);
    // A call's worst case is its prompt's ceiling (its 15 bytes of text, the estimate's margin and
    // the framing: about 38 tokens here) plus 7, and it uses 18: room for one call only.
    assert_eq!(put(&gw, &path, &json!({"token_limit": 50})).await.status(), 200);
    assert_eq!(gw.chat(&call_body(false)).await.status(), 200);
    let refused = gw.chat(&call_body(false)).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("API key's budget"), "{body}");
    let (_, other_key) = gw.app.add_key(&gw.token, "other").await;
    let other = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&other_key)
        .json(&call_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another key of the workspace is not bound by it");
}

#[tokio::test]
async fn a_stream_the_client_leaves_settles_at_what_the_provider_reported() {
    let (gw, mock) = budget_gateway().await;
    assert_eq!(put(&gw, "/api/v1/budgets/workspace", &json!({"usd_limit": 1.0})).await.status(), 200);
    mock.script([Behavior::Drip(std::time::Duration::from_millis(300))]);
    let mut body = call_body(true);
    body["max_tokens"] = json!(1000);
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let view = settled(&gw).await;
    let spent = (view["spent_usd"].as_f64().unwrap() * 1e9).round() as i64;
    // The provider's answer was read to its end after the client left: charged exactly the usage
    // it reported (11 prompt and 7 completion tokens), not the 1,000 tokens it reserved, nor nothing.
    let record = &gw.usage(1).await[0];
    assert_ne!(record["estimated"], true, "{record}");
    assert_eq!(
        (record["prompt_tokens"].as_i64(), record["completion_tokens"].as_i64()),
        (Some(11), Some(7)),
        "{record}"
    );
    assert_eq!(view["spent_tokens"], 18, "{view}");
    assert_eq!(Some(spent), record["cost_nanos"].as_i64(), "the budget holds what the record says");
    assert!(spent > 0);
}
