//! Server functions: thin. Session -> workspace -> a service call -> the error mapped.

pub mod auth;
pub mod keys;
pub mod providers;

#[cfg(feature = "ssr")]
pub(crate) mod ctx;
