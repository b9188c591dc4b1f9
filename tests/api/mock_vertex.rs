//! The mock's Vertex AI side: Google's OAuth token endpoint for service accounts and Claude's
//! `rawPredict` / `streamRawPredict`. The token endpoint checks what Google's does: the
//! jwt-bearer grant, the assertion's RS256 signature against the service account's public key,
//! its issuer, audience (the token endpoint itself), scope, and a lifetime of at most an hour,
//! unexpired. The model endpoint takes only tokens it issued and has not expired, the project it
//! was given, `anthropic_version: vertex-2023-10-16`, no `model` in the body, and the method that
//! matches the body's `stream`; then it answers as Anthropic does. Entra ID's token endpoint
//! (Azure OpenAI's client credentials) lives here too, issuing tokens the Azure routes take.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{MockState, Script};

/// The service account the mock's token endpoint knows, and its public key.
pub const SA_EMAIL: &str = "perpetuo-test@perpetuo-test.iam.gserviceaccount.com";
pub const SA_PROJECT: &str = "perpetuo-test";
pub const SA_PUBLIC_KEY: &str = include_str!("fixtures/vertex-sa-1.pub.pem");
/// Its private key, and another key Google never saw.
pub const SA_PRIVATE_KEY: &str = include_str!("fixtures/vertex-sa-1.pem");
pub const OTHER_PRIVATE_KEY: &str = include_str!("fixtures/vertex-sa-2.pem");

/// What the mock's Vertex side holds.
#[derive(Default)]
pub struct VertexState {
    /// Tokens issued and not yet expired.
    pub live: std::collections::HashSet<String>,
    /// Token requests granted.
    pub granted: usize,
    /// Model calls and the bodies Vertex received (before the mock's own `model` was added).
    pub bodies: Vec<(String, Value)>,
}

pub fn routes() -> axum::Router<MockState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{action}", post(predict))
        .route("/v1/projects/{project}/locations/{location}/publishers/google/models/{action}", post(gemini))
        .route("/v1beta1/publishers/anthropic/models", get(catalogue))
        .route("/v1beta1/publishers/google/models", get(catalogue))
}

/// A service account JSON key whose token endpoint is this mock's (signed with `private_key`).
pub fn service_account(token_uri: &str, private_key: &str) -> String {
    json!({"type": "service_account", "project_id": SA_PROJECT, "private_key_id": "0123456789abcdef0123",
        "private_key": private_key, "client_email": SA_EMAIL, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri})
    .to_string()
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    iat: u64,
    exp: u64,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

/// Google's checks of a service account's token request: the jwt-bearer grant, an assertion
/// signed with the account's key (RS256), issued by the account, for this endpoint, for the
/// cloud-platform scope, unexpired and living at most an hour.
#[allow(clippy::result_large_err, reason = "a test mock; the error is the response to send")]
pub fn verify_assertion(form: &HashMap<String, String>, headers: &HeaderMap) -> Result<(), Response> {
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(oauth_error("unsupported_grant_type", "Invalid grant_type."));
    }
    let Some(assertion) = form.get("assertion") else {
        return Err(oauth_error("invalid_request", "Missing assertion."));
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("http://{host}/token")]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    validation.leeway = 0;
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(SA_PUBLIC_KEY.as_bytes()) else {
        return Err(oauth_error("server_error", "bad fixture"));
    };
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return Err(oauth_error("invalid_grant", &format!("Invalid JWT: {e}"))),
    };
    if claims.iss != SA_EMAIL {
        return Err(oauth_error("invalid_grant", "Invalid JWT: unknown issuer."));
    }
    if !claims.scope.split(' ').any(|s| s == "https://www.googleapis.com/auth/cloud-platform") {
        return Err(oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided."));
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
        return Err(oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)."));
    }
    Ok(())
}

async fn token(
    State((_, script)): State<MockState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = verify_assertion(&form, &headers) {
        return refused;
    }
    let mut s = script.lock().unwrap();
    s.vertex.granted += 1;
    let token = format!("ya29.mock-{}", s.vertex.granted);
    s.vertex.live.insert(token.clone());
    axum::Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn google_error(status: StatusCode, message: &str, reason: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": reason}});
    (status, axum::Json(body)).into_response()
}

/// Whether the request carries a token the mock issued and has not expired.
pub fn presented_live_token(script: &Script, headers: &HeaderMap) -> bool {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    bearer.is_some_and(|t| script.vertex.live.contains(t))
}

async fn predict(
    state: State<MockState>,
    Path((project, _location, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.0.0 != super::Flavor::Vertex {
        return google_error(StatusCode::NOT_FOUND, "Not found", "NOT_FOUND");
    }
    if !presented_live_token(&state.0.1.lock().unwrap(), &headers) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            "UNAUTHENTICATED",
        );
    }
    if project != SA_PROJECT {
        return google_error(StatusCode::FORBIDDEN, "Permission denied on resource project.", "PERMISSION_DENIED");
    }
    let Some((model, method)) = action.rsplit_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "Method not found.", "NOT_FOUND");
    };
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.0.1.lock().unwrap().vertex.bodies.push((action.clone(), request.clone()));
    let streamed = request["stream"].as_bool().unwrap_or(false);
    let refusal = if request["anthropic_version"] != "vertex-2023-10-16" {
        Some("anthropic_version: vertex-2023-10-16 is required")
    } else if request.get("model").is_some() {
        Some("model: Extra inputs are not permitted")
    } else if (method == "streamRawPredict") != streamed || !matches!(method, "rawPredict" | "streamRawPredict") {
        Some("stream must be true with streamRawPredict and false with rawPredict")
    } else {
        None
    };
    if let Some(message) = refusal {
        let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    // Anthropic's own handler answers, as the model behind Vertex does.
    request["model"] = json!(model);
    super::messages(state, headers, Bytes::from(request.to_string())).await
}

/// Gemini on Vertex: a live token and the key's project, then Gemini's own checks and answer.
async fn gemini(
    state: State<MockState>,
    Path((project, _location, action)): Path<(String, String, String)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.0.0 != super::Flavor::Vertex {
        return google_error(StatusCode::NOT_FOUND, "Not found", "NOT_FOUND");
    }
    if project != SA_PROJECT {
        return google_error(StatusCode::FORBIDDEN, "Permission denied on resource project.", "PERMISSION_DENIED");
    }
    state
        .0
        .1
        .lock()
        .unwrap()
        .vertex
        .bodies
        .push((action.clone(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
    super::gemini::generate_as(state.0, action, query, headers, body).await
}

async fn catalogue(State((_, script)): State<MockState>, headers: HeaderMap) -> Response {
    if !presented_live_token(&script.lock().unwrap(), &headers) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
            "UNAUTHENTICATED",
        );
    }
    axum::Json(json!({"publisherModels": [{"name": "publishers/anthropic/models/claude-sonnet-4-5"},
        {"name": "publishers/anthropic/models/claude-haiku-4-5"}]}))
    .into_response()
}

/// Microsoft Entra ID's token endpoint for one app registration (Azure OpenAI's alternative to
/// keys): the client credentials grant, the app's id and secret, Cognitive Services' scope.
pub const ENTRA_TENANT: &str = "contoso.onmicrosoft.com";
pub const ENTRA_CLIENT_ID: &str = "00000000-0000-0000-0000-00000000c11e";
pub const ENTRA_SECRET: &str = "entra~secret~0001";

pub fn entra_routes() -> axum::Router<MockState> {
    axum::Router::new().route("/{tenant}/oauth2/v2.0/token", axum::routing::post(entra_token))
}

async fn entra_token(
    State((_, script)): State<MockState>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if tenant != ENTRA_TENANT {
        return oauth_error("invalid_tenant", "AADSTS90002: Tenant not found.");
    }
    if field("grant_type") != "client_credentials" {
        return oauth_error("unsupported_grant_type", "AADSTS70003: The grant type is not supported.");
    }
    if field("scope") != "https://cognitiveservices.azure.com/.default" {
        return oauth_error(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    if field("client_id") != ENTRA_CLIENT_ID || field("client_secret") != ENTRA_SECRET {
        let body =
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let mut s = script.lock().unwrap();
    s.vertex.granted += 1;
    let token = format!("eyJ0eXAi.entra-{}", s.vertex.granted);
    s.vertex.live.insert(token.clone());
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}))
        .into_response()
}
