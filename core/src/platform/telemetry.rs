//! OpenTelemetry traces over OTLP (HTTP with protobuf), with the maintained `opentelemetry`
//! crates, configured by the standard `OTEL_*` variables (`config::TraceSettings`) and off when
//! no endpoint is set. Spans go through a bounded queue to one exporting task: a call never waits
//! on the collector, a full queue drops the span (counted), and a failed export is counted and
//! forgotten. The gateway starts one span per call (continuing a client's W3C `traceparent`) and
//! one child per upstream attempt; their attributes are set there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};

use super::config::{Sampling, TraceSettings};

/// Spans and export failures lost, for `/metrics`.
#[derive(Debug, Default)]
pub struct TraceCounters {
    pub dropped: AtomicU64,
    pub export_failures: AtomicU64,
    pub exported: AtomicU64,
}

/// The traces side of the process: a tracer when export is on.
#[derive(Clone, Default)]
pub struct Telemetry {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
    pub counters: Arc<TraceCounters>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("on", &self.tracer.is_some()).finish_non_exhaustive()
    }
}

/// The OTLP exporter's HTTP client: the process's own (reqwest), not a second one.
#[derive(Debug)]
struct Http(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Http {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response =
            self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// A span processor with a bounded queue: `on_end` never waits; one task sends batches.
#[derive(Debug)]
struct Bounded {
    queue: tokio::sync::mpsc::Sender<SpanData>,
    counters: Arc<TraceCounters>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends what the queue holds: a batch when it is full or the delay has passed.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queue: tokio::sync::mpsc::Receiver<SpanData>,
    settings: TraceSettings,
    counters: Arc<TraceCounters>,
) {
    let mut batch = Vec::with_capacity(settings.max_batch);
    loop {
        let deadline = tokio::time::Instant::now() + settings.delay;
        let open = loop {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(span)) => {
                    batch.push(span);
                    if batch.len() >= settings.max_batch {
                        break true;
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        if !batch.is_empty() {
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(settings.max_batch));
            let count = spans.len() as u64;
            match exporter.export(spans).await {
                Ok(()) => counters.exported.fetch_add(count, Ordering::Relaxed),
                Err(_) => counters.export_failures.fetch_add(1, Ordering::Relaxed),
            };
        }
        if !open {
            return;
        }
    }
}

impl Telemetry {
    /// Export per `settings` (nothing when they are `None`). Needs a Tokio runtime: the exporting
    /// task runs on it.
    pub fn start(settings: Option<&TraceSettings>, http: reqwest::Client) -> Result<Self, String> {
        let Some(settings) = settings else { return Ok(Self::default()) };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Http(http))
            .with_endpoint(settings.endpoint.clone())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(settings.timeout);
        if !settings.headers.is_empty() {
            exporter = exporter.with_headers(settings.headers.iter().cloned().collect());
        }
        let mut exporter = exporter.build().map_err(|e| format!("OTLP exporter: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // The exporter sends the resource with each batch (the processor would hand it over).
        exporter.set_resource(&resource);
        let counters = Arc::new(TraceCounters::default());
        let (queue, receiver) = tokio::sync::mpsc::channel(settings.max_queue);
        tokio::spawn(export_loop(exporter, receiver, settings.clone(), Arc::clone(&counters)));
        let sampler = match settings.sampling {
            Sampling::Always => opentelemetry_sdk::trace::Sampler::AlwaysOn,
            Sampling::Never => opentelemetry_sdk::trace::Sampler::AlwaysOff,
            Sampling::Ratio(r) => opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(r),
            Sampling::ParentOr(r) => opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(r),
            )),
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded { queue, counters: Arc::clone(&counters) })
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("perpetuo");
        Ok(Self { tracer: Some(tracer), provider: Some(provider), counters })
    }

    pub fn on(&self) -> bool {
        self.tracer.is_some()
    }

    /// A gateway call's span (`SERVER`), continuing the trace a client's `traceparent` names;
    /// `None` when export is off.
    pub fn call(&self, headers: &http::HeaderMap) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(headers));
        let span = tracer.span_builder("gateway call").with_kind(SpanKind::Server).start_with_context(tracer, &parent);
        Some(Context::current_with_span(span))
    }

    /// An upstream attempt's span (`CLIENT`) under its call's.
    pub fn attempt(&self, call: &Context, name: String, attributes: Vec<KeyValue>) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, call);
        Some(call.with_span(span))
    }

    /// Writes an attempt's context into its upstream request as W3C `traceparent`, so that a
    /// provider (or a proxy before it) that traces can join the call's trace.
    pub fn inject(cx: &Context, headers: &mut http::HeaderMap) {
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    }

    /// Stops the tracer provider (spans still in the queue are not waited for).
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}
