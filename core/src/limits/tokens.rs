//! Token buckets: so many tokens a minute for one slot (a workspace's, a key's or a provider's
//! input, output or total tokens), reserved before a call at its estimate and settled to what it
//! used.
//!
//! A bucket is a GCRA with a cost: its theoretical arrival time moves on by a token's interval
//! (a minute divided by the limit) per token, and a reservation fits while the time stays within
//! a minute of now (the burst is the whole limit).
//!
//! - **Alone** (the embedded database), the bucket is this instance's, in memory.
//! - **Shared** (a database server), the bucket is in the database (`token_state`, on the
//!   database's clock) and each instance leases tokens from it: a reservation that does not fit
//!   what this instance holds takes what it needs plus a block (a fiftieth of the limit, at most
//!   [`MAX_BLOCK`]) in one transaction, so most reservations cost no database work. What a call
//!   did not use goes back to what this instance holds; what an instance holds when it next
//!   leases goes back to the bucket in that same transaction.
//! - **The slack.** Nothing is admitted that the bucket did not grant first, so across any
//!   number of instances the tokens admitted in a minute stay within the limit (plus what the
//!   bucket refills meanwhile). Tokens held by an instance and not yet used are tokens other
//!   instances cannot have: the limit may admit up to `instances × (block + the margin of
//!   calls still in flight)` less than it allows, never more. Held tokens are usable for the
//!   time the bucket takes to refill them (at least a second).
//! - **A slow database.** A lease that does not answer within the shared-limit timeout decides
//!   that slot on this instance alone, for a few seconds, at its share of the limit (the limit
//!   divided by the instances alive).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use surrealdb::types::SurrealValue;

use crate::platform::db::{Db, root_cause};

/// The most tokens one lease takes beyond what the reservation needs.
pub const MAX_BLOCK: u64 = 100_000;
const CONFLICT_ATTEMPTS: u32 = 30;
/// How long a slot whose lease did not answer is decided locally.
const OFFLINE_BACKOFF: Duration = Duration::from_secs(3);
const MINUTE: Duration = Duration::from_secs(60);

/// The tokens one lease takes beyond a reservation, for a limit of `per_min`.
pub fn block_size(per_min: u64) -> u64 {
    (per_min / 50).clamp(1, MAX_BLOCK)
}

/// Where the buckets are.
#[derive(Clone)]
pub enum Store {
    /// This instance alone.
    Local,
    /// In the database, shared by every instance on it.
    Shared { db: Db, timeout: Duration },
}

/// Why a reservation does not fit: when it would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub retry_after: Duration,
    /// What the bucket had left (tokens), as far as this instance knows.
    pub remaining: u64,
    /// Whether the reservation is larger than the whole limit (it can never fit).
    pub never: bool,
}

/// What a reservation left: tokens remaining and when the bucket is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Left {
    pub remaining: u64,
    pub reset: Duration,
}

/// A GCRA bucket with costs, in memory.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    tat: Instant,
}

impl Gcra {
    fn interval(per_min: u64) -> Duration {
        MINUTE.div_f64(per_min.max(1) as f64)
    }

    fn take(&mut self, now: Instant, per_min: u64, n: u64) -> Result<Left, Short> {
        let t = Self::interval(per_min);
        let tat = self.tat.max(now);
        let after = tat + t.mul_f64(n as f64);
        let room = |tat: Instant| {
            per_min.saturating_sub((tat.saturating_duration_since(now).as_secs_f64() / t.as_secs_f64()).ceil() as u64)
        };
        if n > per_min {
            return Err(Short { retry_after: MINUTE, remaining: room(tat), never: true });
        }
        if after > now + MINUTE {
            return Err(Short { retry_after: after - now - MINUTE, remaining: room(tat), never: false });
        }
        self.tat = after;
        Ok(Left { remaining: room(after), reset: after - now })
    }

    fn charge(&mut self, now: Instant, per_min: u64, n: u64) {
        self.tat = self.tat.max(now) + Self::interval(per_min).mul_f64(n as f64);
    }

    fn give_back(&mut self, now: Instant, per_min: u64, n: u64) {
        let t = Self::interval(per_min).mul_f64(n as f64);
        self.tat = self.tat.checked_sub(t).unwrap_or(now).max(now);
    }
}

/// What this instance holds for one slot.
#[derive(Debug)]
struct Slot {
    /// Local buckets: the bucket itself. Shared: the fallback at this instance's share.
    local: Gcra,
    /// Shared: tokens leased and not yet reserved, usable until `expires`.
    held: u64,
    expires: Instant,
    /// Shared: tokens to charge the bucket at the next lease (a call that used more than it
    /// reserved).
    owed: u64,
    /// Shared: what the bucket had left at the last lease.
    room: u64,
    denied_until: Option<(Instant, u64)>,
    offline_until: Option<Instant>,
}

#[derive(SurrealValue)]
struct Grant {
    granted: i64,
    room: i64,
    wait: i64,
}

/// Every token bucket of this instance.
pub struct TokenBuckets {
    store: Store,
    slots: DashMap<String, Arc<tokio::sync::Mutex<Slot>>>,
    /// Alone, each bucket is a GCRA state under a plain lock held for a few instructions: a
    /// tokio lock shared by the serving threads cost a call tens of microseconds at 64
    /// connections (its release takes the semaphore's waiter list every time).
    alone: DashMap<String, Arc<std::sync::Mutex<Gcra>>>,
}

impl std::fmt::Debug for TokenBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuckets").field("slots", &self.slots.len()).finish_non_exhaustive()
    }
}

/// Where a reservation's tokens came from: what it gives back or owes goes back there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The slot's bucket: this instance's own, or (shared) the database's, through a lease.
    Bucket,
    /// Shared, with the database too slow: this instance's fallback share, a bucket of `share`
    /// tokens a minute, from which `taken` tokens were reserved (at most the share).
    Fallback { share: u64, taken: u64 },
}

impl Source {
    /// What a reservation of `n` tokens against `per_min` really took, and the rate of the
    /// bucket it took them from: what settling it gives back or owes is counted against these.
    pub fn reserved(self, n: u64, per_min: u64) -> (u64, u64) {
        match self {
            Self::Bucket => (n, per_min),
            Self::Fallback { share, taken } => (taken, share),
        }
    }
}

/// How a reservation was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Fits(Left, Source),
    Short(Short),
}

impl TokenBuckets {
    pub fn new(store: Store) -> Self {
        Self { store, slots: DashMap::new(), alone: DashMap::new() }
    }

    /// Runs `f` on the bucket `name` this instance keeps alone.
    fn alone<T>(&self, name: &str, f: impl FnOnce(&mut Gcra) -> T) -> T {
        let cell = match self.alone.get(name) {
            Some(cell) => Arc::clone(&cell),
            None => Arc::clone(
                self.alone
                    .entry(name.to_owned())
                    .or_insert_with(|| Arc::new(std::sync::Mutex::new(Gcra { tat: Instant::now() })))
                    .value(),
            ),
        };
        let mut gcra = cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut gcra)
    }

    fn slot(&self, name: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        if let Some(slot) = self.slots.get(name) {
            return Arc::clone(&slot);
        }
        let now = Instant::now();
        Arc::clone(
            self.slots
                .entry(name.to_owned())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(Slot {
                        local: Gcra { tat: now },
                        held: 0,
                        expires: now,
                        owed: 0,
                        room: 0,
                        denied_until: None,
                        offline_until: None,
                    }))
                })
                .value(),
        )
    }

    /// Reserves `n` tokens of `slot` against `per_min`; `instances` is how many share the
    /// bucket (this instance's share when the database is slow).
    pub async fn reserve(&self, slot: &str, per_min: u64, n: u64, instances: u32) -> Decided {
        let (db, timeout) = match &self.store {
            Store::Local => {
                return self.alone(slot, |gcra| decided(gcra.take(Instant::now(), per_min, n), Source::Bucket));
            }
            Store::Shared { db, timeout } => (db, *timeout),
        };
        let cell = self.slot(slot);
        let mut s = cell.lock().await;
        let now = Instant::now();
        if n > per_min {
            return Decided::Short(Short { retry_after: MINUTE, remaining: s.room, never: true });
        }
        if s.offline_until.is_some_and(|until| now < until) {
            let share = (per_min / u64::from(instances.max(1))).max(1);
            let taken = n.min(share);
            return decided(s.local.take(now, share, taken), Source::Fallback { share, taken });
        }
        if now < s.expires && s.held >= n {
            s.held -= n;
            let left = Left {
                remaining: s.held + s.room,
                reset: Gcra::interval(per_min).mul_f64((per_min - (s.held + s.room).min(per_min)) as f64),
            };
            return Decided::Fits(left, Source::Bucket);
        }
        if let Some((until, room)) = s.denied_until.filter(|(until, _)| now < *until) {
            return Decided::Short(Short { retry_after: until - now, remaining: room, never: false });
        }
        // What this instance holds goes back to the bucket with the lease (it may have expired).
        let give_back = s.held;
        let owed = s.owed;
        let want = n.saturating_add(block_size(per_min));
        let leased =
            tokio::time::timeout(timeout, lease(db, slot, per_min, n, want, owed, give_back)).await.ok().flatten();
        let now = Instant::now();
        let Some(grant) = leased else {
            s.offline_until = Some(now + OFFLINE_BACKOFF);
            // Going local just after the bucket decided: the share starts used up, not full.
            s.local.tat = s.local.tat.max(now + Duration::from_secs(10));
            let share = (per_min / u64::from(instances.max(1))).max(1);
            let taken = n.min(share);
            return decided(s.local.take(now, share, taken), Source::Fallback { share, taken });
        };
        s.owed = 0;
        s.held = 0;
        s.offline_until = None;
        let room = u64::try_from(grant.room.max(0)).unwrap_or(0);
        s.room = room;
        if grant.granted >= i64::try_from(n).unwrap_or(i64::MAX) {
            let granted = u64::try_from(grant.granted).unwrap_or(n);
            s.held = granted - n;
            s.expires = now + Gcra::interval(per_min).mul_f64(granted as f64).max(Duration::from_secs(1));
            s.denied_until = None;
            let remaining = s.held + room;
            let reset = Gcra::interval(per_min).mul_f64((per_min - remaining.min(per_min)) as f64);
            Decided::Fits(Left { remaining, reset }, Source::Bucket)
        } else {
            let wait = Duration::from_nanos(u64::try_from(grant.wait.max(1)).unwrap_or(1));
            // Remembered briefly: the next calls are refused without asking again, but a settle
            // elsewhere may free room, so not for long.
            s.denied_until = Some((now + wait.min(Duration::from_millis(250)), room));
            Decided::Short(Short { retry_after: wait, remaining: room, never: false })
        }
    }

    /// Gives back `n` tokens a call reserved from `source` and did not use: to where they came
    /// from (tokens the fallback share lent never go to the shared bucket, and the reverse).
    pub async fn give_back(&self, slot: &str, per_min: u64, n: u64, source: Source) {
        if n == 0 {
            return;
        }
        if matches!(self.store, Store::Local) {
            self.alone(slot, |gcra| gcra.give_back(Instant::now(), per_min, n));
            return;
        }
        let cell = self.slot(slot);
        let mut s = cell.lock().await;
        let now = Instant::now();
        match (&self.store, source) {
            (Store::Local, _) | (Store::Shared { .. }, Source::Fallback { .. }) => s.local.give_back(now, per_min, n),
            (Store::Shared { .. }, Source::Bucket) => {
                // Usable here at once (once the database answers again), and back in the bucket
                // with the next lease. A lease that ran out holds nothing any more: the bucket
                // has refilled what it held.
                if now >= s.expires {
                    s.held = 0;
                }
                s.held = s.held.saturating_add(n);
                s.expires = s.expires.max(now + Duration::from_secs(1));
            }
        }
    }

    /// Charges `n` tokens a call used beyond what it reserved from `source` (with the next lease,
    /// when that is the shared bucket).
    pub async fn charge(&self, slot: &str, per_min: u64, n: u64, source: Source) {
        if n == 0 {
            return;
        }
        if matches!(self.store, Store::Local) {
            self.alone(slot, |gcra| gcra.charge(Instant::now(), per_min, n));
            return;
        }
        let cell = self.slot(slot);
        let mut s = cell.lock().await;
        let now = Instant::now();
        match (&self.store, source) {
            (Store::Local, _) | (Store::Shared { .. }, Source::Fallback { .. }) => {
                s.local.tat = s.local.tat.max(now) + Gcra::interval(per_min).mul_f64(n as f64);
            }
            (Store::Shared { .. }, Source::Bucket) => {
                let from_held = s.held.min(n);
                s.held -= from_held;
                s.owed = s.owed.saturating_add(n - from_held);
            }
        }
    }

    /// Settles a reservation of `reserved` tokens at `actual` now, when the bucket is this
    /// instance's alone and no one else is using it; `false`: it is for `give_back` or `charge`.
    pub fn settle_now(&self, slot: &str, per_min: u64, reserved: u64, actual: u64) -> bool {
        if !matches!(self.store, Store::Local) {
            return false;
        }
        if actual != reserved {
            let now = Instant::now();
            self.alone(slot, |gcra| {
                if actual < reserved {
                    gcra.give_back(now, per_min, reserved - actual);
                } else {
                    gcra.charge(now, per_min, actual - reserved);
                }
            });
        }
        true
    }

    /// Forgets slots that hold nothing and whose buckets are full again.
    pub fn prune(&self) {
        let now = Instant::now();
        self.slots.retain(|_, cell| match cell.try_lock() {
            Ok(s) => {
                now < s.local.tat
                    || (s.held > 0 && now < s.expires)
                    || s.owed > 0
                    || s.offline_until.is_some_and(|u| now < u)
            }
            Err(_) => true,
        });
        // A bucket kept alone is forgotten once it is full again.
        self.alone.retain(|_, cell| cell.lock().map_or(true, |gcra| now < gcra.tat));
    }

    /// Removes database buckets that are full again.
    pub async fn sweep(db: &Db) -> Result<(), surrealdb::Error> {
        db.query("DELETE token_state WHERE expires < time::nano(time::now())").await?.check()?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.slots.len() + self.alone.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.alone.is_empty()
    }
}

fn decided(outcome: Result<Left, Short>, source: Source) -> Decided {
    match outcome {
        Ok(left) => Decided::Fits(left, source),
        Err(short) => Decided::Short(short),
    }
}

/// In one transaction: charges `owed`, gives back `give_back`, and grants between `need` and
/// `want` tokens if at least `need` fit (else says how long until they would).
async fn lease(db: &Db, slot: &str, per_min: u64, need: u64, want: u64, owed: u64, give_back: u64) -> Option<Grant> {
    let per_min = i64::try_from(per_min.max(1)).unwrap_or(i64::MAX);
    let t = (60_000_000_000i64 / per_min).max(1);
    let tau = t.saturating_mul(per_min);
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let query = "BEGIN TRANSACTION;
        LET $id = type::record('token_state', $slot);
        LET $now = time::nano(time::now());
        LET $row = (SELECT VALUE tat FROM $id)[0];
        LET $base = (IF $row = NONE OR $row < $now { $now } ELSE { $row }) + ($owed - $back) * $t;
        LET $tat = IF $base < $now { $now } ELSE { $base };
        LET $room = <int> math::floor(($now + $tau - $tat) / $t);
        LET $n = IF $room < $need { 0 } ELSE IF $room < $want { $room } ELSE { $want };
        LET $next = $tat + $n * $t;
        UPSERT $id SET tat = $next, expires = $next RETURN NONE;
        RETURN { granted: $n, room: $room - $n, wait: $tat + $need * $t - $tau - $now };
        COMMIT TRANSACTION;";
    let leased = db
        .retrying(CONFLICT_ATTEMPTS, || async {
            let mut response = db
                .query(query)
                .bind(("slot", slot.to_owned()))
                .bind(("t", t))
                .bind(("tau", tau))
                .bind(("need", int(need)))
                .bind(("want", int(want)))
                .bind(("owed", int(owed)))
                .bind(("back", int(give_back)))
                .await?;
            if let Some(e) = root_cause(response.take_errors()) {
                return Err(e);
            }
            let last = response.num_statements().saturating_sub(2);
            response.take::<Option<Grant>>(last)
        })
        .await;
    match leased {
        Ok(grant) => grant,
        Err(e) => {
            tracing::warn!(error = %e, "leasing shared token-limit tokens failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(d: Decided) -> bool {
        matches!(d, Decided::Fits(..))
    }

    #[tokio::test]
    async fn a_local_bucket_admits_its_minute_then_refuses_and_takes_back_what_was_unused() {
        let buckets = TokenBuckets::new(Store::Local);
        let mut admitted = 0;
        for _ in 0..20 {
            if fits(buckets.reserve("k", 10_000, 1_000, 1).await) {
                admitted += 1_000;
            }
        }
        assert_eq!(admitted, 10_000);
        let Decided::Short(short) = buckets.reserve("k", 10_000, 1_000, 1).await else { panic!("fits") };
        assert!(!short.never && short.retry_after > Duration::from_secs(5), "{short:?}");
        buckets.give_back("k", 10_000, 2_500, Source::Bucket).await;
        assert!(fits(buckets.reserve("k", 10_000, 2_000, 1).await), "what was given back fits again");
        let Decided::Short(never) = buckets.reserve("k", 10_000, 10_001, 1).await else { panic!("fits") };
        assert!(never.never);
        assert!(fits(buckets.reserve("other", 10_000, 10_000, 1).await), "slots are apart");
    }

    #[tokio::test]
    async fn instances_sharing_a_bucket_never_admit_past_it() {
        let db = Db::memory().await.unwrap();
        let store = Store::Shared { db, timeout: Duration::from_secs(5) };
        let holders: Vec<Arc<TokenBuckets>> = (0..3).map(|_| Arc::new(TokenBuckets::new(store.clone()))).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let holder = Arc::clone(&holders[i % 3]);
            tasks.spawn(async move { fits(holder.reserve("ws:key:in", 10_000, 1_000, 3).await) });
        }
        let mut admitted = 0;
        while let Some(fit) = tasks.join_next().await {
            admitted += u64::from(fit.unwrap()) * 1_000;
        }
        // Each instance may hold a block (200) it never used: at least 10,000 - 3 × 1,000.
        assert!((7_000..=10_000).contains(&admitted), "{admitted}");
        // Given back on one instance, usable there at once.
        holders[0].give_back("ws:key:in", 10_000, 1_000, Source::Bucket).await;
        assert!(fits(holders[0].reserve("ws:key:in", 10_000, 1_000, 3).await));
    }

    #[tokio::test]
    async fn what_the_fallback_share_lent_goes_back_to_it_and_nowhere_else() {
        // A database whose leases fail: every lease falls back to this instance's share.
        let db = Db::memory().await.unwrap();
        db.query("REMOVE TABLE token_state").await.unwrap().check().unwrap();
        let buckets = TokenBuckets::new(Store::Shared { db, timeout: Duration::from_secs(5) });
        // The share starts used up by ten seconds' worth (1,000 of 6,000 a minute).
        let Decided::Fits(_, source) = buckets.reserve("s", 6_000, 4_900, 1).await else { panic!("short") };
        assert_eq!(source, Source::Fallback { share: 6_000, taken: 4_900 });
        assert!(!fits(buckets.reserve("s", 6_000, 1_000, 1).await), "the share is used up");
        // Tokens a call took from the shared bucket (before the database went away) do not
        // enlarge the fallback share when they come back.
        buckets.give_back("s", 6_000, 1_000, Source::Bucket).await;
        assert!(!fits(buckets.reserve("s", 6_000, 1_000, 1).await), "not the share's to lend again");
        // Tokens the share lent do.
        buckets.give_back("s", 6_000, 1_000, source).await;
        assert!(fits(buckets.reserve("s", 6_000, 1_000, 1).await));
    }
}
