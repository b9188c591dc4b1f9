//! How each provider's upstream attempts have gone on this instance: calls and failures per
//! minute over the last hour, their durations in a histogram (for p50 and p95), the last
//! success and the last error with what it means. Kept in memory, per instance, bounded: at most
//! [`MAX_PROVIDERS`] providers and 60 minutes each.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use perpetuo_types::{ErrorClass, ProviderError, ProviderHealth};

/// Providers tracked at most (a new one beyond that is not tracked).
pub const MAX_PROVIDERS: usize = 100_000;
/// Minutes kept.
const WINDOW: usize = 60;
/// Upper bounds of the duration buckets, in milliseconds (the last is everything slower).
const BOUNDS_MS: [u64; 16] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, u64::MAX];

#[derive(Debug, Clone, Copy, Default)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: i64,
    calls: u64,
    errors: u64,
    buckets: [u64; BOUNDS_MS.len()],
}

#[derive(Debug, Default)]
struct Stats {
    minutes: VecDeque<Minute>,
    last_success: Option<i64>,
    last_error: Option<ProviderError>,
}

/// What an error class means, for the providers tab.
pub fn describe(class: ErrorClass) -> &'static str {
    use ErrorClass as C;
    match class {
        C::Connect => "The provider could not be reached (connection refused, reset, or DNS).",
        C::Timeout => "The provider sent nothing before the first-byte timeout.",
        C::Upstream5xx => "The provider answered with a server error (5xx or 408).",
        C::Upstream429 => "The provider is rate limiting this account (429).",
        C::UpstreamOverloaded => "The provider said it is overloaded (529).",
        C::UpstreamStreamError => "The provider's stream reported an error.",
        C::ProviderKeyRejected => "The provider refused the stored key (401/403).",
        C::TokenExchange => "No access token could be obtained for the provider's credential.",
        C::AnswerTooLarge | C::EventTooLarge => "The provider's answer was larger than the gateway reads.",
        C::BadUpstreamBody => "The provider's answer could not be read.",
        C::BodyCut | C::StreamCut => "The provider's connection broke in the middle of the answer.",
        C::ClientError | C::UpstreamClientError => {
            "The provider refused the request itself (a 4xx: the client's mistake)."
        }
        C::Signing => "The request could not be signed with the provider's credential.",
        C::Deadline => "The provider's stream outlasted the gateway's deadline.",
        C::IdleTimeout => "The provider stopped sending in the middle of a stream.",
        C::InvalidApiKey
        | C::RateLimited
        | C::BudgetExceeded
        | C::TokenLimited
        | C::ConcurrencyLimited
        | C::ProviderLimited
        | C::ProviderResting
        | C::BodyTooLarge
        | C::InvalidRequest
        | C::ModelNotFound
        | C::NotFound
        | C::MethodNotAllowed
        | C::AllProvidersFailed
        | C::ProvidersUnavailable
        | C::UsageLedgerFull
        | C::UsageLedgerUnavailable
        | C::ClientDisconnected
        | C::Internal => "The attempt failed.",
    }
}

/// Every provider's record on this instance.
#[derive(Debug, Default)]
pub struct Health {
    providers: DashMap<String, Mutex<Stats>>,
}

impl Health {
    /// One attempt at `provider` ended at `now_ms` after `took`: answered, or failed with `class`.
    pub fn record(&self, provider: &str, now_ms: i64, took: Duration, failure: Option<ErrorClass>) {
        if !self.providers.contains_key(provider) && self.providers.len() >= MAX_PROVIDERS {
            return;
        }
        let entry = self.providers.entry(provider.to_owned()).or_default();
        let Ok(mut stats) = entry.lock() else { return };
        let minute = now_ms.div_euclid(60_000);
        while stats.minutes.front().is_some_and(|m| m.at <= minute - WINDOW as i64) {
            stats.minutes.pop_front();
        }
        if stats.minutes.back().is_none_or(|m| m.at != minute) {
            stats.minutes.push_back(Minute { at: minute, ..Minute::default() });
        }
        if let Some(current) = stats.minutes.back_mut() {
            current.calls += 1;
            let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            let bucket = BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BOUNDS_MS.len() - 1);
            current.buckets[bucket] += 1;
            if failure.is_some() {
                current.errors += 1;
            }
        }
        match failure {
            None => stats.last_success = Some(now_ms),
            Some(class) => {
                stats.last_error = Some(ProviderError {
                    at: now_ms,
                    class: class.as_str().to_owned(),
                    message: describe(class).to_owned(),
                })
            }
        }
    }

    /// The provider's last hour as of `now_ms` (`None`: no attempt seen), with the breaker state
    /// given.
    pub fn snapshot(
        &self,
        provider: &str,
        now_ms: i64,
        breaker: perpetuo_types::BreakerState,
    ) -> Option<ProviderHealth> {
        let entry = self.providers.get(provider)?;
        let stats = entry.lock().ok()?;
        let since = now_ms.div_euclid(60_000) - WINDOW as i64;
        let recent = stats.minutes.iter().filter(|m| m.at > since);
        let (mut calls, mut errors, mut buckets) = (0, 0, [0u64; BOUNDS_MS.len()]);
        for minute in recent {
            calls += minute.calls;
            errors += minute.errors;
            for (total, n) in buckets.iter_mut().zip(minute.buckets) {
                *total += n;
            }
        }
        let quantile = |q: f64| {
            let rank = ((calls as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            BOUNDS_MS.iter().zip(buckets).find_map(|(bound, n)| {
                seen += n;
                (seen >= rank).then_some(*bound)
            })
        };
        let (p50_ms, p95_ms) = if calls == 0 { (None, None) } else { (quantile(0.5), quantile(0.95)) };
        Some(ProviderHealth {
            calls,
            errors,
            p50_ms,
            p95_ms,
            last_success_at: stats.last_success,
            last_error: stats.last_error.clone(),
            breaker,
        })
    }

    /// Forgets a deleted provider.
    pub fn forget(&self, provider: &str) {
        self.providers.remove(provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perpetuo_types::BreakerState;

    #[test]
    fn the_last_hour_is_counted_and_older_minutes_forgotten() {
        let health = Health::default();
        let t0 = 1_700_000_000_000;
        for i in 0..20 {
            health.record("p", t0, Duration::from_millis(if i < 19 { 40 } else { 2000 }), None);
        }
        health.record("p", t0 + 1000, Duration::from_millis(3), Some(ErrorClass::Upstream5xx));
        let now = health.snapshot("p", t0 + 2000, BreakerState::Closed);
        let now = now.unwrap();
        assert_eq!((now.calls, now.errors), (21, 1));
        assert_eq!((now.p50_ms, now.p95_ms), (Some(50), Some(50)));
        assert_eq!(now.last_success_at, Some(t0));
        assert_eq!(now.last_error.as_ref().map(|e| e.class.as_str()), Some("upstream_5xx"));
        let later = health.snapshot("p", t0 + 61 * 60_000, BreakerState::Closed).unwrap();
        assert_eq!((later.calls, later.p50_ms), (0, None), "an hour later the calls are gone");
        assert_eq!(later.last_success_at, Some(t0), "the last success stays known");
        assert!(health.snapshot("q", t0, BreakerState::Closed).is_none());
    }
}
