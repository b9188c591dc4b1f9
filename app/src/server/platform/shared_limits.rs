//! Rate limits shared by every instance on one database: each limited key has one GCRA state in
//! the database (its theoretical arrival time, on the database's clock), and an instance leases
//! permits from it in small blocks, so the database sees one write per block rather than per
//! request.
//!
//! The slack: a leased permit stays usable for as long as the bucket takes to refill a block, so
//! across instances a key can get at most `instances × block` requests beyond its limit in any
//! window. The block is a hundredth of the limit (at least 1, at most 20): a key limited to 60 per
//! minute leases one permit at a time and gets no slack at all. A refusal is remembered until
//! the database said a permit would be free, so a flood on a limited key costs the database one
//! query per instance per interval. When the database does not answer within
//! [`LEASE_TIMEOUT`], the caller falls back to the instance's own limiter, and keeps doing so
//! for [`OFFLINE_BACKOFF`] before asking again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use surrealdb::types::SurrealValue;

use super::db::{Db, root_cause};
use super::ratelimit::Decision;

/// How long a lease may take before the instance decides on its own.
pub const LEASE_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_BLOCK: u32 = 20;
/// How long checks stay local after the database failed to answer a lease.
const OFFLINE_BACKOFF: Duration = Duration::from_secs(2);
const CONFLICT_ATTEMPTS: u32 = 30;

/// The permits one instance holds for one key.
#[derive(Debug)]
struct Lease {
    remaining: u32,
    /// Room the database had left after the last lease (for the `remaining` header).
    room_left: u32,
    expires: Instant,
    denied_until: Option<Instant>,
}

/// The shared limits of this instance.
pub struct SharedLimits {
    db: Db,
    leases: DashMap<String, Arc<tokio::sync::Mutex<Lease>>>,
    /// After a lease timed out, every check is decided locally until this many nanoseconds past
    /// `base` (0: the database is answering), so an outage costs no request a wait.
    offline_until: AtomicU64,
    base: Instant,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits").field("leases", &self.leases.len()).finish_non_exhaustive()
    }
}

/// The permits a lease takes at once for a limit of `per_min`.
pub fn block_size(per_min: u32) -> u32 {
    (per_min / 100).clamp(1, MAX_BLOCK)
}

#[derive(SurrealValue)]
struct Grant {
    granted: i64,
    room: i64,
    wait: i64,
}

impl SharedLimits {
    pub fn new(db: Db) -> Self {
        Self { db, leases: DashMap::new(), offline_until: AtomicU64::new(0), base: Instant::now() }
    }

    /// One request of `key` in `scope` against `per_min`; `None` when the database did not
    /// answer in time (the caller decides locally).
    pub async fn check(&self, scope: &str, key: &str, per_min: u32) -> Option<Decision> {
        let offline = self.offline_until.load(Ordering::Relaxed);
        if offline != 0 && self.since_base() < offline {
            return None;
        }
        let id = format!("{scope}:{key}");
        let slot = match self.leases.get(&id) {
            Some(slot) => Arc::clone(&slot),
            None => Arc::clone(
                self.leases
                    .entry(id)
                    .or_insert_with(|| {
                        let now = Instant::now();
                        Arc::new(tokio::sync::Mutex::new(Lease {
                            remaining: 0,
                            room_left: 0,
                            expires: now,
                            denied_until: None,
                        }))
                    })
                    .value(),
            ),
        };
        // Requests of one key on this instance queue here while a lease is in flight: one
        // database round trip serves them all.
        let mut lease = slot.lock().await;
        let interval = Duration::from_secs(60) / per_min.max(1);
        let now = Instant::now();
        let allowed = |lease: &Lease| Decision {
            allowed: true,
            limit: per_min,
            remaining: lease.remaining + lease.room_left,
            reset: interval * per_min.saturating_sub(lease.remaining + lease.room_left),
            retry_after: Duration::ZERO,
        };
        if lease.remaining > 0 && now < lease.expires {
            lease.remaining -= 1;
            return Some(allowed(&lease));
        }
        if let Some(until) = lease.denied_until.filter(|until| now < *until) {
            return Some(denied(per_min, interval, until - now));
        }
        let block = block_size(per_min);
        let Some(grant) =
            tokio::time::timeout(LEASE_TIMEOUT, self.lease(scope, key, per_min, block)).await.ok().flatten()
        else {
            let until = self.since_base() + u64::try_from(OFFLINE_BACKOFF.as_nanos()).unwrap_or(u64::MAX);
            self.offline_until.store(until, Ordering::Relaxed);
            return None;
        };
        self.offline_until.store(0, Ordering::Relaxed);
        let now = Instant::now();
        if grant.granted >= 1 {
            let granted = u32::try_from(grant.granted).unwrap_or(1);
            lease.remaining = granted - 1;
            lease.room_left = u32::try_from(grant.room.max(0)).unwrap_or(0);
            // Usable for as long as the bucket takes to refill the block (the slack's bound).
            lease.expires = now + (interval * granted).max(Duration::from_secs(1));
            lease.denied_until = None;
            Some(allowed(&lease))
        } else {
            let wait = Duration::from_nanos(u64::try_from(grant.wait.max(1)).unwrap_or(1));
            lease.remaining = 0;
            lease.room_left = 0;
            lease.denied_until = Some(now + wait);
            Some(denied(per_min, interval, wait))
        }
    }

    /// Takes up to `block` permits from the key's shared bucket (GCRA: burst `per_min`, one
    /// permit every minute / `per_min`), atomically.
    async fn lease(&self, scope: &str, key: &str, per_min: u32, block: u32) -> Option<Grant> {
        let t = 60_000_000_000i64 / i64::from(per_min.max(1));
        let tau = t * i64::from(per_min);
        let query = "BEGIN TRANSACTION;
            LET $id = type::record('limit_state', [$scope, $key]);
            LET $now = time::nano(time::now());
            LET $row = (SELECT VALUE tat FROM $id)[0];
            LET $tat = IF $row = NONE OR $row < $now { $now } ELSE { $row };
            LET $room = <int> math::floor(($now + $tau - $tat) / $t);
            LET $n = IF $room < $b { $room } ELSE { $b };
            IF $n >= 1 { UPSERT $id SET tat = $tat + $n * $t, expires = $tat + $n * $t RETURN NONE; };
            RETURN { granted: $n, room: $room - $n, wait: $tat + $t - $tau - $now };
            COMMIT TRANSACTION;";
        for attempt in 0..CONFLICT_ATTEMPTS {
            let response = self
                .db
                .query(query)
                .bind(("scope", scope.to_owned()))
                .bind(("key", key.to_owned()))
                .bind(("t", t))
                .bind(("tau", tau))
                .bind(("b", i64::from(block)))
                .await
                .and_then(|mut r| match root_cause(r.take_errors()) {
                    Some(e) => Err(e),
                    None => Ok(r),
                });
            match response {
                Ok(mut response) => {
                    // The `RETURN`, just before `COMMIT`.
                    let last = response.num_statements().checked_sub(2)?;
                    return response.take::<Option<Grant>>(last).ok().flatten();
                }
                Err(e) if is_retryable(&e) => {
                    use rand::RngExt as _;
                    let ms = rand::rng().random_range(0..=(1u64 << attempt.min(5)));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leasing shared rate-limit permits failed");
                    return None;
                }
            }
        }
        None
    }

    fn since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    /// Forgets leases that are used up or expired and not in use.
    pub fn prune(&self) {
        let now = Instant::now();
        self.leases.retain(|_, slot| match slot.try_lock() {
            Ok(lease) => now < lease.expires || lease.denied_until.is_some_and(|until| now < until),
            Err(_) => true,
        });
        self.leases.shrink_to_fit();
    }

    /// Removes database states whose bucket is full again (nothing is lost by forgetting them).
    pub async fn sweep(&self) -> Result<(), surrealdb::Error> {
        self.db.query("DELETE limit_state WHERE expires < time::nano(time::now())").await?.check()?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

fn denied(per_min: u32, interval: Duration, wait: Duration) -> Decision {
    Decision { allowed: false, limit: per_min, remaining: 0, reset: interval * per_min, retry_after: wait }
}

fn is_retryable(e: &surrealdb::Error) -> bool {
    let message = e.message().to_ascii_lowercase();
    message.contains("conflict") || message.contains("can be retried") || message.contains("retry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_with_the_limit_and_stay_small() {
        assert_eq!(block_size(60), 1);
        assert_eq!(block_size(1_000), 10);
        assert_eq!(block_size(1_000_000), MAX_BLOCK);
    }

    #[tokio::test]
    async fn a_shared_bucket_admits_its_burst_then_refuses_across_holders() {
        let db = Db::memory().await.unwrap();
        // Two instances' worth of leases on one database.
        let (a, b) = (SharedLimits::new(db.clone()), SharedLimits::new(db));
        let mut admitted = 0;
        for i in 0..100 {
            let holder = if i % 2 == 0 { &a } else { &b };
            let decision = holder.check("key", "k1", 30).await.expect("the database answers");
            admitted += u32::from(decision.allowed);
        }
        // 30 in the burst, plus at most one refilled while the loop ran (one every 2 s).
        assert!((30..=31).contains(&admitted), "{admitted}");
        let refused = a.check("key", "k1", 30).await.unwrap();
        assert!(!refused.allowed && refused.retry_after <= Duration::from_secs(2), "{refused:?}");
        assert!(a.check("key", "other", 30).await.unwrap().allowed, "keys are apart");
    }

    #[tokio::test]
    async fn concurrent_holders_never_lease_past_the_burst() {
        let db = Db::memory().await.unwrap();
        let holders: Vec<Arc<SharedLimits>> = (0..3).map(|_| Arc::new(SharedLimits::new(db.clone()))).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let holder = Arc::clone(&holders[i % 3]);
            tasks.spawn(async move { holder.check("key", "k", 1_000).await.map(|d| d.allowed) });
        }
        let mut admitted = 0;
        while let Some(result) = tasks.join_next().await {
            admitted += u32::from(result.unwrap().expect("answered"));
        }
        // Burst 1,000: all 300 fit, leased in blocks of 10.
        assert_eq!(admitted, 300);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1_200 {
            let holder = Arc::clone(&holders[i % 3]);
            tasks.spawn(async move { holder.check("key", "k", 1_000).await.map(|d| d.allowed) });
        }
        while let Some(result) = tasks.join_next().await {
            admitted += u32::from(result.unwrap().expect("answered"));
        }
        // 1,000 in the burst plus what refilled meanwhile (1,000 a minute) plus the slack.
        assert!(admitted <= 1_000 + 3 * 10 + 20, "{admitted}");
        assert!(admitted >= 950, "leases were not wasted: {admitted}");
    }
}
