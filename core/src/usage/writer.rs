//! Usage capture that never loses a record: each gateway request appends its record to the
//! spool (local disk) before its answer completes, and a writer thread tails the spool into the
//! ledger, committing its read position with each batch. Memory stays bounded whatever the load;
//! when the database is slower than the traffic, or unreachable, records wait on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ledger;
use super::record::UsageRecord;
use super::spool::{Position, Spool};
use crate::platform::db::{Db, now_ms};

/// The most records one commit takes from the spool (a batch per workspace among them).
pub const BATCH: usize = ledger::MAX_PER_BATCH;
/// How often the writer looks at the spool: the longest a record waits before it is in the
/// database, while the database keeps up.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Least time between two log lines about the same trouble.
const WARN_EVERY_MS: i64 = 10_000;
/// The writer yields to every request (`SCHED_IDLE`) while fewer bytes than this wait in the
/// spool, and competes normally above [`HURRY_BYTES`] until the backlog is back under this.
const CALM_BYTES: u64 = 4 * 1024 * 1024;
/// The longest a commit may take before it counts as failed and is retried.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
const HURRY_BYTES: u64 = 32 * 1024 * 1024;

/// The writer thread's scheduling: `SCHED_IDLE` while it keeps up (records are safe on disk, so
/// it may wait for a free core), normal while it is behind. Only used where the process may
/// switch a thread back from idle to normal (`CAP_SYS_NICE`, or `RLIMIT_NICE` of 20): otherwise a
/// saturated machine could starve the writer for good, and it stays at normal priority.
struct Pace {
    /// Whether the thread may go back to normal once idle (probed once).
    adaptive: bool,
    hurrying: bool,
}

fn schedule(idle: bool) -> Result<(), thread_priority::Error> {
    use thread_priority::{NormalThreadSchedulePolicy as Normal, ThreadPriority, ThreadSchedulePolicy as Policy};
    let (policy, priority) = if idle {
        (Policy::Normal(Normal::Idle), ThreadPriority::Min)
    } else {
        // Nice 0: the default for a normal thread.
        (Policy::Normal(Normal::Other), ThreadPriority::Os(thread_priority::ThreadPriorityOsValue::default()))
    };
    thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), priority, policy)
}

impl Pace {
    /// Probes, on a throwaway thread, whether a thread of this process can go idle and back.
    fn new() -> Self {
        let adaptive = std::thread::spawn(|| schedule(true).is_ok() && schedule(false).is_ok()).join().unwrap_or(false);
        if !adaptive {
            tracing::info!(
                "the usage writer runs at normal priority: this process may not switch a thread back from SCHED_IDLE \
                 (grant CAP_SYS_NICE, or LimitNICE=20 under systemd, for a lower latency tail)"
            );
        }
        Self { adaptive, hurrying: true }
    }

    fn adjust(&mut self, pending: u64) {
        if !self.adaptive {
            return;
        }
        let hurry = if self.hurrying { pending > CALM_BYTES } else { pending > HURRY_BYTES };
        if hurry == self.hurrying {
            return;
        }
        match schedule(!hurry) {
            Ok(()) => {
                tracing::debug!(hurry, pending_bytes = pending, "usage writer scheduling changed");
                self.hurrying = hurry;
            }
            Err(e) => {
                tracing::warn!(error = ?e, "the usage writer's scheduling cannot change; it stays at normal priority");
                let _ = schedule(false);
                self.adaptive = false;
                self.hurrying = true;
            }
        }
    }
}

/// Counters and states the metrics and readiness endpoints report.
#[derive(Debug, Default)]
pub struct UsageStats {
    /// Records committed to the database.
    pub written: AtomicU64,
    /// Records that could not be kept at all (the spool could not be written): counted, logged.
    pub lost: AtomicU64,
    /// Commits retried after a database failure.
    pub retried: AtomicU64,
    /// Whether the last commit failed (the database is unreachable or refusing).
    pub database_failing: AtomicBool,
    last_warning: AtomicI64,
}

impl UsageStats {
    /// Whether a warning may be logged now (at most one every [`WARN_EVERY_MS`]).
    fn may_warn(&self) -> bool {
        let (now, last) = (now_ms(), self.last_warning.load(Ordering::Relaxed));
        now - last >= WARN_EVERY_MS
            && self.last_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// The recording side, held by the gateway.
#[derive(Debug, Clone)]
pub struct UsageSink {
    spool: Arc<Spool>,
    pub stats: Arc<UsageStats>,
    /// Stops the writer when the last sink is gone (a runtime dropped without a graceful stop
    /// must not wait forever on the writer's thread).
    _stop_when_dropped: Arc<tokio_util::sync::DropGuard>,
}

impl UsageSink {
    /// Appends the record to the spool. Returns once it is safe from a crash of this process;
    /// false when it could not be kept (counted and logged).
    pub fn record(&self, record: &UsageRecord) -> bool {
        match self.spool.append(record) {
            Ok(()) => true,
            Err(e) => {
                let lost = self.stats.lost.fetch_add(1, Ordering::Relaxed) + 1;
                if self.stats.may_warn() {
                    tracing::error!(error = %e, lost_total = lost, "usage records cannot be written to the spool");
                }
                false
            }
        }
    }

    /// Whether new calls must wait until the database catches up (the spool reached its bound).
    pub fn is_full(&self) -> bool {
        self.spool.is_full()
    }

    /// Whether records cannot be written at all (the spool's disk is full or failing).
    pub fn is_failing(&self) -> bool {
        self.spool.is_failing()
    }

    /// Bytes of records waiting in the spool for the database.
    pub fn pending_bytes(&self) -> u64 {
        self.spool.pending_bytes()
    }

    /// The spool's bound, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.spool.max_bytes()
    }

    /// Whether the last write to the database failed.
    pub fn database_failing(&self) -> bool {
        self.stats.database_failing.load(Ordering::Relaxed)
    }
}

/// Starts the writer on a thread of its own, named `usage-writer` (with its own single-threaded
/// runtime), not among the request workers: an embedded database runs a commit inside the
/// caller's task. It stops when `stop` fires (or every sink is gone), after writing what the spool
/// holds, or, if the database is failing, leaving it there for the next start.
pub fn start(db: Db, spool: Spool, stop: CancellationToken) -> (UsageSink, WriterHandle) {
    let spool = Arc::new(spool);
    let stats = Arc::new(UsageStats::default());
    let (writer_spool, writer_stats) = (Arc::clone(&spool), Arc::clone(&stats));
    let guard = Arc::new(stop.clone().drop_guard());
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("usage-writer".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(writer(db, writer_spool, writer_stats, stop)),
            Err(e) => tracing::error!(error = %e, "the usage writer could not start; records wait in the spool"),
        }
        let _ = done_tx.send(());
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the usage writer's thread could not start; records wait in the spool");
    }
    (UsageSink { spool, stats, _stop_when_dropped: guard }, WriterHandle(done))
}

/// Completes when the writer has stopped.
#[derive(Debug)]
pub struct WriterHandle(tokio::sync::oneshot::Receiver<()>);

impl WriterHandle {
    pub async fn stopped(self) {
        let _ = self.0.await;
    }
}

/// Where the last commit left off, retried until the database answers (or the process stops).
async fn starting_point(db: &Db, spool: &Spool, stats: &UsageStats, stop: &CancellationToken) -> Option<Position> {
    loop {
        match ledger::checkpoint(db, spool.instance()).await {
            Ok(position) => {
                stats.database_failing.store(false, Ordering::Relaxed);
                if let Err(e) = spool.account_backlog(position) {
                    tracing::error!(error = %e, "the usage spool's backlog could not be measured");
                }
                return Some(position);
            }
            Err(e) => {
                stats.database_failing.store(true, Ordering::Relaxed);
                if stats.may_warn() {
                    tracing::warn!(error = %e.message(), "the usage writer cannot read its checkpoint; retrying");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn writer(db: Db, spool: Arc<Spool>, stats: Arc<UsageStats>, stop: CancellationToken) {
    let Some(mut position) = starting_point(&db, &spool, &stats, &stop).await else { return };
    let mut pace = Pace::new();
    loop {
        pace.adjust(spool.pending_bytes());
        // On a clock rather than woken per record: a wake-up is a thread switch on the request's
        // own path.
        let stopping = tokio::select! {
            biased;
            () = stop.cancelled() => true,
            () = tokio::time::sleep(FLUSH_EVERY) => false,
        };
        // Records appended since the last tick reach the disk itself; a spool whose appends fail
        // is probed until the disk takes writes again.
        spool.sync_now();
        spool.probe();
        // Everything spooled by now, a batch at a time.
        loop {
            let (lines, to, bytes) = match spool.read(position, BATCH) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(error = %e, "the usage spool cannot be read");
                    break;
                }
            };
            if lines.is_empty() {
                // Nothing but a torn tail may have been skipped: move past it.
                if to != position {
                    spool.committed(bytes, to);
                    position = to;
                }
                break;
            }
            if !commit(&db, &spool, &stats, &lines, position, to, bytes, &stop).await {
                // Stopping with the database failing: the records stay in the spool for the
                // next start.
                tracing::warn!(
                    pending_bytes = spool.pending_bytes(),
                    "usage records are left in the spool: the database is failing at shutdown"
                );
                return;
            }
            position = to;
            if lines.len() < BATCH {
                break;
            }
        }
        if stopping {
            return;
        }
    }
}

/// Commits one batch, retrying until it is in; false only when stopping with the database
/// failing.
#[expect(clippy::too_many_arguments, reason = "one call site; the batch and its spool positions")]
async fn commit(
    db: &Db,
    spool: &Spool,
    stats: &UsageStats,
    lines: &[super::spool::Line],
    from: Position,
    to: Position,
    bytes: u64,
    stop: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(50);
    let mut failures = 0;
    loop {
        // Bounded, so a database that went away shows as failing (metrics, readiness) rather than
        // as a writer waiting on a reconnect; a commit that went through meanwhile is recognised
        // by the checkpoint on the retry.
        let attempt = tokio::time::timeout(COMMIT_TIMEOUT, ledger::commit(db, spool.instance(), lines, from, to));
        let result =
            attempt.await.unwrap_or_else(|_| Err(surrealdb::Error::internal("the commit timed out".to_owned())));
        match result {
            Ok(()) => {
                stats.written.fetch_add(lines.len() as u64, Ordering::Relaxed);
                stats.database_failing.store(false, Ordering::Relaxed);
                spool.committed(bytes, to);
                return true;
            }
            Err(e) => {
                failures += 1;
                stats.retried.fetch_add(1, Ordering::Relaxed);
                stats.database_failing.store(true, Ordering::Relaxed);
                if stats.may_warn() {
                    tracing::warn!(error = %e.message(), records = lines.len(), pending_bytes = spool.pending_bytes(), "writing usage records failed; they wait in the spool");
                }
                if stop.is_cancelled() && failures >= 3 {
                    return false;
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled(), if failures < 3 => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::record;
    use super::*;

    fn numbered(i: usize) -> UsageRecord {
        let mut r = record("w1", "m", true);
        r.request_id = format!("req_{i:06}");
        r.ts += i as i64;
        r
    }

    /// Records in the ledger, and distinct request ids among them.
    async fn stored(db: &Db) -> (usize, usize) {
        let mut response = db.query("SELECT VALUE record::id(id) FROM usage_batch").await.unwrap();
        let ids: Vec<String> = response.take(0).unwrap();
        let records = ledger::rows(&db.live(), &ids).await.unwrap();
        let distinct: std::collections::HashSet<String> = records.iter().map(|r| r.request_id.clone()).collect();
        (records.len(), distinct.len())
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        // Generous: the debug build of the embedded engine is slow, more so beside other tests.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn records_are_written_while_running_and_the_spool_empties() {
        let db = Db::memory().await.unwrap();
        let stop = CancellationToken::new();
        let (sink, handle) = start(db.clone(), Spool::temporary(u64::MAX).unwrap(), stop.clone());
        let total = BATCH * 2 + 7;
        for i in 0..total {
            assert!(sink.record(&numbered(i)));
        }
        until("written", || sink.stats.written.load(Ordering::Relaxed) == total as u64).await;
        assert_eq!(stored(&db).await, (total, total));
        assert_eq!(sink.pending_bytes(), 0);
        stop.cancel();
        handle.stopped().await;
    }

    #[tokio::test]
    async fn a_failing_database_keeps_records_on_disk_until_it_recovers() {
        let db = Db::memory().await.unwrap();
        // Every batch now fails its type check.
        db.query("DEFINE FIELD OVERWRITE count ON usage_batch TYPE string").await.unwrap().check().unwrap();
        let stop = CancellationToken::new();
        let (sink, handle) = start(db.clone(), Spool::temporary(u64::MAX).unwrap(), stop.clone());
        for i in 0..500 {
            sink.record(&numbered(i));
        }
        until("a failed commit", || sink.database_failing()).await;
        assert_eq!(sink.stats.written.load(Ordering::Relaxed), 0);
        assert!(sink.pending_bytes() > 0, "the records wait in the spool");
        db.query("DEFINE FIELD OVERWRITE count ON usage_batch TYPE int").await.unwrap().check().unwrap();
        until("written after recovery", || sink.stats.written.load(Ordering::Relaxed) == 500).await;
        assert_eq!(stored(&db).await, (500, 500), "every record once");
        assert!(!sink.database_failing());
        assert_eq!(sink.stats.lost.load(Ordering::Relaxed), 0);
        stop.cancel();
        handle.stopped().await;
    }

    #[tokio::test]
    async fn a_restart_resumes_at_the_checkpoint_and_writes_nothing_twice() {
        let db = Db::memory().await.unwrap();
        let dir = std::env::temp_dir().join(format!("perpetuo-writer-test-{}", crate::platform::db::new_id()));
        // A first run: 300 records written, then stopped.
        let stop = CancellationToken::new();
        let (sink, handle) = start(db.clone(), Spool::open(&dir, u64::MAX).unwrap().0, stop.clone());
        for i in 0..300 {
            sink.record(&numbered(i));
        }
        until("the first run's records", || sink.stats.written.load(Ordering::Relaxed) == 300).await;
        stop.cancel();
        handle.stopped().await;
        drop(sink);
        // A run killed before its writer committed anything: its records are only on disk.
        {
            let (spool, _) = Spool::open(&dir, u64::MAX).unwrap();
            for i in 300..450 {
                spool.append(&numbered(i)).unwrap();
            }
        }
        // The next start reads on from the checkpoint: the 150, and none of the first 300 again.
        let stop = CancellationToken::new();
        let (sink, handle) = start(db.clone(), Spool::open(&dir, u64::MAX).unwrap().0, stop.clone());
        until("the replay", || sink.stats.written.load(Ordering::Relaxed) == 150).await;
        assert_eq!(stored(&db).await, (450, 450));
        stop.cancel();
        handle.stopped().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_graceful_stop_writes_what_the_spool_holds() {
        let db = Db::memory().await.unwrap();
        let stop = CancellationToken::new();
        let (sink, handle) = start(db.clone(), Spool::temporary(u64::MAX).unwrap(), stop.clone());
        for i in 0..2500 {
            sink.record(&numbered(i));
        }
        stop.cancel();
        handle.stopped().await;
        assert_eq!(stored(&db).await, (2500, 2500));
    }
}
