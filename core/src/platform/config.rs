//! Typed settings, read once from the environment and validated before anything starts.
//!
//! Every error names the variable and the fix in one line; `main` prints it and exits with 1.

mod summary;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;

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
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit_ip_per_min: NonZeroU32,
    pub rate_limit_key_per_min: NonZeroU32,
    pub rate_limit_login_per_min: NonZeroU32,
    pub max_body_bytes: usize,
    /// Threads that serve requests, each a single-threaded runtime with its own listener on the
    /// same port (`SERVE_THREADS`, default one per core); 1 serves on the caller's runtime.
    pub serve_threads: usize,
    pub upstream: UpstreamSettings,
    pub usage_retention_days: u32,
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
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretBytes>,
    /// `METRICS_PUBLIC=true`: `/metrics` without a token. Otherwise, without `METRICS_TOKEN`,
    /// `/metrics` is closed.
    pub metrics_public: bool,
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
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        // Credentials written into a server's URL move to the user and password settings (they
        // never appear in the URL the process logs or reports).
        let (database_url, url_user, url_pass) = match get("DATABASE_URL") {
            None => (DatabaseUrl::SurrealKv(PathBuf::from("data/perpetuo.db")), None, None),
            Some(raw) => {
                let (clean, user, pass) = split_userinfo(raw.trim());
                (DatabaseUrl::parse(&clean).map_err(ConfigError)?, user, pass)
            }
        };
        let durability = match get("DATABASE_SYNC").as_deref() {
            None | Some("every") => Durability::Every,
            Some("1s") => Durability::Interval,
            Some(_) => return Err(ConfigError("DATABASE_SYNC must be `every` or `1s`".into())),
        };

        let mib = 1024 * 1024;
        let database_cache_bytes = parse_u64(get("DATABASE_CACHE_BYTES"), "DATABASE_CACHE_BYTES", 32 * mib, mib)?;
        let database_memtable_bytes =
            parse_u64(get("DATABASE_MEMTABLE_BYTES"), "DATABASE_MEMTABLE_BYTES", 32 * mib, 4 * mib)?;

        let encryption_key = match get("ENCRYPTION_KEY") {
            None => {
                return Err(ConfigError(
                    "ENCRYPTION_KEY is not set: run `perpetuo gen-secrets` and put its output in .env".into(),
                ));
            }
            Some(raw) => parse_key(&raw, "ENCRYPTION_KEY")?,
        };
        let encryption_key_previous =
            get("ENCRYPTION_KEY_PREVIOUS").map(|raw| parse_key(&raw, "ENCRYPTION_KEY_PREVIOUS")).transpose()?;

        let jwt_secret = match get("JWT_SECRET") {
            None => {
                return Err(ConfigError(
                    "JWT_SECRET is not set: run `perpetuo gen-secrets` and put its output in .env".into(),
                ));
            }
            Some(raw) if raw.len() < 32 => {
                return Err(ConfigError(
                    "JWT_SECRET must be at least 32 bytes: run `perpetuo gen-secrets` for a fresh one".into(),
                ));
            }
            Some(raw) => SecretBytes::new(raw.into_bytes()),
        };

        let site_addr = match get("LEPTOS_SITE_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some(raw) => raw.parse().map_err(|_| {
                ConfigError("LEPTOS_SITE_ADDR must be an address and port, such as 127.0.0.1:3000".into())
            })?,
        };
        let site_root = PathBuf::from(get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".to_owned()));
        let secure_cookies = match get("PUBLIC_URL") {
            None => false,
            Some(url) if url.starts_with("https://") => true,
            Some(url) if url.starts_with("http://") => false,
            Some(_) => {
                return Err(ConfigError(
                    "PUBLIC_URL must start with https:// or http://, such as https://gateway.example.com".into(),
                ));
            }
        };

        let allow_private = parse_bool(get("ALLOW_PRIVATE_UPSTREAMS"), "ALLOW_PRIVATE_UPSTREAMS", false)?;
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => parse_cidrs(&raw)?,
        };

        let rate_limit_ip_per_min = parse_nonzero(get("RATE_LIMIT_IP_PER_MIN"), "RATE_LIMIT_IP_PER_MIN", 1000)?;
        let rate_limit_key_per_min = parse_nonzero(get("RATE_LIMIT_KEY_PER_MIN"), "RATE_LIMIT_KEY_PER_MIN", 60)?;
        let rate_limit_login_per_min = parse_nonzero(get("RATE_LIMIT_LOGIN_PER_MIN"), "RATE_LIMIT_LOGIN_PER_MIN", 10)?;

        let max_body_bytes =
            parse_u64(get("MAX_REQUEST_BODY_BYTES"), "MAX_REQUEST_BODY_BYTES", 10 * 1024 * 1024, 1024)?;
        let max_body_bytes = usize::try_from(max_body_bytes)
            .map_err(|_| ConfigError("MAX_REQUEST_BODY_BYTES is too large for this machine".into()))?;

        let ms = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            parse_u64(get(name), name, default, 1).map(Duration::from_millis)
        };
        let upstream = UpstreamSettings {
            connect_timeout: ms("UPSTREAM_CONNECT_TIMEOUT_MS", 5_000)?,
            first_byte_timeout: ms("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", 60_000)?,
            idle_timeout: ms("UPSTREAM_IDLE_TIMEOUT_MS", 60_000)?,
            total_timeout: ms("UPSTREAM_TOTAL_TIMEOUT_MS", 600_000)?,
            max_attempts: u32::try_from(parse_u64(get("UPSTREAM_MAX_ATTEMPTS"), "UPSTREAM_MAX_ATTEMPTS", 4, 1)?)
                .map_err(|_| ConfigError("UPSTREAM_MAX_ATTEMPTS must be a small whole number".into()))?,
            breaker_failure_threshold: u32::try_from(parse_u64(
                get("BREAKER_FAILURE_THRESHOLD"),
                "BREAKER_FAILURE_THRESHOLD",
                5,
                1,
            )?)
            .map_err(|_| ConfigError("BREAKER_FAILURE_THRESHOLD must be a small whole number".into()))?,
            breaker_cooldown: ms("BREAKER_COOLDOWN_MS", 30_000)?,
            allow_private,
            max_answer_bytes: usize::try_from(parse_u64(
                get("UPSTREAM_MAX_ANSWER_BYTES"),
                "UPSTREAM_MAX_ANSWER_BYTES",
                32 * 1024 * 1024,
                1024,
            )?)
            .map_err(|_| ConfigError("UPSTREAM_MAX_ANSWER_BYTES is too large for this machine".into()))?,
        };
        let signup = match get("SIGNUP").as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("invite") => SignupMode::Invite,
            Some("open") => SignupMode::Open,
            Some("closed") => SignupMode::Closed,
            Some(_) => return Err(ConfigError("SIGNUP must be open, invite or closed".into())),
        };
        let count = |name: &str, default: u64| -> Result<i64, ConfigError> {
            i64::try_from(parse_u64(get(name), name, default, 1)?)
                .map_err(|_| ConfigError(format!("{name} is too large")))
        };
        let quotas = Quotas {
            workspaces_per_account: count("MAX_WORKSPACES_PER_ACCOUNT", 10)?,
            providers_per_workspace: count("MAX_PROVIDERS_PER_WORKSPACE", 50)?,
            keys_per_workspace: count("MAX_API_KEYS_PER_WORKSPACE", 500)?,
        };
        let session_max_age = Duration::from_secs(
            parse_u64(get("SESSION_MAX_AGE_DAYS"), "SESSION_MAX_AGE_DAYS", 30, 1)?.saturating_mul(86_400),
        );
        let usage_retention_days =
            u32::try_from(parse_u64(get("USAGE_RETENTION_DAYS"), "USAGE_RETENTION_DAYS", 90, 1)?)
                .map_err(|_| ConfigError("USAGE_RETENTION_DAYS must be a number of days, such as 90".into()))?;

        let usage_spool_dir = match (get("USAGE_SPOOL_DIR"), &database_url) {
            (Some(dir), _) => Some(PathBuf::from(dir)),
            (None, DatabaseUrl::Memory) => None,
            // Beside the embedded database, on the same disk.
            (None, DatabaseUrl::SurrealKv(path)) => {
                Some(path.parent().map_or_else(|| PathBuf::from("usage-spool"), |p| p.join("usage-spool")))
            }
            (None, DatabaseUrl::Remote(_)) => Some(PathBuf::from("data/usage-spool")),
        };
        let usage_spool_max_bytes =
            parse_u64(get("USAGE_SPOOL_MAX_BYTES"), "USAGE_SPOOL_MAX_BYTES", 1024 * 1024 * 1024, 1024 * 1024)?;
        let usage_spool_sync = match get("USAGE_SPOOL_SYNC") {
            None => SpoolSync::default(),
            Some(raw) => SpoolSync::parse(&raw)
                .ok_or_else(|| ConfigError("USAGE_SPOOL_SYNC must be off, interval (the default) or every".into()))?,
        };

        let database_user = get("DATABASE_USER").or(url_user);
        let database_pass = get("DATABASE_PASS").or(url_pass).map(|p| SecretBytes::new(p.into_bytes()));
        if matches!(database_url, DatabaseUrl::Remote(_)) && (database_user.is_none() || database_pass.is_none()) {
            return Err(ConfigError(
                "DATABASE_USER and DATABASE_PASS must be set when DATABASE_URL points at a SurrealDB server".into(),
            ));
        }

        let identifier = |name: &str, default: &str| -> Result<String, ConfigError> {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError(format!("{name} must contain only letters, digits and underscores")));
            }
            Ok(value)
        };
        let database_namespace = identifier("DATABASE_NAMESPACE", "perpetuo")?;
        let database_name = identifier("DATABASE_NAME", "perpetuo")?;

        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let serve_threads =
            usize::try_from(parse_u64(get("SERVE_THREADS"), "SERVE_THREADS", cores as u64, 1)?).unwrap_or(1).min(1024);
        let budget_default_max_tokens =
            parse_u64(get("BUDGET_DEFAULT_MAX_TOKENS"), "BUDGET_DEFAULT_MAX_TOKENS", 4096, 1)?;
        let shared_limit_timeout =
            Duration::from_millis(parse_u64(get("SHARED_LIMIT_TIMEOUT_MS"), "SHARED_LIMIT_TIMEOUT_MS", 500, 10)?);
        let shared_limits =
            parse_bool(get("SHARED_LIMITS"), "SHARED_LIMITS", matches!(database_url, DatabaseUrl::Remote(_)))?;
        Ok(Self {
            serve_threads,
            budget_default_max_tokens,
            shared_limits,
            shared_limit_timeout,
            database_url,
            database_user,
            database_pass,
            database_namespace,
            database_name,
            durability,
            database_cache_bytes,
            database_memtable_bytes,
            encryption_key,
            encryption_key_previous,
            jwt_secret,
            site_addr,
            site_root,
            secure_cookies,
            trusted_proxies,
            rate_limit_ip_per_min,
            rate_limit_key_per_min,
            rate_limit_login_per_min,
            max_body_bytes,
            upstream,
            usage_retention_days,
            session_max_age,
            signup,
            quotas,
            usage_spool_dir,
            usage_spool_max_bytes,
            usage_spool_sync,
            prices_file: get("PRICES_FILE").map(PathBuf::from),
            metrics_token: get("METRICS_TOKEN").map(|t| SecretBytes::new(t.into_bytes())),
            metrics_public: parse_bool(get("METRICS_PUBLIC"), "METRICS_PUBLIC", false)?,
        })
    }
}

fn parse_key(raw: &str, name: &str) -> Result<Secret32, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| ConfigError(format!("{name} must be base64: run `perpetuo gen-secrets` for a fresh one")))?;
    let array: [u8; 32] =
        bytes.try_into().map_err(|_| ConfigError(format!("{name} must be 32 bytes when base64 decoded")))?;
    Ok(Secret32::new(array))
}

fn parse_bool(raw: Option<String>, name: &str, default: bool) -> Result<bool, ConfigError> {
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(ConfigError(format!("{name} must be true or false"))),
    }
}

fn parse_nonzero(raw: Option<String>, name: &str, default: u32) -> Result<NonZeroU32, ConfigError> {
    let value = match raw {
        None => default,
        Some(raw) => raw.parse::<u32>().map_err(|_| {
            ConfigError(format!("{name} must be a whole number of requests per minute, such as {default}"))
        })?,
    };
    NonZeroU32::new(value).ok_or_else(|| ConfigError(format!("{name} must be at least 1")))
}

fn parse_u64(raw: Option<String>, name: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
    let value = match raw {
        None => return Ok(default),
        Some(raw) => {
            raw.parse::<u64>().map_err(|_| ConfigError(format!("{name} must be a whole number, such as {default}")))?
        }
    };
    if value < min {
        return Err(ConfigError(format!("{name} must be at least {min}")));
    }
    Ok(value)
}

fn parse_cidrs(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError(format!(
                        "TRUSTED_PROXIES must be a comma-separated list of addresses or CIDR ranges, such as 10.0.0.0/8,127.0.0.1 (could not read `{item}`)"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn debug_output_hides_secrets() {
        let mut vars = valid();
        vars.insert("JWT_SECRET", "super-secret-jwt-value-0123456789abcdef".into());
        let s = parse(&vars).unwrap_or_else(|e| unreachable!("{e}"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret"), "{printed}");
    }
}
