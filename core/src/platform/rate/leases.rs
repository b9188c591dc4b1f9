//! Rate limits shared by every instance on one database: each limited key has one GCRA state in
//! the database (its theoretical arrival time, on the database's clock), and an instance leases
//! permits from it in small blocks, so the database sees one write per block rather than per
//! request.
//!
//! - **A local allowance first.** A key this instance has not leased for gets its first requests
//!   from a small local bucket (a block's worth, refilled at the instance's share of the limit:
//!   the limit divided by the instances alive), and the database hears of them only when the key
//!   comes back for more, when they are charged with the lease. A flood of fresh addresses (the
//!   per-IP limit runs before any authentication) therefore costs the database nothing.
//! - **The slack**: a leased permit stays usable for as long as the bucket takes to refill a
//!   block, and an allowance is charged late, so across instances a key can get at most
//!   `instances × block` requests beyond its limit in any window. The block is a hundredth of the
//!   limit (at least 1, at most 20). A refusal is remembered until the database said a permit
//!   would be free.
//! - **Fallback, per key.** When a key's lease does not answer within [`LEASE_TIMEOUT`] (or too
//!   many leases are in flight at once), that key, and only it, is decided locally for
//!   [`OFFLINE_BACKOFF`], at the instance's share of the limit: across instances the fallback
//!   still admits about the limit, not the limit times the instances.
//! - Instances announce themselves in `instance` every few seconds; the count of those seen in
//!   the last [`ALIVE_FOR`] is the divisor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use surrealdb::types::SurrealValue;

use super::Decision;
use crate::platform::db::{Db, new_id, now_ms, root_cause};

/// How long a lease may take before the key is decided locally.
pub const LEASE_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_BLOCK: u32 = 20;
/// How long a key stays local after its lease failed to answer.
const OFFLINE_BACKOFF: Duration = Duration::from_secs(2);
const CONFLICT_ATTEMPTS: u32 = 30;
/// Leases in flight at once, beyond which checks are decided locally (a flood must not queue
/// transactions on the database).
const MAX_LEASES_IN_FLIGHT: usize = 64;
/// An instance counts as alive this long after its last heartbeat.
pub const ALIVE_FOR: Duration = Duration::from_secs(30);

/// A GCRA bucket kept by one instance (its theoretical arrival time).
#[derive(Debug, Clone, Copy)]
struct Local {
    tat: Instant,
}

impl Local {
    fn new(now: Instant) -> Self {
        Self { tat: now }
    }

    /// Admits one request at `per_min` with a burst of `burst`.
    fn admit(&mut self, now: Instant, per_min: u32, burst: u32) -> Result<(), Duration> {
        let interval = Duration::from_secs(60) / per_min.max(1);
        let tat = self.tat.max(now);
        let tolerance = interval * burst.max(1).saturating_sub(1);
        if tat > now + tolerance {
            return Err(tat - now - tolerance);
        }
        self.tat = tat + interval;
        Ok(())
    }

    fn full_at(&self) -> Instant {
        self.tat
    }
}

/// What one instance holds for one key.
#[derive(Debug)]
struct Lease {
    remaining: u32,
    /// Room the database had left after the last lease (for the `remaining` header).
    room_left: u32,
    expires: Instant,
    denied_until: Option<Instant>,
    /// Requests admitted from the local allowance and not yet charged to the shared bucket.
    owed: u32,
    allowance: Local,
    /// When this instance last heard from the shared bucket for this key: for a refill window
    /// after that, every request goes through the bucket (the allowance is for keys it has not
    /// been asked about, so it cannot add a second rate to the bucket's).
    consulted: Option<Instant>,
    /// While set, this key is decided locally (its lease did not answer).
    offline_until: Option<Instant>,
    fallback: Local,
}

/// The shared limits of this instance.
pub struct SharedLimits {
    db: Db,
    id: String,
    leases: DashMap<String, Arc<tokio::sync::Mutex<Lease>>>,
    /// Instances alive on the database, this one included (at least 1).
    instances: AtomicU32,
    in_flight: AtomicUsize,
    lease_timeout_ns: AtomicU64,
    /// Tests: a wait before each lease, as a slow database would make.
    #[cfg(test)]
    lease_delay: std::sync::Mutex<Duration>,
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

/// How a check was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// With the database (a leased permit, the local allowance, a remembered refusal).
    Shared(Decision),
    /// By this instance alone at its share, the database being slow for this key.
    Local(Decision),
}

impl SharedLimits {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            id: new_id(),
            leases: DashMap::new(),
            instances: AtomicU32::new(1),
            in_flight: AtomicUsize::new(0),
            lease_timeout_ns: AtomicU64::new(u64::try_from(LEASE_TIMEOUT.as_nanos()).unwrap_or(u64::MAX)),
            #[cfg(test)]
            lease_delay: std::sync::Mutex::new(Duration::ZERO),
        }
    }

    /// With another bound on how long a lease may take before its key is decided locally.
    pub fn with_lease_timeout(self, timeout: Duration) -> Self {
        self.lease_timeout_ns.store(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self
    }

    /// This instance's id in `instance`.
    pub fn instance_id(&self) -> &str {
        &self.id
    }

    /// Instances alive on the database (this one included).
    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed).max(1)
    }

    /// Announces this instance and counts those alive (every few seconds, and once at start).
    pub async fn heartbeat(&self) -> Result<u32, surrealdb::Error> {
        let now = now_ms();
        let since = now - i64::try_from(ALIVE_FOR.as_millis()).unwrap_or(i64::MAX);
        let mut response = self
            .db
            .query(
                "UPSERT type::record('instance', $id) SET seen = $now RETURN NONE;
                 DELETE instance WHERE seen < $stale;
                 SELECT VALUE count() FROM instance WHERE seen >= $since GROUP ALL;",
            )
            .bind(("id", self.id.clone()))
            .bind(("now", now))
            .bind(("since", since))
            .bind(("stale", since - i64::try_from(ALIVE_FOR.as_millis()).unwrap_or(0) * 10))
            .await?;
        let alive: Option<i64> = response.take(2)?;
        let alive = u32::try_from(alive.unwrap_or(1)).unwrap_or(u32::MAX).max(1);
        self.instances.store(alive, Ordering::Relaxed);
        Ok(alive)
    }

    /// The instance's share of a limit.
    fn share(&self, per_min: u32) -> u32 {
        (per_min / self.instances()).max(1)
    }

    /// Tests: every lease takes `delay` first.
    #[cfg(test)]
    fn slow_down(&self, delay: Duration) {
        *self.lease_delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    fn slot(&self, id: String) -> Arc<tokio::sync::Mutex<Lease>> {
        if let Some(slot) = self.leases.get(&id) {
            return Arc::clone(&slot);
        }
        Arc::clone(
            self.leases
                .entry(id)
                .or_insert_with(|| {
                    let now = Instant::now();
                    Arc::new(tokio::sync::Mutex::new(Lease {
                        remaining: 0,
                        room_left: 0,
                        expires: now,
                        denied_until: None,
                        owed: 0,
                        allowance: Local::new(now),
                        consulted: None,
                        offline_until: None,
                        fallback: Local::new(now),
                    }))
                })
                .value(),
        )
    }

    /// One request of `key` in `scope` against `per_min`.
    pub async fn check(&self, scope: &str, key: &str, per_min: u32) -> Decided {
        let slot = self.slot(format!("{scope}:{key}"));
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
        if lease.offline_until.is_some_and(|until| now < until) {
            return Decided::Local(self.locally(&mut lease, now, per_min));
        }
        if lease.remaining > 0 && now < lease.expires {
            lease.remaining -= 1;
            return Decided::Shared(allowed(&lease));
        }
        if let Some(until) = lease.denied_until.filter(|until| now < *until) {
            return Decided::Shared(denied(per_min, interval, until - now));
        }
        let block = block_size(per_min);
        // The local allowance: no database work for the first few requests of a key the bucket
        // has not been asked about in the last refill window.
        let share = self.share(per_min);
        let fresh = lease.consulted.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        if fresh && lease.allowance.admit(now, share, block.min(share)).is_ok() {
            lease.owed += 1;
            let mut decision = allowed(&lease);
            decision.remaining = per_min.saturating_sub(lease.owed);
            return Decided::Shared(decision);
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_LEASES_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            drain_if_shared(&mut lease, now);
            return Decided::Local(self.locally(&mut lease, now, per_min));
        }
        let timeout = Duration::from_nanos(self.lease_timeout_ns.load(Ordering::Relaxed));
        let owed = lease.owed;
        let grant = tokio::time::timeout(timeout, self.lease(scope, key, per_min, block, owed)).await.ok().flatten();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(grant) = grant else {
            let now = Instant::now();
            drain_if_shared(&mut lease, now);
            lease.offline_until = Some(now + OFFLINE_BACKOFF);
            return Decided::Local(self.locally(&mut lease, now, per_min));
        };
        lease.owed = 0;
        lease.offline_until = None;
        let now = Instant::now();
        lease.consulted = Some(now);
        if grant.granted >= 1 {
            let granted = u32::try_from(grant.granted).unwrap_or(1);
            lease.remaining = granted - 1;
            lease.room_left = u32::try_from(grant.room.max(0)).unwrap_or(0);
            // Usable for as long as the bucket takes to refill the block (the slack's bound).
            lease.expires = now + (interval * granted).max(Duration::from_secs(1));
            lease.denied_until = None;
            Decided::Shared(allowed(&lease))
        } else {
            let wait = Duration::from_nanos(u64::try_from(grant.wait.max(1)).unwrap_or(1));
            lease.remaining = 0;
            lease.room_left = 0;
            lease.denied_until = Some(now + wait);
            Decided::Shared(denied(per_min, interval, wait))
        }
    }

    /// A decision by this instance alone, at its share of the limit.
    fn locally(&self, lease: &mut Lease, now: Instant, per_min: u32) -> Decision {
        let share = self.share(per_min);
        let interval = Duration::from_secs(60) / per_min.max(1);
        match lease.fallback.admit(now, share, share) {
            Ok(()) => Decision {
                allowed: true,
                limit: per_min,
                remaining: 0,
                reset: interval * per_min,
                retry_after: Duration::ZERO,
            },
            Err(wait) => denied(per_min, interval, wait),
        }
    }

    /// Charges `owed` permits already admitted locally and takes up to `block` more from the key's
    /// shared bucket (GCRA: burst `per_min`, one permit every minute / `per_min`), atomically.
    async fn lease(&self, scope: &str, key: &str, per_min: u32, block: u32, owed: u32) -> Option<Grant> {
        #[cfg(test)]
        {
            let delay = *self.lease_delay.lock().unwrap_or_else(|e| e.into_inner());
            tokio::time::sleep(delay).await;
        }
        let t = 60_000_000_000i64 / i64::from(per_min.max(1));
        let tau = t * i64::from(per_min);
        let query = "BEGIN TRANSACTION;
            LET $id = type::record('limit_state', [$scope, $key]);
            LET $now = time::nano(time::now());
            LET $row = (SELECT VALUE tat FROM $id)[0];
            LET $tat = (IF $row = NONE OR $row < $now { $now } ELSE { $row }) + $owed * $t;
            LET $room = <int> math::floor(($now + $tau - $tat) / $t);
            LET $n = IF $room < $b { $room } ELSE { $b };
            LET $next = IF $n >= 1 { $tat + $n * $t } ELSE { $tat };
            IF $n >= 1 OR $owed > 0 { UPSERT $id SET tat = $next, expires = $next RETURN NONE; };
            RETURN { granted: $n, room: $room - $n, wait: $tat + $t - $tau - $now };
            COMMIT TRANSACTION;";
        let leased = self
            .db
            .retrying(CONFLICT_ATTEMPTS, || async {
                let mut response = self
                    .db
                    .query(query)
                    .bind(("scope", scope.to_owned()))
                    .bind(("key", key.to_owned()))
                    .bind(("t", t))
                    .bind(("tau", tau))
                    .bind(("b", i64::from(block)))
                    .bind(("owed", i64::from(owed)))
                    .await?;
                if let Some(e) = root_cause(response.take_errors()) {
                    return Err(e);
                }
                // The `RETURN`, just before `COMMIT`.
                let last = response.num_statements().saturating_sub(2);
                response.take::<Option<Grant>>(last)
            })
            .await;
        match leased {
            Ok(grant) => grant,
            Err(e) => {
                tracing::warn!(error = %e, "leasing shared rate-limit permits failed");
                None
            }
        }
    }

    /// Forgets keys whose leases, allowances and fallbacks are all used up or full again.
    pub fn prune(&self) {
        let now = Instant::now();
        self.leases.retain(|_, slot| match slot.try_lock() {
            Ok(lease) => {
                now < lease.expires
                    || lease.denied_until.is_some_and(|until| now < until)
                    || lease.offline_until.is_some_and(|until| now < until)
                    || now < lease.allowance.full_at()
                    || now < lease.fallback.full_at()
            }
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

/// A key going local that the shared bucket was deciding a moment ago: it may have used the whole
/// limit already, so its local share starts used up (it refills at the share's rate) rather than
/// with a burst on top of what the bucket admitted.
fn drain_if_shared(lease: &mut Lease, now: Instant) {
    let recent = lease.consulted.is_some_and(|at| now.duration_since(at) < Duration::from_secs(60));
    if recent && lease.offline_until.is_none_or(|until| until <= now) {
        lease.fallback.tat = lease.fallback.tat.max(now + Duration::from_secs(60));
    }
}

fn denied(per_min: u32, interval: Duration, wait: Duration) -> Decision {
    Decision { allowed: false, limit: per_min, remaining: 0, reset: interval * per_min, retry_after: wait }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(decided: Decided) -> Decision {
        match decided {
            Decided::Shared(d) => d,
            Decided::Local(d) => unreachable!("decided locally: {d:?}"),
        }
    }

    async fn states(db: &Db) -> i64 {
        let mut response = db.query("RETURN array::len(SELECT VALUE id FROM limit_state)").await.unwrap();
        response.take::<Option<i64>>(0).unwrap().unwrap_or(0)
    }

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
        a.heartbeat().await.unwrap();
        assert_eq!(b.heartbeat().await.unwrap(), 2);
        a.heartbeat().await.unwrap();
        let mut admitted = 0;
        for i in 0..100 {
            let holder = if i % 2 == 0 { &a } else { &b };
            admitted += u32::from(shared(holder.check("key", "k1", 30).await).allowed);
        }
        // 30 in the burst, plus one refilled while the loop ran, plus the slack (a block each).
        assert!((30..=33).contains(&admitted), "{admitted}");
        let refused = shared(a.check("key", "k1", 30).await);
        assert!(!refused.allowed && refused.retry_after <= Duration::from_secs(2), "{refused:?}");
        assert!(shared(a.check("key", "other", 30).await).allowed, "keys are apart");
    }

    #[tokio::test]
    async fn concurrent_holders_never_lease_past_the_burst() {
        let db = Db::memory().await.unwrap();
        let holders: Vec<Arc<SharedLimits>> = (0..3).map(|_| Arc::new(SharedLimits::new(db.clone()))).collect();
        for holder in &holders {
            holder.heartbeat().await.unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let holder = Arc::clone(&holders[i % 3]);
            tasks.spawn(async move { shared(holder.check("key", "k", 1_000).await).allowed });
        }
        let mut admitted = 0;
        while let Some(result) = tasks.join_next().await {
            admitted += u32::from(result.unwrap());
        }
        // Burst 1,000: all 300 fit, leased in blocks of 10.
        assert_eq!(admitted, 300);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1_200 {
            let holder = Arc::clone(&holders[i % 3]);
            tasks.spawn(async move { shared(holder.check("key", "k", 1_000).await).allowed });
        }
        while let Some(result) = tasks.join_next().await {
            admitted += u32::from(result.unwrap());
        }
        // 1,000 in the burst plus what refilled meanwhile (1,000 a minute) plus the slack.
        assert!(admitted <= 1_000 + 3 * 10 + 20, "{admitted}");
        assert!(admitted >= 950, "leases were not wasted: {admitted}");
    }

    #[tokio::test]
    async fn a_flood_of_fresh_keys_costs_the_database_nothing() {
        let db = Db::memory().await.unwrap();
        let limits = SharedLimits::new(db.clone());
        limits.heartbeat().await.unwrap();
        // Ten thousand addresses, one request each, against a per-IP limit of 1,000 a minute.
        for i in 0..10_000 {
            assert!(shared(limits.check("ip", &format!("10.0.{}.{}", i / 256, i % 256), 1_000).await).allowed);
        }
        assert_eq!(states(&db).await, 0, "no address was written to the database");
        // One address that keeps coming is leased for, and charged what it had locally.
        let (mut admitted, started) = (0, Instant::now());
        for _ in 0..1_100 {
            admitted += u32::from(shared(limits.check("ip", "192.0.2.1", 1_000).await).allowed);
        }
        assert_eq!(states(&db).await, 1);
        // The burst, the slack of a block, and what refilled while the loop ran (1,000 a minute).
        let refilled = (started.elapsed().as_secs_f64() * 1_000.0 / 60.0).ceil() as u32;
        assert!((1_000..=1_000 + 10 + 2 + refilled).contains(&admitted), "{admitted} ({refilled} refilled)");
    }

    #[tokio::test]
    async fn a_slow_lease_sends_only_its_own_key_local_and_at_its_share() {
        let db = Db::memory().await.unwrap();
        let limits = SharedLimits::new(db.clone());
        // Two other instances alive on the database: this one's share is a third.
        for other in ["i2", "i3"] {
            db.query("UPSERT type::record('instance', $id) SET seen = $now")
                .bind(("id", other))
                .bind(("now", now_ms()))
                .await
                .unwrap();
        }
        assert_eq!(limits.heartbeat().await.unwrap(), 3);
        // Past its allowance, a key's lease cannot answer in time: that key goes local.
        limits.slow_down(LEASE_TIMEOUT * 2);
        let (mut local, mut admitted) = (0, 0);
        for _ in 0..300 {
            match limits.check("key", "slow", 300).await {
                Decided::Local(d) => {
                    local += 1;
                    admitted += u32::from(d.allowed);
                }
                Decided::Shared(d) => admitted += u32::from(d.allowed),
            }
        }
        assert!(local >= 290, "{local}");
        // Its allowance (a block of 3), then a third of the limit, not all of it.
        assert!((100..=100 + 3 + 1).contains(&admitted), "{admitted}");
        // Another key, meanwhile, still goes to the database.
        limits.slow_down(Duration::ZERO);
        for _ in 0..20 {
            assert!(shared(limits.check("key", "other", 300).await).allowed);
        }
        assert_eq!(states(&db).await, 1, "the other key was leased for");
        assert!(
            matches!(limits.check("key", "slow", 300).await, Decided::Local(_)),
            "the slow key stays local a while"
        );
    }
}
