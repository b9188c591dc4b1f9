//! Perpetuo as a process: the real binary started with a database URL and settings, and the
//! helpers the process tests share (a workspace over HTTP, bursts of calls, the request log read
//! back, exactly-once checks).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::*;
use crate::mock::{Mock, VALID_KEY};

/// The processes' `JWT_SECRET`, from which their setup code comes.
pub const JWT_SECRET: &str = "a-jwt-secret-for-the-ledger-tests-0123456789";

/// The `perpetuo` binary on a file database in `dir`, and its address.
pub struct Running {
    child: Child,
    pub base: String,
    /// The log lines after the one with the address.
    log: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

impl Running {
    pub fn start(dir: &Path) -> Self {
        let database = format!("surrealkv://{}", dir.join("perpetuo.db").display());
        Self::start_with(dir, &[("DATABASE_URL", database)])
    }

    /// The binary with `env` on top of the defaults (a database URL among them).
    pub fn start_with(dir: &Path, env: &[(&str, String)]) -> Self {
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let mut command = Command::new(env!("CARGO_BIN_EXE_perpetuo"));
        command.env_clear();
        command
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENCRYPTION_KEY", &key)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("ALLOW_PRIVATE_UPSTREAMS", "true")
            .env("RATE_LIMIT_IP_PER_MIN", "100000000")
            .env("RATE_LIMIT_KEY_PER_MIN", "100000000")
            .env("RATE_LIMIT_LOGIN_PER_MIN", "100000")
            .env("RUST_LOG", "warn,perpetuo=info");
        // The caller's settings win over the defaults above.
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .current_dir(dir)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the perpetuo binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // `TEST_LOG=1` shows the process's log.
        let show = std::env::var_os("TEST_LOG").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if show {
                    eprintln!("[perpetuo] {line}");
                }
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx.recv_timeout(Duration::from_secs(120)).expect("perpetuo logged its address");
            if let Some(at) = line.find("listening on http://") {
                break line[at + "listening on ".len()..].trim().to_owned();
            }
        };
        Self { child, base, log: std::sync::Mutex::new(rx) }
    }

    /// The next log line containing `needle`, waiting up to `within`; `None` if none came.
    pub fn log_line(&self, needle: &str, within: Duration) -> Option<String> {
        let log = self.log.lock().unwrap();
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// SIGTERM, and waits until the process has exited (its database closed).
    pub fn stop(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    pub fn kill_9(&mut self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-up workspace with one provider (the mock) and one gateway key: (token, key).
pub async fn workspace(client: &reqwest::Client, base: &str, mock: &Mock) -> (String, String) {
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // `SIGNUP=invite` (the default): the first account gives the setup code.
    let first = json!({"email": email("ledger"), "password": PASSWORD, "setup_code": setup_code(JWT_SECRET)});
    let signup = post("/api/v1/auth/signup", None, first).await;
    let token = signup["token"].as_str().unwrap().to_owned();
    let provider =
        json!({"label": "P", "kind": "openai_compatible", "base_url": mock.base_url(), "api_key": VALID_KEY});
    post("/api/v1/providers", Some(&token), provider).await;
    let key = post("/api/v1/keys", Some(&token), json!({"name": "burst"})).await;
    (token, key["token"].as_str().unwrap().to_owned())
}

/// Fires `total` chat calls, `concurrency` at a time; returns the request ids of those whose
/// whole answer arrived.
pub async fn burst(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    total: usize,
    concurrency: usize,
    answered: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let calls = (0..total).map(|i| {
        let (client, url, key, gate, answered) = (
            client.clone(),
            format!("{base}/v1/chat/completions"),
            key.to_owned(),
            Arc::clone(&gate),
            Arc::clone(&answered),
        );
        async move {
            let Ok(_permit) = gate.acquire().await else { return };
            let body =
                json!({"model": "mock-small", "stream": i % 2 == 0, "messages": [{"role": "user", "content": "hi"}]});
            let Ok(response) = client.post(&url).bearer_auth(&key).json(&body).send().await else { return };
            let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let ok = response.status() == 200;
            // Answered: the status and the whole body reached the client.
            if let (Some(id), Ok(bytes)) = (id, response.bytes().await)
                && ok
                && (!bytes.starts_with(b"data:") || bytes.ends_with(b"data: [DONE]\n\n"))
            {
                answered.lock().unwrap().push(id);
            }
        }
    });
    futures::future::join_all(calls).await;
}

/// Every request id in the request log of the token's workspace, read page by page once the
/// ledger holds at least `at_least` records (bounded wait).
pub async fn recorded_ids(client: &reqwest::Client, base: &str, token: &str, at_least: usize) -> Vec<String> {
    let read_all = || async {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/v1/requests?limit=500");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = client.get(&url).bearer_auth(token).send().await.ok()?.json().await.ok()?;
            ids.extend(page["data"].as_array()?.iter().filter_map(|r| r["request_id"].as_str().map(str::to_owned)));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Some(ids),
            }
        }
    };
    poll(Duration::from_secs(60), || async { read_all().await.filter(|ids| ids.len() >= at_least) })
        .await
        .unwrap_or_else(|| panic!("fewer than {at_least} records reached the ledger"))
}

pub fn assert_exactly_once(answered: &[String], recorded: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in recorded {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<&&str> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    let missing: Vec<&String> = answered.iter().filter(|id| !counts.contains_key(id.as_str())).collect();
    assert!(missing.is_empty(), "{} answered requests have no record: {missing:?}", missing.len());
}

/// The cost of every request in the workspace's log (unpriced ones count 0), once at least
/// `at_least` records are there.
pub async fn recorded_costs(client: &reqwest::Client, base: &str, token: &str, at_least: usize) -> Vec<i64> {
    let read_all = || async {
        let mut costs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/v1/requests?limit=500");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = client.get(&url).bearer_auth(token).send().await.ok()?.json().await.ok()?;
            costs.extend(page["data"].as_array()?.iter().map(|r| r["cost_nanos"].as_i64().unwrap_or(0)));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Some(costs),
            }
        }
    };
    poll(Duration::from_secs(60), || async { read_all().await.filter(|c| c.len() >= at_least) })
        .await
        .unwrap_or_else(|| panic!("fewer than {at_least} records reached the ledger"))
}
