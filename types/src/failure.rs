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

/// Why a call, or one attempt of it, did not end in an answer: the class a usage record keeps
/// (`error_class`), the `class` label of the upstream error metric, a trace's `error.type` and
/// a step of the call's story. Its text is stable: records, exports and dashboards keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    // What a call ended with.
    /// The API key was missing, unknown, revoked or expired.
    InvalidApiKey,
    /// The key's or the address's request rate limit.
    RateLimited,
    /// A budget had no room for the call's worst case.
    BudgetExceeded,
    /// A token limit of the workspace or the key.
    TokenLimited,
    /// An in-flight limit of the workspace or the key.
    ConcurrencyLimited,
    /// A provider's own limits (set in Perpetuo, or said by the provider) had no room.
    ProviderLimited,
    /// The only providers left said they are out of their own rate limit until a reset.
    ProviderResting,
    BodyTooLarge,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    /// Every candidate failed; the story says how.
    AllProvidersFailed,
    /// Every candidate's breaker was open.
    ProvidersUnavailable,
    UsageLedgerFull,
    UsageLedgerUnavailable,
    /// The call's deadline passed while a provider worked on it.
    Timeout,
    /// The provider said it was overloaded (529).
    UpstreamOverloaded,
    /// The client left before the answer was complete.
    ClientDisconnected,
    /// The provider judged the request wrong (a 4xx passed back).
    UpstreamClientError,
    Internal,
    // What one attempt ended with.
    /// The provider refused the request as the client's mistake.
    ClientError,
    /// The provider refused the stored key.
    ProviderKeyRejected,
    Upstream429,
    Upstream5xx,
    /// No connection to the provider.
    Connect,
    /// A cloud's token exchange failed.
    TokenExchange,
    /// A request could not be signed.
    Signing,
    AnswerTooLarge,
    /// The answer's body broke off.
    BodyCut,
    BadUpstreamBody,
    /// The stream's first event, or a later one, was an error.
    UpstreamStreamError,
    /// The stream ended, or its connection broke, before it was complete.
    StreamCut,
    EventTooLarge,
    /// A stream outlived the gateway's deadline.
    Deadline,
    /// The provider stopped sending in the middle of a stream.
    IdleTimeout,
}

impl ErrorClass {
    /// Every class, in the order above.
    pub const ALL: [Self; 36] = [
        Self::InvalidApiKey,
        Self::RateLimited,
        Self::BudgetExceeded,
        Self::TokenLimited,
        Self::ConcurrencyLimited,
        Self::ProviderLimited,
        Self::ProviderResting,
        Self::BodyTooLarge,
        Self::InvalidRequest,
        Self::ModelNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::AllProvidersFailed,
        Self::ProvidersUnavailable,
        Self::UsageLedgerFull,
        Self::UsageLedgerUnavailable,
        Self::Timeout,
        Self::UpstreamOverloaded,
        Self::ClientDisconnected,
        Self::UpstreamClientError,
        Self::Internal,
        Self::ClientError,
        Self::ProviderKeyRejected,
        Self::Upstream429,
        Self::Upstream5xx,
        Self::Connect,
        Self::TokenExchange,
        Self::Signing,
        Self::AnswerTooLarge,
        Self::BodyCut,
        Self::BadUpstreamBody,
        Self::UpstreamStreamError,
        Self::StreamCut,
        Self::EventTooLarge,
        Self::Deadline,
        Self::IdleTimeout,
    ];

    /// The stable text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidApiKey => "invalid_api_key",
            Self::RateLimited => "rate_limited",
            Self::BudgetExceeded => "budget_exceeded",
            Self::TokenLimited => "token_limited",
            Self::ConcurrencyLimited => "concurrency_limited",
            Self::ProviderLimited => "provider_limited",
            Self::ProviderResting => "provider_resting",
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidRequest => "invalid_request",
            Self::ModelNotFound => "model_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::AllProvidersFailed => "all_providers_failed",
            Self::ProvidersUnavailable => "providers_unavailable",
            Self::UsageLedgerFull => "usage_ledger_full",
            Self::UsageLedgerUnavailable => "usage_ledger_unavailable",
            Self::Timeout => "timeout",
            Self::UpstreamOverloaded => "upstream_overloaded",
            Self::ClientDisconnected => "client_disconnected",
            Self::UpstreamClientError => "upstream_client_error",
            Self::Internal => "internal",
            Self::ClientError => "client_error",
            Self::ProviderKeyRejected => "provider_key_rejected",
            Self::Upstream429 => "upstream_429",
            Self::Upstream5xx => "upstream_5xx",
            Self::Connect => "connect",
            Self::TokenExchange => "token_exchange",
            Self::Signing => "signing",
            Self::AnswerTooLarge => "answer_too_large",
            Self::BodyCut => "body_cut",
            Self::BadUpstreamBody => "bad_upstream_body",
            Self::UpstreamStreamError => "upstream_stream_error",
            Self::StreamCut => "stream_cut",
            Self::EventTooLarge => "event_too_large",
            Self::Deadline => "deadline",
            Self::IdleTimeout => "idle_timeout",
        }
    }

    /// The class its stable text names (a stored record read back).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one step of a call's story ended: a provider passed over, or an attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Answered,
    /// Passed over: its breaker was open.
    BreakerOpen,
    /// Passed over: the request cannot be said in its dialect.
    CannotExpress,
    /// Passed over: resting until its own rate limit's reset.
    ProviderResting,
    /// Passed over: Perpetuo's limits for the provider had no room.
    ProviderLimit,
    Failed(ErrorClass),
}

impl StepOutcome {
    /// The stable text the story shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::BreakerOpen => "breaker_open",
            Self::CannotExpress => "cannot_express",
            Self::ProviderResting => "provider_resting",
            Self::ProviderLimit => "provider_limit",
            Self::Failed(class) => class.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_own_text_and_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for class in ErrorClass::ALL {
            assert!(seen.insert(class.as_str()), "{class:?} shares its text");
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
            assert!(class.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        assert_eq!(ErrorClass::parse("no_such_class"), None);
    }
}
