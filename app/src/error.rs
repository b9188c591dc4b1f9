//! The error every server function returns: readable in the dashboard, serialisable to the
//! browser, and built from the service error by one exhaustive mapping.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("Please sign in to continue.")]
    Unauthenticated,
    #[error("Invalid email or password.")]
    InvalidCredentials,
    #[error("That {0} does not exist.")]
    NotFound(String),
    /// Allowed to others (an owner), not to this person.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Too many attempts. Try again in {0} seconds.")]
    RateLimited(u64),
    #[error("{0}")]
    Upstream(String),
    #[error("The database is unavailable right now. Please try again shortly.")]
    Unavailable,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request never reached our code (bad form fields, network failure).
    #[error("The request could not be completed: {0}")]
    Request(String),
}

impl AppError {
    /// The kind of failure it is (its HTTP status follows, written once in `FailureKind`).
    pub fn kind(&self) -> perpetuo_types::FailureKind {
        use perpetuo_types::FailureKind as K;
        match self {
            Self::Invalid(_) | Self::Request(_) => K::Invalid,
            Self::Unauthenticated => K::Unauthenticated,
            Self::InvalidCredentials => K::InvalidCredentials,
            Self::NotFound(_) => K::NotFound,
            Self::Forbidden(_) => K::Forbidden,
            Self::Conflict(_) => K::Conflict,
            Self::RateLimited(_) => K::RateLimited,
            Self::Upstream(_) => K::Upstream,
            Self::Unavailable => K::Unavailable,
            Self::Internal => K::Internal,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // Framework errors (missing fields, network) carry no secrets, but keep them short.
        let message = match value {
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::Deserialization(_) => {
                "some fields are missing or malformed".to_owned()
            }
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                "the server could not be reached".to_owned()
            }
            other => other.to_string(),
        };
        Self::Request(message)
    }
}

#[cfg(feature = "ssr")]
impl From<perpetuo_core::ServiceError> for AppError {
    fn from(e: perpetuo_core::ServiceError) -> Self {
        use perpetuo_core::ServiceError as S;
        e.log_if_internal();
        match e {
            S::Invalid(m) => Self::Invalid(m),
            S::Conflict(m) => Self::Conflict(m),
            S::Forbidden(m) => Self::Forbidden(m),
            S::Unauthenticated => Self::Unauthenticated,
            S::InvalidCredentials => Self::InvalidCredentials,
            S::NotFound(what) => Self::NotFound(what.to_owned()),
            S::RateLimited { retry_after } => Self::RateLimited(retry_after.as_secs().max(1)),
            S::Upstream(m) => Self::Upstream(m),
            S::Unavailable => Self::Unavailable,
            S::Database(_) | S::Crypto(_) | S::Internal(_) => Self::Internal,
        }
    }
}
