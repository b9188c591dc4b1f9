//! Usage and cost: each gateway request's record and its queue to the database (`writer`), what
//! the usage tab and API read (`reports`, `export`), and the prices that turn tokens into money
//! (`prices`).

pub mod export;
pub mod prices;
pub mod reports;
pub mod writer;

pub use prices::{Prices, Tokens};
pub use reports::{Labels, Reports};
pub use writer::{UsageRecord, UsageSink};
