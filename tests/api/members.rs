//! What members may do, on every surface: use the workspace and manage the keys they created,
//! within the server's per-key limit; never prices, budgets, providers or invites (403 in REST and
//! on the dashboard alike). Invites an owner can list and revoke, and that answer at most one
//! question about who has an account.

use serde_json::{Value, json};

use crate::helpers::*;

/// An owner and a member of the owner's workspace: (owner token, member token, member email).
async fn team(app: &TestApp) -> (String, String, String) {
    let (owner, _, _) = app.api_signup(&email("owner")).await;
    let invite: Value = app.post_json("/api/v1/invites", Some(&owner), &json!({})).await.json().await.unwrap();
    let address = email("member");
    let joined = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": address, "password": PASSWORD, "invite": invite["token"]}),
        )
        .await;
    assert_eq!(joined.status(), 201);
    let joined: Value = joined.json().await.unwrap();
    (owner, joined["token"].as_str().unwrap().to_owned(), address)
}

async fn keys(app: &TestApp, token: &str) -> Vec<Value> {
    app.get_value("/api/v1/keys", Some(token)).await["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn members_manage_their_own_keys_and_nothing_that_sets_money() {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(600).unwrap();
    let app = spawn_app_with(options).await;
    let (owner, member, member_email) = team(&app).await;
    let (owner_key, _) = app.add_key(&owner, "owners").await;

    // Keys: theirs, within the server's limit; not the owner's.
    let fast =
        app.post_json("/api/v1/keys", Some(&member), &json!({"name": "fast", "rate_limit_per_min": 100_000})).await;
    assert_eq!(api_error(fast, 403).await["error"]["code"], "forbidden");
    let mine = app.post_json("/api/v1/keys", Some(&member), &json!({"name": "mine", "rate_limit_per_min": 600})).await;
    assert_eq!(mine.status(), 201);
    let mine: Value = mine.json().await.unwrap();
    let mine = mine["key"]["id"].as_str().unwrap().to_owned();
    let revoke = |token: &str, id: &str| {
        let (token, url) = (token.to_owned(), app.url(&format!("/api/v1/keys/{id}/revoke")));
        let client = app.client.clone();
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(api_error(revoke(&member, &owner_key).await, 403).await["error"]["code"], "forbidden");
    assert_eq!(app.delete(&format!("/api/v1/keys/{owner_key}"), &member).await.status(), 403);
    let listed = keys(&app, &member).await;
    let theirs = listed.iter().find(|k| k["id"] == mine.as_str()).unwrap();
    assert_eq!((theirs["created_by"].as_str(), theirs["yours"].as_bool()), (Some(member_email.as_str()), Some(true)));
    let owners = listed.iter().find(|k| k["id"] == owner_key.as_str()).unwrap();
    assert_eq!(owners["yours"], false, "a member sees the owner's key but may not manage it");
    assert_eq!(revoke(&member, &mine).await.status(), 200);
    // The owner manages every key, a member's included.
    assert!(keys(&app, &owner).await.iter().all(|k| k["yours"] == true));
    assert_eq!(app.delete(&format!("/api/v1/keys/{mine}"), &owner).await.status(), 204);

    // Money: prices and budgets are the owner's, as are providers and invites.
    let price = json!({"kind": "openai", "model": "gpt-4o-mini", "input_per_million": 0.0, "output_per_million": 0.0});
    assert_eq!(app.post_json("/api/v1/prices", Some(&member), &price).await.status(), 403);
    let query = "/api/v1/prices?kind=openai&model=gpt-4o-mini";
    assert_eq!(app.delete(query, &member).await.status(), 403);
    let budget =
        app.client.put(app.url("/api/v1/budgets/workspace")).bearer_auth(&member).json(&json!({"usd_limit": 1}));
    assert_eq!(budget.send().await.unwrap().status(), 403);
    let key_budget = app.client.put(app.url(&format!("/api/v1/keys/{owner_key}/budget"))).bearer_auth(&member);
    assert_eq!(key_budget.json(&json!({"usd_limit": 1})).send().await.unwrap().status(), 403);
    assert_eq!(app.delete("/api/v1/budgets/workspace", &member).await.status(), 403);
    assert_eq!(app.get_json("/api/v1/invites", Some(&member)).await.status(), 403);
    assert_eq!(app.post_json("/api/v1/prices", Some(&owner), &price).await.status(), 200, "the owner may");

    // The dashboard says the same, with the same status.
    let browser = new_client();
    let signed_in =
        app.post_form(&browser, "/fn/sign_in", "/signin", &[("email", &member_email), ("password", PASSWORD)]).await;
    assert_eq!(signed_in.status(), 302);
    let fields =
        [("kind", "openai"), ("model", "gpt-4o-mini"), ("input_per_million", "0"), ("output_per_million", "0")];
    let refused = app.server_fn(&browser, "set_price", &fields).await;
    assert_eq!(refused.status(), 403, "a member refused on the dashboard is a 403, as in REST");
    let body = refused.text().await.unwrap();
    assert!(body.contains("Only the workspace's owners"), "{body}");
    let listed = app.server_fn(&browser, "list_invites", &[]).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap(), Value::Null, "no invites shown to a member");
}

#[tokio::test]
async fn invites_are_listed_revoked_and_answer_at_most_one_question() {
    let app = spawn_app().await;
    let (owner, _, _) = app.api_signup(&email("owner")).await;
    let make = || async {
        let invite: Value = app.post_json("/api/v1/invites", Some(&owner), &json!({})).await.json().await.unwrap();
        invite["token"].as_str().unwrap().to_owned()
    };
    let (first, second) = (make().await, make().await);
    let listed = app.get_value("/api/v1/invites", Some(&owner)).await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(!listed.to_string().contains(&first) && !listed.to_string().contains(&second), "never a token");
    assert!(data.iter().all(|i| i["created_by"].as_str().is_some_and(|e| e.starts_with("owner-"))), "{listed}");
    // Revoked: its link no longer works.
    let id = data[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/api/v1/invites/{id}"), &owner).await.status(), 204);
    assert_eq!(app.delete(&format!("/api/v1/invites/{id}"), &owner).await.status(), 404);
    assert_eq!(app.get_value("/api/v1/invites", Some(&owner)).await["data"].as_array().unwrap().len(), 1);
    let app = &app;
    let signup = |invite: String, address: String, password: &'static str| async move {
        app.post_json("/api/v1/auth/signup", None, &json!({"email": address, "password": password, "invite": invite}))
            .await
    };
    // Newest first: the revoked one is `second`.
    assert_eq!(signup(second, email("late"), PASSWORD).await.status(), 403);

    // An existing email with a wrong password: refused, and the invite is used up, so it cannot
    // be asked about a second address.
    let existing = email("existing");
    app.api_signup(&existing).await;
    let probe = signup(first.clone(), existing.clone(), "not the right password at all").await;
    assert_eq!(api_error(probe, 403).await["error"]["code"], "forbidden");
    assert_eq!(signup(first, email("fresh"), PASSWORD).await.status(), 403, "used up by the failed attempt");

    // An existing account accepts an invite with its own password, and joins as a member.
    let third = make().await;
    let accepted = signup(third, existing.clone(), PASSWORD).await;
    assert_eq!(accepted.status(), 201);
    let accepted: Value = accepted.json().await.unwrap();
    let token = accepted["token"].as_str().unwrap();
    let theirs = app.get_value("/api/v1/workspaces", Some(token)).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 2, "their own workspace and the owner's: {theirs}");
    assert_eq!(app.post_json("/api/v1/invites", Some(token), &json!({})).await.status(), 403, "a member");
}

/// Owners set the budget and limits every new key gets; a member's new key gets them without a
/// say, and the template itself limits no call (the keys made before keep their own terms).
#[tokio::test]
async fn every_new_key_gets_the_owners_defaults_a_members_too() {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(600).unwrap();
    let app = spawn_app_with(options).await;
    let mock = crate::mock::Mock::start(crate::mock::Flavor::OpenAi).await;
    let (owner, member, _) = team(&app).await;
    app.add_provider(&owner, "Mock", "openai_compatible", &mock.base_url(), crate::mock::VALID_KEY).await;
    let (before_id, before) = app.add_key(&owner, "before").await;
    let put = |path: &str, token: &str, body: Value| {
        let (client, url, token) = (app.client.clone(), app.url(path), token.to_owned());
        async move { client.put(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    // Only owners set them.
    assert_eq!(put("/api/v1/budgets/new-keys", &member, json!({"token_limit": 300})).await.status(), 403);
    assert_eq!(put("/api/v1/limits/new-keys", &member, json!({"max_in_flight": 1})).await.status(), 403);
    let budget = put("/api/v1/budgets/new-keys", &owner, json!({"token_limit": 300})).await;
    assert_eq!(budget.status(), 200);
    assert_eq!(budget.json::<Value>().await.unwrap()["scope"], json!({"kind": "new_keys"}));
    let limits = put("/api/v1/limits/new-keys", &owner, json!({"max_in_flight": 1, "tokens_per_min": 50_000})).await;
    assert_eq!(limits.status(), 200);

    let created = app.post_json("/api/v1/keys", Some(&member), &json!({"name": "members"})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let (id, key) = (created["key"]["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    let budgets = app.get_value("/api/v1/budgets", Some(&member)).await["data"].as_array().unwrap().clone();
    let own =
        budgets.iter().find(|b| b["scope"] == json!({"kind": "key", "key_id": id})).expect("the key has a budget");
    assert_eq!(own["token_limit"], 300, "{own}");
    assert!(
        budgets.iter().all(|b| b["scope"] != json!({"kind": "key", "key_id": before_id})),
        "keys made before keep their terms"
    );
    let limits = app.get_value("/api/v1/limits", Some(&member)).await["data"].as_array().unwrap().clone();
    let own = limits.iter().find(|l| l["scope"] == json!({"kind": "key", "id": id})).expect("the key has limits");
    assert_eq!((own["max_in_flight"].as_u64(), own["tokens_per_min"].as_u64()), (Some(1), Some(50_000)), "{own}");

    // The member's key is held to its budget: a call that could pass 300 tokens is refused.
    let call = json!({"model": "mock-small", "max_tokens": 500, "messages": [{"role": "user", "content": "Hello"}]});
    let refused = app.post_json("/v1/chat/completions", Some(key), &call).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "insufficient_quota");
    // The key made before is not, and the template itself limits nothing.
    assert_eq!(app.post_json("/v1/chat/completions", Some(&before), &call).await.status(), 200);
}
