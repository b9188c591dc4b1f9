//! Usage and cost: each gateway request's record (`record`), kept on local disk before its answer
//! completes (`spool`) and tailed into the database in bulk (`writer`, `ledger`, `rollups`); what
//! the usage tab and API read (`reports`, `export`); and the prices that turn tokens into money
//! (`prices`).

pub mod estimate;
pub mod export;
pub mod ledger;
pub mod prices;
pub mod record;
pub mod reports;
pub mod rollups;
pub mod spool;
pub mod writer;

pub use prices::{Prices, Tokens};
pub use record::UsageRecord;
pub use reports::{Labels, Reports};
pub use writer::UsageSink;
