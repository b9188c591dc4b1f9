//! Data on a `surrealkv://` directory survives a restart: users, and browser sessions.

use serde_json::json;

use crate::helpers::*;

fn surrealkv_options(dir: &std::path::Path) -> Options {
    let mut options = Options::default();
    options.settings.database_url = perpetuo_core::platform::config::DatabaseUrl::SurrealKv(dir.join("perpetuo.db"));
    options
}

/// The embedded engine releases its lock file when its last handle is gone, which happens a
/// moment after the app stops; a restarting process would wait the same way.
async fn reopen(dir: &std::path::Path) -> Options {
    let mut options = surrealkv_options(dir);
    for _ in 0..100 {
        match perpetuo_core::platform::db::Db::open(&options.settings).await {
            Ok(db) => {
                options.db = Some(db);
                return options;
            }
            Err(e) if e.to_string().contains("already locked") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    }
    panic!("the database lock was never released");
}

#[tokio::test]
async fn users_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let address = email("restart");

    let first = spawn_app_with(surrealkv_options(dir.path())).await;
    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    let response =
        first.post_form(&raw, "/fn/sign_up", "/signup", &[("email", &address), ("password", PASSWORD)]).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    first.stop().await;

    let second = spawn_app_with(reopen(dir.path()).await).await;
    // The user can still sign in...
    let token = second.post_json("/api/v1/auth/token", None, &json!({"email": address, "password": PASSWORD})).await;
    assert_eq!(token.status(), 200);
    // ...and the browser session from before the restart is still signed in.
    let page = raw.get(second.url("/providers")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200, "session survived");
    assert!(page.text().await.unwrap().contains(&address));
    second.stop().await;
}
