//! Dashboard guards: cross-site form posts are refused, signed-out visitors are sent to sign-in
//! (and signed-in ones away from it), and every response gets the basic security headers.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tower_sessions::Session;

use app::server::sessions::USER_ID;

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
pub async fn page_guard(session: Session, request: Request, next: Next) -> Response {
    if request.method() == Method::GET {
        let path = request.uri().path();
        let is_dashboard = DASHBOARD_PAGES.contains(&path);
        let is_auth = AUTH_PAGES.contains(&path);
        if is_dashboard || is_auth {
            let signed_in = matches!(session.get::<String>(USER_ID).await, Ok(Some(_)));
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

/// Headers every response carries.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

/// `GET /usage/export.csv`: the request log with the tab's filters, as CSV, for the signed-in
/// workspace. Cells a spreadsheet would run as a formula are neutralised.
pub async fn usage_csv(
    axum::extract::State(state): axum::extract::State<app::server::AppState>,
    session: Session,
    axum::extract::Query(q): axum::extract::Query<app::api::usage::UsageQuery>,
) -> Response {
    let (_, ws) = match app::server::sessions::current_workspace(&state.db, &session).await {
        Ok(Some(found)) => found,
        Ok(None) => return Redirect::to("/signin").into_response(),
        Err(e) => {
            e.log_if_internal();
            return (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.").into_response();
        }
    };
    let filter = match q.filter(app::server::db::now_ms()) {
        Ok(filter) => filter,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    match csv(&state, &ws, &filter).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"perpetuo-requests.csv\""),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            e.log_if_internal();
            (e.status_code(), e.public_message()).into_response()
        }
    }
}

/// Most rows one export holds.
const CSV_MAX_ROWS: usize = 100_000;

async fn csv(
    state: &app::server::AppState,
    ws: &app::server::workspaces::WorkspaceId,
    filter: &app::types::RequestFilter,
) -> Result<String, app::server::ServiceError> {
    let keys: std::collections::HashMap<String, String> =
        app::server::api_keys::list(&state.db, ws).await?.into_iter().map(|k| (k.id, k.name)).collect();
    let mut out = String::from(
        "time_utc,request_id,key,provider,model,endpoint,stream,status,ok,error_class,attempts,prompt_tokens,completion_tokens,cost_usd,latency_ms,ttft_ms\n",
    );
    let mut cursor: Option<String> = None;
    let mut rows = 0;
    loop {
        let page = app::server::reports::requests(
            &state.db,
            ws,
            filter,
            &keys,
            app::server::reports::MAX_PAGE,
            cursor.as_deref(),
        )
        .await?;
        for r in &page.data {
            let cells = [
                app::types::format_ts(r.ts),
                r.request_id.clone(),
                r.key_name.clone(),
                r.provider_label.clone().unwrap_or_default(),
                r.model.clone(),
                r.endpoint.clone(),
                r.stream.to_string(),
                r.status.to_string(),
                r.ok.to_string(),
                r.error_class.clone().unwrap_or_default(),
                r.attempts.to_string(),
                r.prompt_tokens.to_string(),
                r.completion_tokens.to_string(),
                r.cost_nanos.map(|n| format!("{:.9}", n as f64 / 1e9)).unwrap_or_default(),
                r.latency_ms.to_string(),
                r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
            ];
            out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        rows += page.data.len();
        match page.next_cursor {
            Some(next) if rows < CSV_MAX_ROWS => cursor = Some(next),
            _ => return Ok(out),
        }
    }
}

/// One CSV cell: quoted when needed, and never a formula.
pub fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-12.5"), "-12.5", "numbers stay numbers");
        assert_eq!(csv_cell("@cmd"), "'@cmd");
    }
}
