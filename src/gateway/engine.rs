//! One gateway call from routing to the last byte: candidates in priority order, attempts with
//! fallback, jittered backoff and `Retry-After` inside a total deadline, circuit breakers, the
//! response relayed (streams chunk by chunk, never buffered whole), and one usage record.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngExt as _;
use serde_json::{Map, Value};

use app::server::AppState;
use app::server::breaker::Admission;
use app::server::cache::CachedKey;
use app::server::prices::Tokens;
use app::server::providers::OpenedProvider;
use app::server::ratelimit::Decision;
use app::server::upstream;
use app::server::usage::UsageRecord;
use app::types::{KeyStatus, ProviderKind};

use super::anthropic;
use super::error::GatewayError;
use super::sse;

/// Which OpenAI endpoint the client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat.completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// Body fields that could point the call somewhere else (or at another account): never forwarded.
const REDIRECTING_FIELDS: [&str; 7] =
    ["api_key", "api_base", "base_url", "api_version", "organization", "project", "custom_llm_provider"];

/// A request that passed authentication and parsing.
pub struct Call {
    pub request_id: String,
    pub started: Instant,
    pub ts: i64,
    pub key: CachedKey,
    pub limit: Decision,
    pub endpoint: Endpoint,
    /// The model as the client wrote it.
    pub model: String,
    pub body: Map<String, Value>,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// The workspace's own prices (loaded with the providers).
    pub prices: Arc<app::server::prices::Overrides>,
}

/// `kind/model` names a provider kind and the bare model; anything else is just a model.
pub fn route(model: &str) -> (Option<ProviderKind>, &str) {
    if let Some((prefix, rest)) = model.split_once('/')
        && let Ok(kind) = ProviderKind::parse(prefix)
        && !rest.is_empty()
    {
        return (Some(kind), rest);
    }
    (None, model)
}

/// The providers that may serve `model`, in priority order.
pub fn candidates(providers: &[OpenedProvider], model: &str, endpoint: Endpoint) -> (Vec<OpenedProvider>, String) {
    let (kind, bare) = route(model);
    let list = providers
        .iter()
        .filter(|p| p.enabled)
        .filter(|p| kind.is_none_or(|k| p.kind == k))
        .filter(|p| match endpoint {
            Endpoint::Chat => true,
            Endpoint::Embeddings => p.kind.offers_embeddings(),
        })
        .filter(|p| match &p.models {
            Some(allowed) => allowed.iter().any(|m| m == bare || m == model),
            // Naming the kind explicitly routes any model to it.
            None => kind.is_some() || p.kind.serves_family(bare),
        })
        .cloned()
        .collect();
    (list, bare.to_owned())
}

/// How one attempt ended.
enum Attempt {
    Done(Success),
    /// The client's own mistake, as the provider judged it: passed back, no fallback.
    ClientError(GatewayError),
    /// The request cannot be sent to this kind of provider (translation refused it): nothing
    /// reached the provider.
    Refused(GatewayError),
    /// Worth trying again (elsewhere, or later here).
    Retry {
        class: &'static str,
        retry_after: Option<Duration>,
        counts_for_breaker: bool,
    },
    /// The provider refused the stored key.
    KeyRejected,
}

enum Success {
    Whole { body: Bytes, tokens: Tokens },
    Stream { upstream: ByteStream, first: Bytes },
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// What the attempt loop learned, for the usage record.
struct Progress {
    attempts: u32,
    upstream: Duration,
    last_class: Option<&'static str>,
}

/// Runs the call and builds the client's response. Always records usage.
pub async fn run(state: &AppState, mut call: Call) -> Response {
    match app::server::prices::cached_overrides(&state.db, &state.caches, &call.key.workspace).await {
        Ok(prices) => call.prices = prices,
        Err(e) => e.log_if_internal(),
    }
    let providers = match app::server::providers::cached_enabled(
        &state.db,
        &state.cipher,
        &state.caches,
        &call.key.workspace,
        state.settings.upstream.allow_private,
    )
    .await
    {
        Ok(providers) => providers,
        Err(e) => {
            return finish_error(
                state,
                &call,
                None,
                GatewayError::Internal(e),
                Progress { attempts: 0, upstream: Duration::ZERO, last_class: None },
            );
        }
    };
    let (candidates, upstream_model) = candidates(&providers, &call.model, call.endpoint);
    if candidates.is_empty() {
        return finish_error(
            state,
            &call,
            None,
            GatewayError::ModelNotFound(call.model.clone()),
            Progress { attempts: 0, upstream: Duration::ZERO, last_class: None },
        );
    }
    let settings = &state.settings.upstream;
    let deadline = call.started + settings.total_timeout;
    let mut progress = Progress { attempts: 0, upstream: Duration::ZERO, last_class: None };
    let mut retry_after: HashMap<String, Duration> = HashMap::new();
    let mut bad_keys: Vec<String> = Vec::new();
    let mut last_provider: Option<OpenedProvider> = None;
    let mut skipped_open = false;
    let mut round: u32 = 0;

    'rounds: loop {
        let mut tried = false;
        for provider in &candidates {
            if progress.attempts >= settings.max_attempts {
                break 'rounds;
            }
            if bad_keys.contains(&provider.id) {
                continue;
            }
            let admission = state.breakers.admit(&provider.id);
            if admission == Admission::Rejected {
                skipped_open = true;
                continue;
            }
            // A probe is released unless it ends in a verdict, even when this future is dropped
            // (the client went away) in the middle of the attempt.
            let mut probe =
                ProbeGuard { breakers: &state.breakers, id: &provider.id, armed: admission == Admission::Probe };
            // Backoff applies when coming back to providers already tried this call.
            if round > 0 {
                let base = Duration::from_millis(100) * 2u32.saturating_pow(round - 1);
                let jittered = base.min(Duration::from_secs(2)).mul_f64(rand::rng().random_range(0.5..1.5));
                let wait = jittered.max(retry_after.get(&provider.id).copied().unwrap_or_default());
                if Instant::now() + wait >= deadline {
                    // This one cannot be retried in time; another candidate may still be.
                    continue;
                }
                tokio::time::sleep(wait).await;
            }
            tried = true;
            progress.attempts += 1;
            last_provider = Some(provider.clone());
            let attempt_started = Instant::now();
            let outcome = attempt(state, provider, &call, &upstream_model, deadline).await;
            progress.upstream += attempt_started.elapsed();
            match outcome {
                Attempt::Done(success) => {
                    state.breakers.success(&provider.id);
                    probe.settle();
                    return respond(state, call, provider.clone(), success, progress);
                }
                Attempt::ClientError(error) => {
                    // The provider worked; the request was wrong.
                    state.breakers.success(&provider.id);
                    probe.settle();
                    return finish_error(state, &call, Some(provider), error, progress);
                }
                Attempt::Refused(error) => {
                    // Nothing was sent: no verdict on the provider (the guard releases a probe).
                    return finish_error(state, &call, Some(provider), error, progress);
                }
                Attempt::Retry { class, retry_after: after, counts_for_breaker } => {
                    state.metrics.upstream_error(provider.kind.as_str(), class);
                    progress.last_class = Some(class);
                    if counts_for_breaker {
                        state.breakers.failure(&provider.id);
                        probe.settle();
                    }
                    if let Some(after) = after {
                        retry_after.insert(provider.id.clone(), after);
                    }
                    tracing::warn!(request_id = %call.request_id, provider = %provider.label, class, "upstream attempt failed");
                }
                Attempt::KeyRejected => {
                    state.metrics.upstream_error(provider.kind.as_str(), "provider_key_rejected");
                    progress.last_class = Some("provider_key_rejected");
                    bad_keys.push(provider.id.clone());
                    flag_rejected_key(state, &call, provider);
                }
            }
            if Instant::now() >= deadline {
                break 'rounds;
            }
        }
        if !tried {
            break;
        }
        round += 1;
    }

    let error = if progress.attempts == 0 && skipped_open {
        GatewayError::ProvidersUnavailable
    } else if Instant::now() >= deadline && progress.last_class == Some("timeout") {
        GatewayError::Timeout
    } else {
        GatewayError::AllProvidersFailed {
            attempts: progress.attempts,
            last: progress.last_class.unwrap_or("no provider available").to_owned(),
        }
    };
    finish_error(state, &call, last_provider.as_ref(), error, progress)
}

/// The provider said the stored key is bad: mark it for the dashboard, off the request path.
fn flag_rejected_key(state: &AppState, call: &Call, provider: &OpenedProvider) {
    tracing::warn!(request_id = %call.request_id, provider = %provider.label, "provider rejected its stored key; flagged in the dashboard");
    let (db, caches, ws, id) =
        (state.db.clone(), Arc::clone(&state.caches), call.key.workspace.clone(), provider.id.clone());
    tokio::spawn(async move {
        if let Err(e) = app::server::providers::set_key_status(&db, &caches, &ws, &id, KeyStatus::Rejected).await {
            e.log_if_internal();
        }
    });
}

/// The body sent upstream for this provider.
fn upstream_body(call: &Call, provider: &OpenedProvider, model: &str) -> Result<Vec<u8>, GatewayError> {
    let bytes = if provider.kind == ProviderKind::Anthropic {
        serde_json::to_vec(&anthropic::request(&call.body, model, call.stream)?)
    } else {
        serde_json::to_vec(&Passthrough { body: &call.body, model, stream: call.stream })
    };
    bytes.map_err(|e| GatewayError::Internal(app::server::ServiceError::Internal(e.to_string())))
}

/// The client's body as sent upstream to an OpenAI-style provider, serialised straight from the
/// parsed request (no copy of the messages): the bare model name, redirecting fields left out, and
/// for streams `stream_options.include_usage` set so the usage record is right (the client only
/// sees the usage chunk if it asked).
struct Passthrough<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    stream: bool,
}

impl serde::Serialize for Passthrough<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (key, value) in self.body {
            if key == "model" || key == "stream_options" || REDIRECTING_FIELDS.contains(&key.as_str()) {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
        match (self.stream, self.body.get("stream_options")) {
            (true, Some(Value::Object(options))) => {
                let mut options = options.clone();
                options.insert("include_usage".into(), Value::Bool(true));
                map.serialize_entry("stream_options", &options)?;
            }
            (true, _) => map.serialize_entry("stream_options", &serde_json::json!({"include_usage": true}))?,
            (false, Some(options)) => map.serialize_entry("stream_options", options)?,
            (false, None) => {}
        }
        map.end()
    }
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

async fn attempt(state: &AppState, provider: &OpenedProvider, call: &Call, model: &str, deadline: Instant) -> Attempt {
    let settings = &state.settings.upstream;
    let body = match upstream_body(call, provider, model) {
        Ok(body) => body,
        Err(error) => return Attempt::Refused(error),
    };
    let path = match (provider.kind, call.endpoint) {
        (ProviderKind::Anthropic, _) => "messages",
        (_, Endpoint::Chat) => "chat/completions",
        (_, Endpoint::Embeddings) => "embeddings",
    };
    let request = upstream::authorize(
        state.http.post(upstream::endpoint(provider.kind, &provider.base_url, path)),
        provider.kind,
        &provider.key,
    )
    .header(header::CONTENT_TYPE, "application/json")
    .body(body);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let response = match tokio::time::timeout(settings.first_byte_timeout.min(remaining), request.send()).await {
        Err(_) => return Attempt::Retry { class: "timeout", retry_after: None, counts_for_breaker: true },
        Ok(Err(e)) if e.is_timeout() => {
            return Attempt::Retry { class: "timeout", retry_after: None, counts_for_breaker: true };
        }
        Ok(Err(_)) => return Attempt::Retry { class: "connect", retry_after: None, counts_for_breaker: true },
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return read_success(state, provider, call, response, deadline).await;
    }
    let retry_after = parse_retry_after(response.headers());
    match status.as_u16() {
        401 | 403 => Attempt::KeyRejected,
        429 => Attempt::Retry { class: "upstream_429", retry_after, counts_for_breaker: false },
        408 | 500..=599 => Attempt::Retry { class: "upstream_5xx", retry_after, counts_for_breaker: true },
        _ => {
            // Bounded by the call's deadline too: a provider trickling an error body cannot hold it.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let read = read_limited(response, settings.idle_timeout.min(remaining), 64 * 1024);
            let text = tokio::time::timeout(remaining, read).await.ok().flatten().unwrap_or_default();
            let json: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            let (message, kind, code, param) = if provider.kind == ProviderKind::Anthropic {
                let (message, kind) = anthropic::error_parts(&json);
                (message, kind, None, None)
            } else {
                let error = json.get("error").cloned().unwrap_or(Value::Null);
                (
                    upstream::provider_error_message(&json)
                        .unwrap_or_else(|| format!("The provider refused the request (HTTP {}).", status.as_u16())),
                    error.get("type").and_then(Value::as_str).unwrap_or("invalid_request_error").to_owned(),
                    error.get("code").and_then(Value::as_str).map(str::to_owned),
                    error.get("param").and_then(Value::as_str).map(str::to_owned),
                )
            };
            let message = upstream::scrub(&message, &provider.key);
            Attempt::ClientError(GatewayError::Upstream { status, message, kind, code, param })
        }
    }
}

/// Reads a whole (small) body with a size cap and an idle timeout per chunk.
async fn read_limited(response: reqwest::Response, idle: Duration, cap: usize) -> Option<Vec<u8>> {
    let mut stream = response.bytes_stream();
    let mut out = Vec::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(idle, stream.next()).await {
        out.extend_from_slice(&chunk);
        if out.len() > cap {
            break;
        }
    }
    Some(out)
}

async fn read_success(
    state: &AppState,
    provider: &OpenedProvider,
    call: &Call,
    response: reqwest::Response,
    deadline: Instant,
) -> Attempt {
    let idle = state.settings.upstream.idle_timeout;
    let mut upstream: ByteStream = Box::pin(response.bytes_stream());
    if call.stream {
        // Fallback is still possible until the first byte reaches the client: wait for it here.
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        return match tokio::time::timeout(wait, upstream.next()).await {
            // An error as the very first event: nothing reached the client yet, so fall back.
            Ok(Some(Ok(first))) if starts_with_error(provider.kind, &first) => {
                Attempt::Retry { class: "upstream_stream_error", retry_after: None, counts_for_breaker: true }
            }
            Ok(Some(Ok(first))) => Attempt::Done(Success::Stream { upstream, first }),
            Err(_) => Attempt::Retry { class: "timeout", retry_after: None, counts_for_breaker: true },
            Ok(Some(Err(_)) | None) => {
                Attempt::Retry { class: "stream_cut", retry_after: None, counts_for_breaker: true }
            }
        };
    }
    let mut body = Vec::new();
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, upstream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Attempt::Retry { class: "body_cut", retry_after: None, counts_for_breaker: true };
            }
            Err(_) => return Attempt::Retry { class: "timeout", retry_after: None, counts_for_breaker: true },
        }
    }
    if provider.kind != ProviderKind::Anthropic {
        // Only the usage is read; the rest is checked to be JSON and skipped without allocating.
        let Ok(parsed) = serde_json::from_slice::<UsageOnly>(&body) else {
            return Attempt::Retry { class: "bad_upstream_body", retry_after: None, counts_for_breaker: true };
        };
        let tokens = parsed.usage.map(TokenCounts::tokens).unwrap_or_default();
        // OpenAI-style bodies go back exactly as the provider sent them.
        return Attempt::Done(Success::Whole { body: Bytes::from(body), tokens });
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return Attempt::Retry { class: "bad_upstream_body", retry_after: None, counts_for_breaker: true };
    };
    let (translated, tokens) = anthropic::response(&json, &call.model, call.ts / 1000);
    let body = Bytes::from(serde_json::to_vec(&translated).unwrap_or_default());
    Attempt::Done(Success::Whole { body, tokens })
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<TokenCounts>,
}

/// A streamed chunk that mentions usage: the counts, and whether it also carries choices.
#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    usage: Option<TokenCounts>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// OpenAI's `usage` object (what is needed of it).
#[derive(serde::Deserialize, Default)]
struct TokenCounts {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(serde::Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl TokenCounts {
    fn tokens(self) -> Tokens {
        Tokens {
            prompt: self.prompt_tokens.unwrap_or(0),
            completion: self.completion_tokens.unwrap_or(0),
            cache_read: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: 0,
        }
    }
}

/// Releases a half-open breaker's probe unless [`ProbeGuard::settle`] was called: a probe that
/// ends without a verdict (or whose future is dropped) must not block the provider for good.
struct ProbeGuard<'a> {
    breakers: &'a app::server::breaker::Breakers,
    id: &'a str,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn settle(&mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breakers.abandon_probe(self.id);
        }
    }
}

/// The error an OpenAI-style stream event carries: a top-level `error` object, or a choice that
/// finished with `"error"` (OpenRouter). `None` for ordinary chunks (checked cheaply first).
fn stream_error(data: &str) -> Option<String> {
    if !data.contains("\"error") {
        return None;
    }
    let json: Value = serde_json::from_str(data).ok()?;
    if let Some(error) = json.get("error").filter(|e| !e.is_null()) {
        let message =
            error.get("message").and_then(Value::as_str).or_else(|| error.as_str()).unwrap_or("provider stream error");
        return Some(message.to_owned());
    }
    let finished_in_error = json
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| choices.iter().any(|c| c.get("finish_reason").and_then(Value::as_str) == Some("error")));
    finished_in_error.then(|| "The provider ended the stream with an error.".to_owned())
}

/// Whether the first bytes of a stream are already an error event.
fn starts_with_error(kind: ProviderKind, first: &Bytes) -> bool {
    let mut parser = sse::Parser::default();
    parser.push(first);
    match parser.next_event() {
        Some(event) if kind == ProviderKind::Anthropic => event.name.as_deref() == Some("error"),
        Some(event) => stream_error(&event.data).is_some(),
        None => false,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The usage record for this call, priced once from the tokens the provider reported.
fn record(
    state: &AppState,
    call: &Call,
    provider: Option<&OpenedProvider>,
    status: u16,
    error_class: Option<&str>,
    progress: &Progress,
    tokens: Tokens,
) -> UsageRecord {
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let cost_nanos = provider.and_then(|p| {
        let (_, bare) = route(&call.model);
        state.prices.lookup_with(&call.prices, p.kind.as_str(), bare).map(|price| price.cost_nanos(tokens))
    });
    UsageRecord {
        ts: call.ts,
        workspace: call.key.workspace.as_str().to_owned(),
        request_id: call.request_id.clone(),
        key_id: call.key.id.clone(),
        provider_id: provider.map(|p| p.id.clone()),
        provider_label: provider.map(|p| p.label.clone()),
        provider_kind: provider.map(|p| p.kind.as_str().to_owned()),
        model: call.model.clone(),
        endpoint: call.endpoint.name().to_owned(),
        stream: call.stream,
        status: i64::from(status),
        ok: error_class.is_none() && (200..300).contains(&status),
        error_class: error_class.map(str::to_owned),
        attempts: i64::from(progress.attempts),
        prompt_tokens: count(tokens.prompt),
        completion_tokens: count(tokens.completion),
        cache_read_tokens: count(tokens.cache_read),
        cache_write_tokens: count(tokens.cache_write),
        cost_nanos,
        latency_ms: millis(call.started.elapsed()),
        upstream_ms: millis(progress.upstream),
        ttft_ms: None,
    }
}

fn submit(state: &AppState, record: UsageRecord, overhead: Duration) {
    let kind = record.provider_kind.as_deref().unwrap_or("none");
    // Only a model a provider actually served becomes a label: failed calls would let anyone
    // invent label values.
    let model = if record.ok { record.model.as_str() } else { "other" };
    let latency = Duration::from_millis(u64::try_from(record.latency_ms).unwrap_or(0));
    state.metrics.request(
        u16::try_from(record.status).unwrap_or(0),
        kind,
        model,
        latency.as_secs_f64(),
        overhead.as_secs_f64(),
    );
    state.usage.record(record);
}

/// A call refused before routing (bad body, too large): answered and recorded.
pub fn reject(state: &AppState, call: &Call, error: GatewayError) -> Response {
    finish_error(state, call, None, error, Progress { attempts: 0, upstream: Duration::ZERO, last_class: None })
}

fn finish_error(
    state: &AppState,
    call: &Call,
    provider: Option<&OpenedProvider>,
    error: GatewayError,
    progress: Progress,
) -> Response {
    let status = error.status().as_u16();
    let record = record(state, call, provider, status, Some(error.class()), &progress, Tokens::default());
    submit(state, record, call.started.elapsed().saturating_sub(progress.upstream));
    let mut response = axum::response::IntoResponse::into_response(error);
    decorate(response.headers_mut(), call, provider, progress.attempts);
    response
}

/// `x-request-id`, `x-perpetuo-provider`, `x-perpetuo-attempts` and the rate-limit headers.
pub fn decorate(headers: &mut HeaderMap, call: &Call, provider: Option<&OpenedProvider>, attempts: u32) {
    if let Ok(id) = HeaderValue::from_str(&call.request_id) {
        headers.insert("x-request-id", id);
    }
    if let Some(provider) = provider {
        let value = HeaderValue::from_str(&provider.label).unwrap_or_else(|_| {
            HeaderValue::from_str(&provider.label.chars().filter(char::is_ascii_graphic).collect::<String>())
                .unwrap_or(HeaderValue::from_static("provider"))
        });
        headers.insert("x-perpetuo-provider", value);
    }
    headers.insert("x-perpetuo-attempts", HeaderValue::from(attempts));
    crate::ratelimit::set_headers(headers, &call.limit);
}

fn respond(state: &AppState, call: Call, provider: OpenedProvider, success: Success, progress: Progress) -> Response {
    match success {
        Success::Whole { body, tokens } => {
            let record = record(state, &call, Some(&provider), 200, None, &progress, tokens);
            submit(state, record, call.started.elapsed().saturating_sub(progress.upstream));
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            decorate(response.headers_mut(), &call, Some(&provider), progress.attempts);
            response
        }
        Success::Stream { upstream, first } => {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            decorate(&mut headers, &call, Some(&provider), progress.attempts);
            let relay = Relay::new(state.clone(), call, provider, upstream, first, progress);
            let mut response = Response::new(Body::from_stream(relay.into_stream()));
            *response.status_mut() = StatusCode::OK;
            *response.headers_mut() = headers;
            response
        }
    }
}

enum Translate {
    /// OpenAI-style stream: events forwarded as they come; the usage chunk is read (and hidden
    /// when the client did not ask for it).
    Pass {
        client_wants_usage: bool,
        done: bool,
        finish_seen: bool,
        tokens: Tokens,
    },
    Anthropic(Box<anthropic::StreamTranslator>),
}

/// Relays an upstream stream to the client and records usage when it ends, however it ends.
struct Relay {
    state: AppState,
    call: Call,
    provider: OpenedProvider,
    upstream: ByteStream,
    parser: sse::Parser,
    translate: Translate,
    pending: VecDeque<Bytes>,
    finished: bool,
    progress: Progress,
    upstream_wait: Duration,
    ttft: Option<Duration>,
    recorded: bool,
}

impl Relay {
    fn new(
        state: AppState,
        call: Call,
        provider: OpenedProvider,
        upstream: ByteStream,
        first: Bytes,
        progress: Progress,
    ) -> Self {
        let translate = if provider.kind == ProviderKind::Anthropic {
            Translate::Anthropic(Box::new(anthropic::StreamTranslator::new(
                &call.model,
                call.ts / 1000,
                call.client_wants_usage,
            )))
        } else {
            Translate::Pass {
                client_wants_usage: call.client_wants_usage,
                done: false,
                finish_seen: false,
                tokens: Tokens::default(),
            }
        };
        let mut relay = Self {
            state,
            call,
            provider,
            upstream,
            parser: sse::Parser::default(),
            translate,
            pending: VecDeque::new(),
            finished: false,
            progress,
            upstream_wait: Duration::ZERO,
            ttft: None,
            recorded: false,
        };
        relay.feed(&first);
        relay
    }

    /// Parses what arrived and queues what the client should get.
    fn feed(&mut self, chunk: &Bytes) {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event() {
            let mut out = Vec::new();
            let mut failed: Option<String> = None;
            match &mut self.translate {
                Translate::Pass { client_wants_usage, done, finish_seen, tokens } => {
                    if event.data == "[DONE]" {
                        *done = true;
                        out.push(Bytes::from_static(sse::DONE));
                    } else if let Some(message) = stream_error(&event.data) {
                        failed = Some(message);
                    } else {
                        let mut forward = true;
                        // Only chunks that mention usage are parsed; the rest pass as they are.
                        let chunk = if event.data.contains("\"usage\"") {
                            serde_json::from_str::<UsageChunk>(&event.data).ok()
                        } else {
                            None
                        };
                        if let Some(UsageChunk { usage: Some(counts), choices }) = chunk {
                            *tokens = counts.tokens();
                            // The usage-only chunk (no choices) is shown only to a client that asked.
                            forward = *client_wants_usage || choices.is_some_and(|c| !c.is_empty());
                        }
                        if event.data.contains("\"finish_reason\":\"") || event.data.contains("\"finish_reason\": \"") {
                            *finish_seen = true;
                        }
                        if forward {
                            out.push(sse::data(&event.data));
                        }
                    }
                }
                Translate::Anthropic(translator) => {
                    if let Err(message) = translator.event(&event, &mut out) {
                        failed = Some(message);
                    }
                }
            }
            if let Some(message) = failed {
                self.pending.extend(out);
                self.fail("upstream_stream_error", &message);
                return;
            }
            if self.ttft.is_none() && !out.is_empty() {
                self.ttft = Some(self.call.started.elapsed());
            }
            self.pending.extend(out);
            if self.stream_complete() {
                self.finish(None);
                return;
            }
        }
    }

    fn stream_complete(&self) -> bool {
        match &self.translate {
            Translate::Pass { done, .. } => *done,
            Translate::Anthropic(t) => t.finished,
        }
    }

    fn tokens(&self) -> Tokens {
        match &self.translate {
            Translate::Pass { tokens, .. } => *tokens,
            Translate::Anthropic(t) => t.tokens,
        }
    }

    /// Ends the stream with an error event and no `[DONE]`, recorded as failed.
    fn fail(&mut self, class: &'static str, message: &str) {
        // A provider's own words may echo its key back: never pass that on.
        let message = upstream::scrub(message, &self.provider.key);
        let error =
            serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": class}});
        self.pending.push_back(sse::data(&error.to_string()));
        self.state.metrics.upstream_error(self.provider.kind.as_str(), class);
        if class != "client_disconnected" {
            self.state.breakers.failure(&self.provider.id);
        }
        self.finish(Some((502, class)));
    }

    fn finish(&mut self, failure: Option<(u16, &'static str)>) {
        self.finished = true;
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (status, class) = failure.map_or((200, None), |(s, c)| (s, Some(c)));
        let progress = Progress {
            attempts: self.progress.attempts,
            upstream: self.progress.upstream + self.upstream_wait,
            last_class: class,
        };
        let mut record = record(&self.state, &self.call, Some(&self.provider), status, class, &progress, self.tokens());
        record.ttft_ms = self.ttft.map(millis);
        submit(&self.state, record, self.call.started.elapsed().saturating_sub(progress.upstream));
    }

    /// The next bytes for the client.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.finished {
                return None;
            }
            let settings = &self.state.settings.upstream;
            let deadline = self.call.started + settings.total_timeout;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.fail("deadline", "The stream took longer than the gateway's deadline.");
                continue;
            }
            let waited = Instant::now();
            let next = tokio::time::timeout(settings.idle_timeout.min(remaining), self.upstream.next()).await;
            self.upstream_wait += waited.elapsed();
            match next {
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
                Ok(None) => {
                    let clean_end = match &self.translate {
                        // Some OpenAI-compatible servers end after the finish chunk without `[DONE]`.
                        Translate::Pass { finish_seen, .. } => *finish_seen,
                        Translate::Anthropic(t) => t.finished,
                    };
                    if clean_end {
                        self.pending.push_back(Bytes::from_static(sse::DONE));
                        self.finish(None);
                    } else {
                        self.fail("stream_cut", "The provider ended the stream before it was complete.");
                    }
                }
                Ok(Some(Err(_))) => self.fail("stream_cut", "The connection to the provider broke during the stream."),
                Err(_) if remaining <= settings.idle_timeout => {
                    self.fail("deadline", "The stream took longer than the gateway's deadline.")
                }
                Err(_) => self.fail("idle_timeout", "The provider stopped sending in the middle of the stream."),
            }
        }
    }

    fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures::stream::unfold(self, |mut relay| async move { relay.next().await.map(|bytes| (Ok(bytes), relay)) })
    }
}

impl Drop for Relay {
    /// The client went away before the end: the upstream request is dropped with us (which
    /// closes its connection), and the call is recorded as such.
    fn drop(&mut self) {
        if !self.recorded {
            self.state.metrics.upstream_error(self.provider.kind.as_str(), "client_disconnected");
            self.finish(Some((499, "client_disconnected")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::server::secret::SecretBytes;

    fn provider(id: &str, kind: ProviderKind, models: Option<Vec<&str>>, priority: i64) -> OpenedProvider {
        OpenedProvider {
            id: id.into(),
            label: id.into(),
            kind,
            base_url: "https://example.com".into(),
            key: SecretBytes::new(b"k".to_vec()),
            priority,
            enabled: true,
            models: models.map(|m| m.into_iter().map(str::to_owned).collect()),
        }
    }

    fn ids(list: &[OpenedProvider]) -> Vec<&str> {
        list.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn routing_by_kind_prefix_family_and_allow_list() {
        let providers = vec![
            provider("oa", ProviderKind::Openai, None, 1),
            provider("an", ProviderKind::Anthropic, None, 2),
            provider("local", ProviderKind::OpenaiCompatible, None, 3),
            provider("limited", ProviderKind::Openai, Some(vec!["gpt-4o-mini"]), 4),
        ];
        let (list, bare) = candidates(&providers, "gpt-4o", Endpoint::Chat);
        assert_eq!((ids(&list), bare.as_str()), (vec!["oa", "local"], "gpt-4o"));
        let (list, bare) = candidates(&providers, "anthropic/claude-3-5-haiku", Endpoint::Chat);
        assert_eq!((ids(&list), bare.as_str()), (vec!["an"], "claude-3-5-haiku"));
        let (list, _) = candidates(&providers, "claude-3-5-haiku", Endpoint::Chat);
        assert_eq!(ids(&list), vec!["an", "local"]);
        let (list, _) = candidates(&providers, "gpt-4o-mini", Endpoint::Chat);
        assert_eq!(ids(&list), vec!["oa", "local", "limited"]);
        let (list, _) = candidates(&providers, "openai/some-new-model", Endpoint::Chat);
        assert_eq!(ids(&list), vec!["oa"], "the allow-list still applies under a kind prefix");
        let (list, _) = candidates(&providers, "text-embedding-3-small", Endpoint::Embeddings);
        assert_eq!(ids(&list), vec!["oa", "local"]);
        let (list, _) = candidates(&[provider("an", ProviderKind::Anthropic, None, 1)], "mystery", Endpoint::Chat);
        assert!(list.is_empty());
        assert_eq!(route("openrouter/openai/gpt-4o"), (Some(ProviderKind::Openrouter), "openai/gpt-4o"));
        assert_eq!(route("meta-llama/llama-3"), (None, "meta-llama/llama-3"));
    }

    #[test]
    fn passthrough_body_rewrites_only_what_it_must() {
        let body: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "api_base": "http://evil",
            "api_key": "sk-x", "stream": true, "stream_options": {"include_usage": false, "other": 1}, "tools": []
        }))
        .unwrap();
        let out: Value = serde_json::to_value(Passthrough { body: &body, model: "gpt-4o", stream: true }).unwrap();
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true, "other": 1}));
        assert!(out.get("api_base").is_none() && out.get("api_key").is_none());
        assert_eq!(out["messages"], body["messages"]);
        assert_eq!(out["tools"], serde_json::json!([]));
        let plain: Value = serde_json::to_value(Passthrough { body: &body, model: "gpt-4o", stream: false }).unwrap();
        assert_eq!(plain["stream_options"]["include_usage"], false, "untouched when not streaming");
        let mut bare = body.clone();
        bare.remove("stream_options");
        let out: Value = serde_json::to_value(Passthrough { body: &bare, model: "m", stream: true }).unwrap();
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true}));
    }

    #[test]
    fn a_dropped_probe_is_released() {
        let breakers = app::server::breaker::Breakers::new(1, Duration::ZERO);
        breakers.failure("p");
        assert_eq!(breakers.admit("p"), Admission::Probe);
        assert_eq!(breakers.admit("p"), Admission::Rejected, "one probe at a time");
        drop(ProbeGuard { breakers: &breakers, id: "p", armed: true });
        assert_eq!(breakers.admit("p"), Admission::Probe, "released when the attempt ended without a verdict");
        let mut settled = ProbeGuard { breakers: &breakers, id: "p", armed: true };
        breakers.success("p");
        settled.settle();
        drop(settled);
        assert_eq!(breakers.admit("p"), Admission::Allowed);
    }

    #[test]
    fn stream_errors_are_recognised() {
        assert_eq!(stream_error(r#"{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"#), None);
        assert!(stream_error(r#"{"error":{"message":"boom"}}"#).is_some_and(|m| m == "boom"));
        assert!(stream_error(r#"{"choices":[{"delta":{},"finish_reason":"error"}]}"#).is_some());
        assert_eq!(
            stream_error(r#"{"choices":[{"delta":{"content":"an error occurred"}}]}"#),
            None,
            "content that mentions errors is fine"
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
    }
}
