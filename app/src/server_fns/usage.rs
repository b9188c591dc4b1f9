//! The usage tab: usage, cost, the request log and price overrides.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
pub use perpetuo_types::UsageQuery;
use perpetuo_types::{
    GroupBy, Period, PriceOverride, RequestPage, SeriesPoint, StatusFilter, UsageGroup, UsageSummary,
};

#[cfg(feature = "ssr")]
use {super::ctx, perpetuo_core::platform::db::now_ms, perpetuo_types::given};

/// Something to pick in a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Everything the usage tab shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageData {
    pub period: Period,
    pub by: GroupBy,
    pub status: StatusFilter,
    pub summary: UsageSummary,
    pub groups: Vec<UsageGroup>,
    pub series: Vec<SeriesPoint>,
    pub log: RequestPage,
    pub keys: Vec<Choice>,
    pub providers: Vec<Choice>,
    pub models: Vec<String>,
    pub overrides: Vec<PriceOverride>,
    pub prices_as_of: String,
}

/// Everything the usage tab shows for the query. JSON in: with every filter unset the query has
/// no fields, and a form-encoded body would then be empty and unreadable.
#[server(prefix = "/fn", endpoint = "usage_report", input = leptos::server_fn::codec::Json)]
pub async fn usage_report(q: UsageQuery) -> Result<UsageData, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    let filter = q.filter(now_ms()).map_err(AppError::Invalid)?;
    let by = match given(q.by.as_deref()) {
        Some(by) => GroupBy::parse(&by).map_err(AppError::Invalid)?,
        None => GroupBy::Model,
    };
    // One snapshot for the whole page: a call committed while it is read shows in every figure or
    // in none (the count above the log once said 1 over an empty log and zero totals).
    let reports = state.reports().snapshot().await;
    let labels = reports.labels(&ws).await?;
    let summary = reports.summary(&ws, &filter.period).await?;
    let groups = reports.grouped(&ws, &filter.period, by, &labels).await?;
    let series = reports.series(&ws, &filter.period, by, &labels).await?;
    let models =
        reports.grouped(&ws, &filter.period, GroupBy::Model, &labels).await?.into_iter().map(|g| g.key).collect();
    let log = reports.requests(&ws, &filter, &labels, 50, given(q.cursor.as_deref()).as_deref()).await?;
    let overrides = state.prices().list(&ws).await?;
    let choices = |pairs: &[(String, String)]| {
        pairs.iter().map(|(value, label)| Choice { value: value.clone(), label: label.clone() }).collect()
    };
    Ok(UsageData {
        period: filter.period,
        by,
        status: filter.status,
        summary,
        groups,
        series,
        log,
        keys: choices(&labels.keys),
        providers: choices(&labels.providers),
        models,
        overrides,
        prices_as_of: state.prices().as_of().to_owned(),
    })
}

#[server(prefix = "/fn", endpoint = "set_price")]
pub async fn set_price(
    kind: String,
    model: String,
    input_per_million: String,
    output_per_million: String,
) -> Result<PriceOverride, AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let number = |raw: &str| {
        raw.trim()
            .parse::<f64>()
            .map_err(|_| AppError::Invalid("Prices are numbers of dollars per million tokens, such as 0.15.".into()))
    };
    let (input, output) = (number(&input_per_million)?, number(&output_per_million)?);
    Ok(state.prices().set(&owner, &kind, &model, input, output).await?)
}

#[server(prefix = "/fn", endpoint = "delete_price")]
pub async fn delete_price(kind: String, model: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    Ok(state.prices().delete(&owner, &kind, &model).await?)
}

/// One call's record with its steps, for its page.
#[server(prefix = "/fn", endpoint = "request_story")]
pub async fn request_story(id: String) -> Result<perpetuo_types::RequestStory, AppError> {
    let (state, who) = ctx::member_scope().await?;
    Ok(state.request_story(&who, &id).await?)
}
