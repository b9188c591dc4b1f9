//! Streams: chunks relayed as they come, the usage chunk, cuts, drips, disconnects, error events,
//! and fallback before the first byte.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock, VALID_KEY};

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
async fn a_client_that_disconnects_leaves_the_stream_read_to_its_end_and_recorded_at_the_providers_usage() {
    let (gw, mock) = openai_gateway().await;
    mock.script([Behavior::Drip(Duration::from_millis(100))]);
    let mut body = chat_body("mock-small");
    body["stream"] = json!(true);
    let response = gw.chat(&body).await;
    let mut stream = response.bytes_stream();
    use futures::StreamExt as _;
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let records = gw.usage(1).await;
    let record = &records[0];
    assert_eq!((record["status"].as_i64(), record["error_class"].as_str()), (Some(499), Some("client_disconnected")));
    // The provider's own usage, which comes in the stream's last event: the stream was read to
    // its end after the client left, and the call charged what the provider billed.
    assert_ne!(record["estimated"], true, "{record}");
    assert!(record["completion_tokens"].as_i64().unwrap() > 0, "{record}");
    assert!(record["upstream_ms"].as_i64().unwrap() >= 500, "read for the whole drip: {record}");
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
async fn a_stream_that_dies_before_its_first_byte_falls_back() {
    let (_gw, _mocks, response) = stream_with_backup(Behavior::CutAfter(0)).await;
    assert_eq!(response.headers()["x-perpetuo-provider"], "Backup");
    assert_eq!(response.headers()["x-perpetuo-attempts"], "2");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}
