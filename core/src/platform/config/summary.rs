//! The settings in words for the first log line (never a secret), and the settings tests start
//! from.

use base64::Engine as _;

use super::*;

impl Settings {
    /// The settings that matter, in one line for the start-up log. Never a secret: the database
    /// is named without credentials, the metrics token only by whether it is set.
    pub fn summary(&self) -> String {
        let database = match &self.database_url {
            DatabaseUrl::Memory => "mem:// (nothing is kept)".to_owned(),
            DatabaseUrl::SurrealKv(path) => {
                let sync = match self.durability {
                    Durability::Every => "every commit",
                    Durability::Interval => "every second",
                };
                format!("surrealkv://{} (synced {sync})", path.display())
            }
            DatabaseUrl::Remote(url) => {
                format!("{} as {}", url, self.database_user.as_deref().unwrap_or("(no user)"))
            }
        };
        let metrics = match (&self.metrics_token, self.metrics_public) {
            (Some(_), _) => "METRICS_TOKEN required",
            (None, true) => "public",
            (None, false) => "closed (set METRICS_TOKEN or METRICS_PUBLIC=true)",
        };
        let spool = self
            .usage_spool_dir
            .as_ref()
            .map_or_else(|| "a temporary directory".to_owned(), |d| d.display().to_string());
        format!(
            "database {database}; {} serving threads; limits {}; usage spool {spool} (up to {} MiB); limits per minute: {} per IP, {} per API key, \
             {} sign-ins per IP and email; /metrics {metrics}; private upstreams {}; site root {}",
            self.serve_threads,
            if self.shared_limits { "shared through the database" } else { "kept by this instance" },
            self.usage_spool_max_bytes / (1024 * 1024),
            self.rate_limit_ip_per_min,
            self.rate_limit_key_per_min,
            self.rate_limit_login_per_min,
            if self.upstream.allow_private { "allowed" } else { "refused" },
            self.site_root.display(),
        )
    }

    /// Settings for tests: in-memory database, fixed throwaway keys, defaults elsewhere.
    pub fn for_tests() -> Self {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let lookup = move |name: &str| match name {
            "DATABASE_URL" => Some("mem://".to_owned()),
            "ENCRYPTION_KEY" => Some(key.clone()),
            "JWT_SECRET" => Some("test-jwt-secret-that-is-long-enough-0123456789".to_owned()),
            "ALLOW_PRIVATE_UPSTREAMS" => Some("true".to_owned()),
            // Tests sign up many people on one database; the invite rules have their own tests.
            "SIGNUP" => Some("open".to_owned()),
            // Tests serve on their own runtime.
            "SERVE_THREADS" => Some("1".to_owned()),
            "LEPTOS_SITE_ADDR" => Some("127.0.0.1:0".to_owned()),
            _ => None,
        };
        match Self::from_lookup(lookup) {
            Ok(settings) => settings,
            // Unreachable with the fixed values above; a test would fail at once if they broke.
            Err(e) => unreachable!("test settings are invalid: {e}"),
        }
    }
}
