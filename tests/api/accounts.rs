//! The management API's accounts, tokens and workspaces, and isolation between users.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn signup_returns_user_workspace_and_a_working_token() {
    let app = spawn_app().await;
    let address = email("signup");
    let response = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": format!("  {}  ", address.to_uppercase()), "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], address, "email normalised");
    assert_eq!(body["workspace"]["name"], "Personal");
    let token = body["token"].as_str().unwrap();
    let list: Value = app.get_value("/api/v1/workspaces", Some(token)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], body["workspace"]["id"]);
    assert!(body.to_string().find(PASSWORD).is_none());
}

#[tokio::test]
async fn duplicate_signup_is_409() {
    let app = spawn_app().await;
    let address = email("dup");
    app.api_signup(&address).await;
    let response = app
        .post_json("/api/v1/auth/signup", None, &json!({"email": address, "password": "another password 123"}))
        .await;
    let body = api_error(response, 409).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("already exists"));
}

#[tokio::test]
async fn signup_validates_input() {
    let app = spawn_app().await;
    for (email, password) in
        [("not-an-email", PASSWORD), ("ok@example.com", "short"), ("ok@example.com", &"x".repeat(1025))]
    {
        let response = app.post_json("/api/v1/auth/signup", None, &json!({"email": email, "password": password})).await;
        api_error(response, 400).await;
    }
    let response = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body = api_error(response, 400).await;
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn token_with_right_and_wrong_password() {
    let app = spawn_app().await;
    let address = email("token");
    let (_, ws, _) = app.api_signup(&address).await;
    let ok = app.post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD})).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["workspace"]["id"], ws.as_str());
    let expires_at = body["expires_at"].as_i64().unwrap();
    let now = perpetuo_core::platform::db::now_ms();
    assert!((3_500_000..=3_600_000).contains(&(expires_at - now)), "one hour: {}", expires_at - now);

    let wrong =
        app.post_json("/api/v1/auth/token", None, &json!({"email": address, "password": "wrong password!!"})).await;
    let wrong_body = api_error(wrong, 401).await;
    let unknown = app
        .post_json("/api/v1/auth/token", None, &json!({"email": email("nobody"), "password": "wrong password!!"}))
        .await;
    let unknown_body = api_error(unknown, 401).await;
    assert_eq!(wrong_body, unknown_body, "no user enumeration: identical answers");
}

#[tokio::test]
async fn tampered_expired_and_none_tokens_are_401() {
    let app = spawn_app().await;
    let (token, ws, user) = app.api_signup(&email("jwt")).await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();

    // Tampered payload (other workspace), original signature.
    let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap().replace(&ws, "aaaaaaaaaaaaaaaaaaaa");
    let tampered = format!("{}.{}.{}", parts[0], b64.encode(payload), parts[2]);
    // alg: none.
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    // Expired, properly signed with the server's secret.
    let now = perpetuo_core::platform::db::now_ms() / 1000;
    let claims = json!({"sub": user, "ws": ws, "iat": now - 7200, "exp": now - 10, "iss": "perpetuo"});
    let secret = app.state.settings.jwt_secret.expose().to_vec();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
    )
    .unwrap();

    for bad in [tampered.as_str(), none.as_str(), expired.as_str(), "garbage", ""] {
        let response = app.get_json("/api/v1/workspaces", Some(bad)).await;
        api_error(response, 401).await;
    }
    let response = app.client.get(app.url("/api/v1/workspaces")).send().await.unwrap();
    api_error(response, 401).await;
    assert_eq!(app.get_json("/api/v1/workspaces", Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn workspaces_are_created_and_scoped_to_their_members() {
    let app = spawn_app().await;
    let a = email("alice");
    let (token_a, ws_a, _) = app.api_signup(&a).await;
    let b = email("bob");
    let (token_b, ws_b, _) = app.api_signup(&b).await;

    let created = app.post_json("/api/v1/workspaces", Some(&token_a), &json!({"name": "Team A"})).await;
    assert_eq!(created.status(), 201);
    let team: Value = created.json().await.unwrap();
    assert_eq!(team["name"], "Team A");
    let list: Value = app.get_value("/api/v1/workspaces", Some(&token_a)).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Personal", "Team A"]);

    // B lists only B's workspace.
    let list_b: Value = app.get_value("/api/v1/workspaces", Some(&token_b)).await;
    assert_eq!(list_b["data"].as_array().unwrap().len(), 1);
    assert_eq!(list_b["data"][0]["id"], ws_b.as_str());

    // B, with B's own valid password, cannot get a token for A's workspaces: same 401 as a bad password.
    for target in [ws_a.as_str(), team["id"].as_str().unwrap()] {
        let response = app
            .post_json("/api/v1/auth/token", None, &json!({"email": b, "password": PASSWORD, "workspace_id": target}))
            .await;
        api_error(response, 401).await;
    }
    // A can pick the team workspace explicitly.
    let response = app
        .post_json("/api/v1/auth/token", None, &json!({"email": a, "password": PASSWORD, "workspace_id": team["id"]}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["workspace"]["name"], "Team A");

    let empty = app.post_json("/api/v1/workspaces", Some(&token_a), &json!({"name": "   "})).await;
    api_error(empty, 400).await;
}

#[tokio::test]
async fn user_b_cannot_get_a_token_into_user_a_workspace() {
    let app = spawn_app().await;
    let (_, ws_a, _) = app.api_signup(&email("owner")).await;
    let b = email("intruder");
    app.api_signup(&b).await;
    let response = app
        .post_json("/api/v1/auth/token", None, &json!({"email": b, "password": PASSWORD, "workspace_id": ws_a}))
        .await;
    api_error(response, 401).await;
}

#[tokio::test]
async fn login_attempts_are_limited_per_email() {
    let mut options = Options::default();
    options.settings.rate_limit_login_per_min = std::num::NonZeroU32::new(3).unwrap();
    let app = spawn_app_with(options).await;
    let target = email("victim");
    let statuses: Vec<u16> = futures_statuses(&app, &target, 5).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 2, "{statuses:?}");
    let limited =
        app.post_json("/api/v1/auth/token", None, &json!({"email": target, "password": "guess number x"})).await;
    assert!(limited.headers().contains_key("retry-after"));
    let body = api_error(limited, 429).await;
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
    // A minute later the budget is back.
    app.clock.advance(std::time::Duration::from_secs(60));
    let again =
        app.post_json("/api/v1/auth/token", None, &json!({"email": target, "password": "guess number y"})).await;
    assert_eq!(again.status(), 401);
}

async fn futures_statuses(app: &TestApp, target: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let response = app
            .post_json("/api/v1/auth/token", None, &json!({"email": target, "password": format!("guess number {i}")}))
            .await;
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_logs() {
    let app = spawn_app().await;
    let address = email("logs");
    let secret_password = "a-very-distinctive-password-4711";
    let response =
        app.post_json("/api/v1/auth/signup", None, &json!({"email": address, "password": secret_password})).await;
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    app.post_json(
        "/api/v1/auth/token",
        None,
        &json!({"email": address, "password": "wrong-distinctive-password-0815"}),
    )
    .await;
    app.get_json("/api/v1/workspaces", Some(&token)).await;
    let client = new_client();
    app.post_form(&client, "/fn/sign_in", "/signin", &[("email", &address), ("password", secret_password)]).await;
    let logs = captured_logs();
    assert!(logs.contains("/api/v1/auth/signup"), "the capture works: requests are logged");
    for secret in [secret_password, "wrong-distinctive-password-0815", token.as_str()] {
        assert!(!logs.contains(secret), "secret found in logs");
    }
}

/// Signs `client` in through the dashboard form.
async fn dashboard_sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    address: &str,
    password: &str,
) -> reqwest::Response {
    app.post_form(client, "/fn/sign_in", "/signin", &[("email", address), ("password", password)]).await
}

/// Whether `client`'s session still opens the dashboard.
async fn signed_in(app: &TestApp, client: &reqwest::Client) -> bool {
    let page = client.get(app.url("/providers")).send().await.unwrap();
    page.status() == 200
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_every_other_session_and_token() {
    let app = spawn_app().await;
    let address = email("change");
    let (first_token, _, _) = app.api_signup(&address).await;
    let laptop = new_client();
    assert_eq!(dashboard_sign_in(&app, &laptop, &address, PASSWORD).await.status(), 302);
    assert!(signed_in(&app, &laptop).await);

    let change = |token: String, current: &'static str, new: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/auth/password",
                Some(&token),
                &json!({"current_password": current, "new_password": new}),
            )
            .await
        }
    };
    let wrong = change(first_token.clone(), "not the password", "a brand new passphrase").await;
    assert_eq!(api_error(wrong, 400).await["error"]["message"], "The current password is not right.");
    assert_eq!(change(first_token.clone(), PASSWORD, "short").await.status(), 400, "the new one keeps the rules");
    let changed = change(first_token.clone(), PASSWORD, "a brand new passphrase").await;
    assert_eq!(changed.status(), 200);
    let fresh: Value = changed.json().await.unwrap();
    let fresh_token = fresh["token"].as_str().unwrap().to_owned();

    assert_eq!(app.get_json("/api/v1/keys", Some(&first_token)).await.status(), 401, "the old token is void");
    assert_eq!(app.get_json("/api/v1/keys", Some(&fresh_token)).await.status(), 200, "the new one works");
    assert!(!signed_in(&app, &laptop).await, "the other browser is signed out");
    let old = app.post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD})).await;
    assert_eq!(old.status(), 401);
    let new = app
        .post_json("/api/v1/auth/token", None, &json!({"email": address, "password": "a brand new passphrase"}))
        .await;
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn the_dashboard_changes_the_password_without_javascript_and_stays_signed_in() {
    let app = spawn_app().await;
    let address = email("change-form");
    let (phone, desk) = (new_client(), new_client());
    app.dashboard_signup(&desk, &address).await;
    assert_eq!(dashboard_sign_in(&app, &phone, &address, PASSWORD).await.status(), 302);
    let fields = [("current_password", PASSWORD), ("new_password", "another long passphrase")];
    let response = app.post_form(&desk, "/fn/change_password", "/workspaces", &fields).await;
    assert_eq!((response.status().as_u16(), location(&response)), (302, "/workspaces".to_owned()));
    let page = desk.get(app.url("/workspaces")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Password changed."), "the notice is shown once");
    assert!(signed_in(&app, &desk).await, "this browser stays signed in");
    assert!(!signed_in(&app, &phone).await, "the other one is not");
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_token_at_once() {
    let app = spawn_app().await;
    let address = email("everywhere");
    let (token_a, _, _) = app.api_signup(&address).await;
    let token_b: Value = app
        .post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD}))
        .await
        .json()
        .await
        .unwrap();
    let token_b = token_b["token"].as_str().unwrap().to_owned();
    let (browser_a, browser_b) = (new_client(), new_client());
    dashboard_sign_in(&app, &browser_a, &address, PASSWORD).await;
    dashboard_sign_in(&app, &browser_b, &address, PASSWORD).await;
    assert!(signed_in(&app, &browser_a).await && signed_in(&app, &browser_b).await);

    // From the dashboard (a form post), it ends this browser's session too.
    let response = app.post_form(&browser_a, "/fn/sign_out_everywhere", "/workspaces", &[]).await;
    assert_eq!(location(&response), "/signin");
    for browser in [&browser_a, &browser_b] {
        assert!(!signed_in(&app, browser).await);
        let call = app.server_fn(browser, "list_providers", &[]).await;
        assert!(!call.status().is_success());
        assert!(call.text().await.unwrap().contains("Unauthenticated"), "the data is refused too");
    }
    for token in [&token_a, &token_b] {
        assert_eq!(app.get_json("/api/v1/keys", Some(token)).await.status(), 401);
    }

    // Through the API too; signing in again works.
    let again: Value = app
        .post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD}))
        .await
        .json()
        .await
        .unwrap();
    let again = again["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json("/api/v1/keys", Some(&again)).await.status(), 200);
    assert_eq!(app.post_json("/api/v1/auth/signout-all", Some(&again), &json!({})).await.status(), 204);
    assert_eq!(app.get_json("/api/v1/keys", Some(&again)).await.status(), 401);
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime_however_active() {
    let mut options = Options::default();
    options.settings.session_max_age = std::time::Duration::from_secs(3600);
    let app = spawn_app_with(options).await;
    let (old, fresh) = (new_client(), new_client());
    let address = email("lifetime");
    app.dashboard_signup(&old, &address).await;
    assert!(signed_in(&app, &old).await, "young: good");
    // Every session signed in so far is made two hours old, as if it had been kept busy since.
    let db = &app.state.db;
    let mut response = db.query("SELECT record::id(id) AS id, data FROM session").await.unwrap();
    let rows: Vec<Value> = response.take(0).unwrap();
    assert!(!rows.is_empty());
    let two_hours_ago = perpetuo_core::platform::db::now_ms() - 2 * 3_600_000;
    for row in rows {
        let mut data: Value = serde_json::from_str(row["data"].as_str().unwrap()).unwrap();
        data["signed_in_at"] = json!(two_hours_ago);
        db.query("UPDATE type::record('session', $id) SET data = $data RETURN NONE")
            .bind(("id", row["id"].as_str().unwrap().to_owned()))
            .bind(("data", data.to_string()))
            .await
            .unwrap()
            .check()
            .unwrap();
    }
    dashboard_sign_in(&app, &fresh, &address, PASSWORD).await;
    assert!(!signed_in(&app, &old).await, "past its lifetime: ended, however active");
    assert!(signed_in(&app, &fresh).await, "a session signed in now is good");
}

/// Pages of one session loaded in parallel while the session is ended elsewhere: every request
/// must answer. Known to fail: under the load of the whole suite, one of the parallel page loads
/// sometimes never answers, also without the sign-out (the same hang with only parallel loads);
/// not found yet, so it is not run by default (`cargo test --test api -- --ignored concurrent`).
#[tokio::test]
#[ignore = "reproduces a hang of parallel page loads on one session under load (see the stop's note)"]
async fn concurrent_page_loads_on_one_session_all_answer_while_it_ends() {
    let app = spawn_app().await;
    let address = email("race");
    let (token, _, _) = app.api_signup(&address).await;
    for round in 0..30 {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        dashboard_sign_in(&app, &browser, &address, PASSWORD).await;
        let pages: Vec<_> = (0..4)
            .map(|_| {
                let (browser, url) = (browser.clone(), app.url("/providers"));
                tokio::spawn(async move { browser.get(url).send().await.map(|r| r.status().as_u16()) })
            })
            .collect();
        let fresh: Value = app
            .post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD}))
            .await
            .json()
            .await
            .unwrap();
        let _ = token;
        app.post_json("/api/v1/auth/signout-all", Some(fresh["token"].as_str().unwrap()), &json!({})).await;
        for page in pages {
            let status = page.await.unwrap();
            assert!(status.is_ok(), "round {round}: a page never answered: {status:?}");
        }
    }
}

/// `SIGNUP=invite` (the default): the first account with the setup code, then only invite links work; an
/// invite is single use and joins its workspace as a member, who uses it but cannot manage its
/// providers or invites.
#[tokio::test]
async fn sign_up_by_invitation_with_members_and_owners() {
    let mut options = Options::default();
    options.settings.signup = perpetuo_core::platform::config::SignupMode::Invite;
    let app = spawn_app_with(options).await;
    let (owner_token, workspace, _) = app.api_signup_first(&email("first")).await;
    let stranger =
        app.post_json("/api/v1/auth/signup", None, &json!({"email": email("stranger"), "password": PASSWORD})).await;
    assert_eq!(api_error(stranger, 403).await["error"]["code"], "forbidden");

    let invite = app.post_json("/api/v1/invites", Some(&owner_token), &json!({})).await;
    assert_eq!(invite.status(), 201);
    let invite: Value = invite.json().await.unwrap();
    let token = invite["token"].as_str().unwrap().to_owned();
    assert!(invite["path"].as_str().unwrap().ends_with(&token));

    let guest_email = email("guest");
    let joined = app
        .post_json("/api/v1/auth/signup", None, &json!({"email": guest_email, "password": PASSWORD, "invite": token}))
        .await;
    assert_eq!(joined.status(), 201);
    let joined: Value = joined.json().await.unwrap();
    assert_eq!(joined["workspace"]["id"], workspace.as_str(), "the invite's workspace, not a new one");
    let member_token = joined["token"].as_str().unwrap().to_owned();
    let again = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": email("second-guest"), "password": PASSWORD, "invite": token}),
        )
        .await;
    assert_eq!(api_error(again, 403).await["error"]["code"], "forbidden", "single use");

    // A member uses the workspace (lists providers, creates keys) but does not manage providers
    // or invites.
    assert_eq!(app.get_json("/api/v1/providers", Some(&member_token)).await.status(), 200);
    assert_eq!(app.post_json("/api/v1/keys", Some(&member_token), &json!({"name": "mine"})).await.status(), 201);
    let provider =
        json!({"label": "x", "kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"});
    assert_eq!(app.post_json("/api/v1/providers", Some(&member_token), &provider).await.status(), 403);
    assert_eq!(app.post_json("/api/v1/invites", Some(&member_token), &json!({})).await.status(), 403);
    assert_eq!(app.post_json("/api/v1/providers", Some(&owner_token), &provider).await.status(), 201);
}

#[tokio::test]
async fn closed_sign_up_still_lets_the_first_account_in_with_the_code_and_quotas_hold() {
    let mut options = Options::default();
    options.settings.signup = perpetuo_core::platform::config::SignupMode::Closed;
    options.settings.quotas.keys_per_workspace = 2;
    options.settings.quotas.workspaces_per_account = 2;
    let app = spawn_app_with(options).await;
    let (token, _, _) = app.api_signup_first(&email("admin")).await;
    let refused =
        app.post_json("/api/v1/auth/signup", None, &json!({"email": email("late"), "password": PASSWORD})).await;
    assert_eq!(refused.status(), 403);
    for n in 0..2 {
        assert_eq!(app.post_json("/api/v1/keys", Some(&token), &json!({"name": format!("k{n}")})).await.status(), 201);
    }
    let over = app.post_json("/api/v1/keys", Some(&token), &json!({"name": "k3"})).await;
    assert_eq!(api_error(over, 403).await["error"]["code"], "forbidden");
    assert_eq!(app.post_json("/api/v1/workspaces", Some(&token), &json!({"name": "Two"})).await.status(), 201);
    assert_eq!(app.post_json("/api/v1/workspaces", Some(&token), &json!({"name": "Three"})).await.status(), 403);
}

/// A server whose sign-up is not open (the default) belongs to whoever makes its first account:
/// that sign-up needs the setup code (from the log or `perpetuo setup-code`), through the API and
/// the dashboard alike. A stranger without it is refused; once an account exists the code is
/// worth nothing and the form no longer asks for it.
#[tokio::test]
async fn the_first_account_needs_the_setup_code() {
    let mut options = Options::default();
    options.settings.signup = perpetuo_core::platform::config::SignupMode::Invite;
    let app = spawn_app_with(options).await;
    let code = setup_code(app.state.settings.jwt_secret.expose_str().unwrap());

    let stranger = json!({"email": email("stranger"), "password": PASSWORD});
    let refused = api_error(app.post_json("/api/v1/auth/signup", None, &stranger).await, 403).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("setup code"), "{refused}");
    let guessed = json!({"email": email("stranger"), "password": PASSWORD, "setup_code": "2345-6789-ABCD-EFGH"});
    let refused = api_error(app.post_json("/api/v1/auth/signup", None, &guessed).await, 403).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("not right"), "{refused}");

    // The dashboard asks for it, and refuses a form without it, readably and without JavaScript.
    let browser = new_client();
    let page = browser.get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"name="setup_code""#) && page.contains("perpetuo setup-code"), "the field is on the form");
    let owner = email("operator");
    let fields = [("email", owner.as_str()), ("password", PASSWORD), ("invite", ""), ("setup_code", "")];
    let response = app.post_form(&browser, "/fn/sign_up", "/signup", &fields).await;
    let back = location(&response);
    assert!(back.contains("/signup?") && back.contains("__err="), "{back}");
    let page = browser.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("has no account yet"), "the reason is on the page");

    // As typed by a person: lower case, spaces for dashes.
    let typed = code.to_lowercase().replace('-', " ");
    let fields = [("email", owner.as_str()), ("password", PASSWORD), ("invite", ""), ("setup_code", typed.as_str())];
    let response = app.post_form(&browser, "/fn/sign_up", "/signup", &fields).await;
    assert_eq!(location(&response), "/providers", "the operator's account is made");

    let page = new_client().get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(r#"name="setup_code""#), "no longer asked for");
    let late = json!({"email": email("late"), "password": PASSWORD, "setup_code": code});
    let refused = api_error(app.post_json("/api/v1/auth/signup", None, &late).await, 403).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("invitation"), "{refused}");
}

/// `SIGNUP=open`: anyone may sign up, the first included, and no code is asked for.
#[tokio::test]
async fn open_sign_up_asks_no_setup_code() {
    let app = spawn_app().await;
    let page = new_client().get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(r#"name="setup_code""#));
    app.api_signup(&email("open-first")).await;
}
