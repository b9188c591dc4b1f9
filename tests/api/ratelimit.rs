//! Rate limits through the real router: exact per-key counting under concurrency, per-key
//! overrides, the per-IP limit across every route, and forwarded headers that only count when a
//! trusted proxy sent them.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

fn options(ip: u32, key: u32) -> Options {
    let mut options = Options::default();
    options.settings.rate_limit_ip_per_min = NonZeroU32::new(ip).unwrap();
    options.settings.rate_limit_key_per_min = NonZeroU32::new(key).unwrap();
    options
}

#[tokio::test]
async fn key_limit_is_exact_under_concurrency_and_recovers_after_the_window() {
    let gw = Gateway::start(options(100_000, 60)).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("P", "openai_compatible", &mock.base_url(), 1).await;

    let body = chat_body("mock-small");
    let requests = (0..200).map(|_| gw.chat(&body));
    let responses = futures::future::join_all(requests).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<&reqwest::Response> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((ok, limited.len()), (60, 140), "exactly the quota passes");
    assert_eq!(mock.hits(), 60, "refused requests never reach the provider");
    for response in &limited {
        // 60 per minute refills one request a second: that is when the next one can pass.
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "60");
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    }
    let error: Value = responses.into_iter().find(|r| r.status() == 429).unwrap().json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");

    // One second later exactly one more request passes; a full minute later, the whole quota.
    gw.app.clock.advance(Duration::from_secs(1));
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 429);
    gw.app.clock.advance(Duration::from_secs(60));
    let responses = futures::future::join_all((0..70).map(|_| gw.chat(&body))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 60, "{statuses:?}");
    let first = responses.iter().find(|r| r.status() == 200).unwrap();
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "60");
    assert!(first.headers().contains_key("x-ratelimit-reset-requests"));
    assert!(gw.app.state.metrics.render(&[], &[]).contains("perpetuo_rate_limited_total{limiter=\"key\"} 151"));
}

#[tokio::test]
async fn a_keys_own_limit_overrides_the_default() {
    let gw = Gateway::start(options(100_000, 60)).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("P", "openai_compatible", &mock.base_url(), 1).await;
    let created: Value = gw
        .app
        .post_json("/api/v1/keys", Some(&gw.token), &json!({"name": "slow", "rate_limit_per_min": 5}))
        .await
        .json()
        .await
        .unwrap();
    let slow = created["token"].as_str().unwrap().to_owned();
    let call = |key: String| {
        let client = gw.app.client.clone();
        let url = gw.app.url("/v1/chat/completions");
        async move {
            client.post(url).bearer_auth(key).json(&chat_body("mock-small")).send().await.unwrap().status().as_u16()
        }
    };
    let slow_statuses = futures::future::join_all((0..20).map(|_| call(slow.clone()))).await;
    assert_eq!(slow_statuses.iter().filter(|&&s| s == 200).count(), 5);
    // The default key keeps the default limit.
    let default_statuses = futures::future::join_all((0..20).map(|_| call(gw.key.clone()))).await;
    assert_eq!(default_statuses.iter().filter(|&&s| s == 200).count(), 20);
}

#[tokio::test]
async fn ip_limit_covers_every_route_with_the_right_shape() {
    let app = spawn_app_with(options(8, 60)).await;
    let paths = ["/healthz", "/signin", "/api/v1/workspaces", "/v1/models"];
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(app.client.get(app.url(paths[i % paths.len()])).send().await.unwrap().status().as_u16());
    }
    assert!(!statuses.contains(&429), "{statuses:?}");
    for path in paths {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 429, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let text = response.text().await.unwrap();
        if path.starts_with("/v1") || path.starts_with("/api") {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_exceeded", "{path}");
        } else {
            assert!(content_type.starts_with("text/html") && text.contains("Too many requests"), "{path}: {text}");
        }
    }
}

#[tokio::test]
async fn spoofed_forwarded_for_does_not_evade_the_ip_limit() {
    let app = spawn_app_with(options(5, 60)).await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("forwarded", format!("for=192.0.2.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5, "{statuses:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_real_client_is_limited() {
    let mut opts = options(3, 60);
    opts.settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = spawn_app_with(opts).await;
    let get = |client_ip: &'static str| {
        app.client.get(app.url("/healthz")).header("x-forwarded-for", format!("6.6.6.6, {client_ip}")).send()
    };
    for _ in 0..3 {
        assert_eq!(get("203.0.113.10").await.unwrap().status(), 200);
    }
    assert_eq!(get("203.0.113.10").await.unwrap().status(), 429, "that client used its quota");
    assert_eq!(get("203.0.113.11").await.unwrap().status(), 200, "another client behind the same proxy is separate");
}

#[tokio::test]
async fn unknown_keys_create_no_limiter_state() {
    let app = spawn_app_with(options(100_000, 60)).await;
    let before = app.state.limiters.tracked_keys();
    for i in 0..300 {
        let fake = format!("pk_{:0>43}", i);
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(fake)
            .json(&chat_body("m"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let after = app.state.limiters.tracked_keys();
    assert!(after <= before + 1, "only the one client IP is tracked: {before} -> {after}");
}
