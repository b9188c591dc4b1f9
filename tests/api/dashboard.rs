//! The dashboard over HTTP as a browser without JavaScript sees it: pages, form posts to server
//! functions, the session cookie, and workspace isolation through server functions.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in() {
    let app = spawn_app().await;
    for page in ["/", "/providers", "/keys", "/usage", "/workspaces"] {
        let response = app.client.get(app.url(page)).send().await.unwrap();
        assert!(response.status().is_redirection(), "{page}: {}", response.status());
        assert_eq!(location(&response), "/signin", "{page}");
    }
    let signin = app.client.get(app.url("/signin")).send().await.unwrap();
    assert_eq!(signin.status(), 200);
    assert!(signin.text().await.unwrap().contains("Sign in to Perpetuo"));
}

#[tokio::test]
async fn no_js_sign_up_lands_signed_in_with_a_safe_cookie() {
    let app = spawn_app().await;
    let client = new_client();
    let address = email("form");
    let response =
        app.post_form(&client, "/fn/sign_up", "/signup", &[("email", &address), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), 302);
    assert_eq!(location(&response), "/providers");
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("perpetuo_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
    let page = client.get(app.url("/providers")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&address));
    // Signed in: the sign-in page sends you to the dashboard.
    let signin = client.get(app.url("/signin")).send().await.unwrap();
    assert_eq!(location(&signin), "/providers");
}

#[tokio::test]
async fn secure_cookie_when_served_over_https() {
    let mut options = Options::default();
    options.settings.secure_cookies = true;
    let app = spawn_app_with(options).await;
    let response = app
        .post_form(&new_client(), "/fn/sign_up", "/signup", &[("email", &email("tls")), ("password", PASSWORD)])
        .await;
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn form_errors_come_back_readable_without_js() {
    let app = spawn_app().await;
    let client = new_client();
    let response = app.post_form(&client, "/fn/sign_up", "/signup", &[("email", "bad"), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), 302);
    let back = location(&response);
    assert!(back.contains("/signup?") && back.contains("__err="), "{back}");
    let page = client.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Enter a valid email address"), "error shown on the page");

    let response = app
        .post_form(
            &client,
            "/fn/sign_in",
            "/signin",
            &[("email", "nobody@example.com"), ("password", "wrong password 1")],
        )
        .await;
    let page = client.get(location(&response)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Invalid email or password."));
}

#[tokio::test]
async fn sign_in_rotates_the_session_and_sign_out_destroys_it() {
    let app = spawn_app().await;
    let address = email("rotate");
    let raw = cookie_client(None);
    let response = app.post_form(&raw, "/fn/sign_up", "/signup", &[("email", &address), ("password", PASSWORD)]).await;
    let before = set_cookie(&response).expect("signed in");

    // Sign in again from the same browser: the id must change, the old one must be dead.
    let same_browser = cookie_client(Some(&before));
    let response =
        app.post_form(&same_browser, "/fn/sign_in", "/signin", &[("email", &address), ("password", PASSWORD)]).await;
    assert_eq!(location(&response), "/providers");
    let after = set_cookie(&response).expect("new cookie at sign-in");
    assert_ne!(before, after, "session id rotated at sign-in");
    let stale = cookie_client(Some(&before));
    assert_eq!(location(&stale.get(app.url("/keys")).send().await.unwrap()), "/signin", "old id no longer works");
    let live = cookie_client(Some(&after));
    assert_eq!(live.get(app.url("/keys")).send().await.unwrap().status(), 200);

    // Sign out, then replay the cookie: the session is gone server-side, not just in the browser.
    let response = app.post_form(&live, "/fn/sign_out", "/providers", &[]).await;
    assert_eq!(location(&response), "/signin");
    assert_eq!(location(&live.get(app.url("/keys")).send().await.unwrap()), "/signin", "destroyed server-side");
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let address = email("csrf");
    for (header, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site"), ("origin", "null")] {
        let response = app
            .client
            .post(app.url("/fn/sign_up"))
            .header("accept", "text/html")
            .header(header, value)
            .form(&[("email", address.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}: {value}");
    }
    // Nothing was created: the same email can still sign up.
    app.api_signup(&address).await;
}

#[tokio::test]
async fn server_functions_never_cross_workspaces() {
    let app = spawn_app().await;
    let (_, ws_a, _) = app.api_signup(&email("alice")).await;
    let bob = new_client();
    let bob_email = email("bob");
    app.dashboard_signup(&bob, &bob_email).await;

    // Bob tries to switch into Alice's workspace by id.
    let response = app.post_form(&bob, "/fn/switch_workspace", "/workspaces", &[("workspace_id", &ws_a)]).await;
    let back = location(&response);
    assert!(back.contains("__err="), "refused: {back}");
    let page = bob.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("That workspace does not exist."), "404-style answer, no existence oracle");

    // Bob's session still points at his own workspace (JSON call, as the hydrated page makes it).
    let response = bob
        .post(app.url("/fn/current_session"))
        .header("origin", &app.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["user"]["email"], bob_email.as_str());
    assert_ne!(session["workspace"]["id"], ws_a.as_str());
    assert_eq!(session["workspaces"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_and_switch_workspaces_from_the_dashboard() {
    let app = spawn_app().await;
    let client = new_client();
    app.dashboard_signup(&client, &email("switch")).await;
    let response = app.post_form(&client, "/fn/create_workspace", "/workspaces", &[("name", "Research")]).await;
    assert!(location(&response).starts_with(&app.url("/workspaces")), "no-JS post returns to the page");
    let page = client.get(app.url("/workspaces")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Research") && page.contains("Switch to Research"));

    let session: Value = client
        .post(app.url("/fn/current_session"))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let research = session["workspaces"].as_array().unwrap().iter().find(|w| w["name"] == "Research").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app.post_form(&client, "/fn/switch_workspace", "/workspaces", &[("workspace_id", &research)]).await;
    assert_eq!(location(&response), "/providers");
    let session: Value = client
        .post(app.url("/fn/current_session"))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["workspace"]["name"], "Research");
}

/// The `name=value` part of the session cookie a response sets.
fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("perpetuo_session=") && !v.contains("Max-Age=0"))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// A client that always sends `cookie` and keeps no jar.
fn cookie_client(cookie: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert("cookie", cookie.parse().unwrap());
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}
