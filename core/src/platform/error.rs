//! The service layer's one error type. Every caller (server functions, the management API, the
//! gateway) maps it exhaustively; internal causes never reach a client.

use std::time::Duration;

/// What went wrong in a service call. Messages of the client-facing variants are safe to show;
/// the `Database`/`Internal`/`Crypto` causes are for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input broke a rule; the message says which, in plain words.
    #[error("{0}")]
    Invalid(String),
    /// No valid session or token.
    #[error("sign in to continue")]
    Unauthenticated,
    /// Email and password do not match (same answer whether or not the email exists).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The record does not exist in the caller's workspace (another workspace's id looks the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The record would clash with an existing one.
    #[error("{0}")]
    Conflict(String),
    /// Signed in, but not allowed to do this (a member where an owner must act, sign-up closed,
    /// a quota reached); the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; try again after the duration.
    #[error("too many attempts; try again in {} seconds", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// An upstream provider could not be reached or refused; the message is safe to show.
    #[error("{0}")]
    Upstream(String),
    /// The database did not answer in time (unreachable, or reconnecting): try again shortly.
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    #[error("database error")]
    Database(#[source] surrealdb::Error),
    #[error("stored secret could not be opened")]
    Crypto(#[from] super::crypto::CryptoError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The HTTP status this error means, for every surface.
    pub fn status_code(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::Invalid(_) => S::BAD_REQUEST,
            Self::Unauthenticated | Self::InvalidCredentials => S::UNAUTHORIZED,
            Self::NotFound(_) => S::NOT_FOUND,
            Self::Conflict(_) => S::CONFLICT,
            Self::Forbidden(_) => S::FORBIDDEN,
            Self::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            Self::Upstream(_) => S::BAD_GATEWAY,
            Self::Unavailable => S::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Crypto(_) | Self::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limit_exceeded",
            Self::Upstream(_) => "upstream_error",
            Self::Unavailable => "unavailable",
            Self::Database(_) | Self::Crypto(_) | Self::Internal(_) => "internal_error",
        }
    }

    /// The message a client may see: opaque for server faults.
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Crypto(_) | Self::Internal(_) => {
                "Something went wrong on our side. Try again; if it persists, check the server log.".to_owned()
            }
            Self::Invalid(_)
            | Self::Forbidden(_)
            | Self::Unauthenticated
            | Self::InvalidCredentials
            | Self::NotFound(_)
            | Self::Conflict(_)
            | Self::RateLimited { .. }
            | Self::Upstream(_)
            | Self::Unavailable => self.to_string(),
        }
    }

    /// Logs server faults once, at the edge that turns them into a response.
    pub fn log_if_internal(&self) {
        if self.status_code().is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(self).map(ToString::to_string), "request failed");
        }
    }
}

impl From<surrealdb::Error> for ServiceError {
    fn from(e: surrealdb::Error) -> Self {
        Self::Database(e)
    }
}
