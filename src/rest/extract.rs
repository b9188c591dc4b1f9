//! What the management API's handlers take from a request: a JSON body and a query string whose
//! rejections are the API's own JSON errors, and the caller proven by a bearer JWT.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use perpetuo_core::workspaces::{Membership, OwnerScope, WorkspaceId};
use perpetuo_core::{AppState, ServiceError};

use super::ApiError;

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
        let token = crate::bearer::bearer(&parts.headers).ok_or(ApiError(ServiceError::Unauthenticated))?;
        let claims = state.jwt.verify(token)?;
        // A token issued before a sign-out everywhere (or a password change) is void.
        if state.accounts().generation(&claims.sub).await? != claims.generation {
            return Err(ApiError(ServiceError::Unauthenticated));
        }
        // A token for a workspace the user has since left is no longer good.
        let workspace = state.workspaces().authorize(&claims.sub, &claims.ws).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::Unauthenticated,
            other => other,
        })?;
        Ok(Self { user_id: claims.sub, workspace })
    }
}

/// A caller proven to be a member of the token's workspace, with their role.
pub struct ApiMember(pub Membership);

impl FromRequestParts<AppState> for ApiMember {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = ApiAuth::from_request_parts(parts, state).await?;
        Ok(Self(state.workspaces().membership(&auth.user_id, &auth.workspace).await?))
    }
}

/// A caller proven to own the token's workspace (a member gets `403`): what owner-only routes
/// take, so a route cannot reach an owner-only service without the check.
pub struct ApiOwner(pub OwnerScope);

impl FromRequestParts<AppState> for ApiOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = ApiAuth::from_request_parts(parts, state).await?;
        Ok(Self(state.workspaces().owner(&auth.user_id, &auth.workspace).await?))
    }
}
