//! The gateway's errors: what went wrong, its status and class, and its words ([`ErrorParts`]);
//! the route's protocol shapes the body and the limit headers (`perpetuo_core::protocols::errors`,
//! `headers`).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use perpetuo_core::ServiceError;
use perpetuo_core::keys::{KeyError, KeyRejection};
use perpetuo_core::platform::rate::Decision;
use perpetuo_core::protocols::errors::ErrorParts;
use perpetuo_core::protocols::{Protocol, Refusal};
use perpetuo_types::ErrorClass;

#[derive(Debug)]
pub enum GatewayError {
    Key(KeyRejection),
    RateLimited(Decision),
    /// The call does not fit a budget; the message names it and what is left.
    Budget(String),
    /// A token or in-flight limit (the workspace's, the key's, or every candidate provider's) has
    /// no room for the call; `class` says which kind (token, concurrency or a provider's).
    Limited {
        message: String,
        standing: Option<perpetuo_core::limits::Standing>,
        retry_after: std::time::Duration,
        class: ErrorClass,
    },
    BodyTooLarge(usize),
    InvalidJson(String),
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    ModelNotFound(String),
    RouteNotFound(String),
    MethodNotAllowed,
    /// Every candidate failed; the message names the last failure class, never a provider key.
    AllProvidersFailed {
        attempts: u32,
        last: String,
    },
    /// Every candidate's circuit breaker is open.
    ProvidersUnavailable,
    /// Usage records cannot be kept right now (the spool is full): no call is made without one.
    UsageLedgerFull,
    /// Usage records cannot be written (the spool's disk is full or failing): no call is made, or
    /// answered, without one.
    UsageLedgerUnavailable,
    /// The total deadline passed.
    Timeout,
    /// The last provider tried said it is overloaded (Anthropic's 529).
    Overloaded,
    /// The client closed its connection before the call reached a provider (nobody reads this
    /// answer; the record says 499).
    ClientGone,
    /// The upstream refused the client's own request: passed through with its status.
    Upstream {
        status: StatusCode,
        message: String,
        kind: String,
        code: Option<String>,
        param: Option<String>,
    },
    Internal(ServiceError),
}

impl From<ServiceError> for GatewayError {
    fn from(e: ServiceError) -> Self {
        Self::Internal(e)
    }
}

impl From<Refusal> for GatewayError {
    fn from(r: Refusal) -> Self {
        Self::InvalidRequest { message: r.message, param: r.param }
    }
}

impl From<KeyRejection> for GatewayError {
    fn from(r: KeyRejection) -> Self {
        Self::Key(r)
    }
}

impl From<KeyError> for GatewayError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Rejected(r) => Self::Key(r),
            KeyError::Service(e) => Self::Internal(e),
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Key(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited(_) | Self::Budget(_) | Self::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidJson(_) | Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::AllProvidersFailed { .. } => StatusCode::BAD_GATEWAY,
            Self::ProvidersUnavailable | Self::UsageLedgerFull | Self::UsageLedgerUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded => StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Self::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Self::Upstream { status, .. } => *status,
            Self::Internal(e) => e.status_code(),
        }
    }

    /// The stable class recorded in usage and metrics.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Key(_) => ErrorClass::InvalidApiKey,
            Self::RateLimited(_) => ErrorClass::RateLimited,
            Self::Budget(_) => ErrorClass::BudgetExceeded,
            Self::Limited { class, .. } => *class,
            Self::BodyTooLarge(_) => ErrorClass::BodyTooLarge,
            Self::InvalidJson(_) | Self::InvalidRequest { .. } => ErrorClass::InvalidRequest,
            Self::ModelNotFound(_) => ErrorClass::ModelNotFound,
            Self::RouteNotFound(_) => ErrorClass::NotFound,
            Self::MethodNotAllowed => ErrorClass::MethodNotAllowed,
            Self::AllProvidersFailed { .. } => ErrorClass::AllProvidersFailed,
            Self::ProvidersUnavailable => ErrorClass::ProvidersUnavailable,
            Self::UsageLedgerFull => ErrorClass::UsageLedgerFull,
            Self::UsageLedgerUnavailable => ErrorClass::UsageLedgerUnavailable,
            Self::Timeout => ErrorClass::Timeout,
            Self::Overloaded => ErrorClass::UpstreamOverloaded,
            Self::ClientGone => ErrorClass::ClientDisconnected,
            Self::Upstream { .. } => ErrorClass::UpstreamClientError,
            Self::Internal(_) => ErrorClass::Internal,
        }
    }

    fn parts(&self) -> ErrorParts {
        let invalid = "invalid_request_error".to_owned();
        let (message, kind, param, code) = match self {
            Self::Key(rejection) => {
                let message = match rejection {
                    KeyRejection::Missing => {
                        "You didn't provide an API key. Send it as `Authorization: Bearer pk_...`."
                    }
                    KeyRejection::Unknown => "Incorrect API key provided.",
                    KeyRejection::Revoked => "This API key has been revoked.",
                    KeyRejection::Expired => "This API key has expired.",
                };
                (message.to_owned(), invalid, None, Some("invalid_api_key".into()))
            }
            Self::RateLimited(d) => (
                format!(
                    "Rate limit reached: {} requests per minute. Try again in {} seconds.",
                    d.limit,
                    d.retry_after_secs().max(1)
                ),
                "rate_limit_exceeded".into(),
                None,
                Some("rate_limit_exceeded".into()),
            ),
            // OpenAI's type says which limit ("tokens", or "requests" for calls in flight).
            Self::Limited { message, standing, .. } => (
                message.clone(),
                if standing.is_some() { "tokens" } else { "requests" }.into(),
                None,
                Some("rate_limit_exceeded".into()),
            ),
            Self::Budget(message) => {
                (message.clone(), "insufficient_quota".into(), None, Some("insufficient_quota".into()))
            }
            Self::BodyTooLarge(limit) => (
                format!("The request body is larger than the {limit} bytes this gateway accepts."),
                invalid,
                None,
                Some("request_too_large".into()),
            ),
            Self::InvalidJson(detail) => {
                (format!("We could not parse the JSON body of your request: {detail}"), invalid, None, None)
            }
            Self::InvalidRequest { message, param } => (message.clone(), invalid, param.map(str::to_owned), None),
            Self::ModelNotFound(model) => (
                format!("No enabled provider in this workspace serves the model `{model}`."),
                invalid,
                Some("model".into()),
                Some("model_not_found".into()),
            ),
            Self::RouteNotFound(path) => {
                (format!("Unknown request URL: {path}."), invalid, None, Some("unknown_url".into()))
            }
            Self::MethodNotAllowed => ("This method is not allowed on this URL.".into(), invalid, None, None),
            Self::AllProvidersFailed { attempts, last } => (
                format!("All providers failed after {attempts} attempts (last: {last})."),
                "server_error".into(),
                None,
                Some("upstream_error".into()),
            ),
            Self::ProvidersUnavailable => (
                "Every provider for this model is temporarily unavailable (circuit open). Try again shortly.".into(),
                "server_error".into(),
                None,
                Some("providers_unavailable".into()),
            ),
            Self::UsageLedgerFull => (
                "The gateway cannot record usage right now (its database is behind). Try again shortly.".into(),
                "server_error".into(),
                None,
                Some("usage_ledger_full".into()),
            ),
            Self::UsageLedgerUnavailable => (
                "The gateway cannot write usage records right now (its disk is full or failing). Try again shortly."
                    .into(),
                "server_error".into(),
                None,
                Some("usage_ledger_unavailable".into()),
            ),
            Self::Timeout => (
                "The request took longer than the gateway's deadline.".into(),
                "server_error".into(),
                None,
                Some("timeout".into()),
            ),
            Self::Overloaded => (
                "The provider is overloaded. Try again shortly.".into(),
                "server_error".into(),
                None,
                Some("overloaded".into()),
            ),
            Self::ClientGone => (
                "The client closed the connection before the answer.".into(),
                invalid,
                None,
                Some("client_disconnected".into()),
            ),
            Self::Upstream { message, kind, code, param, .. } => {
                (message.clone(), kind.clone(), param.clone(), code.clone())
            }
            Self::Internal(e) => (e.public_message(), "server_error".into(), None, None),
        };
        ErrorParts { message, kind, param, code }
    }

    /// The error's words for a client of `protocol` (a missing key is explained with the header
    /// that protocol's SDKs send).
    fn parts_for(&self, protocol: Protocol) -> ErrorParts {
        let mut parts = self.parts();
        if let (Self::Key(KeyRejection::Missing), Protocol::Messages) = (self, protocol) {
            parts.message =
                "You didn't provide an API key. Send it as `x-api-key: pk_...` (or `Authorization: Bearer pk_...`)."
                    .to_owned();
        }
        parts
    }

    /// The error's body as a client of `protocol` expects it.
    pub fn body_for(&self, protocol: Protocol) -> serde_json::Value {
        protocol.error_json(self.status().as_u16(), &self.parts_for(protocol))
    }

    /// The error as the client of `protocol` expects it.
    pub fn response_for(self, protocol: Protocol) -> Response {
        if let Self::Internal(e) = &self {
            e.log_if_internal();
        }
        let mut response = (self.status(), axum::Json(self.body_for(protocol))).into_response();
        if let Self::RateLimited(decision) = &self {
            protocol.request_limit_headers(response.headers_mut(), decision);
        }
        if let Self::Limited { standing, retry_after, .. } = &self {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            if let Some(standing) = standing {
                protocol.token_limit_headers(response.headers_mut(), standing);
            }
        }
        if matches!(self, Self::ProvidersUnavailable | Self::UsageLedgerFull | Self::UsageLedgerUnavailable) {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl IntoResponse for GatewayError {
    /// OpenAI's shape (what extractors reject with before the route's protocol is known).
    fn into_response(self) -> Response {
        self.response_for(Protocol::Chat)
    }
}
