//! The service layer and the store: everything that runs only on the server. Server functions,
//! the management API and the gateway all call these same modules.

pub mod accounts;
pub mod api_keys;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod metrics;
pub mod password;
pub mod prices;
pub mod providers;
pub mod ratelimit;
pub mod reports;
pub mod secret;
pub mod sessions;
pub mod state;
pub mod tokens;
pub mod upstream;
pub mod usage;
pub mod workspaces;

pub use error::ServiceError;
pub use state::AppState;
