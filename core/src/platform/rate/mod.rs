//! Rate limiting with `governor`: per client IP on every route, per API key on the gateway, and a
//! tighter limit per IP and per email on sign-in and sign-up.
//!
//! All limiters are GCRA buckets: a limit of N per minute allows a burst of N, then one request
//! every 60/N seconds. State is kept per key in a `DashMap` and pruned on a schedule, so a spray
//! of distinct IPs cannot grow memory without bound; API-key state is only created after the key
//! was found valid.
//!
//! Here: the limiters (this file), their [`clock`], what a check [`decision`] says, which
//! [`client_ip`] a request comes from, and the [`leases`] that share a limit between instances.
//! The token and in-flight limits an owner sets are the `limits` service; where each kind of limit
//! lives is listed in `docs/architecture.md`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::Clock;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::platform::config::Settings;
use crate::platform::db::Db;
use leases::{Decided, SharedLimits};

mod client_ip;
mod clock;
mod decision;
pub mod leases;

use client_ip::is_trusted;
pub use client_ip::{ClientIp, client_ip};
pub use clock::LimitClock;
pub use decision::{Decision, format_reset};

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, LimitClock, StateInformationMiddleware>;

/// One keyed limiter with a fixed per-minute quota.
struct Bucket<K: std::hash::Hash + Eq + Clone> {
    limiter: Keyed<K>,
    per_min: u32,
    interval: Duration,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(per_min: NonZeroU32, clock: &LimitClock) -> Self {
        let limiter = RateLimiter::new(Quota::per_minute(per_min), DashMapStateStore::default(), clock.clone());
        Self { limiter, per_min: per_min.get(), interval: Duration::from_secs(60) / per_min.get() }
    }

    fn check(&self, key: &K) -> Decision {
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = StateSnapshot::remaining_burst_capacity(&snapshot);
                Decision {
                    allowed: true,
                    limit: self.per_min,
                    remaining,
                    reset: self.interval * (self.per_min - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    limit: self.per_min,
                    remaining: 0,
                    reset: self.interval * self.per_min,
                    retry_after: wait,
                }
            }
        }
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// Every limiter of the process.
pub struct Limiters {
    clock: LimitClock,
    ip: Bucket<IpAddr>,
    login_ip: Bucket<IpAddr>,
    login_email: Bucket<String>,
    key_default: NonZeroU32,
    /// One keyed bucket per distinct per-key quota (the default plus any overrides).
    keys: DashMap<u32, Arc<Bucket<String>>>,
    trusted_proxies: Vec<IpNet>,
    /// With several instances on one database: the per-IP and per-key limits kept there.
    shared: Option<SharedLimits>,
    shared_fallbacks: AtomicU64,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").field("ip_entries", &self.ip.len()).finish_non_exhaustive()
    }
}

impl Limiters {
    pub fn new(settings: &Settings, clock: LimitClock) -> Self {
        Self {
            ip: Bucket::new(settings.rate_limit_ip_per_min, &clock),
            login_ip: Bucket::new(settings.rate_limit_login_per_min, &clock),
            login_email: Bucket::new(settings.rate_limit_login_per_min, &clock),
            key_default: settings.rate_limit_key_per_min,
            keys: DashMap::new(),
            trusted_proxies: settings.trusted_proxies.clone(),
            clock,
            shared: None,
            shared_fallbacks: AtomicU64::new(0),
        }
    }

    /// Keeps the per-IP and per-key limits in the database, shared with every instance on it
    /// (see [`leases`]); sign-in limits stay per instance.
    pub fn shared(mut self, db: Db, lease_timeout: Duration) -> Self {
        self.shared = Some(SharedLimits::new(db).with_lease_timeout(lease_timeout));
        self
    }

    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Checks this instance decided alone (at its share of the limit) because the database was
    /// slow for that key.
    pub fn shared_fallbacks(&self) -> u64 {
        self.shared_fallbacks.load(Ordering::Relaxed)
    }

    fn counted(&self, decided: Decided) -> Decision {
        match decided {
            Decided::Shared(decision) => decision,
            Decided::Local(decision) => {
                self.shared_fallbacks.fetch_add(1, Ordering::Relaxed);
                decision
            }
        }
    }

    /// The per-IP limit, shared across instances when configured.
    pub async fn ip(&self, ip: IpAddr) -> Decision {
        let key = limit_key(ip);
        match &self.shared {
            Some(shared) => self.counted(shared.check("ip", &key.to_string(), self.ip.per_min).await),
            None => self.ip.check(&key),
        }
    }

    /// The per-key limit, shared across instances when configured.
    pub async fn key(&self, key_id: &str, override_per_min: Option<u32>) -> Decision {
        match &self.shared {
            Some(shared) => {
                let per_min = override_per_min.and_then(NonZeroU32::new).unwrap_or(self.key_default).get();
                self.counted(shared.check("key", key_id, per_min).await)
            }
            None => self.check_key(key_id, override_per_min),
        }
    }

    /// Announces this instance to the others on the database (shared limits split by their
    /// count); nothing without shared limits.
    pub async fn heartbeat(&self) {
        if let Some(shared) = &self.shared
            && let Err(e) = shared.heartbeat().await
        {
            tracing::warn!(error = %e, "the instance heartbeat failed; shared limits keep the last count of instances");
        }
    }

    /// Instances sharing the limits (1 without shared limits).
    /// This instance's id among those sharing the database (`None` alone).
    pub fn instance_id(&self) -> Option<&str> {
        self.shared.as_ref().map(SharedLimits::instance_id)
    }

    pub fn instances(&self) -> u32 {
        self.shared.as_ref().map_or(1, SharedLimits::instances)
    }

    /// Removes shared states whose bucket is full again from the database.
    pub async fn sweep_shared(&self) {
        if let Some(shared) = &self.shared
            && let Err(e) = shared.sweep().await
        {
            tracing::warn!(error = %e, "sweeping shared rate-limit states failed");
        }
    }

    pub fn clock(&self) -> &LimitClock {
        &self.clock
    }

    /// The per-IP limit every request passes first. IPv6 clients are limited per /64, the
    /// smallest block a single subscriber usually holds.
    pub fn check_ip(&self, ip: IpAddr) -> Decision {
        self.ip.check(&limit_key(ip))
    }

    /// The per-key limit on `/v1`, after the key was found valid. `override_per_min` is the key's
    /// own limit, if it has one.
    pub fn check_key(&self, key_id: &str, override_per_min: Option<u32>) -> Decision {
        let per_min = override_per_min.and_then(NonZeroU32::new).unwrap_or(self.key_default);
        let bucket = match self.keys.get(&per_min.get()) {
            Some(bucket) => Arc::clone(&bucket),
            None => Arc::clone(
                self.keys.entry(per_min.get()).or_insert_with(|| Arc::new(Bucket::new(per_min, &self.clock))).value(),
            ),
        };
        bucket.check(&key_id.to_owned())
    }

    /// Sign-in and sign-up attempts: both the IP's and the email's bucket must allow it.
    pub fn check_login(&self, ip: IpAddr, email: &str) -> Decision {
        let by_ip = self.login_ip.check(&limit_key(ip));
        if !by_ip.allowed {
            return by_ip;
        }
        self.login_email.check(&email.trim().to_lowercase())
    }

    /// Drops the state of every key whose bucket is full again (nothing is lost by forgetting it)
    /// and gives the memory back.
    pub fn prune(&self) {
        self.ip.prune();
        self.login_ip.prune();
        self.login_email.prune();
        for bucket in &self.keys {
            bucket.prune();
        }
        // A quota no key is draining any more holds nothing worth keeping: its limiter goes too
        // (a key that comes back gets a fresh one, full, as it would have been by now).
        let default = self.key_default.get();
        self.keys.retain(|quota, bucket| *quota == default || bucket.len() > 0);
        self.keys.shrink_to_fit();
        if let Some(shared) = &self.shared {
            shared.prune();
        }
    }

    /// Distinct per-key quotas with a limiter in memory.
    pub fn key_quotas(&self) -> usize {
        self.keys.len()
    }

    /// Keys held across all limiters (for metrics and the memory test).
    pub fn tracked_keys(&self) -> usize {
        self.ip.len()
            + self.login_ip.len()
            + self.login_email.len()
            + self.keys.iter().map(|b| b.len()).sum::<usize>()
            + self.shared.as_ref().map_or(0, SharedLimits::len)
    }

    /// The client address for limiting and logs: the socket peer, unless the peer is a trusted
    /// proxy, in which case the right-most forwarded address that is not a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted_proxies)
    }

    /// Whether a socket peer is one of `TRUSTED_PROXIES` (its connections carry many clients).
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        is_trusted(peer, &self.trusted_proxies)
    }
}

fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ip: u32, key: u32, login: u32) -> Settings {
        let mut s = Settings::for_tests();
        s.rate_limit_ip_per_min = NonZeroU32::new(ip).unwrap();
        s.rate_limit_key_per_min = NonZeroU32::new(key).unwrap();
        s.rate_limit_login_per_min = NonZeroU32::new(login).unwrap();
        s
    }

    #[test]
    fn key_limit_is_exact_and_refills() {
        let limiters = Limiters::new(&settings(1000, 60, 10), LimitClock::manual());
        let passed = (0..200).filter(|_| limiters.check_key("k1", None).allowed).count();
        assert_eq!(passed, 60);
        let refused = limiters.check_key("k1", None);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs(), 1, "one request frees up every second at 60/min");
        limiters.clock().advance(Duration::from_secs(60));
        let passed = (0..200).filter(|_| limiters.check_key("k1", None).allowed).count();
        assert_eq!(passed, 60);
        // Another key has its own bucket.
        assert!(limiters.check_key("k2", None).allowed);
    }

    #[test]
    fn override_applies_per_key() {
        let limiters = Limiters::new(&settings(1000, 60, 10), LimitClock::manual());
        assert_eq!((0..50).filter(|_| limiters.check_key("k1", Some(5)).allowed).count(), 5);
        assert_eq!((0..100).filter(|_| limiters.check_key("k2", None).allowed).count(), 60);
    }

    #[test]
    fn remaining_and_reset_count_down() {
        let limiters = Limiters::new(&settings(1000, 60, 10), LimitClock::manual());
        let first = limiters.check_key("k", None);
        assert_eq!((first.limit, first.remaining), (60, 59));
        assert_eq!(first.reset, Duration::from_secs(1));
        let second = limiters.check_key("k", None);
        assert_eq!(second.remaining, 58);
        assert_eq!(format_reset(second.reset), "2s");
    }

    #[test]
    fn login_limit_by_ip_and_by_email() {
        let limiters = Limiters::new(&settings(1000, 60, 3), LimitClock::manual());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            assert!(limiters.check_login(ip, "a@example.com").allowed);
        }
        assert!(!limiters.check_login(ip, "b@example.com").allowed, "same IP, other email");
        let other_ip: IpAddr = "203.0.113.8".parse().unwrap();
        assert!(!limiters.check_login(other_ip, "A@example.com ").allowed, "same email, other IP");
        assert!(limiters.check_login(other_ip, "c@example.com").allowed);
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let limiters = Limiters::new(&settings(2, 60, 3), LimitClock::manual());
        assert!(limiters.check_ip("2001:db8::1".parse().unwrap()).allowed);
        assert!(limiters.check_ip("2001:db8::2".parse().unwrap()).allowed);
        assert!(!limiters.check_ip("2001:db8::ffff:3".parse().unwrap()).allowed);
        assert!(limiters.check_ip("2001:db8:0:1::1".parse().unwrap()).allowed);
    }

    #[test]
    fn million_ips_then_pruning_frees_state() {
        let limiters = Limiters::new(&settings(1000, 60, 10), LimitClock::manual());
        for i in 0..1_000_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limiters.check_ip(ip).allowed);
        }
        assert_eq!(limiters.tracked_keys(), 1_000_000);
        // Buckets are full again after a minute: forgetting them loses nothing.
        limiters.clock().advance(Duration::from_secs(61));
        limiters.prune();
        assert_eq!(limiters.tracked_keys(), 0);
    }

    #[test]
    fn limiters_for_distinct_key_quotas_are_freed_once_idle() {
        let clock = LimitClock::manual();
        let limiters = Limiters::new(&settings(10, 60, 10), clock.clone());
        for n in 1..=100_000u32 {
            assert!(limiters.check_key(&format!("key-{n}"), Some(n)).allowed);
        }
        assert_eq!(limiters.key_quotas(), 100_000);
        limiters.prune();
        assert!(limiters.key_quotas() > 1000, "still draining: kept");
        assert!(!limiters.check_key("key-1", Some(1)).allowed, "a drained quota still limits");
        // Governor forgets a key once its state is a full window older than a fresh one: two windows.
        clock.advance(Duration::from_secs(121));
        limiters.prune();
        let left: Vec<(u32, usize)> =
            limiters.keys.iter().map(|b| (*b.key(), b.len())).filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            (limiters.key_quotas(), limiters.tracked_keys()),
            (1, 0),
            "only the default's limiter is left: {left:?}"
        );
        assert!(limiters.check_key("key-1", Some(1)).allowed);
    }

    #[test]
    fn pruning_keeps_buckets_that_are_still_draining() {
        let limiters = Limiters::new(&settings(10, 60, 10), LimitClock::manual());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            limiters.check_ip(ip);
        }
        limiters.prune();
        assert!(!limiters.check_ip(ip).allowed, "pruning must not reset a limited client");
    }
}
