//! The one application state, shared by the dashboard, the management API and the gateway: the
//! services (each owning its handles and cache slots) and the process-wide parts they share.

use std::sync::Arc;

use leptos::config::LeptosOptions;

use super::config::Settings;
use super::crypto::Cipher;
use super::db::Db;
use super::error::ServiceError;
use super::live::Follower;
use super::metrics::Metrics;
use super::ratelimit::{LimitClock, Limiters};
use crate::server::accounts::Accounts;
use crate::server::accounts::jwt::JwtKeys;
use crate::server::accounts::workspaces::Workspaces;
use crate::server::budgets::Budgets;
use crate::server::keys::ApiKeys;
use crate::server::providers::Providers;
use crate::server::providers::breaker::Breakers;
use crate::server::providers::client::{Upstream, build_client};
use crate::server::usage::estimate::Estimator;
use crate::server::usage::prices::PriceTable;
use crate::server::usage::{Prices, Reports, UsageSink};

/// Threads that count large prompts (at the lowest priority), and how long a call waits for one.
const ESTIMATOR_THREADS: usize = 1;
const ESTIMATE_DEADLINE: std::time::Duration = std::time::Duration::from_millis(250);

/// The state every handler gets: one `Arc`, so handing it to a request costs one atomic
/// increment whatever it holds.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// What the state holds.
#[derive(Debug)]
pub struct Services {
    pub leptos_options: LeptosOptions,
    pub settings: Arc<Settings>,
    /// The database handle, for start-up, readiness and background work; requests go through
    /// the services.
    pub db: Db,
    pub cipher: Arc<Cipher>,
    pub jwt: Arc<JwtKeys>,
    pub limiters: Arc<Limiters>,
    pub breakers: Arc<Breakers>,
    pub metrics: Arc<Metrics>,
    /// The queue to the usage writer.
    pub usage: UsageSink,
    accounts: Accounts,
    workspaces: Workspaces,
    keys: ApiKeys,
    providers: Providers,
    prices: Prices,
    reports: Reports,
    budgets: Budgets,
    estimator: Estimator,
}

impl Services {
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn workspaces(&self) -> &Workspaces {
        &self.workspaces
    }

    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Token estimates of prompts (large ones off the serving threads).
    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    /// The workspace's budgets with their current periods, keys' budgets named after their keys.
    pub async fn budget_views(
        &self,
        ws: &crate::server::accounts::workspaces::WorkspaceId,
    ) -> Result<Vec<crate::types::BudgetView>, ServiceError> {
        let names = self.keys.names(ws).await?.into_iter().collect();
        self.budgets.list(ws, &names).await
    }

    /// The caches that follow database changes (see `live`).
    pub fn followers(&self) -> Vec<Arc<dyn Follower>> {
        vec![self.keys.follower(), self.providers.follower(), self.budgets.follower()]
    }
}

impl AppState {
    /// Builds the state around an open database.
    pub fn new(
        leptos_options: LeptosOptions,
        db: Db,
        settings: Settings,
        clock: LimitClock,
        usage: UsageSink,
    ) -> Result<Self, ServiceError> {
        let cipher = Arc::new(Cipher::new(&settings.encryption_key, settings.encryption_key_previous.as_ref()));
        let jwt = Arc::new(JwtKeys::new(&settings.jwt_secret)?);
        let limiters = Limiters::new(&settings, clock.clone());
        let limiters = Arc::new(if settings.shared_limits { limiters.shared(db.clone()) } else { limiters });
        let metrics = Arc::new(Metrics::default());
        let upstream = &settings.upstream;
        let breakers = Arc::new(Breakers::new(upstream.breaker_failure_threshold, upstream.breaker_cooldown, clock));
        let table = match &settings.prices_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ServiceError::Internal(format!("PRICES_FILE {} cannot be read: {e}", path.display()))
                })?;
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
            settings.signup,
        );
        let providers = Providers::new(
            db.clone(),
            Arc::clone(&cipher),
            build_client(upstream)?,
            Upstream::new(upstream)?,
            upstream.allow_private,
        )
        .with_quota(settings.quotas.providers_per_workspace);
        Ok(Self(Arc::new(Services {
            leptos_options,
            keys: ApiKeys::new(db.clone())
                .with_quota(settings.quotas.keys_per_workspace)
                .with_default_rate_limit(settings.rate_limit_key_per_min.get()),
            prices: Prices::new(db.clone(), table),
            reports: Reports::new(db.clone()),
            budgets: Budgets::new(db.clone()),
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
        })))
    }
}
