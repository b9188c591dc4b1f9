//! The wiring of the application state: every service built from the settings around an open
//! database and the usage sink, then assembled into the core's `AppState`.

use std::sync::Arc;

use perpetuo_core::accounts::Accounts;
use perpetuo_core::accounts::jwt::JwtKeys;
use perpetuo_core::budgets::Budgets;
use perpetuo_core::keys::ApiKeys;
use perpetuo_core::platform::config::Settings;
use perpetuo_core::platform::crypto::Cipher;
use perpetuo_core::platform::db::Db;
use perpetuo_core::platform::metrics::Metrics;
use perpetuo_core::platform::rate::{LimitClock, Limiters};
use perpetuo_core::providers::Providers;
use perpetuo_core::providers::breaker::Breakers;
use perpetuo_core::providers::client::{Upstream, build_client};
use perpetuo_core::state::Services;
use perpetuo_core::usage::estimate::Estimator;
use perpetuo_core::usage::prices::PriceTable;
use perpetuo_core::usage::{Prices, Reports, UsageSink};
use perpetuo_core::workspaces::Workspaces;
use perpetuo_core::{AppState, ServiceError};

/// Threads that count large prompts (at the lowest priority), and how long a call waits for one.
const ESTIMATOR_THREADS: usize = 1;
const ESTIMATE_DEADLINE: std::time::Duration = std::time::Duration::from_millis(250);

/// Builds the state around an open database.
pub fn build(db: Db, settings: Settings, clock: LimitClock, usage: UsageSink) -> Result<AppState, ServiceError> {
    let cipher = Arc::new(Cipher::new(&settings.encryption_key, settings.encryption_key_previous.as_ref()));
    let jwt = Arc::new(JwtKeys::new(&settings.jwt_secret)?);
    let limiters = Limiters::new(&settings, clock.clone());
    let limiters = Arc::new(if settings.shared_limits {
        limiters.shared(db.clone(), settings.shared_limit_timeout)
    } else {
        limiters
    });
    let metrics = Arc::new(Metrics::default());
    let upstream = &settings.upstream;
    let breakers =
        Arc::new(Breakers::new(upstream.breaker_failure_threshold, upstream.breaker_cooldown, clock.clone()));
    let table = match &settings.prices_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ServiceError::Internal(format!("PRICES_FILE {} cannot be read: {e}", path.display())))?;
            PriceTable::parse(&text)
                .map_err(|e| ServiceError::Internal(format!("PRICES_FILE {}: {e}", path.display())))?
        }
        None => PriceTable::built_in(),
    };
    let workspaces = Workspaces::new(db.clone()).with_quota(settings.quotas.workspaces_per_account);
    let accounts = Accounts::new(
        db.clone(),
        workspaces.clone(),
        Arc::clone(&limiters),
        Arc::clone(&metrics),
        settings.session_max_age,
        perpetuo_core::accounts::setup::SignupRules::new(settings.signup, &settings.jwt_secret),
    );
    let providers = Providers::new(
        db.clone(),
        Arc::clone(&cipher),
        build_client(upstream)?,
        Upstream::new(upstream)?,
        upstream.allow_private,
    )
    .with_quota(settings.quotas.providers_per_workspace);
    let keys = ApiKeys::new(db.clone())
        .with_clock(clock.clone())
        .with_quota(settings.quotas.keys_per_workspace)
        .with_default_rate_limit(settings.rate_limit_key_per_min.get());
    // The collector is the operator's own (often on localhost): not an upstream, not guarded.
    let otlp = reqwest::Client::builder().build().map_err(|e| ServiceError::Internal(format!("OTLP client: {e}")))?;
    let telemetry = perpetuo_core::platform::telemetry::Telemetry::start(settings.traces.as_ref(), otlp)
        .map_err(ServiceError::Internal)?;
    let captures =
        perpetuo_core::captures::Captures::start(db.clone(), Arc::clone(&cipher), settings.capture_max_body_bytes);
    let limits = match limiters.instance_id() {
        Some(id) => {
            let counted = Arc::clone(&limiters);
            perpetuo_core::limits::Limits::shared(
                db.clone(),
                id.to_owned(),
                settings.shared_limit_timeout,
                Arc::new(move || counted.instances()),
            )
        }
        None => perpetuo_core::limits::Limits::local(db.clone()),
    };
    let pressure = perpetuo_core::providers::pressure::Pressure::new(db.clone(), clock.clone());
    // Budget slices are a share of a budget's room per instance alive on the database.
    let budgets = match limiters.instance_id() {
        Some(id) => {
            let counted = Arc::clone(&limiters);
            Budgets::new(db.clone()).with_instances(id.to_owned(), Arc::new(move || counted.instances()))
        }
        None => Budgets::new(db.clone()),
    };
    Ok(AppState::new(Services {
        calls: tokio_util::task::TaskTracker::new(),
        limits,
        pressure,
        captures,
        telemetry,
        health: Arc::default(),
        keys,
        prices: Prices::new(db.clone(), table),
        reports: Reports::new(db.clone()),
        budgets,
        estimator: Estimator::start(ESTIMATOR_THREADS, ESTIMATE_DEADLINE),
        settings: Arc::new(settings),
        db,
        cipher,
        jwt,
        limiters,
        breakers,
        metrics,
        usage,
        accounts,
        workspaces,
        providers,
    }))
}
