//! The floor for `bench/run.sh`: the least a proxy on this stack can do (axum in, reqwest out,
//! bytes relayed untouched: no auth, no JSON, no records). Its throughput is the ceiling any
//! gateway built on the same parts can reach on the same machine.
//! `floor_proxy LISTEN UPSTREAM_BASE` prints `listening on ADDR`.

use std::io::Write as _;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn relay(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = up.client.post(&up.url).body(body);
    if let Some(ct) = headers.get("content-type") {
        request = request.header("content-type", ct);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let ct = answer.headers().get("content-type").cloned();
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            if let Some(ct) = ct {
                response.headers_mut().insert("content-type", ct);
            }
            response
        }
        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "upstream failed").into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let Some(base) = args.next() else {
        return Err(std::io::Error::other("usage: floor_proxy LISTEN UPSTREAM_BASE (e.g. http://127.0.0.1:9000/v1)"));
    };
    let up = Upstream { client: reqwest::Client::new(), url: format!("{base}/chat/completions") };
    let router = Router::new().route("/v1/chat/completions", post(relay)).with_state(up);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(std::io::stdout(), "listening on {}", listener.local_addr()?)?;
    std::io::stdout().flush()?;
    axum::serve(listener, router).await
}
