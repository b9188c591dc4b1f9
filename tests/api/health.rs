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
