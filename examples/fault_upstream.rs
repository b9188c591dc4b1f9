//! A provider that misbehaves at random, for `bench/soak.sh`: it plays OpenAI
//! (`/v1/chat/completions`, `/v1/responses`, `/v1/embeddings`, `/v1/models`) and Anthropic
//! (`/v1/messages`), and for a share of requests (`FAULT_PERCENT`, default 40) answers with one
//! fault drawn at random:
//! 5xx, 429 with `Retry-After`, a connection reset before the answer, a hang past every timeout,
//! a stream cut midway, garbage JSON, an endless body, an endless SSE line, a slow drip, and an
//! error message that echoes the provider key back.
//! `GET /control/fail-all?on=1` makes every request fail with 503 (to open breakers), `on=0` heals.
//! `cargo run --release --example fault_upstream -- 127.0.0.1:0 sk-the-key` prints `listening on ADDR`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;

#[derive(Clone)]
struct Faults {
    percent: u64,
    key: Arc<str>,
    fail_all: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    seen: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    ServerError,
    TooMany,
    Reset,
    Hang,
    Cut,
    Garbage,
    EndlessBody,
    EndlessLine,
    Drip,
    EchoKey,
}

const FAULTS: [Fault; 10] = [
    Fault::ServerError,
    Fault::TooMany,
    Fault::Reset,
    Fault::Hang,
    Fault::Cut,
    Fault::Garbage,
    Fault::EndlessBody,
    Fault::EndlessLine,
    Fault::Drip,
    Fault::EchoKey,
];

impl Faults {
    /// A cheap deterministic spread (splitmix64 of a counter): the same run twice draws alike.
    fn draw(&self) -> Option<Fault> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if z % 100 >= self.percent {
            return None;
        }
        Some(FAULTS[usize::try_from((z / 100) % FAULTS.len() as u64).unwrap_or(0)])
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    Chat,
    Responses,
    Embeddings,
    Messages,
}

fn status(code: u16, body: &'static str, retry_after: Option<&'static str>) -> Response {
    let mut response = (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
    response.headers_mut().insert("content-type", "application/json".parse().unwrap_or_else(|_| unreachable!()));
    if let Some(after) = retry_after {
        response.headers_mut().insert("retry-after", after.parse().unwrap_or_else(|_| unreachable!()));
    }
    response
}

fn sse(events: Vec<String>, gap: Duration, cut_after: Option<usize>) -> Response {
    let total = events.len();
    let stream = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        if cut_after.is_some_and(|n| i >= n) {
            return Err(std::io::Error::other("cut"));
        }
        let _ = total;
        Ok::<_, std::io::Error>(Bytes::from(event))
    });
    ([("content-type", "text/event-stream")], Body::from_stream(stream)).into_response()
}

/// An endless stream of `piece`: the gateway must stop reading on its own.
fn endless(piece: &'static [u8], content_type: &'static str) -> Response {
    let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(Bytes::from_static(piece)));
    ([("content-type", content_type)], Body::from_stream(stream)).into_response()
}

fn chat_events() -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut events = vec![chunk("{\"role\":\"assistant\",\"content\":\"\"}", "null")];
    for word in ["Hello", " from", " a", " faulty", " mock"] {
        events.push(chunk(&format!("{{\"content\":\"{word}\"}}"), "null"));
    }
    events.push(chunk("{}", "\"stop\""));
    events.push("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\n".into());
    events.push("data: [DONE]\n\n".into());
    events
}

fn message_events() -> Vec<String> {
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_f","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    ];
    for word in ["Hello", " from", " a", " faulty", " mock"] {
        events.push(event(
            "content_block_delta",
            &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{word}"}}}}"#),
        ));
    }
    events.push(event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#));
    events.push(event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":8}}"#,
    ));
    events.push(event("message_stop", r#"{"type":"message_stop"}"#));
    events
}

fn response_events() -> Vec<String> {
    let mut n = 0;
    let mut event = |name: &str, data: &str| {
        n += 1;
        format!("event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{},{data}}}\n\n", n - 1)
    };
    let mut events = vec![event(
        "response.created",
        r#""response":{"id":"r","object":"response","status":"in_progress","output":[]}"#,
    )];
    for word in ["Hello", " from", " a", " faulty", " mock"] {
        events.push(event(
            "response.output_text.delta",
            &format!(r#""item_id":"m","output_index":0,"content_index":0,"delta":"{word}""#),
        ));
    }
    events.push(event(
        "response.completed",
        r#""response":{"id":"r","object":"response","status":"completed","output":[],"usage":{"input_tokens":12,"output_tokens":8,"total_tokens":20}}"#,
    ));
    events
}

fn whole(wire: Wire) -> &'static str {
    match wire {
        Wire::Chat => {
            r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from a faulty mock"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}"#
        }
        Wire::Responses => {
            r#"{"id":"r","object":"response","created_at":1,"status":"completed","model":"m","output":[{"type":"message","id":"m","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello from a faulty mock","annotations":[]}]}],"usage":{"input_tokens":12,"output_tokens":8,"total_tokens":20}}"#
        }
        Wire::Embeddings => {
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#
        }
        Wire::Messages => {
            r#"{"id":"msg_f","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hello from a faulty mock"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":8}}"#
        }
    }
}

async fn answer(faults: Faults, wire: Wire, body: Bytes) -> Response {
    faults.seen.fetch_add(1, Ordering::Relaxed);
    let stream = String::from_utf8_lossy(&body).contains("\"stream\":true") && wire != Wire::Embeddings;
    if faults.fail_all.load(Ordering::Relaxed) {
        return status(503, r#"{"error":{"message":"down for the soak","type":"server_error"}}"#, None);
    }
    let events = match wire {
        Wire::Chat => chat_events(),
        Wire::Messages => message_events(),
        Wire::Responses => response_events(),
        Wire::Embeddings => Vec::new(),
    };
    match faults.draw() {
        None if stream => sse(events, Duration::ZERO, None),
        None => ([("content-type", "application/json")], whole(wire)).into_response(),
        Some(Fault::ServerError) => status(500, r#"{"error":{"message":"internal","type":"server_error"}}"#, None),
        Some(Fault::TooMany) => status(429, r#"{"error":{"message":"slow down","type":"rate_limit"}}"#, Some("1")),
        Some(Fault::Reset) => {
            // The body fails before its first byte: the connection is dropped mid-answer.
            let stream = futures::stream::once(async { Err::<Bytes, _>(std::io::Error::other("reset")) });
            ([("content-type", "application/json")], Body::from_stream(stream)).into_response()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            status(504, "{}", None)
        }
        Some(Fault::Cut) if stream => sse(events, Duration::from_millis(2), Some(3)),
        Some(Fault::Cut) => {
            let stream = futures::stream::iter([
                Ok(Bytes::from_static(b"{\"id\":\"c\",\"choi")),
                Err(std::io::Error::other("cut")),
            ]);
            ([("content-type", "application/json")], Body::from_stream(stream)).into_response()
        }
        Some(Fault::Garbage) if stream => {
            sse(vec!["data: {not json at all\n\n".into(), "data: [DONE]\n\n".into()], Duration::ZERO, None)
        }
        Some(Fault::Garbage) => ([("content-type", "application/json")], "{\"choices\": [oops").into_response(),
        Some(Fault::EndlessBody) => {
            endless(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "application/json")
        }
        Some(Fault::EndlessLine) if stream => {
            let start = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"data: ")) });
            let rest = futures::stream::repeat_with(|| Ok(Bytes::from_static(&[b'y'; 4096])));
            ([("content-type", "text/event-stream")], Body::from_stream(start.chain(rest))).into_response()
        }
        Some(Fault::EndlessLine) => endless(&[b'z'; 4096], "application/json"),
        Some(Fault::Drip) if stream => sse(events, Duration::from_millis(20), None),
        Some(Fault::Drip) => ([("content-type", "application/json")], whole(wire)).into_response(),
        Some(Fault::EchoKey) => {
            let body = format!(
                r#"{{"error":{{"message":"bad request for key {}","type":"invalid_request_error"}}}}"#,
                faults.key
            );
            (StatusCode::BAD_REQUEST, [("content-type", "application/json")], body).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct Switch {
    on: u8,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let key: Arc<str> = args.next().unwrap_or_else(|| "sk-soak-provider-key-000000".into()).into();
    let percent = std::env::var("FAULT_PERCENT").ok().and_then(|p| p.parse().ok()).unwrap_or(40);
    let faults = Faults {
        percent,
        key,
        fail_all: Arc::new(AtomicBool::new(false)),
        counter: Arc::new(AtomicU64::new(0)),
        seen: Arc::new(AtomicU64::new(0)),
    };
    let route = |wire: Wire| {
        move |State(f): State<Faults>, headers: axum::http::HeaderMap, body: Bytes| async move {
            // The key, as the real services check it: OpenAI's bearer, Anthropic's `x-api-key`.
            let given = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let bearer = given("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
            if bearer.or_else(|| given("x-api-key")).as_deref() != Some(&*f.key) {
                return status(
                    401,
                    r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error"}}"#,
                    None,
                );
            }
            answer(f, wire, body).await
        }
    };
    let router = Router::new()
        .route("/v1/chat/completions", post(route(Wire::Chat)))
        .route("/v1/responses", post(route(Wire::Responses)))
        .route("/v1/embeddings", post(route(Wire::Embeddings)))
        .route("/v1/messages", post(route(Wire::Messages)))
        .route("/v1/models", get(|| async { r#"{"object":"list","data":[{"id":"m","object":"model"}]}"# }))
        .route(
            "/control/fail-all",
            get(|State(f): State<Faults>, Query(s): Query<Switch>| async move {
                f.fail_all.store(s.on == 1, Ordering::Relaxed);
                format!("fail-all {}; {} requests seen", s.on, f.seen.load(Ordering::Relaxed))
            }),
        )
        .with_state(faults);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(std::io::stdout(), "listening on {}", listener.local_addr()?)?;
    std::io::stdout().flush()?;
    axum::serve(listener, router).await
}
