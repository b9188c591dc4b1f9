//! Cost of the rate limiters per request: `cargo run --release --example limiter_bench`.
//! Prints nanoseconds per check for a warm client, a spray of distinct IPs, and API keys.

use std::hint::black_box;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Instant;

use perpetuo_core::platform::config::Settings;
use perpetuo_core::platform::rate::{LimitClock, Limiters};

fn per_op(label: &str, n: u32, mut f: impl FnMut(u32)) -> std::io::Result<()> {
    for i in 0..n.min(10_000) {
        f(i);
    }
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    writeln!(std::io::stdout(), "{label:<46} {ns:>8.1} ns/check")
}

/// What token and in-flight limits cost a call on the embedded database (kept in memory): the
/// prompt's estimate, a place taken and given back, a reservation and its settlement.
fn token_limits() -> std::io::Result<()> {
    use perpetuo_core::limits::{InFlight, TokenBuckets, inflight, tokens};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let prompt = "Say hello in five words.";
    per_op("prompt estimate (o200k, 24 bytes)", 200_000, |_| {
        black_box(perpetuo_core::usage::estimate::count(black_box(prompt)));
    })?;
    let long = "hello ".repeat(1000);
    per_op("prompt estimate (o200k, 6,000 bytes)", 2_000, |_| {
        black_box(perpetuo_core::usage::estimate::count(black_box(&long)));
    })?;
    let buckets = TokenBuckets::new(tokens::Store::Local);
    let places = InFlight::new(inflight::Store::Local);
    runtime.block_on(async {
        let n = 1_000_000u32;
        let started = Instant::now();
        for _ in 0..n {
            black_box(buckets.reserve("ws|key:k|in", 1_000_000_000, 30, 1).await);
            buckets.give_back("ws|key:k|in", 1_000_000_000, 20, tokens::Source::Bucket).await;
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
        writeln!(std::io::stdout(), "{:<46} {ns:>8.1} ns/call", "token bucket reserve + settle")?;
        let started = Instant::now();
        for _ in 0..n {
            drop(black_box(places.take("ws|key:k|fly", 100_000, std::time::Duration::ZERO).await));
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
        writeln!(std::io::stdout(), "{:<46} {ns:>8.1} ns/call", "place in flight taken + given back")
    })
}

fn main() -> std::io::Result<()> {
    token_limits()?;
    let mut settings = Settings::for_tests();
    settings.rate_limit_ip_per_min = NonZeroU32::MAX;
    settings.rate_limit_key_per_min = NonZeroU32::MAX;
    let limiters = Limiters::new(&settings, LimitClock::real());
    let one = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    per_op("per-IP check, same client", 2_000_000, |_| {
        black_box(limiters.check_ip(one));
    })?;
    per_op("per-IP check, 1M distinct clients", 1_000_000, |i| {
        black_box(limiters.check_ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))));
    })?;
    per_op("per-key check, same key", 2_000_000, |_| {
        black_box(limiters.check_key("key-1", None));
    })?;
    per_op("per-key check, 10k keys", 2_000_000, |i| {
        black_box(limiters.check_key(&format!("key-{}", i % 10_000), None));
    })?;
    let started = Instant::now();
    limiters.prune();
    writeln!(
        std::io::stdout(),
        "{:<46} {:>8.1} ms ({} keys tracked after)",
        "prune after the spray",
        started.elapsed().as_secs_f64() * 1e3,
        limiters.tracked_keys()
    )
}
