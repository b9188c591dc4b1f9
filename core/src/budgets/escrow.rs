//! Escrow: each instance sets aside a **slice** of a budget period's room in one transaction (the
//! slice is counted in the period's `reserved_*` and recorded against the instance in
//! `budget_slice`), then reserves and settles its calls against the slice in memory. What the
//! calls spent is written in the background (every second, with the slice's renewal when it runs
//! low, and when it is returned), in the same transaction that takes it out of the slice: a slice
//! plus what was spent never exceeds the limit, on any number of instances.
//!
//! - A slice is `need × batch` (the batch doubles while renewals come quickly, halves when they
//!   come slowly), and at most the room left divided by twice the instances alive: near the limit
//!   slices shrink until one no longer covers a call; then the slice's free part goes back and
//!   the calls reserve one at a time in the database ([`super::holds`]), so the last cent is
//!   served and never passed.
//! - Each write names the slice's sequence number and moves it on: a write whose answer was lost
//!   is resolved by reading the row (done or not) before the next one, never applied twice.
//! - A slice idle for [`IDLE_RETURN`] is returned; at shutdown every slice is. A slice not written
//!   for [`SLICE_ALIVE_FOR`] belonged to an instance that died: the sweeper charges all of it as
//!   spent (never under what its calls cost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::{Value, json};
use surrealdb::types::SurrealValue;

use super::Need;
pub(super) use super::slice::Slice;
use super::slice::{Counter, FIRST_BATCH, Pair, Write, Writes, lock, pair};
use crate::platform::db::{CALL_TIMEOUT, Db, is_retryable, now_ms, root_cause};

const MAX_BATCH: i64 = 1024;
/// Renewals closer than this double the next slice; further apart than [`RENEW_LATE`] halve it.
const RENEW_SOON: Duration = Duration::from_millis(500);
const RENEW_LATE: Duration = Duration::from_secs(5);
/// After a slice could not be renewed, calls go to the database for this long without trying.
const EXHAUSTED_FOR: Duration = Duration::from_secs(1);
/// A slice no call used for this long is returned.
pub const IDLE_RETURN: Duration = Duration::from_secs(3);
/// A slice is written at least this often while held (its row's `seen`).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A slice not written for this long belonged to an instance that died.
pub const SLICE_ALIVE_FOR: Duration = Duration::from_secs(30);
/// A slice emptied and unused this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);
const CONFLICT_ATTEMPTS: u32 = 50;

/// More room asked for with a write.
#[derive(Debug, Clone, Copy)]
struct Grow {
    want: Pair,
    min: Pair,
    limits: Pair,
    div: i64,
}

#[derive(Debug)]
enum Failed {
    /// Not done (the transaction was refused or rolled back).
    Definite,
    /// Maybe done: the answer did not come.
    Unsure,
    /// The row is not this instance's any more (swept).
    Lost,
}

#[derive(SurrealValue)]
struct Row {
    seq: i64,
    nanos: i64,
    tokens: i64,
}

/// Every slice this instance holds.
pub(super) struct Escrow {
    db: Db,
    instance: String,
    instances: Arc<dyn Fn() -> u32 + Send + Sync>,
    slices: DashMap<Counter, Arc<Slice>>,
    /// Calls that waited for a slice's renewal (the first of each slice, and any that outran
    /// its top-ups).
    pub(super) waited: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Escrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escrow").field("instance", &self.instance).field("slices", &self.slices.len()).finish()
    }
}

const WRITE: &str = "BEGIN TRANSACTION;
    LET $at = type::record('budget_use', $counter);
    LET $me = type::record('budget_slice', $slice);
    LET $row = (SELECT seq, nanos, tokens FROM $me)[0];
    IF ($row.seq OR 0) != $seq { THROW 'slice_seq'; };
    INSERT IGNORE INTO budget_use { id: $at, workspace: $ws };
    LET $u = (UPDATE $at SET spent_nanos += $spent[0], spent_tokens += $spent[1],
        reserved_nanos -= $release[0], reserved_tokens -= $release[1], calls += $calls RETURN AFTER)[0];
    LET $room = [$lim[0] - $u.spent_nanos - $u.reserved_nanos, $lim[1] - $u.spent_tokens - $u.reserved_tokens];
    LET $share = [
        IF $lim[0] < 0 { $want[0] } ELSE { math::min([$want[0], <int> math::floor($room[0] / $div)]) },
        IF $lim[1] < 0 { $want[1] } ELSE { math::min([$want[1], <int> math::floor($room[1] / $div)]) }
    ];
    LET $g = IF $grow AND $share[0] >= $min[0] AND $share[1] >= $min[1] { $share } ELSE { [0, 0] };
    IF $g[0] != 0 OR $g[1] != 0 { UPDATE $at SET reserved_nanos += $g[0], reserved_tokens += $g[1] RETURN NONE; };
    LET $left = [($row.nanos OR 0) - $release[0] + $g[0], ($row.tokens OR 0) - $release[1] + $g[1]];
    IF $retire AND $left[0] = 0 AND $left[1] = 0 { DELETE $me; } ELSE {
        UPSERT $me SET workspace = $ws, instance = $inst, counter = $at, nanos = $left[0], tokens = $left[1],
            seq = $seq + 1, seen = $now RETURN NONE;
    };
    RETURN { granted: $g, row: $left };
    COMMIT TRANSACTION;";

#[derive(SurrealValue)]
struct Written {
    granted: Vec<i64>,
    row: Vec<i64>,
}

impl Escrow {
    pub fn new(db: Db, instance: String, instances: Arc<dyn Fn() -> u32 + Send + Sync>) -> Self {
        Self { db, instance, instances, slices: DashMap::new(), waited: std::sync::atomic::AtomicU64::new(0) }
    }

    fn slice(&self, counter: &Counter) -> Arc<Slice> {
        if let Some(slice) = self.slices.get(counter) {
            return Arc::clone(&slice);
        }
        Arc::clone(self.slices.entry(counter.clone()).or_insert_with(|| Arc::new(Slice::new(counter.clone()))).value())
    }

    fn slice_key(&self, counter: &Counter) -> Value {
        json!([counter.ws, counter.scope, counter.start, self.instance])
    }

    /// Takes `need` from this instance's slice of every counter (renewing those that run low),
    /// all or none. `None`: a slice could not cover it (near a limit, or the database away), and
    /// the call reserves in the database instead.
    pub async fn take(
        self: &Arc<Self>,
        counters: &[(Counter, Pair)],
        need: Need,
        first: bool,
    ) -> Option<Vec<Arc<Slice>>> {
        let n = pair(need);
        let mut taken: Vec<Arc<Slice>> = Vec::with_capacity(counters.len());
        for (counter, limits) in counters {
            let slice = self.slice(counter);
            if slice.try_take(n, *limits, first) {
                // Running low: topped up in the background, so that calls do not wait for it.
                if slice.wants_top_up(n)
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    let (escrow, slice, limits) = (Arc::clone(self), Arc::clone(&slice), *limits);
                    drop(runtime.spawn(async move { escrow.top_up(&slice, n, limits).await }));
                }
                taken.push(slice);
                continue;
            }
            if self.renew(&slice, n, *limits, first).await {
                taken.push(slice);
                continue;
            }
            for slice in &taken {
                slice.untake(n, first);
            }
            return None;
        }
        Some(taken)
    }

    /// Renews a slice that cannot cover `need`, and takes it from the renewed slice.
    async fn renew(&self, slice: &Slice, need: Pair, limits: Pair, first: bool) -> bool {
        let mut writes = slice.writes.lock().await;
        if slice.try_take(need, limits, first) {
            return true;
        }
        self.waited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.grow(slice, &mut writes, need, limits, true).await && slice.try_take(need, limits, first)
    }

    /// Adds room to a slice running low while its free part still serves calls (skipped when a
    /// write of it is under way: that one renews it).
    async fn top_up(&self, slice: &Slice, need: Pair, limits: Pair) {
        if let Ok(mut writes) = slice.writes.try_lock() {
            self.grow(slice, &mut writes, need, limits, false).await;
        }
        lock(&slice.state).topping = false;
    }

    /// Takes more room into a slice (at least `need`, as much as its batch where the budget has
    /// it), writing its spend with it; `whole`: its free part is given back and taken anew (a
    /// renewal), else kept (a top-up). Whether room was granted.
    async fn grow(&self, slice: &Slice, writes: &mut Writes, need: Pair, limits: Pair, whole: bool) -> bool {
        if !self.resolve(slice, writes).await {
            return false;
        }
        let now = Instant::now();
        {
            let mut s = lock(&slice.state);
            if s.gone || s.exhausted_until.is_some_and(|until| now < until) {
                return false;
            }
            s.limits = limits;
        }
        writes.batch = match writes.renewed.map(|at| now.duration_since(at)) {
            Some(gap) if gap < RENEW_SOON => (writes.batch * 2).min(MAX_BATCH),
            Some(gap) if gap > RENEW_LATE => (writes.batch / 2).max(FIRST_BATCH),
            _ => writes.batch,
        };
        let div = 2 * i64::from((self.instances)().max(1));
        let want = [need[0].saturating_mul(writes.batch), need[1].saturating_mul(writes.batch)];
        let grow = Grow { want, min: need, limits, div };
        let write = slice.prepare(whole, false);
        match self.write(slice, writes, write, Some(grow)).await {
            Some(granted) if granted != [0; 2] || need == [0; 2] => {
                writes.renewed = Some(now);
                true
            }
            Some(_) => {
                lock(&slice.state).exhausted_until = Some(now + EXHAUSTED_FOR);
                false
            }
            None => false,
        }
    }

    /// Gives back the free part of this instance's slices of `counters` (before a call reserves in
    /// the database, so room set aside here is not refused to it).
    pub async fn give_back(&self, counters: &[(Counter, Pair)]) {
        for (counter, _) in counters {
            let Some(slice) = self.slices.get(counter).map(|s| Arc::clone(&s)) else { continue };
            if lock(&slice.state).free.iter().all(|f| *f <= 0) {
                continue;
            }
            let mut writes = slice.writes.lock().await;
            if self.resolve(&slice, &mut writes).await {
                let write = slice.prepare(true, false);
                self.write(&slice, &mut writes, write, None).await;
            }
        }
    }

    /// Writes a slice: records its spend, gives back what `write` returns, and with `grow` asks
    /// for more room. Returns the room granted, or `None` when the write was not done (what it
    /// took out is back in the slice) or its outcome is not known yet.
    async fn write(&self, slice: &Slice, writes: &mut Writes, write: Write, grow: Option<Grow>) -> Option<Pair> {
        let grow_at = grow.unwrap_or(Grow { want: [0; 2], min: [0; 2], limits: [-1; 2], div: 1 });
        let outcome = tokio::time::timeout(CALL_TIMEOUT, self.send(slice, writes.seq, write, grow.is_some(), grow_at))
            .await
            .unwrap_or(Err(Failed::Unsure));
        match outcome {
            Ok((granted, row)) => {
                slice.applied(writes, write, granted, row);
                Some(granted)
            }
            Err(Failed::Definite) => {
                slice.revert(write);
                None
            }
            Err(Failed::Unsure) => {
                writes.unsure = Some(write);
                None
            }
            Err(Failed::Lost) => {
                self.lose(slice);
                None
            }
        }
    }

    async fn send(&self, slice: &Slice, seq: i64, write: Write, grow: bool, g: Grow) -> Result<(Pair, Pair), Failed> {
        let counter = &slice.counter;
        for attempt in 0..CONFLICT_ATTEMPTS {
            let sent = self
                .db
                .query(WRITE)
                .bind(("counter", json!([counter.ws, counter.scope, counter.start])))
                .bind(("slice", self.slice_key(counter)))
                .bind(("ws", counter.ws.clone()))
                .bind(("inst", self.instance.clone()))
                .bind(("seq", seq))
                .bind(("spent", write.spent.to_vec()))
                .bind(("release", write.release().to_vec()))
                .bind(("calls", write.calls))
                .bind(("grow", grow))
                .bind(("want", g.want.to_vec()))
                .bind(("min", g.min.to_vec()))
                .bind(("lim", g.limits.to_vec()))
                .bind(("div", g.div))
                .bind(("retire", write.retire))
                .bind(("now", now_ms()))
                .await;
            let mut response = match sent {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(error = %e, "writing a budget slice got no answer");
                    return Err(Failed::Unsure);
                }
            };
            if let Some(e) = root_cause(response.take_errors()) {
                if e.message().contains("slice_seq") {
                    return Err(Failed::Lost);
                }
                if is_retryable(&e) && attempt + 1 < CONFLICT_ATTEMPTS {
                    use rand::RngExt as _;
                    let cap = 2u64.saturating_pow(attempt.min(6)).min(50);
                    let wait = Duration::from_millis(rand::rng().random_range(0..=cap));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                tracing::warn!(error = %e, "writing a budget slice failed");
                return Err(Failed::Definite);
            }
            let last = response.num_statements().saturating_sub(2);
            let written: Option<Written> = response.take(last).map_err(|_| Failed::Unsure)?;
            let written = written.ok_or(Failed::Unsure)?;
            let two = |v: &[i64]| [v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0)];
            return Ok((two(&written.granted), two(&written.row)));
        }
        Err(Failed::Definite)
    }

    /// Resolves a write whose outcome was not known, from the row: `false` when it still cannot be
    /// (the database is away) or the slice was lost.
    async fn resolve(&self, slice: &Slice, writes: &mut Writes) -> bool {
        let Some(write) = writes.unsure else { return true };
        let read = async {
            let mut response = self
                .db
                .query("SELECT seq, nanos, tokens FROM type::record('budget_slice', $slice)")
                .bind(("slice", self.slice_key(&slice.counter)))
                .await?;
            response.take::<Option<Row>>(0)
        };
        let row = match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(Ok(row)) => row,
            _ => return false,
        };
        writes.unsure = None;
        let release = write.release();
        let before = writes.granted;
        match row {
            Some(row) if row.seq == writes.seq => {
                slice.revert(write);
                true
            }
            Some(row) if row.seq == writes.seq + 1 => {
                let now = [row.nanos, row.tokens];
                let granted = [now[0] - (before[0] - release[0]), now[1] - (before[1] - release[1])];
                slice.applied(writes, write, granted, now);
                true
            }
            None if writes.seq == 0 => {
                slice.revert(write);
                true
            }
            None if write.retire => {
                slice.applied(writes, write, [0; 2], [0; 2]);
                true
            }
            _ => {
                self.lose(slice);
                false
            }
        }
    }

    fn lose(&self, slice: &Slice) {
        tracing::warn!(scope = %slice.counter.scope, "a budget slice of this instance was charged by another (taken for dead)");
        lock(&slice.state).gone = true;
        self.slices.remove_if(&slice.counter, |_, s| std::ptr::eq(Arc::as_ptr(s), slice));
    }

    /// Every second: writes what calls spent, keeps held slices alive, returns idle ones, and
    /// forgets empty ones.
    pub async fn tick(&self) {
        let slices: Vec<Arc<Slice>> = self.slices.iter().map(|s| Arc::clone(s.value())).collect();
        for slice in slices {
            let Ok(mut writes) = slice.writes.try_lock() else { continue };
            if !self.resolve(&slice, &mut writes).await {
                continue;
            }
            let Some((holds, idle, dirty, gone)) = slice.idle() else { continue };
            if gone {
                continue;
            }
            let empty = writes.granted == [0; 2] && writes.seq == 0;
            if holds == 0 && idle >= IDLE_RETURN && !empty {
                let write = slice.prepare(true, true);
                self.write(&slice, &mut writes, write, None).await;
            } else if dirty || (!empty && writes.written.elapsed() >= KEEP_ALIVE) {
                let write = slice.prepare(false, false);
                self.write(&slice, &mut writes, write, None).await;
            } else if empty && holds == 0 && idle >= FORGET_AFTER {
                drop(writes);
                self.slices.remove_if(&slice.counter, |_, s| Arc::strong_count(s) == 2);
            }
        }
    }

    /// Writes the spend of a workspace's slices now (so what is read next is up to date).
    pub async fn flush(&self, ws: &str) {
        let slices: Vec<Arc<Slice>> =
            self.slices.iter().filter(|s| s.key().ws == ws).map(|s| Arc::clone(s.value())).collect();
        for slice in slices {
            let mut writes = slice.writes.lock().await;
            if self.resolve(&slice, &mut writes).await && slice.idle().is_some_and(|(_, _, dirty, gone)| dirty && !gone)
            {
                let write = slice.prepare(false, false);
                self.write(&slice, &mut writes, write, None).await;
            }
        }
    }

    /// Returns every slice (at shutdown, when no call is left): what a call still holds stays in
    /// the row, for the sweeper.
    pub async fn close(&self) {
        let slices: Vec<Arc<Slice>> = self.slices.iter().map(|s| Arc::clone(s.value())).collect();
        let mut returned = 0usize;
        for slice in slices {
            let mut writes = slice.writes.lock().await;
            if self.resolve(&slice, &mut writes).await && !(writes.granted == [0; 2] && writes.seq == 0) {
                returned += usize::from(writes.granted != [0; 2]);
                let write = slice.prepare(true, true);
                self.write(&slice, &mut writes, write, None).await;
            }
        }
        if returned > 0 {
            tracing::info!(slices = returned, "returned this instance's budget slices at shutdown");
        }
    }

    /// Charges slices no instance wrote for `age` as spent (their instance died), all of them.
    /// Returns how many.
    pub async fn sweep(db: &Db, age: Duration) -> Result<usize, surrealdb::Error> {
        let before = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let mut response = db
            .query(
                "BEGIN TRANSACTION;
                 LET $dead = SELECT id, counter, nanos, tokens FROM budget_slice WHERE seen < $before LIMIT 1000;
                 FOR $s IN $dead {
                     UPDATE $s.counter SET spent_nanos += math::max([$s.nanos, 0]), spent_tokens += math::max([$s.tokens, 0]),
                         reserved_nanos -= $s.nanos, reserved_tokens -= $s.tokens RETURN NONE;
                     DELETE $s.id;
                 };
                 RETURN array::len($dead);
                 COMMIT TRANSACTION;",
            )
            .bind(("before", before))
            .await?;
        if let Some(e) = root_cause(response.take_errors()) {
            return Err(e);
        }
        let last = response.num_statements().saturating_sub(2);
        let swept: Option<i64> = response.take(last)?;
        Ok(usize::try_from(swept.unwrap_or(0)).unwrap_or(0))
    }
}
