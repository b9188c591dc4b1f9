//! The service layer's one error type. Every caller (server functions, the management API, the
//! gateway) maps it exhaustively; internal causes never reach a client.

use std::time::Duration;

use perpetuo_types::FailureKind;

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
    /// The kind of failure it is: its status, code and JSON type follow (`FailureKind`).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Invalid(_) => FailureKind::Invalid,
            Self::Unauthenticated => FailureKind::Unauthenticated,
            Self::InvalidCredentials => FailureKind::InvalidCredentials,
            Self::NotFound(_) => FailureKind::NotFound,
            Self::Conflict(_) => FailureKind::Conflict,
            Self::Forbidden(_) => FailureKind::Forbidden,
            Self::RateLimited { .. } => FailureKind::RateLimited,
            Self::Upstream(_) => FailureKind::Upstream,
            Self::Unavailable => FailureKind::Unavailable,
            Self::Database(_) | Self::Crypto(_) | Self::Internal(_) => FailureKind::Internal,
        }
    }

    /// The HTTP status this error means, for every surface.
    pub fn status_code(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.kind().status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A stable machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        self.kind().code()
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
        if self.kind().is_fault() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(self).map(ToString::to_string), "request failed");
        }
    }
}

impl From<surrealdb::Error> for ServiceError {
    fn from(e: surrealdb::Error) -> Self {
        Self::Database(e)
    }
}
