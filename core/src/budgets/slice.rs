//! One instance's slice of one budget period, in memory: what its calls hold and spent, and what
//! its writes (in [`super::escrow`]) take out and put back.

#![allow(clippy::needless_range_loop)] // Nano-dollars and tokens side by side, indexed together.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Need, Rule};

/// Nano-dollars and tokens.
pub(super) type Pair = [i64; 2];

pub(super) const FIRST_BATCH: i64 = 8;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn pair(need: Need) -> Pair {
    [need.nanos, need.tokens]
}

/// One budget's period: the `budget_use` row a slice is cut from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Counter {
    pub ws: String,
    pub scope: String,
    pub start: i64,
}

impl Counter {
    pub fn of(ws: &str, rule: &Rule, now: i64) -> (Self, Pair) {
        let counter = Self { ws: ws.to_owned(), scope: rule.stored_scope(), start: rule.period.current(now).0 };
        (counter, [rule.usd_nanos.unwrap_or(-1), rule.tokens.unwrap_or(-1)])
    }
}

/// What the calls did with a slice, in memory. `granted` (the row) = free + held + consumed +
/// whatever a write in progress took out.
#[derive(Debug)]
pub(super) struct State {
    /// The limits the slice was last taken under (-1: none): a call under other limits renews it.
    pub limits: Pair,
    pub free: Pair,
    pub held: Pair,
    /// Settled and not yet written as spent.
    pub consumed: Pair,
    pub calls: i64,
    pub holds: u32,
    pub used: Instant,
    pub exhausted_until: Option<Instant>,
    /// The row was swept (this instance was taken for dead): nothing more is taken from it.
    pub gone: bool,
    /// Below this much free room the slice is topped up ahead of need (a quarter of the last
    /// grant).
    pub low: Pair,
    /// A top-up is under way.
    pub topping: bool,
}

/// The slice's writes, one at a time.
#[derive(Debug)]
pub(super) struct Writes {
    pub seq: i64,
    /// The row's amounts as last written.
    pub granted: Pair,
    pub batch: i64,
    pub renewed: Option<Instant>,
    pub written: Instant,
    /// A write whose outcome is not known (its answer was lost): resolved before the next one.
    pub unsure: Option<Write>,
}

/// One write: spend to record, room to give back, calls to count.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Write {
    pub spent: Pair,
    pub returned: Pair,
    pub calls: i64,
    pub retire: bool,
}

impl Write {
    pub fn release(&self) -> Pair {
        [self.spent[0] + self.returned[0], self.spent[1] + self.returned[1]]
    }
}

/// This instance's slice of one counter.
#[derive(Debug)]
pub(super) struct Slice {
    pub counter: Counter,
    pub state: Mutex<State>,
    pub writes: tokio::sync::Mutex<Writes>,
}

impl Slice {
    pub(super) fn new(counter: Counter) -> Self {
        let now = Instant::now();
        Self {
            counter,
            state: Mutex::new(State {
                limits: [i64::MIN; 2],
                free: [0; 2],
                held: [0; 2],
                consumed: [0; 2],
                calls: 0,
                holds: 0,
                used: now,
                exhausted_until: None,
                gone: false,
                low: [0; 2],
                topping: false,
            }),
            writes: tokio::sync::Mutex::new(Writes {
                seq: 0,
                granted: [0; 2],
                batch: FIRST_BATCH,
                renewed: None,
                written: now,
                unsure: None,
            }),
        }
    }

    /// Takes `need` from the free part, if it is there (and the slice is under `limits`).
    pub(super) fn try_take(&self, need: Pair, limits: Pair, first: bool) -> bool {
        let mut s = lock(&self.state);
        if s.gone || s.limits != limits || (0..2).any(|d| s.free[d] < need[d]) {
            return false;
        }
        for d in 0..2 {
            s.free[d] -= need[d];
            s.held[d] += need[d];
        }
        s.holds += 1;
        s.calls += i64::from(first);
        s.used = Instant::now();
        true
    }

    /// Gives back a take (another counter of the same call had no room).
    pub(super) fn untake(&self, need: Pair, first: bool) {
        let mut s = lock(&self.state);
        for d in 0..2 {
            s.free[d] += need[d];
            s.held[d] -= need[d];
        }
        s.holds = s.holds.saturating_sub(1);
        s.calls -= i64::from(first);
    }

    /// Settles what was held for one call at what it was charged.
    pub fn settle(&self, held: Need, charged: Need) {
        let (held, charged) = (pair(held), pair(charged));
        let mut s = lock(&self.state);
        for d in 0..2 {
            s.held[d] -= held[d];
            s.free[d] += held[d] - charged[d];
            s.consumed[d] += charged[d];
        }
        s.holds = s.holds.saturating_sub(1);
        s.used = Instant::now();
    }

    /// Takes what a write records out of the slice (spend, calls, and with `give_back` the free
    /// part); it is put back if the write is not done.
    pub(super) fn prepare(&self, give_back: bool, retire: bool) -> Write {
        let mut s = lock(&self.state);
        let returned = if give_back { [s.free[0].max(0), s.free[1].max(0)] } else { [0; 2] };
        let write = Write { spent: s.consumed, returned, calls: s.calls, retire };
        for d in 0..2 {
            s.free[d] -= returned[d];
        }
        s.consumed = [0; 2];
        s.calls = 0;
        write
    }

    pub(super) fn revert(&self, write: Write) {
        let mut s = lock(&self.state);
        for d in 0..2 {
            s.free[d] += write.returned[d];
            s.consumed[d] += write.spent[d];
        }
        s.calls += write.calls;
    }

    pub(super) fn applied(&self, writes: &mut Writes, write: Write, granted: Pair, row: Pair) {
        writes.seq = if write.retire && row == [0; 2] { 0 } else { writes.seq + 1 };
        writes.granted = row;
        writes.written = Instant::now();
        let mut s = lock(&self.state);
        for d in 0..2 {
            s.free[d] += granted[d];
        }
        if granted != [0; 2] {
            s.low = [granted[0] / 4, granted[1] / 4];
        }
    }

    /// Whether the slice runs low enough to be topped up (and no top-up is under way, and the
    /// budget had room at its last try); if so, the caller starts one.
    pub(super) fn wants_top_up(&self, need: Pair) -> bool {
        let mut s = lock(&self.state);
        let low = (0..2).any(|d| need[d] > 0 && s.free[d] < s.low[d].max(need[d]));
        if !low || s.topping || s.gone || s.exhausted_until.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        s.topping = true;
        true
    }

    pub(super) fn idle(&self) -> Option<(u32, Duration, bool, bool)> {
        let s = lock(&self.state);
        let dirty = s.consumed != [0; 2] || s.calls != 0;
        Some((s.holds, s.used.elapsed(), dirty, s.gone))
    }
}
