//! The dashboard's guards: cross-site form posts are refused, signed-out visitors are sent to sign-in
//! (and signed-in ones away from it), and every response gets the basic security headers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tower_sessions::Session;

use perpetuo_core::AppState;

/// Pages that need a signed-in session.
const DASHBOARD_PAGES: &[&str] = &["/", "/providers", "/keys", "/usage", "/workspaces"];
/// Pages for signed-out visitors only.
const AUTH_PAGES: &[&str] = &["/signin", "/signup"];

/// Refuses state-changing requests that a browser marks as coming from another site. Requests
/// without `Origin`/`Sec-Fetch-Site` (scripts, curl) carry no ambient browser credentials of
/// another site and pass.
pub async fn same_origin(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) && is_cross_site(&request) {
        return (
            StatusCode::FORBIDDEN,
            "Cross-site requests are not accepted. Submit the form from the Perpetuo dashboard.",
        )
            .into_response();
    }
    next.run(request).await
}

fn is_cross_site(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site.eq_ignore_ascii_case("cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    // `Origin: null` (sandboxed frames, some redirects) is not our page either.
    match origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest.trim_end_matches('/')) {
        Some(origin_host) => !origin_host.eq_ignore_ascii_case(host),
        None => true,
    }
}

/// Sends signed-out visitors of dashboard pages to `/signin`, and signed-in visitors of the
/// sign-in pages to the dashboard. Runs inside the session layer.
pub async fn page_guard(State(state): State<AppState>, session: Session, mut request: Request, next: Next) -> Response {
    if request.method() == Method::GET {
        let path = request.uri().path();
        let is_dashboard = DASHBOARD_PAGES.contains(&path);
        let is_auth = AUTH_PAGES.contains(&path);
        if is_dashboard || is_auth {
            // Checked, not just present: a session past its lifetime, or from before a sign-out
            // everywhere, is ended here.
            let user = state.accounts().end_stale_session(&session).await.ok().flatten();
            let signed_in = user.is_some();
            if let Some(user) = user {
                // Everything this page renders sees this verdict (see `CheckedSession`).
                request.extensions_mut().insert(perpetuo_core::accounts::sessions::CheckedSession(user));
            }
            if is_dashboard && !signed_in {
                return Redirect::to("/signin").into_response();
            }
            if is_auth && signed_in {
                return Redirect::to("/providers").into_response();
            }
        }
    }
    next.run(request).await
}

/// Headers every response carries: no sniffing, no framing (also as CSP `frame-ancestors`), no
/// plugins or foreign `<base>`/form targets; `Cache-Control: no-store` on pages and API answers
/// (they carry personal data, and a new key once), not on the static files; HSTS when the public
/// address is https.
pub async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let cacheable = request.uri().path().starts_with("/pkg/") || request.uri().path() == "/favicon.ico";
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"),
    );
    if !cacheable && !headers.contains_key(http::header::CACHE_CONTROL) {
        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.settings.secure_cookies {
        headers.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// The most of a failed server function's body read to find its status (errors are a line).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A server function that failed answers with the status its error means (400 for a form the
/// service refused, 401, 404, 409, 429, 503...) rather than the framework's blanket 500, so a
/// browser, a log or a proxy tells a refused form from a fault. The body is left as it was.
pub async fn server_fn_status(request: Request, next: Next) -> Response {
    let is_fn = request.uri().path().starts_with("/fn/");
    let response = next.run(request).await;
    if !is_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    };
    if let Ok(error) = serde_json::from_slice::<app::error::AppError>(&bytes) {
        parts.status = app_error_status(&error);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn app_error_status(error: &app::error::AppError) -> StatusCode {
    StatusCode::from_u16(error.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
