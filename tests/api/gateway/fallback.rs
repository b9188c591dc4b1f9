//! When providers fail: fallback in priority order, retries within `Retry-After` and the deadline,
//! bounded attempts, a rejected provider key, circuit breakers, a provider that hangs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock};

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
    // Flagged for the dashboard (off the request path: polled).
    let flagged = poll(Duration::from_secs(10), || async {
        let p: Value = gw.app.get_value(&format!("/api/v1/providers/{bad_id}"), Some(&gw.token)).await;
        (p["key_status"] == "rejected").then_some(())
    })
    .await;
    assert!(flagged.is_some(), "provider flagged as having a rejected key");

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
    // The deadline (10 s) is far past the first-byte timeout (300 ms): had the hung attempt not
    // been abandoned at the latter, the call would have ended at the deadline as a 504.
    let response = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert_eq!(response.headers()["x-perpetuo-attempts"], "2");
    // Streaming too: fallback before the first byte reaches the client.
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

/// The providers tab's health, through REST: a provider that fails every call shows its
/// failures, its last error and its open breaker (not just "enabled"); the one that served shows
/// its calls and latency; and calls that reached no provider because its breaker was open are
/// recorded against it, not against "no provider".
#[tokio::test]
async fn a_failing_provider_shows_its_errors_breaker_and_last_error_and_the_log_names_it() {
    let mut options = fast_options();
    options.settings.upstream.breaker_failure_threshold = 3;
    options.settings.upstream.breaker_cooldown = Duration::from_secs(600);
    let gw = Gateway::start(options).await;
    let broken = Mock::start(Flavor::OpenAi).await;
    broken.set_default(Behavior::Status(503, None));
    let good = Mock::start(Flavor::OpenAi).await;
    let broken_id = gw.provider("Broken", "openai_compatible", &broken.base_url(), 1).await;
    let good_id = gw.provider("Good", "openai_compatible", &good.base_url(), 2).await;
    let price = json!({"kind": "openai_compatible", "model": "mock-small", "input_per_million": 2.0, "output_per_million": 8.0});
    assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    for _ in 0..6 {
        assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    }
    let list = gw.app.get_value("/api/v1/providers", Some(&gw.token)).await;
    let view = |id: &str| list["data"].as_array().unwrap().iter().find(|p| p["id"] == id).cloned().unwrap();
    let failing = &view(&broken_id)["health"];
    assert_eq!((failing["calls"].as_u64(), failing["errors"].as_u64()), (Some(3), Some(3)), "{failing}");
    assert_eq!(failing["last_error"]["class"], "upstream_5xx");
    assert!(failing["last_error"]["message"].as_str().unwrap().contains("server error"));
    assert_eq!(failing["breaker"]["state"], "open", "{failing}");
    assert!(failing["breaker"]["until"].as_i64().unwrap() > failing["last_error"]["at"].as_i64().unwrap());
    assert!(failing["last_success_at"].is_null());
    let serving = &view(&good_id)["health"];
    assert_eq!((serving["calls"].as_u64(), serving["errors"].as_u64()), (Some(6), Some(0)), "{serving}");
    assert!(serving["p50_ms"].as_u64().is_some() && serving["last_success_at"].as_i64().is_some());
    assert_eq!(serving["breaker"]["state"], "closed");
    let one = gw.app.get_value(&format!("/api/v1/providers/{broken_id}"), Some(&gw.token)).await;
    assert_eq!(one["health"]["breaker"]["state"], "open");

    // Each call's record holds its steps: tried and failed, then served; later, passed over.
    usage_settled(&gw.app, 6).await;
    let log = gw.app.get_value("/api/v1/requests?limit=10", Some(&gw.token)).await;
    let rows = log["data"].as_array().unwrap();
    let steps = |row: &Value| -> Vec<(u64, String, String)> {
        row["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["attempt"].as_u64().unwrap(),
                    s["provider_label"].as_str().unwrap().into(),
                    s["outcome"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (oldest, newest) = (rows.last().unwrap(), &rows[0]);
    assert_eq!(
        steps(oldest),
        [(1, "Broken".into(), "upstream_5xx".into()), (2, "Good".into(), "answered".into())],
        "{oldest}"
    );
    assert_eq!(steps(newest), [(0, "Broken".into(), "breaker_open".into()), (1, "Good".into(), "answered".into())]);
    // The call's own record, by its id (what x-request-id said), for its owner only.
    let id = oldest["request_id"].as_str().unwrap();
    let story = gw.app.get_value(&format!("/api/v1/requests/{id}"), Some(&gw.token)).await;
    assert_eq!(story["timeline"], oldest["timeline"], "{story}");
    assert_eq!(story["provider_label"], "Good");
    // The price it was charged at, and whose: 11 in at $2, 7 out at $8 per million.
    assert_eq!(
        story["price"],
        json!({"input_per_million": 2.0, "output_per_million": 8.0, "cache_read_per_million": 2.0, "cache_write_per_million": 2.0, "workspace_price": true})
    );
    assert_eq!(story["cost_nanos"], 11 * 2000 + 7 * 8000);
    let missing = gw.app.get_json(&format!("/api/v1/requests/{}00000000000", &id[..13]), Some(&gw.token)).await;
    assert_eq!(missing.status(), 404);
    let (stranger, _, _) = gw.app.api_signup(&email("stranger")).await;
    assert_eq!(
        gw.app.get_json(&format!("/api/v1/requests/{id}"), Some(&stranger)).await.status(),
        404,
        "another workspace's call"
    );
    let first = &oldest["timeline"][1];
    assert!(first["started_ms"].as_i64().unwrap() >= oldest["timeline"][0]["started_ms"].as_i64().unwrap());
    assert_eq!(first["provider_kind"], "openai_compatible");

    // Only the broken provider: the calls its open breaker keeps from it still name it.
    assert!(gw.app.delete(&format!("/api/v1/providers/{good_id}"), &gw.token).await.status().is_success());
    let refused = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(refused.status(), 503);
    let records = gw.usage(7).await;
    let last = records.last().unwrap();
    assert_eq!((last["provider_label"].as_str(), last["attempts"].as_i64()), (Some("Broken"), Some(0)), "{last}");
    assert_eq!(last["error_class"], "providers_unavailable");
}
