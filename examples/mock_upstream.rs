//! A fast mock provider for `bench/run.sh`: fixed answers, no delay. It plays OpenAI
//! (`/v1/chat/completions`, `/v1/responses`) and Anthropic (`/v1/messages`).
//! `cargo run --release --example mock_upstream -- 127.0.0.1:0` prints `listening on ADDR`.

use std::io::Write as _;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}"#;

fn stream_body(include_usage: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for word in ["Hello", " from", " the", " benchmark", " mock."] {
        out.extend_from_slice(
            format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    if include_usage {
        out.extend_from_slice(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\n");
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

async fn chat(body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    if text.contains("\"stream\":true") {
        let usage = text.contains("\"include_usage\":true");
        return ([("content-type", "text/event-stream")], Body::from(stream_body(usage))).into_response();
    }
    ([("content-type", "application/json")], COMPLETION).into_response()
}

const MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"Hello from the benchmark mock."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":8}}"#;

fn message_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut event =
        |name: &str, data: &str| out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    event(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
    );
    event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    for word in ["Hello", " from", " the", " benchmark", " mock."] {
        event(
            "content_block_delta",
            &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{word}"}}}}"#),
        );
    }
    event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#);
    event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":8}}"#,
    );
    event("message_stop", r#"{"type":"message_stop"}"#);
    out
}

async fn messages(body: Bytes) -> Response {
    if String::from_utf8_lossy(&body).contains("\"stream\":true") {
        return ([("content-type", "text/event-stream")], Body::from(message_stream())).into_response();
    }
    ([("content-type", "application/json")], MESSAGE).into_response()
}

const RESPONSE: &str = r#"{"id":"resp_bench","object":"response","created_at":1,"status":"completed","model":"gpt-bench","output":[{"type":"message","id":"msg_bench","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello from the benchmark mock.","annotations":[]}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":20}}"#;

fn response_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut event = |name: &str, data: &str| {
        out.extend_from_slice(
            format!("event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{n},{data}}}\n\n").as_bytes(),
        );
        n += 1;
    };
    let created = r#""response":{"id":"resp_bench","object":"response","created_at":1,"status":"in_progress","model":"gpt-bench","output":[]}"#;
    event("response.created", created);
    event("response.in_progress", created);
    event(
        "response.output_item.added",
        r#""output_index":0,"item":{"type":"message","id":"msg_bench","status":"in_progress","role":"assistant","content":[]}"#,
    );
    event(
        "response.content_part.added",
        r#""item_id":"msg_bench","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}"#,
    );
    for word in ["Hello", " from", " the", " benchmark", " mock."] {
        event(
            "response.output_text.delta",
            &format!(r#""item_id":"msg_bench","output_index":0,"content_index":0,"delta":"{word}""#),
        );
    }
    event(
        "response.output_text.done",
        r#""item_id":"msg_bench","output_index":0,"content_index":0,"text":"Hello from the benchmark mock.""#,
    );
    event("response.completed", &format!(r#""response":{}"#, RESPONSE));
    out
}

async fn responses(body: Bytes) -> Response {
    if String::from_utf8_lossy(&body).contains("\"stream\":true") {
        return ([("content-type", "text/event-stream")], Body::from(response_stream())).into_response();
    }
    ([("content-type", "application/json")], RESPONSE).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(|| async { r#"{"object":"list","data":[{"id":"bench-model","object":"model"}]}"# }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(std::io::stdout(), "listening on {}", listener.local_addr()?)?;
    std::io::stdout().flush()?;
    axum::serve(listener, router).await
}
