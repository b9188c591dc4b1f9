//! A circuit breaker per provider record: after `threshold` consecutive failures the provider is
//! skipped for `cooldown`, then one probe request is let through; its outcome closes the breaker
//! or opens it again. State is per instance (each instance learns on its own). Time comes from
//! the limiters' clock, so tests step through a cool-down instead of waiting it out.

use std::time::Duration;

use dashmap::DashMap;
use governor::clock::Clock as _;
use governor::nanos::Nanos;

use crate::platform::rate::LimitClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Nanos,
    },
    /// One probe is in flight; everyone else keeps away.
    HalfOpen,
}

/// Whether a request may use the provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The breaker was open and the cool-down is over: this request is the probe.
    Probe,
    Rejected,
}

#[derive(Debug)]
pub struct Breakers {
    states: DashMap<String, State>,
    threshold: u32,
    cooldown: Duration,
    clock: LimitClock,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration, clock: LimitClock) -> Self {
        Self { states: DashMap::new(), threshold: threshold.max(1), cooldown, clock }
    }

    pub fn admit(&self, provider_id: &str) -> Admission {
        let now = self.clock.now();
        let Some(mut state) = self.states.get_mut(provider_id) else {
            return Admission::Allowed;
        };
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::HalfOpen => Admission::Rejected,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                Admission::Probe
            }
            State::Open { .. } => Admission::Rejected,
        }
    }

    pub fn success(&self, provider_id: &str) {
        // The common case (closed, no failures) touches nothing.
        if let Some(mut state) = self.states.get_mut(provider_id) {
            *state = State::Closed { failures: 0 };
        }
    }

    pub fn failure(&self, provider_id: &str) {
        let now = self.clock.now();
        let mut state = self.states.entry(provider_id.to_owned()).or_insert(State::Closed { failures: 0 });
        *state = match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => State::Open { until: now + self.cooldown },
            State::Closed { failures } => State::Closed { failures: failures + 1 },
            // A failed probe (or a late failure while open) starts a new cool-down.
            State::HalfOpen | State::Open { .. } => State::Open { until: now + self.cooldown },
        };
    }

    /// A probe that ended without a verdict (the client left) lets the next request probe.
    pub fn abandon_probe(&self, provider_id: &str) {
        if let Some(mut state) = self.states.get_mut(provider_id)
            && *state == State::HalfOpen
        {
            *state = State::Open { until: self.clock.now() };
        }
    }

    /// The provider's breaker as the providers tab shows it, `now_ms` being the Unix time now.
    pub fn view(&self, provider_id: &str, now_ms: i64) -> perpetuo_types::BreakerState {
        use perpetuo_types::BreakerState;
        match self.states.get(provider_id).map(|s| *s) {
            None | Some(State::Closed { .. }) => BreakerState::Closed,
            Some(State::HalfOpen) => BreakerState::Probing,
            Some(State::Open { until }) => {
                let left = until.saturating_sub(self.clock.now()).as_u64() / 1_000_000;
                BreakerState::Open { until: now_ms.saturating_add(i64::try_from(left).unwrap_or(i64::MAX)) }
            }
        }
    }

    /// Providers whose breaker is open or probing (for metrics).
    pub fn open_count(&self) -> usize {
        self.states.iter().filter(|s| !matches!(*s.value(), State::Closed { .. })).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(threshold: u32) -> (Breakers, LimitClock) {
        let clock = LimitClock::manual();
        (Breakers::new(threshold, Duration::from_secs(10), clock.clone()), clock)
    }

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let (b, clock) = breakers(3);
        for _ in 0..2 {
            b.failure("p");
            assert_eq!(b.admit("p"), Admission::Allowed);
        }
        b.failure("p");
        assert_eq!(b.admit("p"), Admission::Rejected, "open");
        clock.advance(Duration::from_secs(9));
        assert_eq!(b.admit("p"), Admission::Rejected);
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit("p"), Admission::Probe, "half-open");
        assert_eq!(b.admit("p"), Admission::Rejected, "one probe only");
        b.failure("p");
        clock.advance(Duration::from_secs(9));
        assert_eq!(b.admit("p"), Admission::Rejected, "failed probe reopens");
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit("p"), Admission::Probe);
        b.success("p");
        assert_eq!(b.admit("p"), Admission::Allowed, "closed again");
        assert_eq!(b.open_count(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let (b, _) = breakers(2);
        b.failure("p");
        b.success("p");
        b.failure("p");
        assert_eq!(b.admit("p"), Admission::Allowed);
        assert_eq!(b.admit("other"), Admission::Allowed);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let (b, clock) = breakers(1);
        b.failure("p");
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.admit("p"), Admission::Probe);
        b.abandon_probe("p");
        assert_eq!(b.admit("p"), Admission::Probe);
    }
}
