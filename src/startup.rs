//! Builds the one router (dashboard + management API + gateway, behind the limits) and runs it
//! until a shutdown signal, then drains background work.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::middleware::from_fn_with_state;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{Expiry, SessionManagerLayer};

use perpetuo_core::accounts::sessions::SurrealSessionStore;
use perpetuo_core::platform::config::Settings;
use perpetuo_core::platform::db::{Db, DbError};
use perpetuo_core::platform::rate::LimitClock;
use perpetuo_core::usage::spool::Spool;
use perpetuo_core::usage::{ledger, writer};
use perpetuo_core::{AppState, ServiceError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("{0} (set USAGE_SPOOL_DIR to a directory this process may write)")]
    Spool(#[from] perpetuo_core::usage::spool::SpoolError),
    #[error("moving usage records into the ledger failed: {0}")]
    Ledger(surrealdb::Error),
}

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    usage_stop: CancellationToken,
    usage_writer: writer::WriterHandle,
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
        let moved = ledger::adopt_legacy(&db).await.map_err(StartupError::Ledger)?;
        if moved > 0 {
            tracing::info!(records = moved, "moved usage records from the old table into the ledger");
        }
        let max = settings.usage_spool_max_bytes;
        let spool = match &settings.usage_spool_dir {
            Some(dir) => Spool::open_with(dir, max, settings.usage_spool_sync)?.0,
            None => Spool::temporary(max)?,
        };
        let (usage, usage_writer) = writer::start(db.clone(), spool, usage_stop.clone());
        let state = crate::state::build(db.clone(), settings, clock, usage)?;
        let shutdown = CancellationToken::new();
        let store = SurrealSessionStore::new(db.clone());
        // Shared limits split by the instances alive: counted before the first request.
        state.limiters.heartbeat().await;
        let mut background = crate::tasks::spawn_all(&state, store.clone(), &shutdown);
        background.push(perpetuo_core::platform::live::spawn(db, state.followers(), shutdown.clone()).await);
        // After the followers run, so a key created meanwhile elsewhere is learnt either way.
        match state.keys().load_known().await {
            Ok(n) => tracing::debug!(keys = n, "known key hashes loaded"),
            Err(e) => {
                tracing::warn!(error = %e, "key hashes could not be loaded: unknown keys are looked up without a budget")
            }
        }

        let sessions = SessionManagerLayer::new(store)
            .with_name("perpetuo_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure_cookies)
            .with_expiry(Expiry::OnInactivity(CookieDuration::days(7)));

        let router = Router::new()
            .merge(crate::ops::router())
            .nest("/api/v1", crate::rest::router())
            .nest("/v1", crate::gateway::router(state.settings.max_body_bytes))
            .merge(crate::dashboard::router(&state, leptos_options, sessions))
            .layer(from_fn_with_state(state.clone(), crate::ip_limit::ip_limit))
            .layer(from_fn_with_state(state.clone(), crate::dashboard::guards::security_headers))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &http::Request<axum::body::Body>| {
                // The path only: query strings may carry things that do not belong in logs.
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            }))
            .with_state(state.clone());

        let listener =
            if state.settings.serve_threads > 1 { shared_port_listener(addr) } else { TcpListener::bind(addr).await }
                .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self { listener, router, state, shutdown, background, usage_stop, usage_writer })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, finishes in-flight requests (and
    /// the calls that outlived their clients) and drains background work.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { listener, router, state, shutdown, background, usage_stop, usage_writer } = self;
        let threads = state.settings.serve_threads;
        let limits = listener_limits(&state);
        let result = if threads > 1 {
            serve_per_core(listener, router, threads, limits, state.clone(), signal).await
        } else {
            let served = crate::server::serve(listener, router, limits, signal).await;
            finish_calls(&state).await;
            served
        };
        // Every request has finished and handed over its usage record: drain the queue.
        usage_stop.cancel();
        usage_writer.stopped().await;
        shutdown.cancel();
        for task in background {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "background task ended badly");
            }
        }
        result
    }
}

/// What the listener allows clients, from the settings.
fn listener_limits(state: &AppState) -> crate::server::Limits {
    let clients = &state.settings.clients;
    crate::server::Limits {
        read_timeout: clients.read_timeout,
        write_timeout: clients.write_timeout,
        per_ip: clients.max_connections_per_ip,
        open: std::sync::Arc::new(crate::server::Connections::new(state.settings.trusted_proxies.clone())),
        // A call ends by its total deadline, and its client's side by the write timeout after it.
        grace: state.settings.upstream.total_timeout + clients.write_timeout,
        metrics: std::sync::Arc::clone(&state.metrics),
    }
}

/// Waits (within a call's deadline) for the gateway calls that run apart from their clients: a
/// call whose client left is still recording what its provider billed.
async fn finish_calls(state: &AppState) {
    state.calls.close();
    let limit = state.settings.upstream.total_timeout + state.settings.clients.write_timeout;
    if tokio::time::timeout(limit, state.calls.wait()).await.is_err() {
        tracing::warn!(calls = state.calls.len(), "gateway calls still running at shutdown were stopped");
    }
}

/// A listener that other threads' listeners may share (`SO_REUSEPORT`: the kernel spreads new
/// connections over them).
fn shared_port_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves on `threads` threads, each a single-threaded runtime accepting on its own listener on
/// the same port: a request is read, handled and answered on one thread, with no work stealing
/// and no wake-ups across threads (measured: the floor relay went from 0.63x to 0.96x nginx's
/// throughput). Background work stays on the caller's runtime; a call that outlives its client
/// stays on its thread, which keeps running until such calls are done. Returns once `signal`
/// fired and every thread finished its requests.
async fn serve_per_core(
    first: TcpListener,
    router: Router,
    threads: usize,
    limits: crate::server::Limits,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = first.local_addr()?;
    let first = first.into_std()?;
    let stop = CancellationToken::new();
    // Threads already serving stop if a later one cannot start.
    let stop_on_error = stop.clone().drop_guard();
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let (router, stop, limits, state) = (router.clone(), stop.clone(), limits.clone(), state.clone());
        let std_listener = if index == 0 { Some(first.try_clone()?) } else { None };
        let handle = std::thread::Builder::new().name(format!("perpetuo-serve-{index}")).spawn(
            move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let listener = match std_listener {
                        Some(listener) => TcpListener::from_std(listener)?,
                        None => shared_port_listener(addr)?,
                    };
                    let served =
                        crate::server::serve(listener, router, limits, async move { stop.cancelled().await }).await;
                    finish_calls(&state).await;
                    served
                })
            },
        )?;
        handles.push(handle);
    }
    drop(first);
    stop_on_error.disarm();
    signal.await;
    stop.cancel();
    tokio::task::spawn_blocking(move || {
        let mut result = Ok(());
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(std::io::Error::other("a serving thread panicked")),
            }
        }
        result
    })
    .await
    .map_err(std::io::Error::other)?
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

/// The dashboard's Leptos options. Under `cargo leptos` (which sets `LEPTOS_OUTPUT_NAME` and its
/// other variables) its configuration is used; a standalone binary knows its own output name and
/// takes the rest from the settings, so the documented variables are all it needs.
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    let standalone = || {
        LeptosOptions::builder()
            .output_name("perpetuo")
            .site_root(settings.site_root.to_string_lossy().as_ref())
            .site_addr(settings.site_addr)
            .build()
    };
    if std::env::var_os("LEPTOS_OUTPUT_NAME").is_none() {
        return standalone();
    }
    match leptos::config::get_configuration(None) {
        Ok(conf) => {
            let mut options = conf.leptos_options;
            options.site_addr = settings.site_addr;
            options
        }
        Err(e) => {
            tracing::warn!(error = %e, "the cargo-leptos configuration is unreadable; using the settings");
            standalone()
        }
    }
}
