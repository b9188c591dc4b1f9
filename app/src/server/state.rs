//! The one application state, shared by the dashboard, the management API and the gateway.

use std::sync::Arc;

use leptos::config::LeptosOptions;

use super::auth::JwtKeys;
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
        Ok(Self { leptos_options, db, cipher, jwt, limiters, settings: Arc::new(settings) })
    }
}
