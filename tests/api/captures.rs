//! Body capture: off by default and then nothing is stored; on, a call's request and answer are
//! kept sealed (the database holds no plain text of them), cut at the cap, redacted of
//! credentials, shown to owners with the call (a stream reassembled), hidden from members, sampled,
//! overridden per key, and pruned once their retention has passed.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::fast_options;
use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock};

/// A secret-shaped string a client pasted into a prompt.
const PASTED_KEY: &str = "sk-ant-api03-PASTEDxKEYxTHATxMUSTxNOTxBExKEPT0123456789";
/// A word that marks the prompt, to look for in the database's raw records.
const MARKER: &str = "zanzibar-quokka-marker";

async fn set_policy(gw: &Gateway, body: Value) -> reqwest::Response {
    gw.app.client.put(gw.app.url("/api/v1/capture")).bearer_auth(&gw.token).json(&body).send().await.unwrap()
}

async fn set_key_capture(gw: &Gateway, key_id: &str, capture: &str) {
    let response = gw
        .app
        .client
        .put(gw.app.url(&format!("/api/v1/keys/{key_id}/capture")))
        .bearer_auth(&gw.token)
        .json(&json!({"capture": capture}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// Every stored capture row, as the database holds it.
async fn stored(app: &TestApp) -> Vec<Value> {
    let mut response = app
        .state
        .db
        .query("SELECT record::id(id) AS id, workspace, key_id, route, stream, created_at, expires_at, sealed FROM capture")
        .await
        .unwrap();
    response.take::<Vec<Value>>(0).unwrap_or_default()
}

/// Waits until the capture writer has written `n` captures in all.
async fn written(app: &TestApp, n: u64) {
    let counters = &app.state.captures().counters;
    let done = poll(Duration::from_secs(10), || async { (counters.stored.load(Relaxed) >= n).then_some(()) }).await;
    assert!(done.is_some(), "the capture writer did not write {n} captures");
}

async fn story(gw: &Gateway, token: &str, id: &str) -> Value {
    gw.app.get_value(&format!("/api/v1/requests/{id}"), Some(token)).await
}

fn prompt(extra: &str) -> Value {
    json!({"model": "mock-small", "messages": [{"role": "user", "content": format!("{MARKER}: my key is {PASTED_KEY}. {extra}")}]})
}

/// The provider's next answer: a 400 (the client's request was wrong).
fn refuse_next(mock: &Mock) {
    mock.script([Behavior::Status(400, None)]);
}

async fn capture_gateway(cap: usize) -> (Gateway, Mock) {
    let mut options = fast_options();
    options.settings.capture_max_body_bytes = cap;
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Primary", "openai_compatible", &mock.base_url(), 10).await;
    (gw, mock)
}

#[tokio::test]
async fn captured_bodies_are_sealed_redacted_capped_and_shown_to_owners_only() {
    let (gw, mock) = capture_gateway(4096).await;
    assert_eq!(gw.app.get_value("/api/v1/capture", Some(&gw.token)).await["enabled"], false, "off by default");
    let on = set_policy(&gw, json!({"enabled": true, "retention_days": 3})).await;
    assert_eq!(on.status(), 200);
    assert_eq!(on.json::<Value>().await.unwrap(), json!({"enabled": true, "sample_percent": 100, "retention_days": 3}));

    // A whole answer.
    let whole = gw.chat(&prompt("")).await;
    assert_eq!(whole.status(), 200);
    let whole_id = whole.headers()["x-request-id"].to_str().unwrap().to_owned();
    let whole_answer: Value = whole.json().await.unwrap();
    // A stream.
    let mut streamed = prompt("");
    streamed["stream"] = json!(true);
    let stream = gw.chat(&streamed).await;
    let stream_id = stream.headers()["x-request-id"].to_str().unwrap().to_owned();
    let stream_text = stream.text().await.unwrap();
    let relayed: String = sse_data(&stream_text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert!(!relayed.is_empty());
    // A call the provider refuses: the error the client was told.
    refuse_next(&mock);
    let refused = gw.chat(&prompt("")).await;
    assert_eq!(refused.status(), 400);
    let refused_id = refused.headers()["x-request-id"].to_str().unwrap().to_owned();
    let refused_body: Value = refused.json().await.unwrap();
    // A prompt over the cap.
    let long = gw.chat(&prompt(&"lorem ipsum ".repeat(1000))).await;
    assert_eq!(long.status(), 200);
    let long_id = long.headers()["x-request-id"].to_str().unwrap().to_owned();
    written(&gw.app, 4).await;
    usage_settled(&gw.app, 4).await;

    let shown = story(&gw, &gw.token, &whole_id).await;
    assert_eq!(shown["request_id"], whole_id.as_str(), "the record is still there: {shown}");
    let bodies = &shown["bodies"];
    assert_eq!(bodies["state"], "captured", "{shown}");
    let request = bodies["request"]["text"].as_str().unwrap();
    assert!(request.contains(MARKER) && request.contains("[REDACTED]"), "{request}");
    assert!(!request.contains(PASTED_KEY), "the pasted key is redacted: {request}");
    assert_eq!(bodies["request"]["redacted"], 1);
    assert_eq!(bodies["request"]["truncated"], false);
    let answer: Value = serde_json::from_str(bodies["response"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(answer, whole_answer, "the answer as the client got it");
    assert_eq!(bodies["stream"], false);
    let expires = bodies["expires_at"].as_i64().unwrap();
    let days = (expires - perpetuo_core::platform::db::now_ms()) as f64 / 86_400_000.0;
    assert!((2.9..=3.0).contains(&days), "kept 3 days: {days}");

    let shown = story(&gw, &gw.token, &stream_id).await;
    let bodies = &shown["bodies"];
    assert_eq!((bodies["state"].as_str(), bodies["stream"].as_bool()), (Some("captured"), Some(true)), "{shown}");
    assert_eq!(bodies["response"]["text"], stream_text.as_str(), "the stream as the client got it");
    let reassembled: Value = serde_json::from_str(bodies["reassembled"].as_str().unwrap()).unwrap();
    assert_eq!(reassembled["choices"][0]["content"], relayed.as_str());

    let shown = story(&gw, &gw.token, &long_id).await;
    let request = &shown["bodies"]["request"];
    assert_eq!(request["truncated"], true);
    assert!(request["bytes"].as_u64().unwrap() > 12_000, "{request}");
    assert!(request["text"].as_str().unwrap().len() <= 4096);

    let shown = story(&gw, &gw.token, &refused_id).await;
    let told: Value = serde_json::from_str(shown["bodies"]["response"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(told, refused_body, "a failed call keeps the error the client got");

    // At rest: sealed, nothing of the prompt or answer in plain text.
    let rows = stored(&gw.app).await;
    assert_eq!(rows.len(), 4);
    let raw = serde_json::to_string(&rows).unwrap();
    for plain in [MARKER, PASTED_KEY, relayed.as_str(), "lorem ipsum"] {
        assert!(!raw.contains(plain), "{plain} stored in the clear");
    }
    assert!(rows.iter().all(|r| r["sealed"].as_str().is_some_and(|s| s.starts_with("v1."))));
    // Bound to its call: a capture copied onto another call's record does not open.
    let sealed = rows.iter().find(|r| r["id"] == whole_id.as_str()).unwrap()["sealed"].clone();
    gw.app
        .state
        .db
        .query("UPDATE type::record('capture', $id) SET sealed = $sealed")
        .bind(("id", stream_id.clone()))
        .bind(("sealed", sealed))
        .await
        .unwrap()
        .check()
        .unwrap();
    let moved = gw.app.get_json(&format!("/api/v1/requests/{stream_id}"), Some(&gw.token)).await;
    assert_eq!(moved.status(), 500, "a capture bound to another call fails to open, and says nothing of it");
    assert!(!moved.text().await.unwrap().contains(MARKER));

    // Nothing of a body in the logs or the metrics.
    let metrics = gw.app.client.get(gw.app.url("/metrics")).send().await.unwrap().text().await.unwrap_or_default();
    assert!(!metrics.contains(MARKER));
    assert!(!captured_logs().contains(MARKER), "a body reached a log line");
}

#[tokio::test]
async fn members_learn_only_that_bodies_were_captured_and_cannot_set_capture() {
    let (gw, _mock) = capture_gateway(65_536).await;
    let invite: Value = gw.app.post_json("/api/v1/invites", Some(&gw.token), &json!({})).await.json().await.unwrap();
    let joined: Value = gw
        .app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": email("member"), "password": PASSWORD, "invite": invite["token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let member = joined["token"].as_str().unwrap().to_owned();
    let refused = gw
        .app
        .client
        .put(gw.app.url("/api/v1/capture"))
        .bearer_auth(&member)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(refused, 403).await["error"]["code"], "forbidden");
    let refused = gw
        .app
        .client
        .put(gw.app.url(&format!("/api/v1/keys/{}/capture", gw.key_id)))
        .bearer_auth(&member)
        .json(&json!({"capture": "always"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    for bad in [json!({"enabled": true, "sample_percent": 0}), json!({"enabled": true, "retention_days": 400})] {
        let response = set_policy(&gw, bad).await;
        assert_eq!(api_error(response, 400).await["error"]["code"], "invalid_request");
    }

    assert_eq!(set_policy(&gw, json!({"enabled": true})).await.status(), 200);
    let call = gw.chat(&prompt("")).await;
    let id = call.headers()["x-request-id"].to_str().unwrap().to_owned();
    written(&gw.app, 1).await;
    usage_settled(&gw.app, 1).await;
    let seen = story(&gw, &member, &id).await;
    assert_eq!(seen["bodies"], json!({"state": "owners_only"}), "{seen}");
    assert!(!seen.to_string().contains(MARKER));
    assert_eq!(story(&gw, &gw.token, &id).await["bodies"]["state"], "captured");
}

#[tokio::test]
async fn with_capture_off_nothing_is_stored_and_keys_override_the_workspace() {
    let (gw, mock) = capture_gateway(65_536).await;
    // Off (the default): a whole call, a stream and a failed one store nothing.
    let off = gw.chat(&prompt("")).await;
    let off_id = off.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut streamed = prompt("");
    streamed["stream"] = json!(true);
    assert_eq!(gw.chat(&streamed).await.status(), 200);
    refuse_next(&mock);
    assert_eq!(gw.chat(&prompt("")).await.status(), 400);
    usage_settled(&gw.app, 3).await;

    // A key that captures every call, while the workspace's capture is off.
    let (always_id, always_key) = gw.app.add_key(&gw.token, "always").await;
    set_key_capture(&gw, &always_id, "always").await;
    let listed = gw.app.get_value("/api/v1/keys", Some(&gw.token)).await;
    let row = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == always_id.as_str()).unwrap().clone();
    assert_eq!(row["capture"], "always");
    let captured = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&always_key)
        .json(&prompt(""))
        .send()
        .await
        .unwrap();
    let captured_id = captured.headers()["x-request-id"].to_str().unwrap().to_owned();
    written(&gw.app, 1).await;
    let rows = stored(&gw.app).await;
    assert_eq!(rows.len(), 1, "only the key that captures every call: {rows:?}");
    assert_eq!(rows[0]["id"], captured_id.as_str());
    assert_eq!(rows[0]["key_id"], always_id.as_str());
    assert_eq!(story(&gw, &gw.token, &off_id).await["bodies"]["state"], "not_captured");

    // The workspace on, and the first key set to never: its calls still store nothing.
    set_key_capture(&gw, &gw.key_id, "never").await;
    assert_eq!(set_policy(&gw, json!({"enabled": true})).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(gw.chat(&prompt("")).await.status(), 200);
    }
    // A call of another key afterwards is captured: once it is written, the ones before it were
    // decided (each capture is queued before its answer ends).
    let (_, other_key) = gw.app.add_key(&gw.token, "other").await;
    let other = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&other_key)
        .json(&prompt(""))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    written(&gw.app, 2).await;
    let rows = stored(&gw.app).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["key_id"] != gw.key_id.as_str()), "a key set to never is never captured");
}

#[tokio::test]
async fn a_share_of_calls_is_sampled_and_expired_captures_are_pruned() {
    let (gw, _mock) = capture_gateway(65_536).await;
    assert_eq!(
        set_policy(&gw, json!({"enabled": true, "sample_percent": 50, "retention_days": 1})).await.status(),
        200
    );
    let mut ids = Vec::new();
    for _ in 0..40 {
        let response = gw.chat(&prompt("")).await;
        assert_eq!(response.status(), 200);
        ids.push(response.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    usage_settled(&gw.app, 40).await;
    // Every capture is queued before its answer ends: the writer's queue empties, then all are in.
    let counters = &gw.app.state.captures().counters;
    let settled = poll(Duration::from_secs(10), || async {
        let rows = stored(&gw.app).await;
        (rows.len() as u64 == counters.stored.load(Relaxed) && !rows.is_empty()).then_some(rows)
    })
    .await;
    let rows = settled.expect("captures were written");
    assert!((1..40).contains(&rows.len()), "about half of 40 calls: {}", rows.len());
    assert!(rows.iter().all(|r| ids.contains(&r["id"].as_str().unwrap().to_owned())));

    // Pruning: nothing is due now; two days on, every capture (kept one day) is.
    let now = perpetuo_core::platform::db::now_ms();
    assert_eq!(gw.app.state.captures().prune(now).await.unwrap(), 0);
    assert_eq!(gw.app.state.captures().prune(now + 2 * 86_400_000).await.unwrap(), rows.len());
    assert!(stored(&gw.app).await.is_empty());
    let id = rows[0]["id"].as_str().unwrap();
    assert_eq!(story(&gw, &gw.token, id).await["bodies"]["state"], "not_captured");
}
