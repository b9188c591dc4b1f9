//! The one application state, shared by the dashboard, the management API and the gateway.

use std::sync::Arc;

use leptos::config::LeptosOptions;

use super::auth::JwtKeys;
use super::cache::Caches;
use super::config::Settings;
use super::crypto::Cipher;
use super::db::Db;
use super::error::ServiceError;
use super::ratelimit::{LimitClock, Limiters};

#[derive(Clone, Debug, axum::extract::FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: Db,
    pub cipher: Arc<Cipher>,
    pub jwt: Arc<JwtKeys>,
    pub limiters: Arc<Limiters>,
    pub settings: Arc<Settings>,
    pub caches: Arc<Caches>,
    /// The one pooled client for upstream providers.
    pub http: reqwest::Client,
}

impl AppState {
    /// Builds the state around an open database.
    pub fn new(
        leptos_options: LeptosOptions,
        db: Db,
        settings: Settings,
        clock: LimitClock,
    ) -> Result<Self, ServiceError> {
        let cipher = Arc::new(Cipher::new(&settings.encryption_key, settings.encryption_key_previous.as_ref()));
        let jwt = Arc::new(JwtKeys::new(&settings.jwt_secret)?);
        let limiters = Arc::new(Limiters::new(&settings, clock));
        let http = super::upstream::build_client(&settings.upstream)?;
        let caches = Arc::new(Caches::new(std::time::Duration::from_secs(60)));
        Ok(Self { leptos_options, db, cipher, jwt, limiters, settings: Arc::new(settings), caches, http })
    }
}
