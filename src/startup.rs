//! Builds the one router (dashboard + management API + gateway, behind the limits) and runs it
//! until a shutdown signal, then drains background work.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use app::server::config::Settings;
use app::server::db::{Db, DbError};
use app::server::ratelimit::LimitClock;
use app::server::sessions::SurrealSessionStore;
use app::server::{AppState, ServiceError};
use app::{App, shell};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    usage_stop: CancellationToken,
    usage_writer: JoinHandle<()>,
}

impl Application {
    /// Opens the database named by the settings and builds everything.
    pub async fn build(settings: Settings, leptos_options: LeptosOptions) -> Result<Self, StartupError> {
        let db = Db::open(&settings).await?;
        Self::build_with(settings, leptos_options, db, LimitClock::real()).await
    }

    /// Builds around an open database and a chosen limiter clock (tests share one database
    /// between several instances, and drive the clock by hand).
    pub async fn build_with(
        settings: Settings,
        leptos_options: LeptosOptions,
        db: Db,
        clock: LimitClock,
    ) -> Result<Self, StartupError> {
        let addr = settings.site_addr;
        let secure_cookies = settings.secure_cookies;
        // The usage writer stops last: after the server has finished every request.
        let usage_stop = CancellationToken::new();
        let (usage, usage_writer) = app::server::usage::start(db.clone(), 50_000, usage_stop.clone());
        let state = AppState::new(leptos_options, db.clone(), settings, clock, usage)?;
        let shutdown = CancellationToken::new();
        let store = SurrealSessionStore::new(db);
        let mut background = Vec::new();
        background.push(spawn_session_sweeper(store.clone(), shutdown.clone()));
        background.push(spawn_limiter_pruner(state.clone(), shutdown.clone()));
        background.push(
            app::server::cache::spawn_invalidation(state.db.clone(), state.caches.clone(), shutdown.clone()).await,
        );
        background.push(spawn_last_used_flusher(state.clone(), shutdown.clone()));
        background.push(spawn_retention(state.clone(), shutdown.clone()));

        let sessions = SessionManagerLayer::new(store)
            .with_name("perpetuo_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure_cookies)
            .with_expiry(Expiry::OnInactivity(CookieDuration::days(7)));

        let routes = generate_route_list(App);
        let dashboard = Router::new()
            .route("/usage/export.csv", get(crate::web::usage_csv))
            .leptos_routes_with_context(&state, routes, || {}, {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            })
            .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
            .layer(from_fn(crate::web::page_guard))
            .layer(sessions)
            .layer(from_fn(crate::web::same_origin));

        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .nest("/api/v1", crate::api::router())
            .nest("/v1", crate::gateway::router())
            .route("/metrics", get(metrics))
            .merge(dashboard)
            .layer(from_fn_with_state(state.clone(), crate::ratelimit::ip_limit))
            .layer(from_fn(crate::web::security_headers))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &http::Request<axum::body::Body>| {
                // The path only: query strings may carry things that do not belong in logs.
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            }))
            .with_state(state.clone());

        let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self { listener, router, state, shutdown, background, usage_stop, usage_writer })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, finishes in-flight requests and
    /// drains background work.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { listener, router, state: _, shutdown, background, usage_stop, usage_writer } = self;
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, service).with_graceful_shutdown(signal).await;
        // Every request has finished and handed over its usage record: drain the queue.
        usage_stop.cancel();
        if let Err(e) = usage_writer.await {
            tracing::error!(error = %e, "usage writer ended badly");
        }
        shutdown.cancel();
        for task in background {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "background task ended badly");
            }
        }
        result
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

/// `GET /metrics`: Prometheus text. Guarded by `METRICS_TOKEN` when one is set.
async fn metrics(State(state): State<AppState>, headers: http::HeaderMap) -> axum::response::Response {
    if let Some(token) = &state.settings.metrics_token {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented.map(str::as_bytes) != Some(token.expose()) {
            return (StatusCode::UNAUTHORIZED, "metrics need the METRICS_TOKEN bearer token").into_response();
        }
    }
    let (depth, written, dropped, retried) = {
        use std::sync::atomic::Ordering::Relaxed;
        let (sink, stats) = (&state.usage, &state.usage.stats);
        (sink.depth(), stats.written.load(Relaxed), stats.dropped.load(Relaxed), stats.retried.load(Relaxed))
    };
    let body = state.metrics.render(
        &[
            ("perpetuo_usage_queue_depth", "Usage records waiting to be written.", depth as f64),
            (
                "perpetuo_open_circuit_breakers",
                "Providers whose circuit breaker is open or probing.",
                state.breakers.open_count() as f64,
            ),
            ("perpetuo_cached_api_keys", "API keys held in this instance's cache.", state.caches.cached_keys() as f64),
            (
                "perpetuo_rate_limiter_keys",
                "Clients and keys tracked by the rate limiters.",
                state.limiters.tracked_keys() as f64,
            ),
        ],
        &[
            ("perpetuo_usage_records_written_total", "Usage records written to the database.", written),
            (
                "perpetuo_usage_records_dropped_total",
                "Usage records dropped (queue full or repeated write failures).",
                dropped,
            ),
            ("perpetuo_usage_write_retries_total", "Usage batch writes retried after a failure.", retried),
        ],
    );
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

fn spawn_session_sweeper(store: SurrealSessionStore, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {
                    if let Err(e) = store.delete_expired().await {
                        tracing::warn!(error = %e, "expired-session sweep failed");
                    }
                }
            }
        }
    })
}

fn spawn_limiter_pruner(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => state.limiters.prune(),
            }
        }
    })
}

/// Writes API keys' last-use times every few seconds, and once more at shutdown.
fn spawn_last_used_flusher(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = interval.tick() => false,
            };
            if let Err(e) = state.caches.flush_last_used(&state.db).await {
                tracing::warn!(error = %e.message(), "writing API key last-use times failed");
            }
            if stopping {
                break;
            }
        }
    })
}

/// Deletes request records older than `USAGE_RETENTION_DAYS`, at start and then hourly.
fn spawn_retention(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {
                    let cutoff = app::server::db::now_ms() - i64::from(state.settings.usage_retention_days) * app::types::DAY_MS;
                    match app::server::reports::prune(&state.db, cutoff).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(records = n, "pruned request records past the retention period"),
                        Err(e) => e.log_if_internal(),
                    }
                }
            }
        }
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Leptos options from the environment (cargo-leptos sets them), with the defaults a standalone
/// binary needs.
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    let mut options = match leptos::config::get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(e) => {
            tracing::warn!(error = %e, "leptos configuration unreadable; using defaults");
            LeptosOptions::builder().output_name("perpetuo").site_root("target/site").build()
        }
    };
    if options.output_name.is_empty() {
        options.output_name = "perpetuo".into();
    }
    options.site_addr = settings.site_addr;
    options
}
