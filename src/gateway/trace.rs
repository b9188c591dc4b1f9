//! The gateway's spans, in OpenTelemetry's GenAI conventions: one per call (`SERVER`, continuing
//! the client's `traceparent`), one per upstream attempt (`CLIENT`) under it. Attributes carry the
//! route, models, provider, token counts, cost, attempt numbers, why an attempt was followed by
//! another, and the error class; never a prompt, an answer or a key.

use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt as _};

use perpetuo_core::AppState;
use perpetuo_core::protocols::Protocol;
use perpetuo_core::usage::UsageRecord;
use perpetuo_types::{ErrorClass, ProviderKind};

use super::call::Call;
use super::caller::Caller;
use super::routing::Candidate;

/// `gen_ai.operation.name`: every conversational route is `chat`.
fn operation(endpoint: &str) -> &'static str {
    if endpoint == Protocol::Embeddings.name() { "embeddings" } else { "chat" }
}

fn text(key: &'static str, value: impl Into<String>) -> KeyValue {
    KeyValue::new(key, value.into())
}

fn number(key: &'static str, value: u64) -> KeyValue {
    KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX))
}

/// Ends the call's span with what its record says.
pub fn end_call(caller: &Caller, record: &UsageRecord) {
    let Some(cx) = &caller.trace else { return };
    let span = cx.span();
    let op = operation(&record.endpoint);
    span.update_name(format!("{op} {}", record.model));
    let mut attributes = vec![
        text("gen_ai.operation.name", op),
        text("gen_ai.request.model", record.model.clone()),
        text("perpetuo.route", record.endpoint.clone()),
        text("perpetuo.request_id", record.request_id.clone()),
        text("perpetuo.workspace", record.workspace.clone()),
        text("perpetuo.key_id", record.key_id.clone()),
        KeyValue::new("perpetuo.stream", record.stream),
        KeyValue::new("perpetuo.attempts", record.attempts),
        KeyValue::new("http.response.status_code", record.status),
        number("gen_ai.usage.input_tokens", record.tokens.prompt),
        number("gen_ai.usage.output_tokens", record.tokens.completion),
        KeyValue::new("perpetuo.tokens_estimated", record.estimated),
    ];
    if let Some(kind) = record.provider_kind.as_deref().and_then(|k| ProviderKind::parse(k).ok()) {
        attributes.push(text("gen_ai.provider.name", perpetuo_core::providers::catalog::of(kind).otel_name));
    }
    if let Some(served) =
        record.served_model.as_deref().or(record.provider_kind.as_ref().map(|_| record.model.as_str()))
    {
        attributes.push(text("gen_ai.response.model", served.to_owned()));
    }
    if let Some(cost) = record.cost_nanos {
        attributes.push(KeyValue::new("perpetuo.cost_nanos", cost));
    }
    if record.tokens.cache_read > 0 {
        attributes.push(number("gen_ai.usage.cache_read.input_tokens", record.tokens.cache_read));
    }
    match record.error_class.as_deref() {
        Some(class) => {
            attributes.push(text("error.type", class.to_owned()));
            span.set_status(Status::error(class.to_owned()));
        }
        None => span.set_status(Status::Ok),
    }
    span.set_attributes(attributes);
    span.end();
}

/// The span of attempt number `number` at `candidate`, with why the previous one was not enough.
pub fn attempt(
    state: &AppState,
    call: &Call,
    candidate: &Candidate,
    number: u32,
    previous: Option<ErrorClass>,
) -> Option<opentelemetry::Context> {
    let parent = call.caller.trace.as_ref()?;
    let provider = &candidate.provider;
    let mut attributes = vec![
        text("gen_ai.operation.name", operation(call.request.protocol.name())),
        text("gen_ai.provider.name", perpetuo_core::providers::catalog::of(provider.kind).otel_name),
        text("gen_ai.request.model", candidate.model.clone()),
        text("perpetuo.provider.id", provider.id.clone()),
        text("perpetuo.provider.kind", provider.kind.as_str()),
        KeyValue::new("perpetuo.attempt", i64::from(number)),
    ];
    if let Some(reason) = previous {
        attributes.push(text("perpetuo.fallback_reason", reason.as_str()));
    }
    if let Some(host) = provider.base_url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned)) {
        attributes.push(text("server.address", host));
    }
    let name = format!("{} {}", operation(call.request.protocol.name()), candidate.model);
    state.telemetry.attempt(parent, name, attributes)
}

/// Ends an attempt's span: `failure` is its error class (`None`: it answered).
pub fn end_attempt(cx: Option<&opentelemetry::Context>, failure: Option<ErrorClass>) {
    let Some(cx) = cx else { return };
    let span = cx.span();
    match failure {
        Some(class) => {
            span.set_attribute(text("error.type", class.as_str()));
            span.set_status(Status::error(class.as_str()));
        }
        None => span.set_status(Status::Ok),
    }
    span.end();
}
