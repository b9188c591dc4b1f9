//! What a call, or one attempt of it, is charged: tokens and their cost, and whether any of it is
//! Perpetuo's estimate. Budgets and token limits settle to it; the record keeps it.

use perpetuo_core::usage::TokenCounts;

/// What a call (or a part of it: one attempt) is charged: its tokens and their cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    pub tokens: TokenCounts,
    /// `None` when no part of it has a known price.
    pub cost_nanos: Option<i64>,
    /// Whether some of it is Perpetuo's estimate rather than the provider's report.
    pub estimated: bool,
}

impl Charge {
    /// TokenCounts as the provider reported them, at their price.
    pub fn reported(tokens: TokenCounts, cost_nanos: Option<i64>) -> Self {
        Self { tokens, cost_nanos, estimated: false }
    }

    /// Two parts of one call, added (saturating); the cost is the sum of the parts with a price.
    pub fn plus(self, other: Self) -> Self {
        let cost_nanos = match (self.cost_nanos, other.cost_nanos) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        Self { tokens: self.tokens + other.tokens, cost_nanos, estimated: self.estimated || other.estimated }
    }
}
