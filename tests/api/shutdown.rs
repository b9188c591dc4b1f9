//! The real binary, a burst of requests, SIGTERM mid-burst: after a restart every answered
//! request has its usage record (the queue was drained, nothing lost).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock, VALID_KEY};

const JWT: &str = "a-jwt-secret-for-the-shutdown-test-0123456789";

#[tokio::test]
async fn burst_then_sigterm_loses_no_usage_record() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("perpetuo.db");
    let mock = Mock::start(Flavor::OpenAi).await;
    mock.set_default(Behavior::Drip(Duration::from_millis(25)));
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode([3u8; 32]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_perpetuo"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("surrealkv://{}", db_path.display()))
        .env("ENCRYPTION_KEY", &key)
        .env("JWT_SECRET", JWT)
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("RATE_LIMIT_IP_PER_MIN", "1000000")
        .env("RATE_LIMIT_KEY_PER_MIN", "1000000")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the perpetuo binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("perpetuo logged its address");
        if let Some(at) = line.find("listening on http://") {
            break line[at + "listening on ".len()..].trim().to_owned();
        }
    };
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    let signup: Value = post(
        "/api/v1/auth/signup",
        None,
        json!({"email": email("sigterm"), "password": PASSWORD, "setup_code": setup_code(JWT)}),
    )
    .await
    .json()
    .await
    .unwrap();
    let token = signup["token"].as_str().unwrap().to_owned();
    let workspace = signup["workspace"]["id"].as_str().unwrap().to_owned();
    let created = post(
        "/api/v1/providers",
        Some(&token),
        json!({"label": "P", "kind": "openai_compatible", "base_url": mock.base_url(), "api_key": VALID_KEY}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let pk: Value = post("/api/v1/keys", Some(&token), json!({"name": "burst"})).await.json().await.unwrap();
    let pk = pk["token"].as_str().unwrap().to_owned();

    // The burst: streams that each take a few hundred milliseconds upstream.
    let burst = (0..120).map(|i| {
        let (client, base, pk) = (client.clone(), base.clone(), pk.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(i * 3)).await;
            let response = client
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(pk)
                .json(&json!({"model": "mock-small", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await;
            match response {
                Ok(r) => r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    });
    let pid = child.id();
    let killer = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    };
    let (answered, ()) = tokio::join!(futures::future::join_all(burst), killer);
    let answered = answered.into_iter().filter(|ok| *ok).count();
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "graceful exit: {exit:?}");
    assert!(answered > 0, "some requests were answered before the shutdown");

    // Restart on the same files: every answered request has its record.
    let mut settings = perpetuo_core::platform::config::Settings::for_tests();
    settings.database_url = perpetuo_core::platform::config::DatabaseUrl::SurrealKv(db_path);
    settings.encryption_key = perpetuo_core::platform::secret::Secret32::new([3u8; 32]);
    let db = loop {
        match perpetuo_core::platform::db::Db::open(&settings).await {
            Ok(db) => break db,
            Err(e) if e.to_string().contains("already locked") => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("reopen: {e}"),
        }
    };
    let stored = ledger_records(&db, &workspace).await.len();
    eprintln!("burst: {answered} of 120 answered before the shutdown, {stored} recorded");
    assert_eq!(stored, answered, "every answered request was recorded");
}

#[test]
fn a_bad_setting_stops_the_binary_with_one_clear_line() {
    let short_key = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    let output = Command::new(env!("CARGO_BIN_EXE_perpetuo"))
        .env_clear()
        .env("ENCRYPTION_KEY", short_key)
        .env("JWT_SECRET", "a-jwt-secret-for-the-config-test-0123456789")
        .env("DATABASE_URL", "mem://")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "ENCRYPTION_KEY must be 32 bytes when base64 decoded\n");

    let output = Command::new(env!("CARGO_BIN_EXE_perpetuo")).arg("gen-secrets").env_clear().output().unwrap();
    assert!(output.status.success());
    let block = String::from_utf8_lossy(&output.stdout);
    assert!(block.contains("ENCRYPTION_KEY=") && block.contains("JWT_SECRET="), "{block}");
}

/// The release binary as the README's deployment section runs it: only the documented variables.
/// Its first lines say where it listens and which settings are in force, never a Leptos warning
/// about variables it does not need, and never a secret.
#[test]
fn the_binary_starts_cleanly_with_only_the_documented_variables() {
    let dir = tempfile::tempdir().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let jwt = "a-jwt-secret-for-the-start-up-test-0123456789";
    let mut child = Command::new(env!("CARGO_BIN_EXE_perpetuo"))
        .env_clear()
        .env("LEPTOS_SITE_ROOT", dir.path().join("site"))
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("ENCRYPTION_KEY", &key)
        .env("JWT_SECRET", jwt)
        .env("DATABASE_URL", format!("surrealkv://{}", dir.path().join("db").display()))
        .env("METRICS_TOKEN", "metrics-token-for-the-start-up-test")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the perpetuo binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("settings:")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("no settings line ({e}); saw:\n{}", lines.join("\n")),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(!log.contains("LEPTOS_OUTPUT_NAME"), "{log}");
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    let settings = lines.iter().find(|l| l.contains("settings:")).cloned().unwrap_or_default();
    for expected in ["surrealkv://", "per IP", "per API key", "METRICS_TOKEN required", "site root"] {
        assert!(settings.contains(expected), "{expected} missing: {settings}");
    }
    for secret in [key.as_str(), jwt, "metrics-token-for-the-start-up-test"] {
        assert!(!log.contains(secret), "a secret in the log: {log}");
    }
}
