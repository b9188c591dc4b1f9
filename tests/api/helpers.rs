//! `spawn_app()`: the real router on `127.0.0.1:0` with a fresh `mem://` database, plus typed
//! helpers for the calls the tests make. Logs are captured for the tests that check them;
//! `TEST_LOG=1` also prints them.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use perpetuo::startup::Application;
use perpetuo_core::AppState;
use perpetuo_core::platform::config::Settings;
use perpetuo_core::platform::db::Db;
use perpetuo_core::platform::rate::LimitClock;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything every test binary logs, for the no-secrets-in-logs checks.
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Everything at debug for our crates, so the log checks see as much as possible.
        let filter = tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "debug,surrealdb=info,surrealdb_core=info,surrealkv=info,hyper=info,hyper_util=info,h2=info,reqwest=info,tower_sessions=info".into()),
        );
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| CaptureWriter).try_init();
    });
}

/// The setup code for a server with this `JWT_SECRET` (what `perpetuo setup-code` prints).
pub fn setup_code(jwt_secret: &str) -> String {
    let secret = perpetuo_core::platform::secret::SecretBytes::new(jwt_secret.as_bytes().to_vec());
    perpetuo_core::accounts::setup::SetupCode::derive(&secret).expose().to_owned()
}

/// A running app and a client that keeps cookies.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: LimitClock,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// How to build a test app.
pub struct Options {
    pub settings: Settings,
    pub db: Option<Db>,
    pub clock: LimitClock,
}

impl Default for Options {
    fn default() -> Self {
        let mut settings = Settings::for_tests();
        // Tests sign in far more often than a person would; the login-limit tests lower it again.
        settings.rate_limit_login_per_min = std::num::NonZeroU32::new(10_000).unwrap_or(std::num::NonZeroU32::MIN);
        settings.rate_limit_ip_per_min = std::num::NonZeroU32::new(100_000).unwrap_or(std::num::NonZeroU32::MIN);
        // Tests send thousands of calls at once from one address; the bound has its own test.
        settings.clients.max_connections_per_ip = 100_000;
        Self { settings, db: None, clock: LimitClock::manual() }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    init_logs();
    let db = match options.db {
        Some(db) => db,
        None => Db::open(&options.settings).await.expect("database opens"),
    };
    let leptos_options =
        leptos::config::LeptosOptions::builder().output_name("perpetuo").site_root("target/site").build();
    let application =
        Application::build_with(options.settings, leptos_options, db, options.clock.clone()).await.expect("app builds");
    let addr = application.local_addr().expect("bound");
    let state = application.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: new_client(),
        state,
        clock: options.clock,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A client with its own cookie jar that does not follow redirects (tests look at them).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client builds")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops accepting, finishes in-flight work and background tasks.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// GET, body parsed as JSON (whatever the status).
    pub async fn get_value(&self, path: &str, token: Option<&str>) -> Value {
        self.get_json(path, token).await.json().await.expect("a JSON body")
    }

    pub async fn get_json(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Signs up through the management API; returns (token, workspace id, user id).
    pub async fn api_signup(&self, email: &str) -> (String, String, String) {
        self.api_signup_with(&json!({"email": email, "password": PASSWORD})).await
    }

    /// The first account on a server whose sign-up is not open: with the setup code, as its
    /// operator reads it from the log or `perpetuo setup-code`.
    pub async fn api_signup_first(&self, email: &str) -> (String, String, String) {
        let code = setup_code(self.state.settings.jwt_secret.expose_str().expect("utf-8"));
        self.api_signup_with(&json!({"email": email, "password": PASSWORD, "setup_code": code})).await
    }

    async fn api_signup_with(&self, body: &Value) -> (String, String, String) {
        let email = body["email"].as_str().unwrap_or_default();
        let response = self.post_json("/api/v1/auth/signup", None, body).await;
        assert_eq!(response.status(), 201, "signup of {email}");
        let body: Value = response.json().await.expect("json");
        (
            body["token"].as_str().expect("token").to_owned(),
            body["workspace"]["id"].as_str().expect("workspace").to_owned(),
            body["user"]["id"].as_str().expect("user").to_owned(),
        )
    }

    /// Posts a dashboard form the way a browser without JavaScript does.
    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        referer: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .header("accept", "text/html")
            .header("referer", self.url(referer))
            .header("origin", &self.base)
            .form(fields)
            .send()
            .await
            .expect("form posted")
    }

    /// Signs up through the dashboard form with `client`'s cookie jar; the client ends signed in.
    pub async fn dashboard_signup(&self, client: &reqwest::Client, email: &str) {
        let response =
            self.post_form(client, "/fn/sign_up", "/signup", &[("email", email), ("password", PASSWORD)]).await;
        assert_eq!(response.status(), 302);
        assert_eq!(location(&response), "/providers", "sign-up lands on the dashboard");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Asserts the management API's error shape and returns the body.
pub async fn api_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error body is JSON");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    body
}

/// A unique email for a test.
pub fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", perpetuo_core::platform::db::new_id())
}

impl TestApp {
    /// Adds a provider through the management API and returns its JSON.
    pub async fn add_provider(&self, token: &str, label: &str, kind: &str, base_url: &str, key: &str) -> Value {
        let response = self
            .post_json(
                "/api/v1/providers",
                Some(token),
                &json!({"label": label, "kind": kind, "base_url": base_url, "api_key": key}),
            )
            .await;
        assert_eq!(response.status(), 201, "provider {label} created");
        response.json().await.expect("json")
    }

    /// Creates an API key through the management API; returns (id, token).
    pub async fn add_key(&self, token: &str, name: &str) -> (String, String) {
        let response = self.post_json("/api/v1/keys", Some(token), &json!({"name": name})).await;
        assert_eq!(response.status(), 201, "key {name} created");
        let body: Value = response.json().await.expect("json");
        (body["key"]["id"].as_str().expect("id").to_owned(), body["token"].as_str().expect("token").to_owned())
    }

    pub async fn patch_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client.patch(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    /// Calls a server function the way the hydrated page does (form-encoded, JSON answer).
    pub async fn server_fn(&self, client: &reqwest::Client, name: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        client
            .post(self.url(&format!("/fn/{name}")))
            .header("origin", &self.base)
            .header("accept", "application/json")
            .form(fields)
            .send()
            .await
            .expect("server function called")
    }

    /// Calls a server function whose arguments travel as JSON (as the browser sends them).
    pub async fn server_fn_json(&self, client: &reqwest::Client, name: &str, args: &Value) -> reqwest::Response {
        client
            .post(self.url(&format!("/fn/{name}")))
            .header("origin", &self.base)
            .header("accept", "application/json")
            .json(args)
            .send()
            .await
            .expect("server function called")
    }
}

/// A workspace with one API key, ready to call the gateway.
pub struct Gateway {
    pub app: TestApp,
    /// Management API token.
    pub token: String,
    pub workspace: String,
    /// A `pk_...` key.
    pub key: String,
    pub key_id: String,
    pub owner_email: String,
}

impl Gateway {
    pub async fn start(options: Options) -> Self {
        let app = spawn_app_with(options).await;
        let owner_email = email("gw");
        let (token, workspace, _) = app.api_signup(&owner_email).await;
        let (key_id, key) = app.add_key(&token, "app").await;
        Self { app, token, workspace, key, key_id, owner_email }
    }

    pub async fn provider(&self, label: &str, kind: &str, base_url: &str, priority: i64) -> String {
        let response = self
            .app
            .post_json(
                "/api/v1/providers",
                Some(&self.token),
                &json!({"label": label, "kind": kind, "base_url": base_url, "api_key": crate::mock::VALID_KEY, "priority": priority}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/v1/chat/completions"))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("sent")
    }

    /// Usage records of this workspace, oldest first, once at least `n` have been written.
    pub async fn usage(&self, n: usize) -> Vec<Value> {
        usage_records(&self.app, &self.workspace, n).await
    }
}

/// Asks `probe` every 20 ms until it gives a value or `limit` has passed (then `None`): for
/// things that happen off the request path, instead of sleeping a guessed time.
pub async fn poll<T, F, Fut>(limit: std::time::Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the usage writer has written at least `n` records and holds none: then every
/// record of every answered call is in the database (each is queued before its answer ends).
pub async fn usage_settled(app: &TestApp, n: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let usage = &app.state.usage;
    let settled = poll(std::time::Duration::from_secs(10), || async {
        (usage.pending_bytes() == 0 && usage.stats.written.load(Relaxed) >= n).then_some(())
    })
    .await;
    assert!(settled.is_some(), "the usage writer did not write {n} records");
}

/// Every usage record of the workspace in the ledger, oldest first.
pub async fn ledger_records(db: &perpetuo_core::platform::db::Db, workspace: &str) -> Vec<Value> {
    let mut response = db
        .query("SELECT VALUE record::id(id) FROM usage_batch WHERE workspace = $ws")
        .bind(("ws", workspace.to_owned()))
        .await
        .unwrap();
    let ids: Vec<String> = response.take(0).unwrap();
    let mut records = perpetuo_core::usage::ledger::rows(&db.live(), &ids).await.unwrap();
    records.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.request_id.cmp(&b.request_id)));
    records.into_iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

/// What a record's tokens cost at the built-in list price of `model` at a provider of `kind`,
/// in billionths of a dollar (what the record must say when the provider reported its usage).
pub fn list_cost(kind: &str, model: &str, record: &Value) -> i64 {
    let price = perpetuo_core::usage::prices::PriceTable::built_in()
        .lookup(kind, model)
        .unwrap_or_else(|| panic!("{kind}/{model} has a list price"));
    let tokens: perpetuo_core::usage::TokenCounts = serde_json::from_value(record.clone()).expect("a record's tokens");
    price.cost_nanos(tokens)
}

/// Waits (bounded) until the workspace has at least `n` usage records in the ledger.
pub async fn usage_records(app: &TestApp, workspace: &str, n: usize) -> Vec<Value> {
    let found = poll(std::time::Duration::from_secs(10), || async {
        let rows = ledger_records(&app.state.db, workspace).await;
        (rows.len() >= n).then_some(rows)
    })
    .await;
    found.unwrap_or_else(|| panic!("fewer than {n} usage records were written"))
}

pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
}
