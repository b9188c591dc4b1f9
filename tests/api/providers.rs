//! Providers through the management API and the dashboard's server functions: masked keys, edits
//! that keep the key, the "Test" call, base-URL rules, isolation.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

#[tokio::test]
async fn create_list_get_show_only_the_masked_key() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("prov")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let created = app.add_provider(&token, "Main", "openai_compatible", &mock.base_url(), VALID_KEY).await;
    assert_eq!(created["key_preview"], "••••0001");
    assert_eq!(created["priority"], 100);
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();

    for response in [
        app.get_json("/api/v1/providers", Some(&token)).await,
        app.get_json(&format!("/api/v1/providers/{id}"), Some(&token)).await,
    ] {
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(!text.contains(VALID_KEY), "key leaked: {text}");
        assert!(!text.contains("sealed"), "sealed form leaked: {text}");
        assert!(text.contains("••••0001"));
    }
}

#[tokio::test]
async fn preset_base_urls_and_custom_url_rules() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("preset")).await;
    let response = app
        .post_json(
            "/api/v1/providers",
            Some(&token),
            &json!({"label": "A", "kind": "anthropic", "api_key": "sk-ant-xxxxxxxxxxxx"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["base_url"], "https://api.anthropic.com");
    let response = app
        .post_json(
            "/api/v1/providers",
            Some(&token),
            &json!({"label": "G", "kind": "groq", "api_key": "gsk-xxxxxxxxxxxxxx"}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["base_url"], "https://api.groq.com/openai/v1");

    for (payload, fragment) in [
        (json!({"label": "C", "kind": "openai_compatible", "api_key": "k"}), "needs a base URL"),
        (json!({"label": "C", "kind": "nonsense", "api_key": "k"}), "Unknown provider kind"),
        (json!({"label": "", "kind": "openai", "api_key": "k"}), "label"),
        (json!({"label": "C", "kind": "openai", "api_key": ""}), "API key"),
        (
            json!({"label": "C", "kind": "openai", "api_key": "k", "base_url": "https://u:p@example.com/v1"}),
            "user name or password",
        ),
        (json!({"label": "C", "kind": "openai", "api_key": "k", "priority": -1}), "Priority"),
    ] {
        let response = app.post_json("/api/v1/providers", Some(&token), &payload).await;
        let body = api_error(response, 400).await;
        assert!(body["error"]["message"].as_str().unwrap().contains(fragment), "{payload}: {body}");
    }
}

#[tokio::test]
async fn private_upstreams_are_refused_unless_allowed() {
    let mut options = Options::default();
    options.settings.upstream.allow_private = false;
    let app = spawn_app_with(options).await;
    let (token, _, _) = app.api_signup(&email("ssrf")).await;
    for url in [
        "http://api.example.com/v1",
        "https://127.0.0.1/v1",
        "https://[::1]:8080/v1",
        "https://169.254.169.254/latest",
        "https://10.0.0.5/v1",
        "https://localhost/v1",
        // A name (not a literal) that resolves to loopback: refused by the resolution check.
        "https://localhost./v1",
    ] {
        let response = app
            .post_json(
                "/api/v1/providers",
                Some(&token),
                &json!({"label": "x", "kind": "openai_compatible", "base_url": url, "api_key": "k"}),
            )
            .await;
        let body = api_error(response, 400).await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains("not allowed")
                || body["error"]["message"].as_str().unwrap().contains("https"),
            "{url}: {body}"
        );
    }
}

/// Even where private upstreams are allowed (self-hosted models), link-local and cloud metadata
/// addresses are not: that is where a cloud machine keeps its credentials.
#[tokio::test]
async fn metadata_addresses_are_refused_even_with_private_upstreams() {
    let app = spawn_app().await;
    assert!(app.state.settings.upstream.allow_private);
    let (token, _, _) = app.api_signup(&email("metadata")).await;
    for url in ["http://169.254.169.254/latest", "http://[fd00:ec2::254]", "http://[fe80::1]:8080/v1"] {
        let response = app
            .post_json(
                "/api/v1/providers",
                Some(&token),
                &json!({"label": "x", "kind": "openai_compatible", "base_url": url, "api_key": "k"}),
            )
            .await;
        let body = api_error(response, 400).await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains("not even with ALLOW_PRIVATE_UPSTREAMS"),
            "{url}: {body}"
        );
    }
    assert_eq!(
        app.post_json(
            "/api/v1/providers",
            Some(&token),
            &json!({"label": "local", "kind": "openai_compatible", "base_url": "http://127.0.0.1:11434/v1", "api_key": "k"}),
        )
        .await
        .status(),
        201,
        "loopback stays allowed for self-hosted models"
    );
}

#[tokio::test]
async fn editing_without_a_new_key_keeps_the_old_one() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("edit")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let created = app.add_provider(&token, "Main", "openai_compatible", &mock.base_url(), VALID_KEY).await;
    let id = created["id"].as_str().unwrap();

    // Edit label and priority; send the masked preview back as the key, as a careless form would.
    let response = app
        .patch_json(
            &format!("/api/v1/providers/{id}"),
            &token,
            &json!({"label": "Renamed", "priority": 5, "api_key": "••••0001"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["label"].as_str(), body["priority"].as_i64()), (Some("Renamed"), Some(5)));
    // The stored key still works against the provider.
    let test: Value =
        app.post_json(&format!("/api/v1/providers/{id}/test"), Some(&token), &json!({})).await.json().await.unwrap();
    assert_eq!(test["ok"], true, "{test}");

    // A new key replaces it.
    app.patch_json(&format!("/api/v1/providers/{id}"), &token, &json!({"api_key": "sk-another-key-9999"})).await;
    let test: Value =
        app.post_json(&format!("/api/v1/providers/{id}/test"), Some(&token), &json!({})).await.json().await.unwrap();
    assert_eq!(test["ok"], false);
    let listed: Value = app.get_value(&format!("/api/v1/providers/{id}"), Some(&token)).await;
    assert_eq!(listed["key_preview"], "••••9999");

    // Pointing the stored key at another host needs the key typed again.
    let other = Mock::start(Flavor::OpenAi).await;
    let moved =
        app.patch_json(&format!("/api/v1/providers/{id}"), &token, &json!({"base_url": other.base_url()})).await;
    let body = api_error(moved, 400).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("API key again"), "{body}");
    assert_eq!(other.hits(), 0);
    let moved = app
        .patch_json(
            &format!("/api/v1/providers/{id}"),
            &token,
            &json!({"base_url": other.base_url(), "api_key": VALID_KEY}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    // Same host, another path: allowed without the key.
    let path = app
        .patch_json(&format!("/api/v1/providers/{id}"), &token, &json!({"base_url": format!("{}/", other.base_url())}))
        .await;
    assert_eq!(path.status(), 200);
}

#[tokio::test]
async fn test_reports_success_and_the_providers_error_in_plain_words() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("test")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let good = app.add_provider(&token, "Good", "openai_compatible", &mock.base_url(), VALID_KEY).await;
    let bad = app.add_provider(&token, "Bad", "openai_compatible", &mock.base_url(), "sk-wrong-key-1234").await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    let claude = app.add_provider(&token, "Claude", "anthropic", &anthropic.base_url(), VALID_KEY).await;

    let ok: Value = app
        .post_json(&format!("/api/v1/providers/{}/test", good["id"].as_str().unwrap()), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["models"], json!(["mock-large", "mock-small"]));
    let refused: Value = app
        .post_json(&format!("/api/v1/providers/{}/test", bad["id"].as_str().unwrap()), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refused["ok"], false);
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("rejected the API key") && message.contains("Incorrect API key provided"), "{message}");
    assert!(!message.contains("sk-wrong-key-1234"));
    let claude_test: Value = app
        .post_json(&format!("/api/v1/providers/{}/test", claude["id"].as_str().unwrap()), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claude_test["ok"], true, "{claude_test}");
    let seen = anthropic.seen();
    assert_eq!(seen[0].headers["x-api-key"], VALID_KEY);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");

    // A host that does not answer in time: bounded, plain words.
    mock.set_default(crate::mock::Behavior::Hang);
    let closed = Mock::start(Flavor::OpenAi).await;
    drop(closed);
    let unreachable = app.add_provider(&token, "Down", "openai_compatible", "http://127.0.0.1:9/v1", VALID_KEY).await;
    let down: Value = app
        .post_json(&format!("/api/v1/providers/{}/test", unreachable["id"].as_str().unwrap()), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(down["ok"], false);
    assert!(down["message"].as_str().unwrap().contains("connect"), "{down}");
}

#[tokio::test]
async fn delete_removes_the_provider() {
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("del")).await;
    let created = app.add_provider(&token, "Gone", "openai", "https://api.openai.com/v1", "sk-xxxxxxxxxxxxxxxx").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/providers/{id}"), &token).await.status(), 204);
    api_error(app.get_json(&format!("/api/v1/providers/{id}"), Some(&token)).await, 404).await;
    api_error(app.delete(&format!("/api/v1/providers/{id}"), &token).await, 404).await;
}

#[tokio::test]
async fn another_workspaces_provider_is_404_everywhere() {
    let app = spawn_app().await;
    let (token_a, _, _) = app.api_signup(&email("a")).await;
    let (token_b, _, _) = app.api_signup(&email("b")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let a_provider = app.add_provider(&token_a, "A's", "openai_compatible", &mock.base_url(), VALID_KEY).await;
    let id = a_provider["id"].as_str().unwrap();

    api_error(app.get_json(&format!("/api/v1/providers/{id}"), Some(&token_b)).await, 404).await;
    api_error(
        app.patch_json(&format!("/api/v1/providers/{id}"), &token_b, &json!({"label": "pwned", "enabled": false}))
            .await,
        404,
    )
    .await;
    api_error(app.post_json(&format!("/api/v1/providers/{id}/test"), Some(&token_b), &json!({})).await, 404).await;
    api_error(app.delete(&format!("/api/v1/providers/{id}"), &token_b).await, 404).await;
    let b_list: Value = app.get_value("/api/v1/providers", Some(&token_b)).await;
    assert_eq!(b_list["data"], json!([]));
    assert_eq!(mock.hits(), 0, "B's test never reached A's provider");

    // The same through the dashboard's server functions, signed in as a third user.
    let c = new_client();
    app.dashboard_signup(&c, &email("c")).await;
    for (name, fields) in [
        ("update_provider", vec![("id", id), ("label", "pwned"), ("base_url", ""), ("api_key", "")]),
        ("delete_provider", vec![("id", id)]),
        ("test_provider", vec![("id", id)]),
    ] {
        let response = app.server_fn(&c, name, &fields).await;
        assert_eq!(response.status(), 404, "{name}: a refusal answers with its own status");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"NotFound": "provider"}), "{name}");
    }
    let list: Value = app.server_fn(&c, "list_providers", &[]).await.json().await.unwrap();
    assert_eq!(list, json!([]));

    // A's provider is untouched.
    let still: Value = app.get_value(&format!("/api/v1/providers/{id}"), Some(&token_a)).await;
    assert_eq!((still["label"].as_str(), still["enabled"].as_bool()), (Some("A's"), Some(true)));
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn dashboard_create_edit_and_test_without_js() {
    let app = spawn_app().await;
    let client = new_client();
    app.dashboard_signup(&client, &email("dash")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let base = mock.base_url();
    let response = app
        .post_form(
            &client,
            "/fn/create_provider",
            "/providers",
            &[
                ("label", "Local"),
                ("kind", "openai_compatible"),
                ("base_url", &base),
                ("api_key", VALID_KEY),
                ("priority", "7"),
                ("models", "mock-small, mock-large"),
            ],
        )
        .await;
    assert_eq!(response.status(), 302);
    let list: Value = app.server_fn(&client, "list_providers", &[]).await.json().await.unwrap();
    assert_eq!(list[0]["label"], "Local");
    assert_eq!(list[0]["priority"], 7);
    assert_eq!(list[0]["models"], json!(["mock-large", "mock-small"]));
    let id = list[0]["id"].as_str().unwrap().to_owned();

    let response = app.post_form(&client, "/fn/test_provider", "/providers", &[("id", &id)]).await;
    let back = location(&response);
    assert_eq!(back, "/providers?tested=1", "nothing of the result in the address");
    let page = client.get(app.url(&back)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Connected: the provider lists 2 models."), "result shown without JS");
    assert!(!page.contains(VALID_KEY));
    let again = client.get(app.url(&back)).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("Connected: the provider lists"), "shown once");
    // A crafted link cannot make the dashboard say anything.
    let crafted = "/providers?tested=1&ok=1&message=Your%20account%20is%20locked%2C%20call%20us";
    let page = client.get(app.url(crafted)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Your account is locked"), "the address's words are not shown");

    // Edit with an empty key field: the key stays.
    app.post_form(
        &client,
        "/fn/update_provider",
        "/providers",
        &[("id", &id), ("label", "Local 2"), ("base_url", &base), ("api_key", ""), ("priority", "3"), ("models", "")],
    )
    .await;
    let list: Value = app.server_fn(&client, "list_providers", &[]).await.json().await.unwrap();
    assert_eq!(
        (list[0]["label"].as_str(), list[0]["enabled"].as_bool(), list[0]["models"].is_null()),
        (Some("Local 2"), Some(false), true)
    );
    let test: Value = app.server_fn(&client, "test_provider", &[("id", &id)]).await.json().await.unwrap();
    assert_eq!(test["ok"], true, "kept key still works");
}

#[tokio::test]
async fn rotating_the_encryption_key_reseals_every_provider_key() {
    use perpetuo_core::platform::crypto::Cipher;
    use perpetuo_core::platform::secret::Secret32;
    let app = spawn_app().await;
    let (token, _, _) = app.api_signup(&email("rotate")).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let created = app.add_provider(&token, "Rotated", "openai_compatible", &mock.base_url(), VALID_KEY).await;
    let id = created["id"].as_str().unwrap();
    let old = app.state.settings.encryption_key.clone();
    let new = Secret32::new([42u8; 32]);
    // Only the new key: the old seal cannot be opened.
    let only_new = Cipher::new(&new, None);
    let with = |cipher: Cipher| {
        let http = reqwest::Client::new();
        let upstream = perpetuo_core::providers::client::Upstream::new(&app.state.settings.upstream).unwrap();
        perpetuo_core::providers::Providers::new(
            app.state.db.clone(),
            std::sync::Arc::new(cipher),
            http,
            upstream,
            true,
        )
    };
    assert!(with(Cipher::new(&new, None)).reseal_all().await.is_err());
    // New key with the old one as previous: everything is resealed, once.
    let rotating = with(Cipher::new(&new, Some(&old)));
    assert_eq!(rotating.reseal_all().await.unwrap(), 1);
    assert_eq!(rotating.reseal_all().await.unwrap(), 0, "already current");
    // The new key alone now opens it.
    let ws = {
        let list: Value = app.get_value("/api/v1/workspaces", Some(&token)).await;
        list["current"].as_str().unwrap().to_owned()
    };
    let mut response = app
        .state
        .db
        .query("SELECT sealed_key FROM type::record('provider', $id)")
        .bind(("id", id.to_owned()))
        .await
        .unwrap();
    let rows: Vec<Value> = response.take(0).unwrap();
    let sealed = rows[0]["sealed_key"].as_str().unwrap().to_owned();
    assert!(only_new.is_current(&sealed));
    let opened = only_new.open(&sealed, &perpetuo_core::platform::crypto::provider_aad(&ws, id)).unwrap();
    assert_eq!(opened.expose(), VALID_KEY.as_bytes());
}
