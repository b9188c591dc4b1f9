//! Calls in flight: at most so many at once for one slot (a workspace's, a key's or a
//! provider's), a stream counting until it ends.
//!
//! - **Alone** (the embedded database), a counter in memory.
//! - **Shared** (a database server), one record per slot (`inflight`) lists what each instance
//!   holds; an instance takes a place in a transaction that counts the places of the instances
//!   alive (those in `instance` that beat in the last 30 s) and gives it back in another when
//!   the call ends. Every instance writes the same record, so concurrent takers conflict and one
//!   retries: the limit is never passed, on any number of instances. The places of an instance
//!   that died come back once it stops counting as alive. The cost: two transactions per call
//!   under a concurrency limit, one at a time per slot on each instance.
//!
//! A call that finds no place waits for one (a local end wakes it at once; another instance's,
//! within the polling interval) up to its own bound, then is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::platform::db::{Db, now_ms, root_cause};
use crate::platform::rate::leases::ALIVE_FOR;

const CONFLICT_ATTEMPTS: u32 = 50;
/// The longest a write in the background (a place given back) may take.
const BACKGROUND_WRITE: Duration = Duration::from_secs(30);
/// How often a waiting call asks the database again (a local end wakes it sooner).
const POLL: Duration = Duration::from_millis(25);

/// Where the counters are.
#[derive(Clone)]
pub enum Store {
    Local,
    Shared { db: Db, instance: String, timeout: Duration },
}

#[derive(Debug, Default)]
struct Slot {
    /// Places this instance holds (calls in flight here).
    used: AtomicU32,
    /// Database work for the slot, one at a time on this instance.
    turn: tokio::sync::Mutex<()>,
    /// A rewrite of the slot's record is pending (one is enough, whatever made it due).
    rewrite_due: std::sync::atomic::AtomicBool,
    freed: tokio::sync::Notify,
    /// Calls waiting for a place here (a place given back wakes them only when there are some).
    waiting: AtomicU32,
}

impl Slot {
    /// Wakes the calls waiting for a place, if any.
    fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }
}

/// Counts a call among a slot's waiters while it lives.
struct Waiting<'a>(&'a Slot);

impl<'a> Waiting<'a> {
    fn new(slot: &'a Slot) -> Self {
        slot.waiting.fetch_add(1, Ordering::SeqCst);
        Self(slot)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place under `limit` in a slot this instance keeps alone.
fn take_local(cell: &Slot, limit: u32) -> bool {
    cell.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| (used < limit).then_some(used + 1)).is_ok()
}

/// Every concurrency slot of this instance.
#[derive(Clone)]
pub struct InFlight {
    store: Store,
    slots: Arc<DashMap<String, Arc<Slot>>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("slots", &self.slots.len()).finish_non_exhaustive()
    }
}

/// A place held: given back when dropped (the call ended, or its future was dropped).
#[derive(Debug)]
pub struct Place {
    owner: InFlight,
    slot: String,
    cell: Arc<Slot>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let owner = self.owner.clone();
        let (slot, cell) = (std::mem::take(&mut self.slot), Arc::clone(&self.cell));
        match &owner.store {
            Store::Local => {
                cell.used.fetch_sub(1, Ordering::SeqCst);
                cell.wake();
            }
            Store::Shared { .. } => {
                let Some(runtime) = owner.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) else {
                    return;
                };
                runtime.spawn(async move {
                    let _turn = cell.turn.lock().await;
                    let mine = cell.used.load(Ordering::Acquire).saturating_sub(1);
                    // Given back for good: if the write fails, the place comes back when this
                    // instance's holds are next written (or when it stops counting as alive).
                    if owner.write_patiently(&slot, mine).await.is_some() {
                        cell.used.store(mine, Ordering::Release);
                    } else {
                        cell.used.store(mine, Ordering::Release);
                        tracing::warn!("giving back a concurrency place failed; it is given back with the next write");
                    }
                    cell.wake();
                });
            }
        }
    }
}

/// Writes a slot's record again with the places this instance holds, unless disarmed: after a
/// write whose outcome is unknown, so that a place the database took for a call that never got it
/// does not stay taken.
struct Rewrite {
    owner: InFlight,
    slot: String,
    cell: Arc<Slot>,
    armed: bool,
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if !self.armed || self.cell.rewrite_due.swap(true, Ordering::AcqRel) {
            // Not needed, or one is already due.
            return;
        }
        let Some(runtime) = self.owner.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) else {
            return;
        };
        let (owner, slot, cell) = (self.owner.clone(), std::mem::take(&mut self.slot), Arc::clone(&self.cell));
        runtime.spawn(async move {
            let _turn = cell.turn.lock().await;
            cell.rewrite_due.store(false, Ordering::Release);
            let mine = cell.used.load(Ordering::Acquire);
            // A write the database is still running may commit after this one: then the place
            // stays until this instance's next write of the slot (or until it stops counting).
            if owner.write_patiently(&slot, mine).await.is_none() {
                tracing::warn!(
                    "a concurrency place of unknown outcome could not be rewritten; it is with the next write"
                );
            }
            cell.wake();
        });
    }
}

impl InFlight {
    pub fn new(store: Store) -> Self {
        Self { store, slots: Arc::default(), runtime: tokio::runtime::Handle::try_current().ok() }
    }

    fn cell(&self, slot: &str) -> Arc<Slot> {
        if let Some(cell) = self.slots.get(slot) {
            return Arc::clone(&cell);
        }
        Arc::clone(self.slots.entry(slot.to_owned()).or_default().value())
    }

    /// Calls in flight under `slot` on this instance.
    pub fn here(&self, slot: &str) -> u32 {
        self.slots.get(slot).map_or(0, |c| c.used.load(Ordering::Acquire))
    }

    /// A place under `slot` (at most `limit` across instances), waiting up to `wait` for one.
    /// `None`: no place in time (or the database did not answer: refused, never over the limit).
    pub async fn take(&self, slot: &str, limit: u32, wait: Duration) -> Option<Place> {
        let cell = self.cell(slot);
        let place = |cell: Arc<Slot>| Place { owner: self.clone(), slot: slot.to_owned(), cell };
        // Alone, a free place is taken without registering as a waiter.
        if matches!(self.store, Store::Local) && take_local(&cell, limit) {
            return Some(place(cell));
        }
        let until = Instant::now() + wait;
        let _waiting = Waiting::new(&cell);
        loop {
            let freed = cell.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(slot, &cell, limit, until).await {
                return Some(place(Arc::clone(&cell)));
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            let nap = match self.store {
                Store::Local => until - now,
                Store::Shared { .. } => POLL.min(until - now),
            };
            let _ = tokio::time::timeout(nap, freed).await;
        }
    }

    async fn try_take(&self, slot: &str, cell: &Arc<Slot>, limit: u32, until: Instant) -> bool {
        match &self.store {
            Store::Local => take_local(cell, limit),
            Store::Shared { .. } => {
                // Background writes of the slot (on a slow database) do not hold a call past its
                // own wait.
                let wait = until.saturating_duration_since(Instant::now());
                let Ok(_turn) = tokio::time::timeout(wait, cell.turn.lock()).await else { return false };
                let used = cell.used.load(Ordering::Acquire);
                // A write that timed out, failed, or whose future is dropped half way (the call
                // gave up) may still have committed: until it is known not to have, the slot's
                // record is written again with what this instance really holds.
                let mut unsure =
                    Rewrite { owner: self.clone(), slot: slot.to_owned(), cell: Arc::clone(cell), armed: true };
                match self.write(slot, used + 1, Some(limit)).await {
                    Some(true) => {
                        cell.used.store(used + 1, Ordering::Release);
                        unsure.armed = false;
                        true
                    }
                    Some(false) => {
                        unsure.armed = false;
                        false
                    }
                    None => false,
                }
            }
        }
    }

    /// Writes this instance's places under `slot` as `mine`; with `limit`, only if the places of
    /// every instance alive then fit it. `Some(written)`, or `None` when the database failed.
    async fn write(&self, slot: &str, mine: u32, limit: Option<u32>) -> Option<bool> {
        let Store::Shared { timeout, .. } = &self.store else { return Some(true) };
        self.write_within(slot, mine, limit, *timeout).await
    }

    /// A write in the background (a place given back, a record written again): it may take far
    /// longer than a call waits, but not for ever.
    async fn write_patiently(&self, slot: &str, mine: u32) -> Option<bool> {
        self.write_within(slot, mine, None, BACKGROUND_WRITE).await
    }

    async fn write_within(&self, slot: &str, mine: u32, limit: Option<u32>, timeout: Duration) -> Option<bool> {
        let Store::Shared { db, instance, .. } = &self.store else { return Some(true) };
        let query = "BEGIN TRANSACTION;
            LET $id = type::record('inflight', $slot);
            LET $me = type::record('instance', $instance);
            LET $alive = SELECT VALUE id FROM instance WHERE seen >= $since;
            LET $holds = (SELECT VALUE holds FROM $id)[0] OR [];
            LET $kept = array::filter($holds, |$h| $h.i != $me AND $h.i INSIDE $alive);
            LET $others = math::sum(array::map($kept, |$h| $h.n));
            LET $fits = $limit = NONE OR $others + $mine <= $limit;
            IF $fits { UPSERT $id SET holds = IF $mine > 0 { array::push($kept, { i: $me, n: $mine }) } ELSE { $kept }, at = $now RETURN NONE; };
            RETURN $fits;
            COMMIT TRANSACTION;";
        let since = now_ms() - i64::try_from(ALIVE_FOR.as_millis()).unwrap_or(0);
        let attempt = db.retrying(CONFLICT_ATTEMPTS, || async {
            let mut response = db
                .query(query)
                .bind(("slot", slot.to_owned()))
                .bind(("instance", instance.clone()))
                .bind(("since", since))
                .bind(("now", now_ms()))
                .bind(("mine", i64::from(mine)))
                .bind(("limit", limit.map(i64::from)))
                .await?;
            if let Some(e) = root_cause(response.take_errors()) {
                return Err(e);
            }
            let last = response.num_statements().saturating_sub(2);
            response.take::<Option<bool>>(last)
        });
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(fits)) => Some(fits.unwrap_or(false)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a shared concurrency place could not be written");
                None
            }
            Err(_) => None,
        }
    }

    /// Forgets slots with nothing in flight here.
    pub fn prune(&self) {
        self.slots.retain(|_, cell| cell.used.load(Ordering::Acquire) > 0 || Arc::strong_count(cell) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_slot_holds_its_limit_and_a_place_given_back_wakes_a_waiter() {
        let limits = InFlight::new(Store::Local);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(limits.take("k", 4, Duration::ZERO).await.unwrap());
        }
        assert!(limits.take("k", 4, Duration::ZERO).await.is_none());
        assert_eq!(limits.here("k"), 4);
        let waiter = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.take("k", 4, Duration::from_secs(30)).await.is_some() })
        };
        held.pop();
        assert!(waiter.await.unwrap(), "woken by the place given back");
    }

    #[tokio::test]
    async fn instances_sharing_a_slot_never_pass_it() {
        let db = Db::memory().await.unwrap();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let instance = format!("node{i}");
            db.query("UPSERT type::record('instance', $id) SET seen = $now")
                .bind(("id", instance.clone()))
                .bind(("now", now_ms()))
                .await
                .unwrap();
            nodes.push(InFlight::new(Store::Shared { db: db.clone(), instance, timeout: Duration::from_secs(5) }));
        }
        let mut held = Vec::new();
        for i in 0..9 {
            if let Some(place) = nodes[i % 3].take("ws:key:fly", 4, Duration::ZERO).await {
                held.push(place);
            }
        }
        assert_eq!(held.len(), 4);
        let total: u32 = (0..3).map(|i| nodes[i].here("ws:key:fly")).sum();
        assert_eq!(total, 4);
        // A place given back on one instance can be taken on another.
        held.remove(0);
        let taken = nodes[2].take("ws:key:fly", 4, Duration::from_secs(5)).await;
        assert!(taken.is_some());
        // An instance that stops beating loses its places.
        db.query("DELETE instance:node0").await.unwrap();
        let mut more = 0;
        for _ in 0..4 {
            more += usize::from(nodes[1].take("ws:key:fly", 4, Duration::ZERO).await.map(|p| held.push(p)).is_some());
        }
        assert!(more >= 1, "node0's places came back");
    }

    #[tokio::test]
    async fn a_place_whose_write_is_abandoned_half_way_is_not_left_taken() {
        let db = Db::memory().await.unwrap();
        let node = |name: &str, timeout: Duration| {
            InFlight::new(Store::Shared { db: db.clone(), instance: name.into(), timeout })
        };
        for name in ["a", "b"] {
            db.query("UPSERT type::record('instance', $id) SET seen = $now")
                .bind(("id", name.to_owned()))
                .bind(("now", now_ms()))
                .await
                .unwrap();
        }
        let (a, b) = (node("a", Duration::from_secs(5)), node("b", Duration::from_secs(5)));
        // What a write of unknown outcome leaves: `a`'s place committed in the database, for a
        // call of `a` that gave up (timed out, or its future was dropped) before it learnt so.
        assert_eq!(a.write("ws:fly", 1, Some(1)).await, Some(true));
        assert_eq!(a.here("ws:fly"), 0);
        assert!(b.take("ws:fly", 1, Duration::ZERO).await.is_none(), "the phantom place blocks the slot");
        // The guard `try_take` holds over such a write writes what `a` really holds.
        drop(Rewrite { owner: a.clone(), slot: "ws:fly".into(), cell: a.cell("ws:fly"), armed: true });
        let place = b.take("ws:fly", 1, Duration::from_secs(5)).await;
        assert!(place.is_some(), "the slot's only place was left to a call that never got it");
    }
}
