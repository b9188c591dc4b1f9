//! Perpetuo's shared crate: wire types, the dashboard (pages and components), its server
//! functions, and (with `ssr`) the service layer.

pub mod types;

#[cfg(feature = "ssr")]
pub mod server;
