//! An OTLP/HTTP trace receiver for `bench/traces.sh`: takes `POST /v1/traces` (protobuf), decodes
//! each export with the official definitions and counts the spans; `GET /count` says how many.
//! Usage: otlp_sink 127.0.0.1:0 (prints `listening on ADDR`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let spans = Arc::new(AtomicU64::new(0));
    let (taken, counted) = (Arc::clone(&spans), Arc::clone(&spans));
    let router = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: bytes::Bytes| {
                let spans = Arc::clone(&taken);
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    let n: usize =
                        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
                    spans.fetch_add(n as u64, Ordering::Relaxed);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/count", axum::routing::get(move || async move { counted.load(Ordering::Relaxed).to_string() }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router).await
}
