//! The management API (`/api/v1`): JSON for scripts and CI, on the same services as the dashboard.
//! Errors are `{"error":{"message","type","code"}}`.

mod accounts;
mod budgets;
mod captures;
mod extract;
mod keys;
mod limits;
mod providers;
mod usage;
mod workspaces;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};

use perpetuo_core::{AppState, ServiceError};

pub use extract::{ApiAuth, ApiJson, ApiMember, ApiOwner, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(accounts::signup))
        .route("/auth/token", post(accounts::token))
        .route("/auth/password", post(accounts::change_password))
        .route("/auth/signout-all", post(accounts::sign_out_everywhere))
        .route("/workspaces", get(workspaces::list).post(workspaces::create))
        .route("/providers", get(providers::list).post(providers::create))
        .route("/providers/{id}", get(providers::get).patch(providers::update).delete(providers::delete))
        .route("/providers/{id}/test", post(providers::test))
        .route("/invites", get(accounts::list_invites).post(accounts::create_invite))
        .route("/invites/{id}", axum::routing::delete(accounts::revoke_invite))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/keys/{id}", axum::routing::delete(keys::delete))
        .route("/keys/{id}/budget", axum::routing::put(budgets::set_key).delete(budgets::remove_key))
        .route("/keys/{id}/limits", axum::routing::put(limits::set_key).delete(limits::remove_key))
        .route("/providers/{id}/limits", axum::routing::put(limits::set_provider).delete(limits::remove_provider))
        .route("/limits", get(limits::list))
        .route("/limits/workspace", axum::routing::put(limits::set_workspace).delete(limits::remove_workspace))
        .route("/limits/new-keys", axum::routing::put(limits::set_new_keys).delete(limits::remove_new_keys))
        .route("/keys/{id}/capture", axum::routing::put(captures::set_key))
        .route("/capture", get(captures::get).put(captures::set))
        .route("/budgets", get(budgets::list))
        .route("/budgets/workspace", axum::routing::put(budgets::set_workspace).delete(budgets::remove_workspace))
        .route("/budgets/new-keys", axum::routing::put(budgets::set_new_keys).delete(budgets::remove_new_keys))
        .route("/usage", get(usage::usage))
        .route("/requests", get(usage::requests))
        .route("/requests/{id}", get(usage::request))
        .route("/prices", get(usage::list_prices).post(usage::set_price).delete(usage::delete_price))
        .fallback(|| async { ApiError(ServiceError::NotFound("route")) })
}

/// A service error rendered as the management API's JSON error.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log_if_internal();
        let status = e.status_code();
        let kind = e.kind().api_type();
        let body = serde_json::json!({ "error": { "message": e.public_message(), "type": kind, "code": e.code() } });
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(e, ServiceError::Unavailable) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ServiceError::RateLimited { retry_after } = e {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}
