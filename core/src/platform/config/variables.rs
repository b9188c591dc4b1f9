//! Every environment variable Perpetuo reads, once: its name, its default and what it does.
//!
//! The parser takes each default from here (a setting's default is written nowhere else), and
//! `perpetuo --help` prints this table. A test checks that the parser reads exactly these names
//! and that `.env.example` mentions each one.

/// A setting's value when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value, parsed like one that was set.
    Value(&'static str),
    /// Worked out at start-up (from the machine or another setting), as described.
    Derived(&'static str),
    /// Nothing: the setting is off or empty.
    Unset,
    /// The process refuses to start without it.
    Required,
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub default: DefaultValue,
    pub help: &'static str,
}

const fn var(name: &'static str, default: DefaultValue, help: &'static str) -> Variable {
    Variable { name, default, help }
}

use self::DefaultValue::{Derived, Required, Unset, Value};

/// The log filter when `RUST_LOG` is unset: Perpetuo at `info`, the database and session crates
/// at `warn`, and the per-call access line (`perpetuo::access`) off.
pub const DEFAULT_LOG_FILTER: &str =
    "info,perpetuo::access=off,surrealdb=warn,surrealdb_core=warn,surrealkv=warn,tower_sessions=warn";

/// The variables, in sections, in the order `--help` and `.env.example` show them.
pub const SECTIONS: &[(&str, &[Variable])] = &[
    (
        "Secrets (`perpetuo gen-secrets` prints fresh ones)",
        &[
            var("ENCRYPTION_KEY", Required, "seals provider keys at rest (AES-256-GCM): base64 of 32 bytes"),
            var("ENCRYPTION_KEY_PREVIOUS", Unset, "the previous ENCRYPTION_KEY during a rotation (opens, never seals)"),
            var("JWT_SECRET", Required, "signs management API tokens (HS256): at least 32 bytes"),
        ],
    ),
    (
        "Storage",
        &[
            var(
                "DATABASE_URL",
                Value("surrealkv://data/perpetuo.db"),
                "surrealkv://path (embedded), mem:// (nothing kept) or ws://host:port (a SurrealDB server)",
            ),
            var("DATABASE_SYNC", Value("every"), "embedded durability: every (fsync per commit) or 1s"),
            var("DATABASE_CACHE_BYTES", Value("33554432"), "embedded engine's block cache, in bytes"),
            var("DATABASE_MEMTABLE_BYTES", Value("33554432"), "embedded engine's memtable, in bytes"),
            var("DATABASE_USER", Unset, "a SurrealDB server's root user (ws:// only)"),
            var("DATABASE_PASS", Unset, "that user's password (ws:// only)"),
            var("DATABASE_NAMESPACE", Value("perpetuo"), "the server's namespace (letters, digits, _)"),
            var("DATABASE_NAME", Value("perpetuo"), "the server's database (letters, digits, _)"),
        ],
    ),
    (
        "Network",
        &[
            var("LEPTOS_SITE_ADDR", Value("127.0.0.1:3000"), "address and port of the dashboard and the gateway"),
            var("LEPTOS_SITE_ROOT", Value("target/site"), "where the browser side (wasm, CSS, files) is served from"),
            var("PUBLIC_URL", Unset, "the public address, for invite links; https:// makes session cookies Secure"),
            var(
                "TRUSTED_PROXIES",
                Unset,
                "proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma separated)",
            ),
            var(
                "ALLOW_PRIVATE_UPSTREAMS",
                Value("false"),
                "allow http:// and private-network provider URLs (Ollama, vLLM on your network)",
            ),
            var("SERVE_THREADS", Derived("one per core"), "threads serving requests, each with its own listener"),
            var(
                "CLIENT_READ_TIMEOUT_MS",
                Value("30000"),
                "longest a client may take to send a request (headers, then body); idle keep-alive connections close after it",
            ),
            var(
                "CLIENT_WRITE_TIMEOUT_MS",
                Value("30000"),
                "longest a client may leave an answer unread before its side is closed (the provider is still read to the end)",
            ),
            var(
                "MAX_CONNECTIONS_PER_IP",
                Value("256"),
                "connections one client address may hold open at once (trusted proxies are not counted)",
            ),
        ],
    ),
    (
        "Rate limits (per minute)",
        &[
            var("RATE_LIMIT_IP_PER_MIN", Value("1000"), "requests per client IP"),
            var("RATE_LIMIT_KEY_PER_MIN", Value("60"), "requests per API key"),
            var("RATE_LIMIT_LOGIN_PER_MIN", Value("10"), "sign-in and sign-up attempts per IP and per email"),
            var(
                "SHARED_LIMITS",
                Derived("true with ws://, false embedded"),
                "keep limits in the database, shared by every instance",
            ),
            var("SHARED_LIMIT_TIMEOUT_MS", Value("500"), "longest wait for a shared limit before deciding locally"),
            var(
                "LIMIT_WAIT_MS",
                Value("2000"),
                "a call over a token or in-flight limit waits up to this long (at most 60000) before its 429",
            ),
        ],
    ),
    (
        "Gateway",
        &[
            var("MAX_REQUEST_BODY_BYTES", Value("10485760"), "largest accepted request body on /v1"),
            var("UPSTREAM_CONNECT_TIMEOUT_MS", Value("5000"), "connecting to a provider"),
            var("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", Value("60000"), "time to the provider's answer headers"),
            var("UPSTREAM_IDLE_TIMEOUT_MS", Value("60000"), "longest silence inside a streamed answer"),
            var("UPSTREAM_TOTAL_TIMEOUT_MS", Value("600000"), "a whole call, every attempt included"),
            var("UPSTREAM_MAX_ATTEMPTS", Value("4"), "attempts across all candidate providers"),
            var("UPSTREAM_MAX_ANSWER_BYTES", Value("33554432"), "largest whole (non-streamed) answer read"),
            var("BREAKER_FAILURE_THRESHOLD", Value("5"), "consecutive failures that open a provider's breaker"),
            var("BREAKER_COOLDOWN_MS", Value("30000"), "how long an open breaker stays open"),
            var(
                "BUDGET_DEFAULT_MAX_TOKENS",
                Value("4096"),
                "output bound reserved and sent for a call that names none",
            ),
        ],
    ),
    (
        "Usage",
        &[
            var(
                "USAGE_SPOOL_DIR",
                Derived("usage-spool beside the embedded database, or data/usage-spool"),
                "where usage records wait for the database (local disk)",
            ),
            var("USAGE_SPOOL_MAX_BYTES", Value("1073741824"), "records that may wait before calls are refused"),
            var("USAGE_SPOOL_SYNC", Value("interval"), "when records reach the disk: interval (100 ms), every or off"),
            var("USAGE_RETENTION_DAYS", Value("90"), "request records are deleted after this many days"),
            var(
                "CAPTURE_MAX_BODY_BYTES",
                Value("65536"),
                "a captured request or response body is cut at this size (1 KiB to 1 MiB)",
            ),
            var("PRICES_FILE", Unset, "a replacement for the built-in price table"),
            var("METRICS_TOKEN", Unset, "GET /metrics needs this bearer token"),
            var("METRICS_PUBLIC", Value("false"), "GET /metrics without a token"),
        ],
    ),
    (
        "Accounts",
        &[
            var("SIGNUP", Value("invite"), "who may create an account: open, invite or closed"),
            var("SESSION_MAX_AGE_DAYS", Value("30"), "a dashboard session ends this long after sign-in"),
            var("MAX_WORKSPACES_PER_ACCOUNT", Value("10"), "workspaces one account may own"),
            var("MAX_PROVIDERS_PER_WORKSPACE", Value("50"), "providers per workspace"),
            var("MAX_API_KEYS_PER_WORKSPACE", Value("500"), "API keys per workspace"),
        ],
    ),
    (
        "Traces (OpenTelemetry, off without an endpoint)",
        &[
            var(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                Unset,
                "an OTLP/HTTP collector's base URL (spans go to its /v1/traces), such as http://localhost:4318",
            ),
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Unset, "the full traces URL, instead of the base one"),
            var("OTEL_EXPORTER_OTLP_PROTOCOL", Value("http/protobuf"), "the export protocol: http/protobuf"),
            var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Unset, "the same, for traces only"),
            var("OTEL_EXPORTER_OTLP_HEADERS", Unset, "headers sent with each export: key=value,key=value"),
            var("OTEL_EXPORTER_OTLP_TIMEOUT", Value("10000"), "how long one export may take, in milliseconds"),
            var("OTEL_SERVICE_NAME", Value("perpetuo"), "the service.name of every span"),
            var(
                "OTEL_TRACES_SAMPLER",
                Value("parentbased_always_on"),
                "always_on, always_off, traceidratio or parentbased_* (a client's traceparent decides)",
            ),
            var("OTEL_TRACES_SAMPLER_ARG", Unset, "the ratio of new traces kept by the ratio samplers, 0 to 1"),
            var(
                "OTEL_BSP_MAX_QUEUE_SIZE",
                Value("2048"),
                "spans waiting for export at most; more are dropped and counted",
            ),
            var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", Value("512"), "spans per export at most"),
            var("OTEL_BSP_SCHEDULE_DELAY", Value("5000"), "how long a span waits for its batch, in milliseconds"),
            var("OTEL_SDK_DISABLED", Value("false"), "true turns trace export off whatever else is set"),
        ],
    ),
    (
        "Logs",
        &[var(
            "RUST_LOG",
            Value(DEFAULT_LOG_FILTER),
            "log filter (tracing's syntax); `info,perpetuo::access=info` adds one line per gateway call",
        )],
    ),
];

/// Variables read by something other than the settings parser (the log filter).
pub const READ_ELSEWHERE: &[&str] = &["RUST_LOG"];

/// Every variable, in order.
pub fn all() -> impl Iterator<Item = &'static Variable> {
    SECTIONS.iter().flat_map(|(_, vars)| vars.iter())
}

/// The variable of that name.
pub fn find(name: &str) -> Option<&'static Variable> {
    all().find(|v| v.name == name)
}

/// The table as `perpetuo --help` prints it.
pub fn help() -> String {
    let width = all().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("ENVIRONMENT (also read from .env; a bad value stops the process with its name):\n");
    for (section, vars) in SECTIONS {
        out.push_str(&format!("\n  {section}\n"));
        for v in *vars {
            let default = match v.default {
                Value(value) => format!("default {value}"),
                Derived(how) => format!("default: {how}"),
                Unset => "not set by default".to_owned(),
                Required => "required".to_owned(),
            };
            out.push_str(&format!("    {:width$}  {} ({default})\n", v.name, v.help));
        }
    }
    out
}
