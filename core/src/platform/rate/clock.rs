//! The limiters' clock: real time in production, a hand-driven clock in tests (also the clock of
//! token buckets, breakers and provider pressure).

use std::time::Duration;

use governor::clock::{Clock, FakeRelativeClock, QuantaClock, QuantaInstant, ReasonablyRealtime, Reference};
use governor::nanos::Nanos;

/// The limiters' clock: real time in production, a hand-driven clock in tests.
#[derive(Debug, Clone)]
pub enum LimitClock {
    Real {
        clock: QuantaClock,
        origin: QuantaInstant,
    },
    /// Moves only when advanced; reads as wall time from `wall_origin` (Unix milliseconds when it
    /// was made) plus what it was advanced by.
    Manual {
        clock: FakeRelativeClock,
        wall_origin: i64,
    },
}

impl LimitClock {
    pub fn real() -> Self {
        let clock = QuantaClock::default();
        let origin = clock.now();
        Self::Real { clock, origin }
    }

    /// A clock that only moves when [`LimitClock::advance`] is called.
    pub fn manual() -> Self {
        Self::Manual { clock: FakeRelativeClock::default(), wall_origin: crate::platform::db::now_ms() }
    }

    /// Moves a manual clock forward; a real clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Self::Manual { clock, .. } = self {
            clock.advance(by);
        }
    }
}

impl Clock for LimitClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        match self {
            Self::Real { clock, origin } => clock.now().duration_since(*origin),
            Self::Manual { clock, .. } => clock.now(),
        }
    }
}

impl LimitClock {
    /// Unix milliseconds by this clock: the wall clock, or a manual clock's own time.
    pub fn now_ms(&self) -> i64 {
        match self {
            Self::Real { .. } => crate::platform::db::now_ms(),
            Self::Manual { clock, wall_origin } => {
                let moved = Duration::from(clock.now()).as_millis();
                wall_origin.saturating_add(i64::try_from(moved).unwrap_or(i64::MAX))
            }
        }
    }
}

impl ReasonablyRealtime for LimitClock {}
