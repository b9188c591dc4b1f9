//! Budgets on the wire: what an owner sets for a workspace or an API key, and where the current
//! period stands. Money crosses the wire in dollars; it is stored in billionths of a dollar.

use serde::{Deserialize, Serialize};

/// What a budget applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "key_id", rename_all = "snake_case")]
pub enum BudgetScope {
    /// Every call of the workspace, whatever its key.
    Workspace,
    /// The calls made with one API key (its id).
    Key(String),
    /// Not applied to calls: what every API key created from now on gets as its own budget
    /// (members' keys included), set by an owner.
    NewKeys,
}

/// A budget as the owner sets it. At least one of the two limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetInput {
    /// The most a period may cost, in US dollars.
    #[serde(default)]
    pub usd_limit: Option<f64>,
    /// The most tokens (input and output) a period may use.
    #[serde(default)]
    pub token_limit: Option<i64>,
    /// A period of this many days, counted from when the budget was first set; a calendar month
    /// (UTC) when absent.
    #[serde(default)]
    pub period_days: Option<u32>,
    /// Whether calls to models with no known price may go on (they count tokens, not dollars).
    #[serde(default)]
    pub allow_unpriced: bool,
}

/// A budget with its current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    pub scope: BudgetScope,
    /// The key's name, for a key's budget.
    pub key_name: Option<String>,
    pub usd_limit: Option<f64>,
    pub token_limit: Option<i64>,
    pub period_days: Option<u32>,
    pub allow_unpriced: bool,
    /// The current period, Unix milliseconds: `[start, end)`.
    pub period_start: i64,
    pub period_end: i64,
    /// Settled calls of the period.
    pub spent_usd: f64,
    /// Calls in flight: their worst case, until they settle.
    pub reserved_usd: f64,
    pub spent_tokens: i64,
    pub reserved_tokens: i64,
    pub calls: i64,
}

impl BudgetView {
    /// Dollars left in the period (none without a dollar limit).
    pub fn left_usd(&self) -> Option<f64> {
        self.usd_limit.map(|l| (l - self.spent_usd - self.reserved_usd).max(0.0))
    }

    /// Tokens left in the period (none without a token limit).
    pub fn left_tokens(&self) -> Option<i64> {
        self.token_limit.map(|l| (l - self.spent_tokens - self.reserved_tokens).max(0))
    }

    /// Spent and reserved as percentages of the tightest limit, for a progress bar.
    pub fn bar(&self) -> (f64, f64) {
        let pct = |part: f64, whole: f64| if whole > 0.0 { (part / whole * 100.0).clamp(0.0, 100.0) } else { 0.0 };
        match (self.usd_limit, self.token_limit) {
            (Some(l), _) => (pct(self.spent_usd, l), pct(self.reserved_usd, l)),
            (None, Some(t)) => (pct(self.spent_tokens as f64, t as f64), pct(self.reserved_tokens as f64, t as f64)),
            (None, None) => (0.0, 0.0),
        }
    }
}
