//! The database handle and the migration runner.
//!
//! One `Surreal<Any>` per process, shared behind an `Arc`: over `ws://` every clone of the handle
//! is a new server session that replays sign-in, and an embedded `surrealkv://` path cannot be
//! opened twice in one process.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;
use surrealdb::types::SurrealValue;

use super::config::{DatabaseUrl, Durability, Settings};
use super::error::ServiceError;

/// The shared database handle. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Db(Arc<Surreal<Any>>);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl std::ops::Deref for Db {
    type Target = Surreal<Any>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The migrations shipped in the binary, in order. A test checks this list against `migrations/`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_accounts.surql", include_str!("../../../migrations/0001_accounts.surql")),
    ("0002_providers_and_keys.surql", include_str!("../../../migrations/0002_providers_and_keys.surql")),
    ("0003_usage.surql", include_str!("../../../migrations/0003_usage.surql")),
    ("0004_usage_ledger.surql", include_str!("../../../migrations/0004_usage_ledger.surql")),
    ("0005_routes.surql", include_str!("../../../migrations/0005_routes.surql")),
    ("0006_model_aliases.surql", include_str!("../../../migrations/0006_model_aliases.surql")),
    ("0007_account_generations.surql", include_str!("../../../migrations/0007_account_generations.surql")),
    ("0008_invites.surql", include_str!("../../../migrations/0008_invites.surql")),
    ("0009_budgets.surql", include_str!("../../../migrations/0009_budgets.surql")),
    ("0010_owners_and_instances.surql", include_str!("../../../migrations/0010_owners_and_instances.surql")),
    ("0011_translation_options.surql", include_str!("../../../migrations/0011_translation_options.surql")),
    ("0012_regions.surql", include_str!("../../../migrations/0012_regions.surql")),
    ("0013_captures.surql", include_str!("../../../migrations/0013_captures.surql")),
    ("0014_limits.surql", include_str!("../../../migrations/0014_limits.surql")),
    ("0015_model_rests.surql", include_str!("../../../migrations/0015_model_rests.surql")),
    ("0016_budget_slices.surql", include_str!("../../../migrations/0016_budget_slices.surql")),
];

/// Why the database could not be opened or brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not open the database at {url}: {source}")]
    Connect { url: String, source: surrealdb::Error },
    #[error(
        "migration {name} was changed after it was applied (recorded checksum {recorded}, file now {current}); \
         restore the original file and put the change in a new numbered migration"
    )]
    Edited { name: String, recorded: String, current: String },
    #[error("migration {name} failed: {message}")]
    Failed { name: String, message: String },
    #[error("database error: {0}")]
    Query(#[from] surrealdb::Error),
}

impl Db {
    /// Opens the database the settings name and applies pending migrations.
    pub async fn open(settings: &Settings) -> Result<Self, DbError> {
        let url = match &settings.database_url {
            DatabaseUrl::Memory => "mem://".to_owned(),
            DatabaseUrl::SurrealKv(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| DbError::Failed {
                        name: "open".into(),
                        message: format!("cannot create {}: {e}", parent.display()),
                    })?;
                }
                // `sync=every` fsyncs each commit (grouped): an acknowledged write survives power
                // loss. `1s` trades up to a second of writes for throughput, when chosen.
                let sync = match settings.durability {
                    Durability::Every => "every",
                    Durability::Interval => "1s",
                };
                // Bounded caches: left to itself the engine sizes them from the machine's memory.
                format!(
                    "surrealkv://{}?sync={sync}&surrealkv_block_cache_capacity={}&surrealkv_max_memtable_size={}",
                    path.display(),
                    settings.database_cache_bytes,
                    settings.database_memtable_bytes
                )
            }
            DatabaseUrl::Remote(url) => url.clone(),
        };
        let connect_err = |source| DbError::Connect { url: redact_url(&url), source };
        let db = surrealdb::engine::any::connect(url.as_str()).await.map_err(connect_err)?;
        if let (DatabaseUrl::Remote(_), Some(user), Some(pass)) =
            (&settings.database_url, &settings.database_user, &settings.database_pass)
        {
            let password = pass.expose_str().unwrap_or_default().to_owned();
            db.signin(Root { username: user.clone(), password }).await.map_err(connect_err)?;
        }
        // Names come from validated settings (`[A-Za-z0-9_]`), not from requests.
        let (ns, name) = (&settings.database_namespace, &settings.database_name);
        db.query(format!("DEFINE NAMESPACE IF NOT EXISTS {ns}; USE NS {ns}; DEFINE DATABASE IF NOT EXISTS {name};"))
            .await
            .and_then(|r| r.check())
            .map_err(connect_err)?;
        db.use_ns(ns.as_str()).use_db(name.as_str()).await.map_err(connect_err)?;
        let db = Self(Arc::new(db));
        db.migrate().await?;
        Ok(db)
    }

    /// An in-memory database with all migrations applied, for tests.
    pub async fn memory() -> Result<Self, DbError> {
        Self::open(&Settings::for_tests()).await
    }

    /// Applies, in order and each in its own transaction, the migrations not yet recorded; refuses
    /// to start when a recorded one no longer matches its file.
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.query(
            "DEFINE TABLE IF NOT EXISTS migration SCHEMAFULL;
             DEFINE FIELD IF NOT EXISTS name ON migration TYPE string;
             DEFINE FIELD IF NOT EXISTS checksum ON migration TYPE string;
             DEFINE FIELD IF NOT EXISTS applied_at ON migration TYPE int;",
        )
        .await?
        .check()?;
        for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            let checksum = checksum(sql);
            if let Some(recorded) = self.recorded(version).await? {
                if recorded.checksum != checksum {
                    return Err(DbError::Edited {
                        name: (*name).to_owned(),
                        recorded: recorded.checksum,
                        current: checksum,
                    });
                }
                continue;
            }
            // Our own files, not input: the statements are concatenated, the record is bound.
            let script = format!(
                "BEGIN TRANSACTION;\n{sql}\n;CREATE type::record('migration', $version) CONTENT {{ name: $name, checksum: $checksum, applied_at: $now }} RETURN NONE;\nCOMMIT TRANSACTION;"
            );
            let mut response = self
                .query(script)
                .bind(("version", version))
                .bind(("name", (*name).to_owned()))
                .bind(("checksum", checksum.clone()))
                .bind(("now", now_ms()))
                .await?;
            let errors = response.take_errors();
            if !errors.is_empty() {
                // Another instance may have applied it at the same moment: that is fine if the
                // record now matches.
                if let Some(recorded) = self.recorded(version).await?
                    && recorded.checksum == checksum
                {
                    continue;
                }
                let message =
                    root_cause(errors).map_or_else(|| "the transaction failed".into(), |e| e.message().to_owned());
                return Err(DbError::Failed { name: (*name).to_owned(), message });
            }
            tracing::info!(migration = name, "applied migration");
        }
        Ok(())
    }

    async fn recorded(&self, version: i64) -> Result<Option<RecordedMigration>, DbError> {
        let mut response =
            self.query("SELECT checksum FROM type::record('migration', $version)").bind(("version", version)).await?;
        Ok(response.take::<Option<RecordedMigration>>(0)?)
    }

    /// Whether the database answers within two seconds (for `/readyz`: a server that is down can
    /// leave a query waiting for the connection to come back).
    /// Runs a transaction (`attempt` sends it and reports its root cause) again while it loses
    /// a write conflict to a concurrent one, at most `tries` times with jittered backoff; any other
    /// outcome is returned as it is. The one retry loop for every transaction.
    pub async fn retrying<T, F, Fut>(&self, tries: u32, mut attempt: F) -> Result<T, surrealdb::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, surrealdb::Error>>,
    {
        use rand::RngExt as _;
        let mut n = 0;
        loop {
            match attempt().await {
                Err(e) if is_retryable(&e) && n + 1 < tries => {
                    let cap = 2u64.saturating_pow(n.min(6)).min(50);
                    let wait = std::time::Duration::from_millis(rand::rng().random_range(0..=cap));
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                other => return other,
            }
        }
    }

    pub async fn ping(&self) -> bool {
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.query("RETURN 1")).await {
            Ok(Ok(response)) => response.check().is_ok(),
            Ok(Err(_)) | Err(_) => false,
        }
    }
}

#[derive(SurrealValue)]
struct RecordedMigration {
    checksum: String,
}

fn checksum(sql: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(sql.as_bytes()).into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Drops credentials from a URL before it is printed.
fn redact_url(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_user, host)) => {
            let scheme = scheme_and_user.split("://").next().unwrap_or("");
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}

/// How long a request's own database call may take before it gives up with a clear 503: a
/// SurrealDB server that is down leaves calls waiting while the client reconnects.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a database call on a request's path within [`CALL_TIMEOUT`].
pub async fn bounded<T>(call: impl std::future::Future<Output = Result<T, ServiceError>>) -> Result<T, ServiceError> {
    tokio::time::timeout(CALL_TIMEOUT, call).await.unwrap_or(Err(ServiceError::Unavailable))
}

/// Now, in Unix milliseconds (the unit of every stored timestamp).
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A new random record key: 20 characters of `[a-z0-9]` (about 103 bits).
pub fn new_id() -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    // A leading letter keeps keys from looking like numbers.
    let mut id = String::with_capacity(20);
    id.push(char::from(ALPHABET[rng.random_range(0..26)]));
    for _ in 1..20 {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}

/// The error that made a transaction fail, out of a response's per-statement errors (the other
/// statements only report that they were not executed).
pub fn root_cause(errors: std::collections::HashMap<usize, surrealdb::Error>) -> Option<surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = errors.into_iter().collect();
    errors.sort_by_key(|(i, _)| *i);
    let position = errors.iter().position(|(_, e)| !e.message().contains("was not executed"));
    match position {
        Some(i) => Some(errors.swap_remove(i).1),
        None => errors.into_iter().next().map(|(_, e)| e),
    }
}

/// Whether a transaction lost a write conflict to a concurrent one and can simply run again: by
/// the error's kind, or (the embedded engine reports some conflicts only in words) its text.
pub fn is_retryable(e: &surrealdb::Error) -> bool {
    if matches!(e.query_details(), Some(surrealdb::types::QueryError::TransactionConflict)) {
        return true;
    }
    let message = e.message().to_ascii_lowercase();
    message.contains("conflict") || message.contains("can be retried")
}

/// Whether a database error is a uniqueness conflict (unique index or existing record id).
pub fn is_conflict(e: &surrealdb::Error) -> bool {
    e.is_already_exists() || e.message().contains("already contains") || e.message().contains("already exists")
}

/// What reads go through: the database as it is at each query, or one snapshot of it that every
/// query of a report reads, so that a page's totals, counts and rows agree with each other while
/// records are being committed.
#[derive(Debug, Clone)]
pub enum Reader {
    Live(Db),
    Snapshot(Arc<Snapshot>),
}

impl Reader {
    pub fn query<'a>(&'a self, sql: impl Into<std::borrow::Cow<'a, str>>) -> surrealdb::method::Query<'a, Any> {
        match self {
            Self::Live(db) => db.query(sql),
            Self::Snapshot(snapshot) => match &snapshot.tx {
                Some(tx) => tx.query(sql),
                None => snapshot.db.query(sql),
            },
        }
    }
}

/// A transaction opened for reading only: never committed, cancelled when the last reader drops.
pub struct Snapshot {
    tx: Option<surrealdb::method::Transaction<Any>>,
    db: Db,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let (Some(tx), Ok(runtime)) = (self.tx.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                if let Err(e) = tx.cancel().await {
                    tracing::debug!(error = %e, "a read snapshot was not cancelled cleanly");
                }
            });
        }
    }
}

impl Db {
    /// Reads through the database as it is at each query.
    pub fn live(&self) -> Reader {
        Reader::Live(self.clone())
    }

    /// Reads through one snapshot of the database. Where the engine cannot open a transaction
    /// for it, reads go to the live database (each query then sees the latest commits).
    pub async fn snapshot(&self) -> Reader {
        match Surreal::clone(&self.0).begin().await {
            Ok(tx) => Reader::Snapshot(Arc::new(Snapshot { tx: Some(tx), db: self.clone() })),
            Err(e) => {
                tracing::debug!(error = %e, "no read snapshot: reading the live database");
                self.live()
            }
        }
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(e) => Self::Database(e),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".surql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(files, listed);
        for (i, name) in listed.iter().enumerate() {
            assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name} is out of sequence");
        }
    }

    #[tokio::test]
    async fn migrations_apply_once_and_detect_edits() {
        let db = Db::memory().await.unwrap();
        // A second run is a no-op.
        db.migrate().await.unwrap();
        // Simulate an edited file by changing the recorded checksum.
        db.query("UPDATE type::record('migration', 1) SET checksum = 'tampered'").await.unwrap().check().unwrap();
        let err = db.migrate().await.unwrap_err();
        assert!(matches!(err, DbError::Edited { .. }), "{err}");
        assert!(err.to_string().contains("0001_accounts.surql"), "{err}");
    }

    #[test]
    fn ids_are_random_and_shaped() {
        let a = new_id();
        assert_eq!(a.len(), 20);
        assert!(a.chars().next().unwrap().is_ascii_lowercase());
        assert_ne!(a, new_id());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("ws://root:pw@db:8000"), "ws://…@db:8000");
        assert_eq!(redact_url("mem://"), "mem://");
    }
}
