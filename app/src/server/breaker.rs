//! A circuit breaker per provider record: after `threshold` consecutive failures the provider is
//! skipped for `cooldown`, then one probe request is let through; its outcome closes the breaker
//! or opens it again. State is per instance (each instance learns on its own).

use std::time::{Duration, Instant};

use dashmap::DashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
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
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { states: DashMap::new(), threshold: threshold.max(1), cooldown }
    }

    pub fn admit(&self, provider_id: &str) -> Admission {
        self.admit_at(provider_id, Instant::now())
    }

    pub fn admit_at(&self, provider_id: &str, now: Instant) -> Admission {
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
        self.failure_at(provider_id, Instant::now());
    }

    pub fn failure_at(&self, provider_id: &str, now: Instant) {
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
            *state = State::Open { until: Instant::now() };
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

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let b = Breakers::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.failure_at("p", t0);
            assert_eq!(b.admit_at("p", t0), Admission::Allowed);
        }
        b.failure_at("p", t0);
        assert_eq!(b.admit_at("p", t0), Admission::Rejected, "open");
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(9)), Admission::Rejected);
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(10)), Admission::Probe, "half-open");
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(10)), Admission::Rejected, "one probe only");
        b.failure_at("p", t0 + Duration::from_secs(10));
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(19)), Admission::Rejected, "failed probe reopens");
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(20)), Admission::Probe);
        b.success("p");
        assert_eq!(b.admit_at("p", t0 + Duration::from_secs(20)), Admission::Allowed, "closed again");
        assert_eq!(b.open_count(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breakers::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.failure_at("p", t0);
        b.success("p");
        b.failure_at("p", t0);
        assert_eq!(b.admit_at("p", t0), Admission::Allowed);
        assert_eq!(b.admit_at("other", t0), Admission::Allowed);
    }
}
