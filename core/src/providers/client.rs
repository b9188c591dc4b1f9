//! Reaching provider hosts: the shared HTTP clients (pooled, with the configured timeouts, through
//! the guarded resolver of [`super::address`]) and a provider's "Test".

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::OpenedProvider;
use super::address::BaseUrl;
use super::address::{GuardedDns, GuardedResolver, describe_transport_error};
use super::dialects::Endpoint;
use crate::platform::config::UpstreamSettings;
use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;
use perpetuo_types::ProviderTestResult;

/// The request body of an upstream call.
pub type UpstreamBody = http_body_util::Full<bytes::Bytes>;
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector<GuardedDns>>;
type HyperClient = hyper_util::client::legacy::Client<Connector, UpstreamBody>;

thread_local! {
    /// This thread's client for each upstream configuration it has served (by id): its own
    /// connection pool, driven by this thread's runtime.
    static CLIENTS: std::cell::RefCell<Vec<(u64, HyperClient)>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_UPSTREAM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The gateway's upstream client: hyper's pooled HTTP/1 client with the guarded resolver and
/// rustls, one per serving thread (each thread keeps its own connections, so a request never waits
/// on another thread's pool or runtime). Same rules as [`build_client`]: no proxies, no redirects,
/// `TCP_NODELAY`, the connect timeout, public hosts only unless private upstreams are allowed.
#[derive(Clone)]
pub struct Upstream {
    id: u64,
    connector: Connector,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why an upstream call got no answer.
#[derive(Debug)]
pub enum SendError {
    Connect,
    Other,
}

impl Upstream {
    pub fn new(settings: &UpstreamSettings) -> Result<Self, ServiceError> {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(GuardedDns {
            allow_private: settings.allow_private,
        });
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // The system's roots (as reqwest uses), or Mozilla's when the system has none.
        let builder = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
            Ok(builder) => builder,
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| ServiceError::Internal(format!("tls: {e}")))?,
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let id = NEXT_UPSTREAM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self { id, connector })
    }

    fn client(&self) -> HyperClient {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(self.connector.clone());
            clients.push((self.id, client.clone()));
            client
        })
    }

    /// Sends a request on this thread's client.
    pub async fn send(
        &self,
        mut request: http::Request<UpstreamBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        request.headers_mut().insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
        self.client()
            .request(request)
            .await
            .map_err(|e| if e.is_connect() { SendError::Connect } else { SendError::Other })
    }
}

const USER_AGENT: &str = concat!("perpetuo/", env!("CARGO_PKG_VERSION"));

/// The one HTTP client for all upstream calls: pooled per host, no proxies from the environment,
/// no redirects (a redirect could lead to a private address or leak the key to another host).
pub fn build_client(settings: &UpstreamSettings) -> Result<reqwest::Client, ServiceError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("perpetuo/", env!("CARGO_PKG_VERSION")));
    builder = builder.dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private }));
    builder.build().map_err(|e| ServiceError::Internal(format!("http client: {e}")))
}

/// Calls the provider's model list with the stored key and reports in plain words.
pub async fn test_provider(
    client: &reqwest::Client,
    provider: &OpenedProvider,
    allow_private: bool,
) -> ProviderTestResult {
    let (base_url, key) = (provider.base_url.as_str(), &provider.key);
    let started = Instant::now();
    let finish = |ok: bool, message: String, models: Vec<String>| ProviderTestResult {
        ok,
        message,
        models,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if let Err(e) = BaseUrl::parse(base_url, allow_private) {
        return finish(false, e.to_string(), Vec::new());
    }
    let dialect = super::catalog::dialect(provider.kind);
    let mut request = super::dialects::authorize(
        client.get(dialect.url(&super::dialects::Address::of(provider, ""), Endpoint::Models)),
        &provider.auth,
    )
    .timeout(TEST_TIMEOUT);
    if let Some(tokens) = &provider.tokens {
        match tokens.bearer(client).await {
            Ok(bearer) => request = request.header(http::header::AUTHORIZATION, bearer),
            Err(super::credentials::TokenError::Refused(why) | super::credentials::TokenError::Unavailable(why)) => {
                return finish(false, scrub(&format!("No token: {why}."), key), Vec::new());
            }
        }
    }
    let mut request = match request.build() {
        Ok(request) => request,
        Err(e) => return finish(false, describe_transport_error(&e), Vec::new()),
    };
    if let Some(signer) = &provider.signer {
        let url = request.url().as_str().to_owned();
        if let Err(why) = signer.sign("GET", &url, request.headers_mut(), b"") {
            return finish(false, format!("The request could not be signed: {why}."), Vec::new());
        }
    }
    let response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => return finish(false, describe_transport_error(&e), Vec::new()),
    };
    let status = response.status();
    let body = match read_capped(response, TEST_BODY_CAP).await {
        Ok(body) => body,
        Err(message) => return finish(false, message, Vec::new()),
    };
    if status.is_success() {
        let models = dialect.model_list(&body).unwrap_or_default();
        let message = format!("Connected: the provider lists {} models.", models.len());
        return finish(true, message, models);
    }
    let detail = dialect.error_message(&body).map(|m| scrub(&m, key)).unwrap_or_default();
    let what = match status.as_u16() {
        _ if dialect.rejects_key(status, &body) => "The provider rejected the API key",
        401 | 403 => "The provider rejected the API key",
        404 => "The base URL has no model list (check the URL)",
        429 => "The provider is rate limiting this key",
        500..=599 => "The provider had a server error",
        _ => "The provider refused the request",
    };
    let message = if detail.is_empty() {
        format!("{what} (HTTP {}).", status.as_u16())
    } else {
        format!("{what} (HTTP {}): {detail}", status.as_u16())
    };
    finish(false, message, Vec::new())
}

/// How long "Test" (and a model-list fetch) may take, and the most it reads of the answer.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);
const TEST_BODY_CAP: usize = 4 * 1024 * 1024;

/// The whole body, or plain words when it breaks off, dawdles or is larger than `cap` (an endless
/// answer costs at most `cap` bytes of memory).
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + TEST_TIMEOUT;
    match super::body::read_reqwest(response, cap, TEST_TIMEOUT, deadline).await {
        Ok(body) => Ok(body.to_vec()),
        Err(super::body::ReadError::TooLarge) => {
            Err(format!("The provider's answer is larger than {} MiB.", cap / (1024 * 1024)))
        }
        Err(super::body::ReadError::Timeout) => Err("The provider stopped sending its answer.".to_owned()),
        Err(super::body::ReadError::Cut(_)) => Err("The connection broke off during the answer.".to_owned()),
    }
}

/// Removes any copy of the key from a provider's message (some echo part of it back).
pub fn scrub(message: &str, key: &SecretBytes) -> String {
    match key.expose_str() {
        Some(k) if k.len() >= 4 => message.replace(k, "[redacted]"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_key() {
        let key = SecretBytes::new(b"sk-live-123456".to_vec());
        assert_eq!(
            scrub("Incorrect API key provided: sk-live-123456.", &key),
            "Incorrect API key provided: [redacted]."
        );
    }
}

#[cfg(test)]
mod connect_time {
    use super::*;

    /// A name that passed the save-time check but resolves privately when the request is made
    /// (DNS rebinding) is refused by the client's resolver itself.
    #[tokio::test]
    async fn the_client_refuses_private_answers_at_connect_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            // Accept and answer anything, so only the resolver can stop the request.
            loop {
                if let Ok((mut socket, _)) = listener.accept().await {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ =
                        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                }
            }
        });
        let settings = crate::platform::config::Settings::for_tests().upstream;
        let strict = build_client(&UpstreamSettings { allow_private: false, ..settings.clone() }).unwrap();
        let err = strict.get(format!("http://localhost:{port}/v1/models")).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert!(describe_transport_error(&err).contains("private or local"), "{}", describe_transport_error(&err));
        let open = build_client(&UpstreamSettings { allow_private: true, ..settings }).unwrap();
        let answer = open.get(format!("http://127.0.0.1:{port}/v1/models")).send().await;
        assert!(answer.is_ok(), "{answer:?}");
    }
}
