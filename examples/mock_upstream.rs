//! A fast mock OpenAI-compatible provider for `bench/run.sh`: fixed answers, no delay.
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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(|| async { r#"{"object":"list","data":[{"id":"bench-model","object":"model"}]}"# }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(std::io::stdout(), "listening on {}", listener.local_addr()?)?;
    std::io::stdout().flush()?;
    axum::serve(listener, router).await
}
