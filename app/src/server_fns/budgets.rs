//! Budgets in the dashboard: the workspace's and each key's, set and removed by owners, read by
//! every member (the keys tab, workspace settings and the usage tab's progress bars).

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::BudgetView;

#[cfg(feature = "ssr")]
use {
    super::ctx,
    perpetuo_types::{BudgetInput, BudgetScope},
};

/// `workspace`, `key:<id>` or `new_keys`, as the forms send it.
#[cfg(feature = "ssr")]
fn scope_of(raw: &str) -> BudgetScope {
    perpetuo_core::budgets::parse_scope(raw)
}

#[cfg(feature = "ssr")]
fn field(raw: Option<String>) -> Option<String> {
    raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[server(prefix = "/fn", endpoint = "list_budgets")]
pub async fn list_budgets() -> Result<Vec<BudgetView>, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    Ok(state.budget_views(&ws).await?)
}

/// Sets a budget from a form: blank fields mean no such limit (and a calendar month).
#[server(prefix = "/fn", endpoint = "set_budget")]
pub async fn set_budget(
    scope: String,
    usd_limit: Option<String>,
    token_limit: Option<String>,
    period_days: Option<String>,
    allow_unpriced: Option<String>,
) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let usd_limit = match field(usd_limit) {
        None => None,
        Some(raw) => Some(
            raw.trim_start_matches('$')
                .parse::<f64>()
                .map_err(|_| AppError::Invalid("The dollar limit must be a number, such as 25 or 12.50.".into()))?,
        ),
    };
    let token_limit = match field(token_limit) {
        None => None,
        Some(raw) => {
            Some(raw.parse::<i64>().map_err(|_| AppError::Invalid("The token limit must be a whole number.".into()))?)
        }
    };
    let period_days = match field(period_days) {
        None => None,
        Some(raw) => Some(
            raw.parse::<u32>().map_err(|_| AppError::Invalid("The period must be a whole number of days.".into()))?,
        ),
    };
    let input = BudgetInput { usd_limit, token_limit, period_days, allow_unpriced: allow_unpriced.is_some() };
    Ok(state.budgets().set(&owner, &scope_of(&scope), &input).await?)
}

#[server(prefix = "/fn", endpoint = "remove_budget")]
pub async fn remove_budget(scope: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    Ok(state.budgets().remove(&owner, &scope_of(&scope)).await?)
}
