//! Server functions: thin. Session -> workspace -> a service call -> the error mapped.

pub mod auth;
pub mod budgets;
pub mod captures;
pub mod keys;
pub mod limits;
pub mod providers;
pub mod usage;

#[cfg(feature = "ssr")]
pub(crate) mod ctx;
