//! Limits in tokens and in flight on three Perpetuo processes sharing one real SurrealDB server:
//! a key's input tokens a minute, a workspace's calls in flight, and a provider that says it is
//! nearly out of its own quota, each holding across instances as one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

async fn put(cluster: &Cluster, node: usize, path: &str, token: &str, body: &Value) -> u16 {
    let url = format!("{}{path}", cluster.base(node));
    cluster.client.put(url).bearer_auth(token).json(body).send().await.unwrap().status().as_u16()
}

/// A prompt of about a thousand tokens (as the mock counts it, and as Perpetuo estimates it on
/// the high side).
fn thousand_token_call() -> Value {
    json!({"model": "mock-small", "max_tokens": 7, "messages": [{"role": "user", "content": "hello ".repeat(1000)}]})
}

/// Statuses and bodies of the calls, spread over the instances, at most `at_once` in flight.
async fn burst(cluster: &Cluster, key: &str, bodies: Vec<Value>, at_once: usize) -> Vec<(u16, String)> {
    let gate = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut calls = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let (client, base, key, gate) =
            (cluster.client.clone(), cluster.base(i % 3).to_owned(), key.to_owned(), gate.clone());
        calls.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let response = client.post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body).send().await;
            let response = response.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    let mut out = Vec::new();
    while let Some(done) = calls.join_next().await {
        out.push(done.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_10000_input_tokens_a_minute_admits_10000_of_a_burst_of_50000_across_three_instances() {
    let Some(cluster) = Cluster::start(3, &[]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, key_id, key) = cluster.workspace(&mock).await;
    let path = format!("/api/v1/keys/{key_id}/limits");
    assert_eq!(put(&cluster, 1, &path, &token, &json!({"input_tokens_per_min": 10_000})).await, 200);
    // The limit reaches every instance (followed live); a call on each shows it in its headers.
    for node in 0..3 {
        let seen = poll(Duration::from_secs(10), || async {
            let r = cluster
                .chat(
                    node,
                    &key,
                    &json!({"model": "mock-small", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]}),
                )
                .await;
            (r.headers().get("x-ratelimit-limit-tokens").map(|v| v.to_str().unwrap().to_owned())
                == Some("10000".into()))
            .then_some(())
        })
        .await;
        assert!(seen.is_some(), "node {node} applies the limit");
    }
    // The small calls above: at most 11 input tokens each, as the mock counts them.
    let before = mock.hits();
    let small = before as u64 * 11;
    mock.set_tokens(1000, 7);
    let started = Instant::now();
    // 50 calls worth 1,000 input tokens each, ten at a time, over three instances.
    let results = burst(&cluster, &key, vec![thousand_token_call(); 50], 10).await;
    let elapsed = started.elapsed();
    let mut admitted = 0u64;
    for (status, text) in &results {
        match status {
            200 => admitted += 1,
            429 => assert!(text.contains("input tokens"), "{text}"),
            other => panic!("{other}: {text}"),
        }
    }
    let worth = admitted * 1000;
    // A token bucket refills 10,000 a minute; the small calls above took at most a few.
    let refilled = (elapsed.as_secs_f64() * 10_000.0 / 60.0).ceil() as u64;
    eprintln!(
        "key limited to 10,000 input tokens/min, burst worth 50,000 over 3 instances: {admitted} calls worth {worth} admitted in {elapsed:?} (refill {refilled})"
    );
    assert!(worth + small <= 10_000 + refilled, "never over the limit: {worth} + {small}");
    // The slack below: calls in flight hold their estimate's margin (25 %) until they settle, the
    // last room may be less than one call's estimate, and each instance may hold up to a block
    // (a fiftieth of the limit) another could have used.
    assert!(worth >= 7_000, "the limit was not wasted: {worth}");
    assert_eq!((mock.hits() - before) as u64, admitted, "only admitted calls reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_of_4_never_sees_a_fifth_call_in_flight_across_three_instances() {
    let Some(cluster) = Cluster::start(3, &[("LIMIT_WAIT_MS", "20000")]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&mock).await;
    assert_eq!(put(&cluster, 2, "/api/v1/limits/workspace", &token, &json!({"max_in_flight": 4})).await, 200);
    // Let every instance hear of it before the burst (a call on each sees it apply).
    let warm = poll(Duration::from_secs(10), || async {
        let listed: Value = cluster
            .client
            .get(format!("{}/api/v1/limits", cluster.base(0)))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (listed["data"][0]["max_in_flight"] == 4).then_some(())
    })
    .await;
    assert!(warm.is_some());
    mock.set_hold(Duration::from_millis(150));
    // 30 calls at once over three instances, half of them streams: they wait their turn.
    let bodies = (0..30)
        .map(|i| {
            let mut body = crate::cluster::small_call();
            body["stream"] = json!(i % 2 == 1);
            body
        })
        .collect();
    let results = burst(&cluster, &key, bodies, 30).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    let held = mock.max_in_flight();
    eprintln!(
        "30 calls under a limit of 4 in flight over 3 instances: statuses {statuses:?}; the mock held {held} at most"
    );
    assert!(held <= 4, "a fifth call was in flight: {held}");
    assert!(held >= 2, "the limit was used: {held}");
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert!(answered >= 20, "calls waited for a place rather than failing: {answered}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_says_it_is_nearly_out_gets_no_call_from_any_instance_until_its_reset() {
    let Some(cluster) = Cluster::start(3, &[]).await else { return };
    let first = Mock::start(Flavor::OpenAi).await;
    let second = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&first).await;
    let other = json!({"label": "Second", "kind": "openai_compatible", "base_url": second.base_url(), "api_key": VALID_KEY, "priority": 1000});
    assert_eq!(cluster.post(0, "/api/v1/providers", Some(&token), &other).await.status(), 201);
    first.set_headers(&[
        ("x-ratelimit-limit-tokens", "200000"),
        ("x-ratelimit-remaining-tokens", "1000"),
        // Long enough that every call below falls inside it; its end is the single-instance test's.
        ("x-ratelimit-reset-tokens", "10m"),
    ]);
    // One call through instance 0 reaches the first provider, which says it is nearly out.
    let answered = cluster.chat(0, &key, &crate::cluster::small_call()).await;
    assert_eq!(answered.headers()["x-perpetuo-provider"], "P");
    first.set_headers(&[]);
    // Instances 1 and 2 hear of the rest through the database.
    for node in [1, 2] {
        let heard = poll(Duration::from_secs(5), || async {
            let listed: Value = cluster
                .client
                .get(format!("{}/api/v1/providers", cluster.base(node)))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let p = listed["data"].as_array()?.iter().find(|p| p["label"] == "P")?.clone();
            p["pressure"]["resting_until"].as_i64().map(|_| ())
        })
        .await;
        assert!(heard.is_some(), "node {node} knows the provider rests");
    }
    let mut served = Vec::new();
    for i in 0..15 {
        let response = cluster.chat(i % 3, &key, &crate::cluster::small_call()).await;
        assert_eq!(response.status(), 200);
        served.push(response.headers()["x-perpetuo-provider"].to_str().unwrap().to_owned());
    }
    eprintln!("provider nearly out for 10 minutes: the next 15 calls over 3 instances went to {served:?}");
    assert!(served.iter().all(|s| s == "Second"), "{served:?}");
    assert_eq!(first.hits(), 1, "the resting provider got no call from any instance");
}
