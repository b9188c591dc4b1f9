//! The management API (`/api/v1`): JSON for scripts and CI, on the same services as the dashboard.
//! Errors are `{"error":{"message","type","code"}}`.

mod auth;
mod keys;
mod providers;
pub mod usage;
mod workspaces;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use app::server::workspaces::{self as ws, WorkspaceId};
use app::server::{AppState, ServiceError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/token", post(auth::token))
        .route("/workspaces", get(workspaces::list).post(workspaces::create))
        .route("/providers", get(providers::list).post(providers::create))
        .route("/providers/{id}", get(providers::get).patch(providers::update).delete(providers::delete))
        .route("/providers/{id}/test", post(providers::test))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/keys/{id}", axum::routing::delete(keys::delete))
        .route("/usage", get(usage::usage))
        .route("/requests", get(usage::requests))
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
        let kind = match &e {
            ServiceError::Invalid(_) => "invalid_request_error",
            ServiceError::Unauthenticated | ServiceError::InvalidCredentials => "authentication_error",
            ServiceError::NotFound(_) => "not_found_error",
            ServiceError::Conflict(_) => "conflict_error",
            ServiceError::RateLimited { .. } => "rate_limit_exceeded",
            ServiceError::Upstream(_) => "upstream_error",
            ServiceError::Database(_) | ServiceError::Crypto(_) | ServiceError::Internal(_) => "api_error",
        };
        let body = serde_json::json!({ "error": { "message": e.public_message(), "type": kind, "code": e.code() } });
        let mut response = (status, axum::Json(body)).into_response();
        if let ServiceError::RateLimited { retry_after } = e {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// A JSON body whose rejection is an API error (never axum's plain-text one).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let message = match rejection {
                    axum::extract::rejection::JsonRejection::MissingJsonContentType(_) => {
                        "Send the body as JSON with `Content-Type: application/json`.".to_owned()
                    }
                    axum::extract::rejection::JsonRejection::JsonSyntaxError(_) => {
                        "The body is not valid JSON.".to_owned()
                    }
                    axum::extract::rejection::JsonRejection::JsonDataError(e) => {
                        format!("The JSON does not fit: {}", e.body_text())
                    }
                    other => other.body_text(),
                };
                Err(ApiError(ServiceError::Invalid(message)))
            }
        }
    }
}

/// A query string whose rejection is an API error.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError(ServiceError::Invalid(format!("The query string does not fit: {}", rejection.body_text())))
            })
    }
}

/// A caller proven by a bearer JWT and a live membership of the token's workspace.
pub struct ApiAuth {
    pub user_id: String,
    pub workspace: WorkspaceId,
}

impl FromRequestParts<AppState> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(ApiError(ServiceError::Unauthenticated))?;
        let claims = state.jwt.verify(token)?;
        // A token for a workspace the user has since left is no longer good.
        let workspace = ws::authorize(&state.db, &claims.sub, &claims.ws).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::Unauthenticated,
            other => other,
        })?;
        Ok(Self { user_id: claims.sub, workspace })
    }
}

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}
