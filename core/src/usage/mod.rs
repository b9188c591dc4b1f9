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

pub use perpetuo_types::TokenCounts;
pub use prices::Prices;
pub use record::UsageRecord;
pub use reports::{Labels, Reports};
pub use writer::UsageSink;

/// A stored row with the five token columns (a ledger batch's summary, a rollup): the one place
/// those columns meet `TokenCounts`.
pub(crate) trait TokenColumns {
    /// The columns, in `TokenCounts`' order.
    fn columns(&mut self) -> [&mut i64; 5];

    /// Adds a record's tokens to the columns (saturating).
    fn add_tokens(&mut self, t: &TokenCounts) {
        let counts = [t.prompt, t.completion, t.cache_read, t.cache_write, t.reasoning];
        for (column, n) in self.columns().into_iter().zip(counts) {
            *column = column.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
