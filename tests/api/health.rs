//! `/healthz`, `/readyz`, unknown routes, security headers.

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");
}

#[tokio::test]
async fn unknown_api_route_is_json_404() {
    let app = spawn_app().await;
    let response = app.get_json("/api/v1/nope", None).await;
    let body = api_error(response, 404).await;
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn unknown_page_is_404() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

/// `/metrics` is closed unless a token is set (then it takes only that token) or it is made
/// public on purpose.
#[tokio::test]
async fn metrics_are_closed_by_default() {
    let app = spawn_app().await;
    let closed = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(closed.status(), 403);
    assert!(closed.text().await.unwrap().contains("METRICS_TOKEN"));

    let mut options = Options::default();
    options.settings.metrics_token =
        Some(perpetuo_core::platform::secret::SecretBytes::new(b"scrape-token-1".to_vec()));
    let guarded = spawn_app_with(options).await;
    let scrape = |token: Option<&'static str>| {
        let mut request = guarded.client.get(guarded.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(scrape(Some("scrape-token-2")).await.unwrap().status(), 401);
    let open = scrape(Some("scrape-token-1")).await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains("perpetuo_requests_total"));

    let mut options = Options::default();
    options.settings.metrics_public = true;
    let public = spawn_app_with(options).await;
    assert_eq!(public.client.get(public.url("/metrics")).send().await.unwrap().status(), 200);
}

/// Pages and API answers are never cached and never framed; HSTS only behind an https address.
#[tokio::test]
async fn security_headers_on_pages_and_answers() {
    let app = spawn_app().await;
    for path in ["/signin", "/api/v1/nope", "/healthz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(!headers.contains_key("strict-transport-security"), "plain http: no HSTS");
    }
    let mut options = Options::default();
    options.settings.secure_cookies = true;
    let https = spawn_app_with(options).await;
    let response = https.client.get(https.url("/healthz")).send().await.unwrap();
    assert!(response.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
}
