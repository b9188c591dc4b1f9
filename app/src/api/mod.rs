//! Server functions: thin. Session -> workspace -> a service call -> the error mapped.

pub mod auth;

#[cfg(feature = "ssr")]
pub(crate) mod ctx;
