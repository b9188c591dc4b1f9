//! A key holder sends what is costly to count (long runs of one letter, the worst case of a BPE
//! tokenizer), to `count_tokens` and to budgeted calls: the serving thread keeps answering
//! everyone else meanwhile. The app here serves on the test's own single thread, so any
//! superlinear work on the request path would hold every other call until it ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;

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
        let during = finished.load(Ordering::SeqCst) < 8;
        let body = chat_body("mock-small");
        let call = gw.chat(&body);
        let response = tokio::time::timeout(Duration::from_secs(30), call).await.expect("an ordinary call answered");
        assert_eq!(response.status(), 200);
        answered_during += usize::from(during);
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
}
