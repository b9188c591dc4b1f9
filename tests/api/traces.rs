//! OpenTelemetry traces, checked by a real OTLP/HTTP receiver: it takes what a collector takes
//! (`POST /v1/traces`, `application/x-protobuf`, the configured header), decodes each export
//! with the official protobuf definitions (`opentelemetry-proto`) and answers as a collector
//! does. A call that falls back once gives one call span and two attempt spans under it, in the
//! client's trace, with the GenAI attributes; no prompt text or key is in any attribute; a
//! collector that is down never fails or slows a call, and its failures are counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

use perpetuo_core::platform::config::{Sampling, TraceSettings};

use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "the secret prompt text 4711";

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

/// An OTLP/HTTP receiver on a random port: the spans it took, with their service's name.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let state = received.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let state = state.clone();
            async move {
                if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
                    return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
                }
                if headers.get("x-collector-token").and_then(|v| v.to_str().ok()) != Some("t0k en") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .and_then(|v| match &v.value {
                            Some(Any::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        state.spans.lock().unwrap().extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                let answer = ExportTraceServiceResponse::default().encode_to_vec();
                ([("content-type", "application/x-protobuf")], answer).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, received)
}

fn tracing_options(endpoint: String) -> Options {
    let mut options = crate::gateway::fast_options();
    options.settings.metrics_public = true;
    options.settings.traces = Some(TraceSettings {
        endpoint,
        headers: vec![("x-collector-token".into(), "t0k en".into())],
        timeout: Duration::from_secs(2),
        service_name: "perpetuo-test".into(),
        sampling: Sampling::ParentOr(1.0),
        max_queue: 2048,
        max_batch: 512,
        delay: Duration::from_millis(50),
    });
    options
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn string<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key) {
        Some(Any::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key) {
        Some(Any::IntValue(n)) => Some(*n),
        _ => None,
    }
}

#[tokio::test]
async fn a_call_that_fell_back_once_is_one_call_span_with_two_attempts_in_the_clients_trace() {
    let (endpoint, received) = receiver().await;
    let gw = Gateway::start(tracing_options(endpoint)).await;
    let broken = Mock::start(Flavor::OpenAi).await;
    broken.set_default(Behavior::Status(500, None));
    let good = Mock::start(Flavor::OpenAi).await;
    gw.provider("Broken", "openai_compatible", &broken.base_url(), 1).await;
    gw.provider("Good", "openai_compatible", &good.base_url(), 2).await;
    let answer = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&gw.key)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({"model": "mock-small", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let spans = poll(Duration::from_secs(10), || async {
        let spans = received.spans.lock().unwrap().clone();
        (spans.iter().filter(|(_, s)| hex(&s.trace_id) == TRACE_ID).count() >= 3).then_some(spans)
    })
    .await
    .expect("three spans reach the collector");
    let ours: Vec<&Span> = spans.iter().filter(|(_, s)| hex(&s.trace_id) == TRACE_ID).map(|(_, s)| s).collect();
    assert_eq!(ours.len(), 3, "{ours:#?}");
    assert!(
        spans.iter().all(|(service, _)| service == "perpetuo-test"),
        "{:?}",
        spans.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );

    let call =
        ours.iter().find(|s| hex(&s.parent_span_id) == CLIENT_SPAN).expect("the call continues the client's span");
    assert_eq!(call.kind, 2, "SERVER");
    assert_eq!(call.name, "chat mock-small");
    assert_eq!(string(call, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(string(call, "gen_ai.request.model"), Some("mock-small"));
    assert_eq!(string(call, "gen_ai.response.model"), Some("mock-small"));
    assert_eq!(string(call, "gen_ai.provider.name"), Some("openai_compatible"));
    assert_eq!((int(call, "gen_ai.usage.input_tokens"), int(call, "gen_ai.usage.output_tokens")), (Some(11), Some(7)));
    assert_eq!(int(call, "perpetuo.attempts"), Some(2));
    assert_eq!(int(call, "http.response.status_code"), Some(200));
    assert_eq!(string(call, "perpetuo.workspace"), Some(gw.workspace.as_str()));
    assert_eq!(string(call, "perpetuo.route"), Some("chat"));
    assert!(string(call, "error.type").is_none());

    let mut attempts: Vec<&&Span> = ours.iter().filter(|s| s.parent_span_id == call.span_id).collect();
    attempts.sort_by_key(|s| int(s, "perpetuo.attempt"));
    assert_eq!(attempts.len(), 2, "two attempts under the call: {ours:#?}");
    assert!(attempts.iter().all(|s| s.kind == 3 && s.name == "chat mock-small"), "CLIENT spans");
    assert_eq!(int(attempts[0], "perpetuo.attempt"), Some(1));
    assert_eq!(string(attempts[0], "error.type"), Some("upstream_5xx"));
    assert_eq!(int(attempts[1], "perpetuo.attempt"), Some(2));
    assert_eq!(string(attempts[1], "perpetuo.fallback_reason"), Some("upstream_5xx"));
    assert!(string(attempts[1], "error.type").is_none());
    assert_eq!(string(attempts[1], "server.address"), Some("127.0.0.1"));
    assert!(attempts[0].end_time_unix_nano <= attempts[1].start_time_unix_nano, "one after the other");

    // The provider got the attempt's context: the client's trace, the attempt span as parent.
    let sent = good.seen().last().and_then(|s| s.headers.get("traceparent").cloned()).expect("a traceparent upstream");
    assert_eq!(sent.to_str().unwrap(), format!("00-{TRACE_ID}-{}-01", hex(&attempts[1].span_id)));
    let everything = format!("{ours:?}");
    assert!(!everything.contains(PROMPT) && !everything.contains(&gw.key), "no prompt or key in any span");

    // A call without a traceparent starts its own trace.
    assert_eq!(
        gw.chat(&json!({"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]})).await.status(),
        200
    );
    let root = poll(Duration::from_secs(10), || async {
        let spans = received.spans.lock().unwrap().clone();
        spans.into_iter().map(|(_, s)| s).find(|s| hex(&s.trace_id) != TRACE_ID && s.parent_span_id.is_empty())
    })
    .await;
    assert!(root.is_some_and(|s| s.kind == 2), "a new trace's root is the call span");
}

#[tokio::test]
async fn a_collector_that_is_down_never_fails_a_call_and_is_counted() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gateway::start(tracing_options(format!("http://{closed}/v1/traces"))).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Good", "openai_compatible", &mock.base_url(), 1).await;
    for _ in 0..3 {
        let answer = gw.chat(&json!({"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(answer.status(), 200);
    }
    let failures = poll(Duration::from_secs(10), || async {
        let text = gw.app.client.get(gw.app.url("/metrics")).send().await.ok()?.text().await.ok()?;
        let line = text.lines().find(|l| l.starts_with("perpetuo_trace_export_failures_total"))?;
        let n: u64 = line.rsplit(' ').next()?.parse().ok()?;
        (n >= 1).then_some(n)
    })
    .await;
    assert!(failures.is_some(), "the failed exports are counted");
}
