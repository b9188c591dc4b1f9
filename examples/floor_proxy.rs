//! The floor for `bench/run.sh`: the least a proxy on this stack can do (axum in, an HTTP client
//! out, bytes relayed untouched: no auth, no JSON, no records). Its throughput is the ceiling any
//! gateway built on the same parts can reach on the same machine.
//!
//! `floor_proxy LISTEN UPSTREAM_BASE` prints `listening on ADDR`. Two knobs measure what each part
//! of the stack costs (`bench/run.sh` runs the one Perpetuo uses unless told otherwise):
//! - `FLOOR_CLIENT=hyper` (default): hyper's pooled client, one per runtime thread;
//!   `reqwest`: one shared reqwest client (the stack before issue 15).
//! - `FLOOR_RUNTIME=percore` (default): one single-threaded runtime per core, each accepting on
//!   its own `SO_REUSEPORT` listener (no work stealing, no cross-thread wake-ups);
//!   `multi`: tokio's multi-threaded runtime with one listener.

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per runtime, cloned per request as the state: no array of them"
)]
enum Upstream {
    Reqwest { client: reqwest::Client, url: String },
    Hyper { client: Client<HttpConnector, Full<Bytes>>, uri: http::Uri },
}

fn hyper_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector)
}

async fn relay(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get("content-type").cloned();
    match up {
        Upstream::Reqwest { client, url } => {
            let mut request = client.post(&url).body(body);
            if let Some(ct) = content_type {
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
        Upstream::Hyper { client, uri } => {
            let mut request = http::Request::post(uri).body(Full::new(body)).unwrap_or_default();
            if let Some(ct) = content_type {
                request.headers_mut().insert("content-type", ct);
            }
            match client.request(request).await {
                Ok(answer) => {
                    let (parts, incoming) = answer.into_parts();
                    let mut response = Response::new(Body::new(incoming));
                    *response.status_mut() = parts.status;
                    if let Some(ct) = parts.headers.get("content-type") {
                        response.headers_mut().insert("content-type", ct.clone());
                    }
                    response
                }
                Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "upstream failed").into_response(),
            }
        }
    }
}

fn upstream(base: &str) -> std::io::Result<Upstream> {
    let url = format!("{base}/chat/completions");
    Ok(match std::env::var("FLOOR_CLIENT").as_deref() {
        Ok("reqwest") => Upstream::Reqwest { client: reqwest::Client::new(), url },
        _ => Upstream::Hyper { client: hyper_client(), uri: url.parse().map_err(std::io::Error::other)? },
    })
}

fn router(up: Upstream) -> Router {
    Router::new().route("/v1/chat/completions", post(relay)).with_state(up)
}

fn listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn announce(addr: SocketAddr) -> std::io::Result<()> {
    writeln!(std::io::stdout(), "listening on {addr}")?;
    std::io::stdout().flush()
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr =
        args.next().unwrap_or_else(|| "127.0.0.1:0".into()).parse().map_err(std::io::Error::other)?;
    let Some(base) = args.next() else {
        return Err(std::io::Error::other("usage: floor_proxy LISTEN UPSTREAM_BASE (e.g. http://127.0.0.1:9000/v1)"));
    };
    if std::env::var("FLOOR_RUNTIME").as_deref() == Ok("multi") {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            announce(listener.local_addr()?)?;
            axum::serve(listener, router(upstream(&base)?)).await
        });
    }
    // One runtime per core, each with its own listener on the same port and its own client.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let first = {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let _guard = runtime.enter();
        let listener = listener(addr)?;
        let bound = listener.local_addr()?;
        (runtime, listener, bound)
    };
    let bound = first.2;
    let mut threads = Vec::new();
    for core in 1..cores {
        let base = base.clone();
        threads.push(std::thread::Builder::new().name(format!("floor-{core}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move { axum::serve(listener(bound)?, router(upstream(&base)?)).await })
        })?);
    }
    announce(bound)?;
    let (runtime, listener, _) = first;
    runtime.block_on(async move { axum::serve(listener, router(upstream(&base)?)).await })?;
    for thread in threads {
        thread.join().map_err(|_| std::io::Error::other("a runtime thread panicked"))??;
    }
    Ok(())
}
