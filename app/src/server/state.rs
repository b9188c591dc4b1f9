//! The one application state, shared by the dashboard, the management API and the gateway.

use std::sync::Arc;

use leptos::config::LeptosOptions;

use super::auth::JwtKeys;
use super::breaker::Breakers;
use super::cache::Caches;
use super::config::Settings;
use super::crypto::Cipher;
use super::db::Db;
use super::error::ServiceError;
use super::metrics::Metrics;
use super::prices::PriceTable;
use super::ratelimit::{LimitClock, Limiters};
use super::usage::UsageSink;

/// Provider id -> when its model list was fetched, and the list.
pub type ModelLists = dashmap::DashMap<String, (std::time::Instant, Arc<Vec<String>>)>;

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
    pub db: Db,
    pub cipher: Arc<Cipher>,
    pub jwt: Arc<JwtKeys>,
    pub limiters: Arc<Limiters>,
    pub settings: Arc<Settings>,
    pub caches: Arc<Caches>,
    /// The one pooled client for upstream providers.
    pub http: reqwest::Client,
    pub breakers: Arc<Breakers>,
    pub prices: Arc<PriceTable>,
    pub metrics: Arc<Metrics>,
    /// The queue to the usage writer.
    pub usage: UsageSink,
    /// Models each provider listed, for `GET /v1/models`: provider id -> (when, models).
    pub model_lists: Arc<ModelLists>,
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
        let limiters = Arc::new(Limiters::new(&settings, clock));
        let http = super::upstream::build_client(&settings.upstream)?;
        let caches = Arc::new(Caches::new(std::time::Duration::from_secs(60)));
        let breakers =
            Arc::new(Breakers::new(settings.upstream.breaker_failure_threshold, settings.upstream.breaker_cooldown));
        let prices = Arc::new(match &settings.prices_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ServiceError::Internal(format!("PRICES_FILE {} cannot be read: {e}", path.display()))
                })?;
                PriceTable::parse(&text)
                    .map_err(|e| ServiceError::Internal(format!("PRICES_FILE {}: {e}", path.display())))?
            }
            None => PriceTable::built_in(),
        });
        Ok(Self(Arc::new(Services {
            leptos_options,
            db,
            cipher,
            jwt,
            limiters,
            settings: Arc::new(settings),
            caches,
            http,
            breakers,
            prices,
            metrics: Arc::new(Metrics::default()),
            usage,
            model_lists: Arc::new(dashmap::DashMap::new()),
        })))
    }
}
