//! Perpetuo's server: one axum router serving the dashboard (Leptos SSR and server functions),
//! the management API (`/api/v1`) and the OpenAI-compatible gateway (`/v1`), behind rate limiting.

pub mod api;
pub mod cli;
pub mod gateway;
pub mod ratelimit;
pub mod startup;
pub mod telemetry;
pub mod web;

pub use app::server::config::Settings;
