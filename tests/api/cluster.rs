//! Several Perpetuo processes on one real SurrealDB server, as a user behind a load balancer sees
//! them: one account, session and key everywhere; revocations and provider edits reaching every
//! instance; a database restart survived; limits and budgets that hold across instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};
use crate::process::{Running, assert_exactly_once, recorded_ids};
use crate::surreal::{PASS, SurrealServer, USER};

/// `n` instances on one SurrealDB server, with `env` on top of the defaults.
pub struct Cluster {
    server: SurrealServer,
    nodes: Vec<Running>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `None` (the test is skipped) where no SurrealDB server binary is built.
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let server = SurrealServer::start(&dir.path().join("surreal")).await?;
        let mut nodes = Vec::new();
        for i in 0..n {
            let own = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&own).unwrap();
            let mut settings: Vec<(&str, String)> = vec![
                ("DATABASE_URL", format!("ws://{}", server.addr)),
                ("DATABASE_USER", USER.into()),
                ("DATABASE_PASS", PASS.into()),
                ("USAGE_SPOOL_DIR", own.join("spool").display().to_string()),
                ("SIGNUP", "open".into()),
                // The test server is built with the tests, lightly optimised: its leases take longer
                // than a production server's, and must not be mistaken for an unreachable one.
                ("SHARED_LIMIT_TIMEOUT_MS", "3000".into()),
                // The tests send a thousand calls at once from one address.
                ("MAX_CONNECTIONS_PER_IP", "100000".into()),
            ];
            settings.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
            nodes.push(Running::start_with(&own, &settings));
        }
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Some(Self { server, nodes, client, _dir: dir })
    }

    pub fn base(&self, i: usize) -> &str {
        &self.nodes[i].base
    }

    /// The instance itself (to stop, kill or read its log).
    pub fn node(&mut self, i: usize) -> &mut Running {
        &mut self.nodes[i]
    }

    pub async fn post(&self, node: usize, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base(node))).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// An account (signed up through node 0), a provider and a key: (token, key id, key).
    pub async fn workspace(&self, mock: &Mock) -> (String, String, String) {
        let signup =
            self.post(0, "/api/v1/auth/signup", None, &json!({"email": email("c"), "password": PASSWORD})).await;
        assert_eq!(signup.status(), 201);
        let token = signup.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        let provider =
            json!({"label": "P", "kind": "openai_compatible", "base_url": mock.base_url(), "api_key": VALID_KEY});
        assert_eq!(self.post(0, "/api/v1/providers", Some(&token), &provider).await.status(), 201);
        let key: Value = self.post(0, "/api/v1/keys", Some(&token), &json!({"name": "k"})).await.json().await.unwrap();
        (token, key["key"]["id"].as_str().unwrap().to_owned(), key["token"].as_str().unwrap().to_owned())
    }

    pub async fn chat(&self, node: usize, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base(node)))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn ready(&self, node: usize) -> u16 {
        let url = format!("{}/readyz", self.base(node));
        self.client.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

pub fn small_call() -> Value {
    json!({"model": "mock-small", "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// Polls `probe` every 10 ms; the time it took to hold, or `None` after `limit`.
async fn time_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_act_as_one() {
    let Some(cluster) = Cluster::start(3, &[]).await else { return };
    let (a, b, c) = (0, 1, 2);
    let mock = Mock::start(Flavor::OpenAi).await;
    let other = Mock::start(Flavor::OpenAi).await;

    // A person signs up through A and signs in through B; A's session cookie works on C.
    let address = email("person");
    let no_redirects = || reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none());
    let on_a = no_redirects().cookie_store(true).build().unwrap();
    let form = |client: &reqwest::Client, node: usize, name: &str, referer: &str| {
        let base = cluster.base(node).to_owned();
        client
            .post(format!("{base}/fn/{name}"))
            .header("accept", "text/html")
            .header("referer", format!("{base}{referer}"))
            .header("origin", base)
            .form(&[("email", address.as_str()), ("password", PASSWORD)])
            .send()
    };
    let signed_up = form(&on_a, a, "sign_up", "/signup").await.unwrap();
    assert_eq!((signed_up.status().as_u16(), location(&signed_up).as_str()), (302, "/providers"));
    let on_b = no_redirects().cookie_store(true).build().unwrap();
    let signed_in = form(&on_b, b, "sign_in", "/signin").await.unwrap();
    assert_eq!((signed_in.status().as_u16(), location(&signed_in).as_str()), (302, "/providers"));
    let cookie = signed_up.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
    let page_on_c = no_redirects()
        .build()
        .unwrap()
        .get(format!("{}/keys", cluster.base(c)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page_on_c.status(), 200, "A's session is good on C");
    assert!(page_on_c.text().await.unwrap().contains(&address), "C knows who it is");
    // The usage tab reads all its figures from one snapshot: a read transaction on the server.
    let usage_on_c = no_redirects()
        .build()
        .unwrap()
        .get(format!("{}/usage", cluster.base(c)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(usage_on_c.status(), 200);
    let usage_page = usage_on_c.text().await.unwrap();
    assert!(usage_page.contains("0 matching requests"), "{usage_page}");

    // A key created through A works at once on B (and on C).
    let (token, key_id, key) = cluster.workspace(&mock).await;
    for node in [b, c, a] {
        assert_eq!(cluster.chat(node, &key, &small_call()).await.status(), 200, "on node {node}");
    }

    // A revocation through B is refused on A and C within a second.
    let revoked = cluster.post(b, &format!("/api/v1/keys/{key_id}/revoke"), Some(&token), &json!({})).await;
    assert_eq!(revoked.status(), 200);
    let mut delays = Vec::new();
    for node in [a, c] {
        let delay = time_until(Duration::from_secs(5), || async {
            cluster.chat(node, &key, &small_call()).await.status() == 401
        })
        .await;
        delays.push(delay.expect("the revocation reached the instance"));
    }
    eprintln!("revocation through B refused on A after {:?}, on C after {:?}", delays[0], delays[1]);
    assert!(delays.iter().all(|d| *d < Duration::from_secs(1)), "{delays:?}");

    // A provider edit through C is used by A's next call.
    let (_, _, key) = {
        let key: Value =
            cluster.post(a, "/api/v1/keys", Some(&token), &json!({"name": "second"})).await.json().await.unwrap();
        ((), (), key["token"].as_str().unwrap().to_owned())
    };
    let providers: Value = cluster
        .client
        .get(format!("{}/api/v1/providers", cluster.base(a)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let provider_id = providers["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(cluster.chat(a, &key, &small_call()).await.status(), 200);
    let before = other.hits();
    let edit = cluster
        .client
        .patch(format!("{}/api/v1/providers/{provider_id}", cluster.base(c)))
        .bearer_auth(&token)
        .json(&json!({"base_url": other.base_url(), "api_key": VALID_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 200, "{}", edit.text().await.unwrap());
    let edited = Instant::now();
    let first_call_moved = std::sync::OnceLock::new();
    let delay = time_until(Duration::from_secs(5), || async {
        assert_eq!(cluster.chat(a, &key, &small_call()).await.status(), 200);
        let moved = other.hits() > before;
        let _ = first_call_moved.set(moved);
        moved
    })
    .await;
    let moved = first_call_moved.get().copied().unwrap_or(false);
    eprintln!(
        "provider edit through C: A's very next call went to the new URL: {moved}; A used it {delay:?} after the edit returned ({:?} in all)",
        edited.elapsed()
    );
    assert!(delay.is_some_and(|d| d < Duration::from_secs(1)), "{delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_is_survived_with_clear_503s_and_no_record_lost() {
    let Some(mut cluster) = Cluster::start(3, &[]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&mock).await;
    let unused: Value =
        cluster.post(0, "/api/v1/keys", Some(&token), &json!({"name": "unused"})).await.json().await.unwrap();
    let unused = unused["token"].as_str().unwrap().to_owned();
    // Every instance knows the key before the database goes away.
    for node in 0..3 {
        assert_eq!(cluster.chat(node, &key, &small_call()).await.status(), 200);
    }
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
        let (client, key, answered, statuses, stop) =
            (cluster.client.clone(), key.clone(), Arc::clone(&answered), Arc::clone(&statuses), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let base = &bases[i % bases.len()];
                let body = json!({"model": "mock-small", "stream": i.is_multiple_of(2), "messages": [{"role": "user", "content": "hi"}]});
                let Ok(response) = client
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                else {
                    *statuses.lock().unwrap().entry(0).or_default() += 1;
                    continue;
                };
                let status = response.status().as_u16();
                let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let bytes = response.bytes().await.unwrap_or_default();
                if status == 200 && (!bytes.starts_with(b"data:") || bytes.ends_with(b"data: [DONE]\n\n")) {
                    answered.lock().unwrap().extend(id);
                } else if status == 503 {
                    // A clear refusal: OpenAI's error JSON.
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    assert!(body["error"]["message"].is_string(), "a 503 without an error body: {body}");
                }
                *statuses.lock().unwrap().entry(status).or_default() += 1;
            }
        })
    };
    poll(Duration::from_secs(30), || async { (answered.lock().unwrap().len() >= 30).then_some(()) }).await.unwrap();

    cluster.server.stop();
    let down = Instant::now();
    for node in 0..3 {
        let not_ready =
            poll(Duration::from_secs(15), || async { (cluster.ready(node).await == 503).then_some(()) }).await;
        assert!(not_ready.is_some(), "node {node}'s /readyz says the database is gone");
    }
    // A key no instance has seen yet needs the database: a clear 503, not a 401 or a 500.
    let stranger = cluster.chat(0, &unused, &small_call()).await;
    assert_eq!(stranger.status(), 503);
    assert!(stranger.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let answered_before = answered.lock().unwrap().len();
    poll(Duration::from_secs(30), || async { (answered.lock().unwrap().len() >= answered_before + 20).then_some(()) })
        .await
        .expect("known keys keep being answered while the database is away");
    let outage = down.elapsed();

    cluster.server.start_again().await;
    for node in 0..3 {
        let ready = poll(Duration::from_secs(60), || async { (cluster.ready(node).await == 200).then_some(()) }).await;
        assert!(ready.is_some(), "node {node} reconnected by itself");
    }
    let back = Instant::now();
    poll(Duration::from_secs(30), || async { (answered.lock().unwrap().len() >= answered_before + 40).then_some(()) })
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.unwrap();
    let answered = answered.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();
    eprintln!(
        "database down {outage:?}, every node ready again {:?} after its restart; statuses {statuses:?}; {} answered",
        back.elapsed(),
        answered.len()
    );
    assert!(statuses.keys().all(|s| matches!(s, 200 | 503)), "only answers and clear 503s: {statuses:?}");
    let recorded = recorded_ids(&cluster.client, cluster.base(1), &token, answered.len()).await;
    assert_exactly_once(&answered, &recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_and_an_ip_limit_hold_across_three_instances() {
    let Some(cluster) = Cluster::start(3, &[("RATE_LIMIT_KEY_PER_MIN", "60"), ("RATE_LIMIT_IP_PER_MIN", "1000")]).await
    else {
        return;
    };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&mock).await;
    let mut requests = 4; // the workspace's own calls
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (client, base, key) = (cluster.client.clone(), cluster.base(i % 3).to_owned(), key.clone());
        calls.spawn(async move {
            let response =
                client.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&small_call()).send().await;
            response.unwrap().status().as_u16()
        });
    }
    let mut admitted = 0;
    while let Some(status) = calls.join_next().await {
        match status.unwrap() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    requests += 300;
    let elapsed = started.elapsed();
    // One permit a second refills; the block for 60/min is 1, so the slack is 3 × 1.
    let refilled = elapsed.as_secs() + 1;
    let slack = 3;
    eprintln!("key limited to 60/min, burst of 300 over 3 instances: {admitted} admitted in {elapsed:?}");
    assert!(admitted >= 55, "the key's own limit was not wasted: {admitted}");
    assert!(admitted <= 60 + refilled + slack, "{admitted} admitted");

    // The per-IP limit (1,000/min, blocks of 10): everything this address sent counts.
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..1500 {
        let (client, base, token) = (cluster.client.clone(), cluster.base(i % 3).to_owned(), token.clone());
        calls.spawn(async move {
            let response = client.get(format!("{base}/api/v1/budgets")).bearer_auth(&token).send().await;
            response.unwrap().status().as_u16()
        });
    }
    let mut ip_admitted = 0;
    while let Some(status) = calls.join_next().await {
        ip_admitted += u64::from(status.unwrap() != 429);
    }
    requests += 1500;
    let elapsed = started.elapsed();
    let refilled = (elapsed.as_secs_f64() * 1000.0 / 60.0).ceil() as u64 + 17;
    let slack = 3 * 10;
    let before_burst = 4 + 300;
    eprintln!(
        "IP limited to 1000/min, 1500 requests over 3 instances after {before_burst}: {ip_admitted} admitted in {elapsed:?} ({requests} sent in all)"
    );
    assert!(ip_admitted + before_burst <= 1000 + refilled + slack, "{ip_admitted}");
    assert!(ip_admitted + before_burst >= 900, "{ip_admitted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_three_instances_under_200_concurrent_calls() {
    let Some(cluster) = Cluster::start(3, &[("RATE_LIMIT_KEY_PER_MIN", "100000")]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&mock).await;
    let price = json!({"kind": "openai_compatible", "model": "mock-small", "input_per_million": 0.0, "output_per_million": 1.0});
    assert_eq!(cluster.post(1, "/api/v1/prices", Some(&token), &price).await.status(), 200);
    // 7 output tokens at $1 per million: 7,000 nano-dollars a call; the budget is worth 50.
    let budget = json!({"usd_limit": 50.0 * 7_000.0 / 1e9});
    let set = cluster
        .client
        .put(format!("{}/api/v1/budgets/workspace", cluster.base(2)))
        .bearer_auth(&token)
        .json(&budget)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, base, key) = (cluster.client.clone(), cluster.base(i % 3).to_owned(), key.clone());
        calls.spawn(async move {
            let mut body = small_call();
            body["stream"] = json!(i % 2 == 1);
            let response =
                client.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await;
            let response = response.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(result) = calls.join_next().await {
        let (status, text) = result.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert!(text.contains("insufficient_quota"), "{text}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    let list = poll(Duration::from_secs(20), || async {
        let list: Value = cluster
            .client
            .get(format!("{}/api/v1/budgets", cluster.base(0)))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (list["data"][0]["reserved_usd"].as_f64() == Some(0.0)).then_some(list)
    })
    .await
    .expect("every hold settled");
    let spent = (list["data"][0]["spent_usd"].as_f64().unwrap() * 1e9).round() as i64;
    let records = crate::process::recorded_costs(&cluster.client, cluster.base(1), &token, 200).await;
    let recorded: i64 = records.iter().sum();
    eprintln!(
        "budget worth 50 calls, 200 concurrent over 3 instances (half streaming): {ok} answered, {refused} refused; spent {spent} of {} nano-dollars, records sum {recorded}",
        50 * 7_000
    );
    assert_eq!(ok + refused, 200);
    assert!(ok <= 50, "{ok} answered");
    assert!(ok >= 45, "the budget was not wasted: {ok}");
    assert!(spent <= 50 * 7_000 && recorded <= 50 * 7_000, "{spent} {recorded}");
    assert_eq!(spent, recorded, "the budget's spend and the records agree");
}

/// `surreal export` from a server, `surreal import` into an empty one: a Perpetuo instance on the
/// restored database knows the account, the key, the budget and every request record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_exported_and_imported_into_a_new_server_restores_everything() {
    let Some(cluster) = Cluster::start(1, &[]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, _, key) = cluster.workspace(&mock).await;
    let budget = json!({"token_limit": 1_000_000});
    let set =
        cluster.client.put(format!("{}/api/v1/budgets/workspace", cluster.base(0))).bearer_auth(&token).json(&budget);
    assert_eq!(set.send().await.unwrap().status(), 200);
    for _ in 0..5 {
        let response = cluster.chat(0, &key, &small_call()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let before = recorded_ids(&cluster.client, cluster.base(0), &token, 5).await;

    let bin = crate::requires::surreal_bin().expect("the server started, so its binary is there");
    let dump = cluster._dir.path().join("backup.surql");
    let surreal = |args: &[&str]| {
        let output = std::process::Command::new(&bin).args(args).output().unwrap();
        assert!(output.status.success(), "surreal {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let endpoint = |server: &SurrealServer| format!("http://{}", server.addr);
    let ns_db = ["--namespace", "perpetuo", "--database", "perpetuo"];
    let auth = ["--user", USER, "--pass", PASS];
    let from = endpoint(&cluster.server);
    surreal(&[&["export", "--endpoint", &from], &auth[..], &ns_db[..], &[dump.to_str().unwrap()]].concat());

    let restored_dir = tempfile::tempdir().unwrap();
    let Some(fresh) = SurrealServer::start(&restored_dir.path().join("surreal")).await else { return };
    let to = endpoint(&fresh);
    surreal(&[&["import", "--endpoint", &to], &auth[..], &ns_db[..], &[dump.to_str().unwrap()]].concat());
    let own = restored_dir.path().join("node");
    std::fs::create_dir_all(&own).unwrap();
    let restored = Running::start_with(
        &own,
        &[
            ("DATABASE_URL", format!("ws://{}", fresh.addr)),
            ("DATABASE_USER", USER.into()),
            ("DATABASE_PASS", PASS.into()),
            ("USAGE_SPOOL_DIR", own.join("spool").display().to_string()),
        ],
    );
    let after = recorded_ids(&cluster.client, &restored.base, &token, before.len()).await;
    assert_eq!(after.len(), before.len(), "every request record came back");
    let call = cluster
        .client
        .post(format!("{}/v1/chat/completions", restored.base))
        .bearer_auth(&key)
        .json(&small_call())
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200, "the key works on the restored database");
    let budgets: Value = cluster
        .client
        .get(format!("{}/api/v1/budgets", restored.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(budgets["data"][0]["token_limit"], 1_000_000, "{budgets}");
    // Spend the exported instance had not written yet (its calls settle in memory, against its
    // slice, and are written within a second) is inside its slice, counted as reserved: the
    // restored database never counts less than the calls cost (and charges the slice as spent
    // once no instance writes it).
    let data = &budgets["data"][0];
    let counted = data["spent_tokens"].as_i64().unwrap() + data["reserved_tokens"].as_i64().unwrap();
    assert!(counted >= 6 * 18, "{budgets}");
}
