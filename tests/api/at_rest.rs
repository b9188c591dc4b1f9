//! A stolen copy of the database files holds neither provider keys nor API keys.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn database_files_never_contain_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.settings.database_url =
        perpetuo_core::platform::config::DatabaseUrl::SurrealKv(dir.path().join("perpetuo.db"));
    let app = spawn_app_with(options).await;
    let (token, _, _) = app.api_signup(&email("atrest")).await;
    let provider_key = "sk-live-PLAINTEXT-provider-key-7d1e0c";
    app.post_json("/api/v1/providers", Some(&token), &json!({"label": "P", "kind": "openai", "api_key": provider_key}))
        .await;
    let (_, api_token) = app.add_key(&token, "k").await;
    // Force everything to disk: stop the app, and wait until its engine has let go of the files
    // (a second open succeeds only then).
    let settings = app.state.settings.as_ref().clone();
    app.stop().await;
    let reopened = poll(std::time::Duration::from_secs(10), || async {
        perpetuo_core::platform::db::Db::open(&settings).await.ok()
    })
    .await;
    drop(reopened.expect("the database was released"));

    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
                continue;
            }
            let content = std::fs::read(entry.path()).unwrap();
            files += 1;
            bytes += content.len();
            for (what, needle) in [
                ("provider key", provider_key.as_bytes()),
                ("API key", api_token.as_bytes()),
                ("API key body", &api_token.as_bytes()[3..]),
            ] {
                assert!(!contains(&content, needle), "{what} found in {}", entry.path().display());
            }
        }
    }
    assert!(files > 0 && bytes > 0, "the scan saw the database files");
    // The sanity check that the scan can find things: the email is stored in the clear.
    let mut found_email = false;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if contains(&std::fs::read(entry.path()).unwrap(), b"atrest-") {
                found_email = true;
            }
        }
    }
    assert!(found_email, "the scan would have found a stored value");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
