//! Typed settings, read once from the environment and validated before anything starts.
//!
//! Every error names the variable and the fix in one line; `main` prints it and exits with 1.

mod read;
mod summary;
mod traces;
pub mod variables;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use read::Env;
pub use traces::{Sampling, TraceSettings};

use super::secret::{Secret32, SecretBytes};

/// Where the data lives: chosen by the `DATABASE_URL` scheme, same code for all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `mem://`: nothing survives the process (tests).
    Memory,
    /// `surrealkv://path`: embedded, on disk.
    SurrealKv(PathBuf),
    /// `ws://host:port` or `wss://host:port`: a SurrealDB server shared by several instances.
    Remote(String),
}

/// A server URL without its `user:password@` part, and that part's user and password.
fn split_userinfo(raw: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = raw.split_once("://") else { return (raw.to_owned(), None, None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (raw.to_owned(), None, None) };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let (user, pass) = match userinfo.split_once(':') {
        Some((user, pass)) => (user, Some(pass.to_owned())),
        None => (userinfo, None),
    };
    (format!("{scheme}://{host}"), Some(user.to_owned()).filter(|u| !u.is_empty()), pass)
}

impl DatabaseUrl {
    /// Parses the three accepted forms.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "mem://" || raw == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = raw.strip_prefix("surrealkv://") {
            // Query parameters are ours to set (cache sizes, durability): refuse user-supplied ones
            // rather than silently combining two sets.
            if path.is_empty() || path.contains('?') {
                return Err("DATABASE_URL must look like surrealkv://data/perpetuo.db (a path, no query string)".into());
            }
            return Ok(Self::SurrealKv(PathBuf::from(path)));
        }
        if let Some(rest) = raw.strip_prefix("ws://").or_else(|| raw.strip_prefix("wss://")) {
            if rest.is_empty() || rest.contains(['/', '?']) && !rest.ends_with('/') {
                return Err("DATABASE_URL must look like ws://host:port for a SurrealDB server".into());
            }
            return Ok(Self::Remote(raw.trim_end_matches('/').to_owned()));
        }
        Err("DATABASE_URL must start with surrealkv://, mem:// or ws:// (for example surrealkv://data/perpetuo.db)"
            .into())
    }
}

/// How much the embedded engine may keep in memory, and how often it syncs to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync at every commit (~0.4 ms a commit): nothing acknowledged is lost on power failure.
    Every,
    /// fsync once a second: up to a second of commits lost on power failure, not on a crash.
    Interval,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    /// Anyone who reaches the dashboard.
    Open,
    /// The first account, then only people with an invite link (the default).
    Invite,
    /// The first account only.
    Closed,
}

impl SignupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }
}

/// When the spool's appends reach the disk itself (not just the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolSync {
    /// Never asked for: a crash of the process loses nothing, a power loss what the kernel had
    /// not yet written back (seconds).
    Off,
    /// The writer syncs the segment every flush interval (100 ms): a power loss costs at most
    /// that long of records.
    #[default]
    Interval,
    /// Every record is synced before its answer completes (slower: a disk sync per call).
    Every,
}

impl SpoolSync {
    /// `off`, `interval` or `every` (`USAGE_SPOOL_SYNC`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "off" | "never" => Some(Self::Off),
            "interval" => Some(Self::Interval),
            "every" | "always" => Some(Self::Every),
            _ => None,
        }
    }
}

/// How much one account or workspace may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub workspaces_per_account: i64,
    pub providers_per_workspace: i64,
    pub keys_per_workspace: i64,
}

/// Timeouts and limits for calls to upstream providers.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    /// Attempts across all candidates (the first try included).
    pub max_attempts: u32,
    pub breaker_failure_threshold: u32,
    pub breaker_cooldown: Duration,
    pub allow_private: bool,
    /// Largest whole (non-streamed) answer read from a provider.
    pub max_answer_bytes: usize,
}

/// What the listener allows a client: bounded time to send a request, to read an answer, and a
/// bounded number of connections per address.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The longest a client may take to send a request's headers (and its body), and the longest
    /// an idle keep-alive connection stays open (`CLIENT_READ_TIMEOUT_MS`).
    pub read_timeout: Duration,
    /// The longest a client may leave an answer unread before its side of the call is ended
    /// (`CLIENT_WRITE_TIMEOUT_MS`): a stream's provider is then read to its end without it.
    pub write_timeout: Duration,
    /// Connections one client address may hold open at once (`MAX_CONNECTIONS_PER_IP`); trusted
    /// proxies are not counted.
    pub max_connections_per_ip: usize,
}

/// Everything the process needs, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub database_user: Option<String>,
    pub database_pass: Option<SecretBytes>,
    pub database_namespace: String,
    pub database_name: String,
    pub durability: Durability,
    /// The embedded engine's block cache and memtable, in bytes (bounded, whatever the machine's
    /// memory: SurrealDB would size them from it).
    pub database_cache_bytes: u64,
    pub database_memtable_bytes: u64,
    pub encryption_key: Secret32,
    pub encryption_key_previous: Option<Secret32>,
    pub jwt_secret: SecretBytes,
    pub site_addr: SocketAddr,
    /// Where the browser side (wasm, JS, CSS, static files) is served from (`LEPTOS_SITE_ROOT`).
    pub site_root: PathBuf,
    /// Cookies get `Secure` when the public address is https.
    pub secure_cookies: bool,
    /// The public address (`PUBLIC_URL`, no trailing slash), for links such as invites; `None`
    /// when unset (links then use the address a page was served from).
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit_ip_per_min: NonZeroU32,
    pub rate_limit_key_per_min: NonZeroU32,
    pub rate_limit_login_per_min: NonZeroU32,
    pub max_body_bytes: usize,
    /// Threads that serve requests, each a single-threaded runtime with its own listener on the
    /// same port (`SERVE_THREADS`, default one per core); 1 serves on the caller's runtime.
    pub serve_threads: usize,
    pub upstream: UpstreamSettings,
    /// How long clients may take, and how many connections one address may hold.
    pub clients: ClientSettings,
    pub usage_retention_days: u32,
    /// Where a captured body is cut (when a workspace captures bodies).
    pub capture_max_body_bytes: usize,
    /// A dashboard session ends this long after sign-in, however active (`SESSION_MAX_AGE_DAYS`).
    pub session_max_age: Duration,
    /// Who may create an account (`SIGNUP`): the first account can always be made.
    pub signup: SignupMode,
    /// Per-account and per-workspace quotas.
    pub quotas: Quotas,
    /// Where usage records wait for the database (`USAGE_SPOOL_DIR`); `None` for a temporary
    /// directory, with an in-memory database.
    pub usage_spool_dir: Option<PathBuf>,
    /// The most bytes of records that may wait there before new gateway calls are refused.
    pub usage_spool_max_bytes: u64,
    /// When spooled records reach the disk itself (`USAGE_SPOOL_SYNC`: off, interval, every).
    pub usage_spool_sync: SpoolSync,
    /// A replacement price table (`PRICES_FILE`); the built-in one otherwise.
    pub prices_file: Option<PathBuf>,
    /// The output tokens a budget reserves for a call that names no maximum
    /// (`BUDGET_DEFAULT_MAX_TOKENS`).
    pub budget_default_max_tokens: u64,
    /// Whether per-key and per-IP limits are kept in the database, shared by every instance on it
    /// (`SHARED_LIMITS`: on by default with a SurrealDB server, off with an embedded database).
    pub shared_limits: bool,
    /// How long a shared-limit lease may take before that key is decided locally
    /// (`SHARED_LIMIT_TIMEOUT_MS`).
    pub shared_limit_timeout: Duration,
    /// How long a call over a token or in-flight limit may wait for room before it is refused
    /// (`LIMIT_WAIT_MS`, at most a minute).
    pub limit_wait: Duration,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretBytes>,
    /// `METRICS_PUBLIC=true`: `/metrics` without a token. Otherwise, without `METRICS_TOKEN`,
    /// `/metrics` is closed.
    pub metrics_public: bool,
    /// OpenTelemetry trace export (`OTEL_*`); `None`: off.
    pub traces: Option<TraceSettings>,
}

/// A setting that cannot be used: its message names the variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let database = Database::read(&env)?;
        let (encryption_key, encryption_key_previous, jwt_secret) = secrets(&env)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let remote = matches!(database.url, DatabaseUrl::Remote(_));
        Ok(Self {
            usage_spool_dir: spool_dir(&env, &database.url),
            database_url: database.url,
            database_user: database.user,
            database_pass: database.pass,
            database_namespace: database.namespace,
            database_name: database.name,
            durability: database.durability,
            database_cache_bytes: env.u64("DATABASE_CACHE_BYTES", 1024 * 1024)?,
            database_memtable_bytes: env.u64("DATABASE_MEMTABLE_BYTES", 4 * 1024 * 1024)?,
            encryption_key,
            encryption_key_previous,
            jwt_secret,
            site_addr: required(&env, "LEPTOS_SITE_ADDR")?.parse().map_err(|_| {
                ConfigError("LEPTOS_SITE_ADDR must be an address and port, such as 127.0.0.1:3000".into())
            })?,
            site_root: PathBuf::from(required(&env, "LEPTOS_SITE_ROOT")?),
            secure_cookies: public_url(&env)?.is_some_and(|u| u.starts_with("https://")),
            public_url: public_url(&env)?,
            trusted_proxies: env.cidrs("TRUSTED_PROXIES")?,
            rate_limit_ip_per_min: env.per_minute("RATE_LIMIT_IP_PER_MIN")?,
            rate_limit_key_per_min: env.per_minute("RATE_LIMIT_KEY_PER_MIN")?,
            rate_limit_login_per_min: env.per_minute("RATE_LIMIT_LOGIN_PER_MIN")?,
            max_body_bytes: env.bytes("MAX_REQUEST_BODY_BYTES", 1024)?,
            serve_threads: usize::try_from(env.u64_or("SERVE_THREADS", cores as u64, 1)?).unwrap_or(1).min(1024),
            upstream: upstream(&env)?,
            clients: ClientSettings {
                read_timeout: env.millis("CLIENT_READ_TIMEOUT_MS", 100)?,
                write_timeout: env.millis("CLIENT_WRITE_TIMEOUT_MS", 100)?,
                max_connections_per_ip: env.bytes("MAX_CONNECTIONS_PER_IP", 1)?,
            },
            usage_retention_days: env.count("USAGE_RETENTION_DAYS")?,
            capture_max_body_bytes: match env.bytes("CAPTURE_MAX_BODY_BYTES", 1024)? {
                n if n > 1 << 20 => {
                    return Err(ConfigError("CAPTURE_MAX_BODY_BYTES is at most 1048576 (1 MiB)".into()));
                }
                n => n,
            },
            session_max_age: Duration::from_secs(env.u64("SESSION_MAX_AGE_DAYS", 1)?.saturating_mul(86_400)),
            signup: signup(&env)?,
            quotas: Quotas {
                workspaces_per_account: env.quota("MAX_WORKSPACES_PER_ACCOUNT")?,
                providers_per_workspace: env.quota("MAX_PROVIDERS_PER_WORKSPACE")?,
                keys_per_workspace: env.quota("MAX_API_KEYS_PER_WORKSPACE")?,
            },
            usage_spool_max_bytes: env.u64("USAGE_SPOOL_MAX_BYTES", 1024 * 1024)?,
            usage_spool_sync: SpoolSync::parse(&required(&env, "USAGE_SPOOL_SYNC")?)
                .ok_or_else(|| ConfigError("USAGE_SPOOL_SYNC must be off, interval (the default) or every".into()))?,
            prices_file: env.text("PRICES_FILE")?.map(PathBuf::from),
            budget_default_max_tokens: env.u64("BUDGET_DEFAULT_MAX_TOKENS", 1)?,
            shared_limits: env.bool_or("SHARED_LIMITS", remote)?,
            shared_limit_timeout: env.millis("SHARED_LIMIT_TIMEOUT_MS", 10)?,
            limit_wait: match env.millis("LIMIT_WAIT_MS", 0)? {
                d if d > Duration::from_secs(60) => {
                    return Err(ConfigError("LIMIT_WAIT_MS is at most 60000 (a minute)".into()));
                }
                d => d,
            },
            metrics_token: env.text("METRICS_TOKEN")?.map(|t| SecretBytes::new(t.into_bytes())),
            metrics_public: env.bool("METRICS_PUBLIC")?,
            traces: traces::read(&env)?,
        })
    }
}

/// A variable whose table default always gives it a value.
fn required(env: &Env<'_>, name: &str) -> Result<String, ConfigError> {
    env.text(name)?.ok_or_else(|| ConfigError(format!("{name} has no default in the settings table")))
}

/// Where the data lives and how to sign in to it.
struct Database {
    url: DatabaseUrl,
    user: Option<String>,
    pass: Option<SecretBytes>,
    namespace: String,
    name: String,
    durability: Durability,
}

impl Database {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        // Credentials written into a server's URL move to the user and password settings (they
        // never appear in the URL the process logs or reports); set apart, the settings win.
        let (clean, url_user, url_pass) = split_userinfo(&required(env, "DATABASE_URL")?);
        let url = DatabaseUrl::parse(&clean).map_err(ConfigError)?;
        let user = env.text("DATABASE_USER")?.or(url_user);
        let pass = env.text("DATABASE_PASS")?.or(url_pass).map(|p| SecretBytes::new(p.into_bytes()));
        if matches!(url, DatabaseUrl::Remote(_)) && (user.is_none() || pass.is_none()) {
            return Err(ConfigError(
                "DATABASE_USER and DATABASE_PASS must be set when DATABASE_URL points at a SurrealDB server".into(),
            ));
        }
        let durability = match required(env, "DATABASE_SYNC")?.as_str() {
            "every" => Durability::Every,
            "1s" => Durability::Interval,
            _ => return Err(ConfigError("DATABASE_SYNC must be `every` or `1s`".into())),
        };
        Ok(Self {
            url,
            user,
            pass,
            namespace: env.identifier("DATABASE_NAMESPACE")?,
            name: env.identifier("DATABASE_NAME")?,
            durability,
        })
    }
}

/// The sealing key, the previous one during a rotation, and the token-signing secret.
fn secrets(env: &Env<'_>) -> Result<(Secret32, Option<Secret32>, SecretBytes), ConfigError> {
    let missing =
        |name: &str| ConfigError(format!("{name} is not set: run `perpetuo gen-secrets` and put its output in .env"));
    let encryption_key = env.key("ENCRYPTION_KEY")?.ok_or_else(|| missing("ENCRYPTION_KEY"))?;
    let previous = env.key("ENCRYPTION_KEY_PREVIOUS")?;
    let jwt = env.text("JWT_SECRET")?.ok_or_else(|| missing("JWT_SECRET"))?;
    if jwt.len() < 32 {
        return Err(ConfigError(
            "JWT_SECRET must be at least 32 bytes: run `perpetuo gen-secrets` for a fresh one".into(),
        ));
    }
    Ok((encryption_key, previous, SecretBytes::new(jwt.into_bytes())))
}

/// The public address, checked (`https://` makes cookies `Secure`), without a trailing slash.
fn public_url(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    match env.text("PUBLIC_URL")? {
        None => Ok(None),
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        Some(_) => Err(ConfigError(
            "PUBLIC_URL must start with https:// or http://, such as https://gateway.example.com".into(),
        )),
    }
}

fn upstream(env: &Env<'_>) -> Result<UpstreamSettings, ConfigError> {
    Ok(UpstreamSettings {
        connect_timeout: env.millis("UPSTREAM_CONNECT_TIMEOUT_MS", 1)?,
        first_byte_timeout: env.millis("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", 1)?,
        idle_timeout: env.millis("UPSTREAM_IDLE_TIMEOUT_MS", 1)?,
        total_timeout: env.millis("UPSTREAM_TOTAL_TIMEOUT_MS", 1)?,
        max_attempts: env.count("UPSTREAM_MAX_ATTEMPTS")?,
        breaker_failure_threshold: env.count("BREAKER_FAILURE_THRESHOLD")?,
        breaker_cooldown: env.millis("BREAKER_COOLDOWN_MS", 1)?,
        allow_private: env.bool("ALLOW_PRIVATE_UPSTREAMS")?,
        max_answer_bytes: env.bytes("UPSTREAM_MAX_ANSWER_BYTES", 1024)?,
    })
}

fn signup(env: &Env<'_>) -> Result<SignupMode, ConfigError> {
    match required(env, "SIGNUP")?.to_ascii_lowercase().as_str() {
        "invite" => Ok(SignupMode::Invite),
        "open" => Ok(SignupMode::Open),
        "closed" => Ok(SignupMode::Closed),
        _ => Err(ConfigError("SIGNUP must be open, invite or closed".into())),
    }
}

/// Beside the embedded database, on the same disk; none (a temporary directory) in memory.
fn spool_dir(env: &Env<'_>, database: &DatabaseUrl) -> Option<PathBuf> {
    match (env.set("USAGE_SPOOL_DIR"), database) {
        (Some(dir), _) => Some(PathBuf::from(dir)),
        (None, DatabaseUrl::Memory) => None,
        (None, DatabaseUrl::SurrealKv(path)) => {
            Some(path.parent().map_or_else(|| PathBuf::from("usage-spool"), |p| p.join("usage-spool")))
        }
        (None, DatabaseUrl::Remote(_)) => Some(PathBuf::from("data/usage-spool")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::collections::HashMap;

    fn valid() -> HashMap<&'static str, String> {
        HashMap::from([
            ("ENCRYPTION_KEY", base64::engine::general_purpose::STANDARD.encode([1u8; 32])),
            ("JWT_SECRET", "x".repeat(32)),
        ])
    }

    fn parse(vars: &HashMap<&'static str, String>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    fn error_with(name: &'static str, value: &str) -> String {
        let mut vars = valid();
        vars.insert(name, value.to_owned());
        match parse(&vars) {
            Ok(_) => format!("accepted {name}={value}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn defaults_are_applied() {
        let s = parse(&valid()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.database_url, DatabaseUrl::SurrealKv(PathBuf::from("data/perpetuo.db")));
        assert_eq!(s.site_addr, SocketAddr::from(([127, 0, 0, 1], 3000)));
        assert_eq!(s.rate_limit_ip_per_min.get(), 1000);
        assert_eq!(s.rate_limit_key_per_min.get(), 60);
        assert!(!s.upstream.allow_private);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(s.usage_retention_days, 90);
        assert_eq!(s.usage_spool_dir, Some(PathBuf::from("data/usage-spool")), "beside the embedded database");
        assert_eq!(s.usage_spool_max_bytes, 1024 * 1024 * 1024);
    }

    #[test]
    fn wrong_length_encryption_key_has_the_exact_message() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert_eq!(error_with("ENCRYPTION_KEY", &short), "ENCRYPTION_KEY must be 32 bytes when base64 decoded");
        let long = base64::engine::general_purpose::STANDARD.encode([1u8; 33]);
        assert_eq!(error_with("ENCRYPTION_KEY", &long), "ENCRYPTION_KEY must be 32 bytes when base64 decoded");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            ("ENCRYPTION_KEY", "not base64!!"),
            ("ENCRYPTION_KEY_PREVIOUS", "AAAA"),
            ("JWT_SECRET", "short"),
            ("DATABASE_URL", "postgres://localhost"),
            ("DATABASE_URL", "surrealkv://"),
            ("LEPTOS_SITE_ADDR", "localhost"),
            ("ALLOW_PRIVATE_UPSTREAMS", "maybe"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
            ("RATE_LIMIT_IP_PER_MIN", "0"),
            ("RATE_LIMIT_IP_PER_MIN", "many"),
            ("RATE_LIMIT_KEY_PER_MIN", "-5"),
            ("PUBLIC_URL", "ftp://x"),
            ("DATABASE_SYNC", "sometimes"),
            ("UPSTREAM_CONNECT_TIMEOUT_MS", "0"),
            ("DATABASE_NAMESPACE", "bad-name; DROP"),
        ];
        for (name, value) in cases {
            let message = error_with(name, value);
            assert!(message.starts_with(name), "{name}={value} gave `{message}`");
            assert!(!message.contains('\n'), "one line only: {message}");
        }
    }

    #[test]
    fn missing_secrets_point_to_gen_secrets() {
        for name in ["ENCRYPTION_KEY", "JWT_SECRET"] {
            let mut vars = valid();
            vars.remove(name);
            let message = parse(&vars).err().map(|e| e.0).unwrap_or_default();
            assert!(message.starts_with(name) && message.contains("gen-secrets"), "{message}");
        }
    }

    #[test]
    fn remote_database_needs_credentials() {
        let message = error_with("DATABASE_URL", "ws://127.0.0.1:8000");
        assert!(message.contains("DATABASE_USER"), "{message}");
        let mut vars = valid();
        vars.insert("DATABASE_URL", "ws://127.0.0.1:8000".into());
        vars.insert("DATABASE_USER", "root".into());
        vars.insert("DATABASE_PASS", "secret".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.database_url, DatabaseUrl::Remote("ws://127.0.0.1:8000".into()));
    }

    #[test]
    fn credentials_in_a_server_url_never_reach_the_settings_line() {
        let mut vars = valid();
        vars.insert("DATABASE_URL", "ws://admin:hunter2-secret@127.0.0.1:8000".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.database_url, DatabaseUrl::Remote("ws://127.0.0.1:8000".into()));
        assert_eq!(s.database_user.as_deref(), Some("admin"));
        assert_eq!(s.database_pass.as_ref().map(|p| p.expose().to_vec()), Some(b"hunter2-secret".to_vec()));
        let line = s.summary();
        assert!(!line.contains("hunter2") && line.contains("ws://127.0.0.1:8000 as admin"), "{line}");
        // Set apart, the settings win over the URL's.
        vars.insert("DATABASE_USER", "root".into());
        vars.insert("DATABASE_PASS", "other".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.database_user.as_deref(), Some("root"));
    }

    #[test]
    fn trusted_proxies_accept_addresses_and_ranges() {
        let mut vars = valid();
        vars.insert("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.trusted_proxies.len(), 3);
    }

    #[test]
    fn the_summary_names_what_matters_and_no_secret() {
        let mut vars = valid();
        vars.insert("DATABASE_URL", "ws://db.internal:8000".into());
        vars.insert("DATABASE_USER", "perpetuo".into());
        vars.insert("DATABASE_PASS", "database-password-123".into());
        vars.insert("METRICS_TOKEN", "metrics-token-456".into());
        vars.insert("RATE_LIMIT_KEY_PER_MIN", "120".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        let line = s.summary();
        for expected in
            ["ws://db.internal:8000 as perpetuo", "120 per API key", "1000 per IP", "METRICS_TOKEN required"]
        {
            assert!(line.contains(expected), "{expected} missing from {line}");
        }
        for secret in ["database-password-123", "metrics-token-456", &vars["JWT_SECRET"], &vars["ENCRYPTION_KEY"]] {
            assert!(!line.contains(secret), "{line}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_parser_reads_exactly_the_variables_of_the_table() {
        let vars = valid();
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|name| {
            read.borrow_mut().insert(name.to_owned());
            vars.get(name).cloned()
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        let listed: std::collections::BTreeSet<String> = variables::all()
            .map(|v| v.name.to_owned())
            .filter(|name| !variables::READ_ELSEWHERE.contains(&name.as_str()))
            .collect();
        assert_eq!(*read.borrow(), listed, "the parser and the table name the same variables");
    }

    #[test]
    fn every_variable_is_in_the_help_and_in_env_example() {
        let help = variables::help();
        let example = include_str!("../../../.env.example");
        for v in variables::all() {
            assert!(help.contains(v.name), "{} missing from --help", v.name);
            if let variables::DefaultValue::Value(value) = v.default {
                assert!(help.contains(&format!("default {value})")), "{}'s default missing from --help", v.name);
            }
            assert!(example.contains(&format!("{}=", v.name)), "{} missing from .env.example", v.name);
        }
    }

    #[test]
    fn the_table_defaults_are_the_settings_defaults() {
        // Each default, written out as if set, gives the same settings as leaving it unset.
        let mut vars = valid();
        for v in variables::all() {
            if let variables::DefaultValue::Value(value) = v.default {
                vars.insert(v.name, value.to_owned());
            }
        }
        let written = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        let unset = parse(&valid()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(format!("{written:?}"), format!("{unset:?}"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut vars = valid();
        vars.insert("JWT_SECRET", "super-secret-jwt-value-0123456789abcdef".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret"), "{printed}");
    }
}
