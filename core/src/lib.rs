//! Perpetuo's core: the services and the store, without the UI or the HTTP routes. One folder per
//! concern, each standing only on the floors below it (`scripts/floors.py` checks it):
//! `platform` (settings, database, crypto, caches, limiters, the metrics registry) at the ground;
//! `workspaces` (tenancy: the proven workspace id and the capabilities), `usage` (tokens, prices, records, the ledger), `protocols`
//! (the client protocols and the translation seam), `providers` (dialects, catalog, client), then
//! the services (`keys`, `budgets`, `limits`, `accounts`), and the [`AppState`] that holds them all at the top.
//! The dashboard's server functions, the management API and the gateway all call these services.

pub mod accounts;
pub mod budgets;
pub mod captures;
pub mod keys;
pub mod limits;
pub mod platform;
pub mod protocols;
pub mod providers;
pub mod state;
pub mod usage;
pub mod workspaces;

pub use platform::error::ServiceError;
pub use state::AppState;
