//! Perpetuo's server: one axum router serving the dashboard (Leptos SSR and server functions),
//! the management API (`/api/v1`), the OpenAI-compatible gateway (`/v1`) and the operator's
//! endpoints, behind the per-IP limit.

pub mod bearer;
pub mod cli;
pub mod dashboard;
pub mod gateway;
pub mod ip_limit;
pub mod ops;
pub mod rest;
pub mod server;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod telemetry;

pub use perpetuo_core::platform::config::Settings;
