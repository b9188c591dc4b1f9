//! API keys through the management API and the dashboard: the token once, then only hashes.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn token_is_returned_once_and_never_listed() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("keys")).await;
    let response = app
        .post_json(
            "/api/v1/keys",
            Some(&token),
            &json!({"name": "backend", "expires_in_days": 30, "rate_limit_per_min": 120}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let secret = body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pk_") && secret.len() >= 3 + 43, "{secret}");
    assert_eq!(body["key"]["rate_limit_per_min"], 120);
    assert_eq!(body["key"]["state"], "active");
    assert!(body["key"]["expires_at"].as_i64().unwrap() > perpetuo_core::platform::db::now_ms() + 29 * 86_400_000);
    let preview = body["key"]["preview"].as_str().unwrap();
    assert!(preview.starts_with(&secret[..8]) && preview.ends_with(&secret[secret.len() - 4..]));

    let listed = app.get_json("/api/v1/keys", Some(&token)).await.text().await.unwrap();
    assert!(!listed.contains(&secret), "token listed");
    assert!(!listed.contains(&perpetuo_core::keys::tokens::hash(&secret)), "hash listed");
    assert!(listed.contains("backend"));
}

#[tokio::test]
async fn revoke_and_delete() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("revoke")).await;
    let (id, _) = app.add_key(&token, "temp").await;
    let revoked: Value =
        app.post_json(&format!("/api/v1/keys/{id}/revoke"), Some(&token), &json!({})).await.json().await.unwrap();
    assert_eq!(revoked["state"], "revoked");
    assert!(revoked["revoked_at"].is_i64());
    assert_eq!(app.delete(&format!("/api/v1/keys/{id}"), &token).await.status(), 204);
    let list: Value = app.get_value("/api/v1/keys", Some(&token)).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn invalid_key_requests_are_400() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("bad")).await;
    for payload in [
        json!({"name": ""}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "rate_limit_per_min": 0}),
        json!({"name": "x", "expires_at": 1}),
    ] {
        api_error(app.post_json("/api/v1/keys", Some(&token), &payload).await, 400).await;
    }
}

#[tokio::test]
async fn another_workspaces_key_is_404_everywhere() {
    let app = spawn_app().await;
    let (token_a, _, _) = app.api_signup(&email("a")).await;
    let (token_b, _, _) = app.api_signup(&email("b")).await;
    let (id, _) = app.add_key(&token_a, "a-key").await;
    api_error(app.post_json(&format!("/api/v1/keys/{id}/revoke"), Some(&token_b), &json!({})).await, 404).await;
    api_error(app.delete(&format!("/api/v1/keys/{id}"), &token_b).await, 404).await;
    let c = new_client();
    app.dashboard_signup(&c, &email("c")).await;
    for name in ["revoke_key", "delete_key"] {
        let response = app.server_fn(&c, name, &[("id", &id)]).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"NotFound": "API key"}), "{name}");
    }
    let list: Value = app.server_fn(&c, "list_keys", &[]).await.json().await.unwrap();
    assert_eq!(list, json!([]));
    let a_list: Value = app.get_value("/api/v1/keys", Some(&token_a)).await;
    assert_eq!(a_list["data"][0]["state"], "active", "A's key untouched");
}

#[tokio::test]
async fn no_js_creation_shows_the_token_exactly_once() {
    let app = spawn_app().await;
    let client = new_client();
    app.dashboard_signup(&client, &email("once")).await;
    let response = app
        .post_form(
            &client,
            "/fn/create_key",
            "/keys",
            &[("name", "form-key"), ("expires_in_days", ""), ("rate_limit_per_min", "")],
        )
        .await;
    assert_eq!(response.status(), 302);
    let first = client.get(app.url("/keys")).send().await.unwrap().text().await.unwrap();
    let marker = "data-testid=\"new-key\">";
    let start = first.find(marker).expect("token shown on the page after the redirect") + marker.len();
    let shown: String = first[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    assert!(perpetuo_core::keys::tokens::looks_like_token(&shown), "{shown}");
    let second = client.get(app.url("/keys")).send().await.unwrap().text().await.unwrap();
    assert!(!second.contains(&shown), "shown a second time");
    assert!(second.contains("form-key"));
}

/// A flood of well-formed keys that no workspace has: after the first few, the database is not
/// asked; keys that exist, and keys created during the flood, still work at once.
#[tokio::test]
async fn a_flood_of_unknown_keys_costs_a_bounded_number_of_lookups() {
    use perpetuo_core::keys::{ApiKeyToken, KeyError, KeyRejection, tokens};
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("flood")).await;
    let (_, real) = app.add_key(&token, "real").await;
    let keys = app.state.keys();
    let authenticate = |raw: String| async move { keys.authenticate(&ApiKeyToken::parse(Some(&raw)).unwrap()).await };
    let (before, _) = keys.lookup_counts();
    let started = std::time::Instant::now();
    let mut stranger = String::new();
    for i in 0..100_000 {
        let forged = tokens::generate().unwrap().token;
        if i == 0 {
            stranger = forged.clone();
        }
        assert!(matches!(authenticate(forged).await, Err(KeyError::Rejected(KeyRejection::Unknown))));
        if i == 50_000 {
            // A key created in the middle of the flood works at once.
            let (_, fresh) = app.add_key(&token, "fresh").await;
            assert!(authenticate(fresh).await.is_ok());
        }
    }
    let elapsed = started.elapsed().as_secs() + 1;
    let (after, refused) = keys.lookup_counts();
    let lookups = after - before;
    // The budget: a burst of 200, then 50 a second (plus the fresh key's own lookup).
    assert!(lookups <= 200 + 50 * elapsed + 1, "{lookups} lookups in {elapsed} s");
    assert!(refused >= 100_000 - lookups, "the rest never reached the database: {refused}");
    assert!(authenticate(real).await.is_ok(), "a real key is always looked up");
    // The same unknown key again costs nothing either way.
    let (counted, _) = keys.lookup_counts();
    for _ in 0..1000 {
        assert!(authenticate(stranger.clone()).await.is_err());
    }
    assert!(keys.lookup_counts().0 - counted <= 1);
}
