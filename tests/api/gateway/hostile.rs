//! A key holder sends what is costly to count (long runs of one letter, the worst case of a BPE
//! tokenizer), to `count_tokens` and to budgeted calls: the serving thread keeps answering
//! everyone else meanwhile. The app here serves on the test's own single thread, so any
//! superlinear work on the request path would hold every other call until it ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::helpers::{email, poll};
use crate::mock::VALID_KEY;

#[tokio::test]
async fn the_serving_thread_keeps_answering_while_hostile_prompts_are_counted() {
    let (gw, _mock) = openai_gateway().await;
    // A budget, so every chat call's prompt is estimated before it is made.
    let budget = json!({"usd_limit": 1000.0, "allow_unpriced": true});
    let set = gw.app.client.put(gw.app.url("/api/v1/budgets/workspace")).bearer_auth(&gw.token).json(&budget);
    assert_eq!(set.send().await.unwrap().status(), 200);
    let gw = Arc::new(gw);
    let hostile = "a".repeat(256 * 1024);
    let finished = Arc::new(AtomicUsize::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (gw, text, finished) = (Arc::clone(&gw), hostile.clone(), Arc::clone(&finished));
        attackers.spawn(async move {
            let response = if i % 2 == 0 {
                let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": text}]});
                gw.app
                    .client
                    .post(gw.app.url("/v1/messages/count_tokens"))
                    .header("x-api-key", &gw.key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            } else {
                gw.chat(
                    &json!({"model": "mock-small", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}),
                )
                .await
            };
            let status = response.status().as_u16();
            let counted = response.headers().get("x-perpetuo-token-count").map(|v| v.to_str().unwrap_or("").to_owned());
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            finished.fetch_add(1, Ordering::SeqCst);
            (status, counted, body)
        });
    }
    // Ordinary calls, one after another, while the hostile ones are in flight: each must answer
    // (a client timeout only stops a frozen gateway from hanging the test).
    let mut answered_during = 0;
    for _ in 0..20 {
        let body = chat_body("mock-small");
        let call = gw.chat(&body);
        let response = tokio::time::timeout(Duration::from_secs(30), call).await.expect("an ordinary call answered");
        assert_eq!(response.status(), 200);
        // Answered while hostile prompts were still being counted: the serving thread was free.
        answered_during += usize::from(finished.load(Ordering::SeqCst) < 8);
    }
    while let Some(result) = attackers.join_next().await {
        let (status, counted, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        if let Some(how) = counted {
            assert!(how.starts_with("estimate"), "{how}");
            let tokens = body["input_tokens"].as_u64().unwrap();
            // Never below what the BPE gives the text (it counts 'a' runs at several bytes a token).
            assert!(tokens > 1_000 && tokens <= 256 * 1024 + 1_000, "{tokens}");
        }
    }
    eprintln!("ordinary calls answered while hostile prompts were still in flight: {answered_during} of 20");
    assert!(answered_during >= 1, "no ordinary call was answered while hostile prompts were counted");
}

/// One workspace floods `count_tokens` with megabyte prompts (each counted on the estimator's
/// thread up to its deadline); another's large prompt is still counted in full, in its turn,
/// rather than by length behind the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workspace_flooding_the_estimator_leaves_others_their_share() {
    let (gw, mock) = openai_gateway().await;
    let other = {
        let (token, _, _) = gw.app.api_signup(&email("quiet")).await;
        gw.app.add_provider(&token, "Mock", "openai_compatible", &mock.base_url(), VALID_KEY).await;
        gw.app.add_key(&token, "quiet").await.1
    };
    let count = |key: String, text: String| {
        let (client, url) = (gw.app.client.clone(), gw.app.url("/v1/messages/count_tokens"));
        async move {
            let body = json!({"model": "mock-small", "messages": [{"role": "user", "content": text}]});
            let response = client.post(url).header("x-api-key", key).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers().get("x-perpetuo-token-count").unwrap().to_str().unwrap().to_owned()
        }
    };
    let stats = gw.app.state.estimator().stats();
    let before = stats.offloaded.load(Ordering::SeqCst);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..24 {
        // Words the BPE takes long over: the whole megabyte is still counting when its deadline comes.
        let text = format!("{i} {}", "supercalifragilistic expialidocious ".repeat(28_000));
        flood.spawn(count(gw.key.clone(), text));
    }
    // Once the flood fills its share of the queue, the other workspace asks for its count.
    let queued = poll(Duration::from_secs(30), || async {
        (stats.offloaded.load(Ordering::SeqCst) >= before + 4).then_some(())
    })
    .await;
    assert!(queued.is_some(), "the flood reached the estimator");
    // The quiet workspace is answered (its turn comes after at most one of the flood's prompts;
    // the estimator's own test checks the order without a loaded machine's timing).
    let quiet = count(other, "A question about the sea and its tides. ".repeat(600)).await;
    assert!(quiet.starts_with("estimate; encoding=o200k_base"), "{quiet}");
    let mut by_length = 0;
    while let Some(how) = flood.join_next().await {
        by_length += usize::from(how.unwrap().contains("by length"));
    }
    eprintln!("flood of 24 megabyte prompts: {by_length} counted partly by length");
    assert!(by_length > 0, "the flood itself was held to its share");
    let metrics = gw.app.state.metrics.count_tokens();
    assert!(metrics >= 25, "count_tokens calls are counted in the metrics: {metrics}");
}

#[tokio::test]
async fn count_tokens_is_under_the_keys_request_limit() {
    let (gw, _mock) = openai_gateway().await;
    let limited =
        gw.app.post_json("/api/v1/keys", Some(&gw.token), &json!({"name": "slow", "rate_limit_per_min": 3})).await;
    assert_eq!(limited.status(), 201);
    let key = limited.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let body = json!({"model": "mock-small", "messages": [{"role": "user", "content": "Hello"}]});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = gw
            .app
            .client
            .post(gw.app.url("/v1/messages/count_tokens"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the fourth count in a minute is refused");
}
