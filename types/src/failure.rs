//! What kind of failure an error is, for every surface at once: the service layer's errors, the
//! dashboard's and the management API's all name one of these, and its HTTP status, stable code
//! and JSON `type` are written here only.

/// A failure's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The input broke a rule (or never parsed).
    Invalid,
    /// No valid session or token.
    Unauthenticated,
    /// Email and password do not match.
    InvalidCredentials,
    NotFound,
    Conflict,
    /// Allowed to others (an owner), not to this caller.
    Forbidden,
    RateLimited,
    /// A provider could not be reached or refused.
    Upstream,
    /// The database did not answer in time.
    Unavailable,
    /// Our own fault; details only in the log.
    Internal,
}

impl FailureKind {
    /// The HTTP status it answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unauthenticated | Self::InvalidCredentials => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Upstream => 502,
            Self::Unavailable => 503,
        }
    }

    /// The stable machine-readable `code` of JSON errors.
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limit_exceeded",
            Self::Upstream => "upstream_error",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// The management API's error `type`.
    pub fn api_type(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_request_error",
            Self::Unauthenticated | Self::InvalidCredentials => "authentication_error",
            Self::NotFound => "not_found_error",
            Self::Conflict => "conflict_error",
            Self::Forbidden => "permission_error",
            Self::RateLimited => "rate_limit_exceeded",
            Self::Upstream => "upstream_error",
            Self::Unavailable => "unavailable_error",
            Self::Internal => "api_error",
        }
    }

    /// Whether it is a server-side fault (logged once, shown opaque).
    pub fn is_fault(self) -> bool {
        self == Self::Internal
    }
}
