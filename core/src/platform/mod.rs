//! What every service stands on: settings, the database and its migrations, sealing and secrets,
//! the error type, the one cache mechanism and its live invalidation, limiters, the metrics
//! registry. Nothing here knows a service.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod live;
pub mod metrics;
pub mod rate;
pub mod secret;
pub mod telemetry;
