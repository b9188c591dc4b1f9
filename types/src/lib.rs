//! Perpetuo's wire types: what crosses between the server, the browser and API clients, one
//! module per resource, with the parsers for values that have rules. Built for the server and
//! for the browser (wasm32); with `ssr`, the few that are stored derive SurrealDB's traits.

pub mod accounts;
pub mod budgets;
pub mod captures;
pub mod failure;
pub mod forms;
pub mod keys;
pub mod limits;
pub mod providers;
pub mod time;
pub mod usage;

pub use accounts::*;
pub use budgets::*;
pub use captures::*;
pub use failure::{ErrorClass, FailureKind, StepOutcome};
pub use forms::*;
pub use keys::*;
pub use limits::*;
pub use providers::*;
pub use time::*;
pub use usage::*;
