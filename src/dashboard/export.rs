//! `GET /usage/export.csv`: the request log with the usage tab's filters, as CSV, for the
//! signed-in workspace (the reports service writes the CSV).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{StatusCode, header};
use tower_sessions::Session;

use perpetuo_core::AppState;
use perpetuo_core::platform::db::now_ms;
use perpetuo_types::UsageQuery;

pub async fn usage_csv(State(state): State<AppState>, session: Session, Query(q): Query<UsageQuery>) -> Response {
    let ws = match state.accounts().session_workspace(&session, None).await {
        Ok(Some((_, ws))) => ws,
        Ok(None) => return Redirect::to("/signin").into_response(),
        Err(e) => {
            e.log_if_internal();
            return (e.status_code(), e.public_message()).into_response();
        }
    };
    let filter = match q.filter(now_ms()) {
        Ok(filter) => filter,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    match state.reports().csv(&ws, &filter).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"perpetuo-requests.csv\""),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            e.log_if_internal();
            (e.status_code(), e.public_message()).into_response()
        }
    }
}
