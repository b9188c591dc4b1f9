//! `GET /api/v1/usage`, `GET /api/v1/requests` and the price overrides (`/api/v1/prices`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use perpetuo_core::platform::db::now_ms;
use perpetuo_core::usage::reports::MAX_PAGE;
use perpetuo_core::{AppState, ServiceError};
use perpetuo_types::UsageQuery;
use perpetuo_types::{
    GroupBy, Period, PriceOverride, RequestFilter, RequestPage, UsageGroup, UsageSummary, format_day,
};

use super::{ApiAuth, ApiError, ApiJson, ApiOwner, ApiQuery};

#[derive(Deserialize)]
pub struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum UsageAnswer {
    Totals {
        from: String,
        to: String,
        #[serde(flatten)]
        summary: UsageSummary,
        cost_usd: Option<f64>,
    },
    Groups {
        from: String,
        to: String,
        group_by: &'static str,
        data: Vec<UsageGroup>,
    },
}

pub async fn usage(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<axum::Json<UsageAnswer>, ApiError> {
    let period =
        Period::parse(None, params.from.as_deref(), params.to.as_deref(), now_ms()).map_err(ServiceError::Invalid)?;
    let (from, to) = (format_day(period.from_day), format_day(period.to_day));
    match params.group_by.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => {
            let summary = state.reports().summary(&auth.workspace, &period).await?;
            let cost_usd = summary.cost_nanos.map(|n| n as f64 / 1e9);
            Ok(axum::Json(UsageAnswer::Totals { from, to, summary, cost_usd }))
        }
        Some(raw) => {
            let by = GroupBy::parse(raw).map_err(ServiceError::Invalid)?;
            let reports = state.reports();
            let labels = reports.labels(&auth.workspace).await?;
            let data = reports.grouped(&auth.workspace, &period, by, &labels).await?;
            Ok(axum::Json(UsageAnswer::Groups { from, to, group_by: by.as_str(), data }))
        }
    }
}

#[derive(Deserialize, Default)]
pub struct RequestParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub key: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub route: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn filter(params: &RequestParams) -> Result<RequestFilter, ServiceError> {
    let query = UsageQuery {
        from: params.from.clone(),
        to: params.to.clone(),
        key: params.key.clone(),
        provider: params.provider.clone(),
        model: params.model.clone(),
        route: params.route.clone(),
        status: params.status.clone(),
        ..UsageQuery::default()
    };
    query.filter(now_ms()).map_err(ServiceError::Invalid)
}

pub async fn requests(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(params): ApiQuery<RequestParams>,
) -> Result<axum::Json<RequestPage>, ApiError> {
    let filter = filter(&params)?;
    let limit = params.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ServiceError::Invalid(format!("`limit` must be between 1 and {MAX_PAGE}.")).into());
    }
    let reports = state.reports();
    let labels = reports.labels(&auth.workspace).await?;
    let page = reports.requests(&auth.workspace, &filter, &labels, limit, params.cursor.as_deref()).await?;
    Ok(axum::Json(page))
}

/// One call's record, with its steps.
pub async fn request(
    State(state): State<AppState>,
    super::ApiMember(who): super::ApiMember,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<perpetuo_types::RequestStory>, ApiError> {
    Ok(axum::Json(state.request_story(&who, &id).await?))
}

#[derive(Serialize)]
pub struct PriceList {
    as_of: String,
    data: Vec<PriceOverride>,
}

pub async fn list_prices(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<PriceList>, ApiError> {
    Ok(axum::Json(PriceList {
        as_of: state.prices().as_of().to_owned(),
        data: state.prices().list(&auth.workspace).await?,
    }))
}

#[derive(Deserialize)]
pub struct NewPrice {
    kind: String,
    model: String,
    input_per_million: f64,
    output_per_million: f64,
}

pub async fn set_price(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(body): ApiJson<NewPrice>,
) -> Result<axum::Json<PriceOverride>, ApiError> {
    let set =
        state.prices().set(&owner, &body.kind, &body.model, body.input_per_million, body.output_per_million).await?;
    Ok(axum::Json(set))
}

#[derive(Deserialize)]
pub struct PriceKey {
    kind: String,
    model: String,
}

pub async fn delete_price(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiQuery(key): ApiQuery<PriceKey>,
) -> Result<Response, ApiError> {
    state.prices().delete(&owner, &key.kind, &key.model).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
