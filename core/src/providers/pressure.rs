//! Providers' own rate limits, as they report them: OpenAI's `x-ratelimit-{limit,remaining,
//! reset}-{requests,tokens}` and Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,
//! output-tokens}-{limit,remaining,reset}`. A provider that says it is nearly out (at most
//! [`NEARLY_OUT_PCT`] % of a limit left, or none) or that answers 429 rests until its reset: the
//! attempt loop sends its calls to the next candidate meanwhile instead of collecting 429s.
//!
//! Providers report the limits of the model called, so what is heard (and a rest) is kept per
//! provider and model: one model out of quota leaves the provider's other models served.
//!
//! What one instance hears is shared: a rest is written to `provider_rest` and every instance
//! follows that table, so a model out of quota gets no call from any of them until its reset.
//! Bounded: at most [`MAX_PROVIDERS`] provider-model pairs, and a rest lasts at most [`MAX_REST`].

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::HeaderMap;
use serde_json::Value;
use surrealdb::types::Action;

use crate::platform::db::Db;
use crate::platform::live::Follower;
use perpetuo_types::ProviderPressure;

/// A limit with this share left (or less) counts as nearly out.
pub const NEARLY_OUT_PCT: u64 = 2;
/// The longest rest (a daily limit's reset is checked again after this).
pub const MAX_REST: Duration = Duration::from_secs(600);
/// A 429 without any reset or `Retry-After` rests the provider this long.
const DEFAULT_REST: Duration = Duration::from_secs(1);
const MAX_PROVIDERS: usize = 100_000;

/// One limit as a provider reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reported {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// Milliseconds until it resets.
    reset_ms: Option<i64>,
}

impl Reported {
    fn nearly_out(&self) -> bool {
        match (self.limit, self.remaining) {
            (Some(limit), Some(remaining)) => remaining.saturating_mul(100) <= limit.saturating_mul(NEARLY_OUT_PCT),
            (None, Some(remaining)) => remaining == 0,
            _ => false,
        }
    }
}

/// OpenAI's reset: a Go duration such as `1s`, `6m0s`, `20ms` or `1h2m3.5s`.
pub fn parse_go_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 {
        return None;
    }
    let (mut total, mut rest) = (0f64, raw);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match rest.get(..unit_len)? {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = rest.get(unit_len..)?;
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Anthropic's reset: an RFC 3339 time (`2026-12-02T21:40:05Z`, fractions and offsets allowed),
/// as Unix milliseconds.
pub fn parse_rfc3339(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let b = raw.as_bytes();
    if b.len() < 20
        || b.len() > 40
        || b.get(4) != Some(&b'-')
        || b.get(10).is_none_or(|c| !matches!(c, b'T' | b't' | b' '))
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| raw.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = raw.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.find(|c: char| !c.is_ascii_digit()).unwrap_or(frac.len());
        let text = frac.get(..digits)?;
        ms = text.get(..digits.min(3))?.parse::<i64>().ok().map_or(0, |v| v * 10i64.pow(3 - digits.min(3) as u32));
        rest = frac.get(digits..)?;
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = (rest.get(1..3)?.parse::<i64>().ok()?, rest.get(4..6)?.parse::<i64>().ok()?);
            sign * (oh * 60 + om)
        }
    };
    let days = perpetuo_types::time::days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// A limit's headers: (limit, remaining, reset).
type Names = (&'static str, &'static str, &'static str);

const OPENAI_REQUESTS: Names =
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests");
const OPENAI_TOKENS: Names = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens");
const ANTHROPIC_REQUESTS: Names = (
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
);
const ANTHROPIC_TOKENS: [Names; 3] = [
    ("anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    (
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
    ),
    (
        "anthropic-ratelimit-output-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ),
];

/// What the headers of one answer say: (requests, tokens) as the tightest of each. Most answers
/// carry none of them: that is found with one lookup per limit, without building a name.
fn read(headers: &HeaderMap, now: i64) -> Option<(Reported, Reported)> {
    let all = [
        OPENAI_REQUESTS,
        ANTHROPIC_REQUESTS,
        OPENAI_TOKENS,
        ANTHROPIC_TOKENS[0],
        ANTHROPIC_TOKENS[1],
        ANTHROPIC_TOKENS[2],
    ];
    if !all.iter().any(|(_, remaining, _)| headers.contains_key(*remaining)) {
        return None;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
    let openai = |(limit, remaining, reset): Names| Reported {
        limit: number(limit),
        remaining: number(remaining),
        reset_ms: text(reset).and_then(parse_go_duration).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    };
    let anthropic = |(limit, remaining, reset): Names| Reported {
        limit: number(limit),
        remaining: number(remaining),
        reset_ms: text(reset).and_then(parse_rfc3339).map(|at| (at - now).max(0)),
    };
    let requests = tightest([openai(OPENAI_REQUESTS), anthropic(ANTHROPIC_REQUESTS)]);
    let tokens = tightest([
        openai(OPENAI_TOKENS),
        anthropic(ANTHROPIC_TOKENS[0]),
        anthropic(ANTHROPIC_TOKENS[1]),
        anthropic(ANTHROPIC_TOKENS[2]),
    ]);
    (requests.remaining.is_some() || tokens.remaining.is_some()).then_some((requests, tokens))
}

/// The limit with the smallest share left.
fn tightest<const N: usize>(all: [Reported; N]) -> Reported {
    let share = |r: &Reported| match (r.limit, r.remaining) {
        (Some(l), Some(left)) if l > 0 => left as f64 / l as f64,
        (None, Some(0)) => 0.0,
        (None, Some(_)) => 0.5,
        _ => f64::INFINITY,
    };
    all.into_iter().min_by(|a, b| share(a).total_cmp(&share(b))).unwrap_or_default()
}

/// A provider and the model its limits were reported for.
type Slot = (String, String);

/// Every provider's reported limits, per model, on this instance, with rests shared through the
/// database.
#[derive(Debug, Clone)]
pub struct Pressure {
    db: Db,
    /// The time rests are measured in (a manual clock in tests).
    clock: crate::platform::rate::LimitClock,
    seen: Arc<DashMap<Slot, ProviderPressure>>,
    runtime: Option<tokio::runtime::Handle>,
}

struct RestFollower {
    seen: Arc<DashMap<Slot, ProviderPressure>>,
}

impl Follower for RestFollower {
    fn table(&self) -> &'static str {
        "provider_rest"
    }

    fn changed(&self, action: Action, record: &Value) {
        let (Some(provider), Some(model), Some(until)) = (
            record.get("provider").and_then(Value::as_str),
            record.get("model").and_then(Value::as_str),
            record.get("until").and_then(Value::as_i64),
        ) else {
            return;
        };
        let slot = (provider.to_owned(), model.to_owned());
        if action == Action::Delete || (self.seen.len() >= MAX_PROVIDERS && !self.seen.contains_key(&slot)) {
            return;
        }
        let reason = record.get("reason").and_then(Value::as_str).map(str::to_owned);
        let mut entry = self.seen.entry(slot).or_default();
        if entry.resting_until.is_none_or(|mine| mine < until) {
            entry.resting_until = Some(until);
            entry.reason = reason;
        }
    }

    fn clear(&self) {}
}

impl Pressure {
    pub fn new(db: Db, clock: crate::platform::rate::LimitClock) -> Self {
        Self { db, clock, seen: Arc::default(), runtime: tokio::runtime::Handle::try_current().ok() }
    }

    /// Now, in Unix milliseconds, as rests are measured.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::new(RestFollower { seen: Arc::clone(&self.seen) })
    }

    /// Until when (Unix milliseconds) a provider rests for `model`, if it does now.
    pub fn resting(&self, provider: &str, model: &str, now: i64) -> Option<i64> {
        if self.seen.is_empty() {
            return None;
        }
        let slot = (provider.to_owned(), model.to_owned());
        self.seen.get(&slot)?.resting_until.filter(|until| *until > now)
    }

    /// What a provider last reported (for the model heard from last), for the providers tab; the
    /// latest rest of any of its models, with the model named.
    pub fn view(&self, provider: &str) -> Option<ProviderPressure> {
        let mut latest: Option<ProviderPressure> = None;
        let mut resting: Option<(i64, String)> = None;
        for entry in self.seen.iter().filter(|e| e.key().0 == provider) {
            let (model, heard) = (&entry.key().1, entry.value());
            if latest.as_ref().is_none_or(|l| l.seen_at < heard.seen_at) {
                latest = Some(heard.clone());
            }
            if let Some(until) = heard.resting_until
                && resting.as_ref().is_none_or(|(mine, _)| *mine < until)
            {
                let reason = heard.reason.as_deref().unwrap_or("It rests.");
                resting = Some((until, format!("{model}: {reason}")));
            }
        }
        let mut view = latest?;
        (view.resting_until, view.reason) = resting.map_or((None, None), |(until, why)| (Some(until), Some(why)));
        Some(view)
    }

    /// Reads an answer's rate-limit headers for a call to `model` (`status` 429: the model is out
    /// now, resting for `retry_after` or until its reset).
    pub fn observe(
        &self,
        provider: &str,
        model: &str,
        status: u16,
        headers: &HeaderMap,
        retry_after: Option<Duration>,
    ) {
        let now = self.now();
        let reported = read(headers, now);
        if reported.is_none() && status != 429 {
            return;
        }
        let slot = (provider.to_owned(), model.to_owned());
        if self.seen.len() >= MAX_PROVIDERS && !self.seen.contains_key(&slot) {
            return;
        }
        let (requests, tokens) = reported.unwrap_or_default();
        let cap = |ms: i64| ms.clamp(0, i64::try_from(MAX_REST.as_millis()).unwrap_or(i64::MAX));
        let rest = if status == 429 {
            let ms = retry_after
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .or(requests.reset_ms.max(tokens.reset_ms))
                .unwrap_or(i64::try_from(DEFAULT_REST.as_millis()).unwrap_or(1000));
            Some((cap(ms.max(1)), "The provider answered 429 (rate limited)."))
        } else if requests.nearly_out() {
            Some((cap(requests.reset_ms.unwrap_or(1000).max(1)), "The provider said its requests are nearly used up."))
        } else if tokens.nearly_out() {
            Some((cap(tokens.reset_ms.unwrap_or(1000).max(1)), "The provider said its tokens are nearly used up."))
        } else {
            None
        };
        let mut entry = self.seen.entry(slot).or_default();
        entry.requests_limit = requests.limit.or(entry.requests_limit);
        entry.requests_remaining = requests.remaining.or(entry.requests_remaining);
        entry.tokens_limit = tokens.limit.or(entry.tokens_limit);
        entry.tokens_remaining = tokens.remaining.or(entry.tokens_remaining);
        entry.seen_at = now;
        let Some((ms, reason)) = rest else { return };
        let until = now + ms;
        if entry.resting_until.is_some_and(|mine| mine >= until) {
            return;
        }
        entry.resting_until = Some(until);
        entry.reason = Some(reason.to_owned());
        drop(entry);
        tracing::info!(provider, model, until, "a provider's model rests until its rate-limit reset");
        let (db, provider, model, reason) = (self.db.clone(), provider.to_owned(), model.to_owned(), reason.to_owned());
        let Some(runtime) = self.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) else { return };
        runtime.spawn(async move {
            let written = db
                .query("UPSERT type::record('provider_rest', [$provider, $model]) SET provider = $provider, model = $model, until = $until, reason = $reason RETURN NONE")
                .bind(("provider", provider))
                .bind(("model", model))
                .bind(("until", until))
                .bind(("reason", reason))
                .await
                .and_then(|r| r.check());
            if let Err(e) = written {
                tracing::warn!(error = %e, "a provider's rest could not be shared");
            }
        });
    }

    /// Forgets rests that are over (the database's too).
    pub async fn sweep(&self) -> Result<(), surrealdb::Error> {
        let now = self.now();
        self.seen.retain(|_, p| p.resting_until.is_some_and(|u| u > now) || now - p.seen_at < 3_600_000);
        self.db.query("DELETE provider_rest WHERE until < $now").bind(("now", now)).await?.check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::db::now_ms;
    use http::HeaderValue;

    #[test]
    fn resets_are_read_in_both_vendors_formats() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
        for bad in ["", "5", "s", "1x", "1e400s", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_rfc3339("2026-12-02T21:40:05.250Z"), Some(1_796_247_605_250));
        assert_eq!(parse_rfc3339("2026-12-02T23:40:05+02:00"), Some(1_796_247_605_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[tokio::test]
    async fn a_provider_nearly_out_rests_until_its_reset() {
        let pressure = Pressure::new(Db::memory().await.unwrap(), crate::platform::rate::LimitClock::real());
        let mut plenty = HeaderMap::new();
        plenty.insert("x-ratelimit-limit-requests", HeaderValue::from_static("100"));
        plenty.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("50"));
        plenty.insert("x-ratelimit-reset-requests", HeaderValue::from_static("30s"));
        pressure.observe("p", "m", 200, &plenty, None);
        let now = now_ms();
        assert_eq!(pressure.resting("p", "m", now), None);
        assert_eq!(pressure.view("p").unwrap().requests_remaining, Some(50));
        let mut out = HeaderMap::new();
        out.insert("anthropic-ratelimit-input-tokens-limit", HeaderValue::from_static("40000"));
        out.insert("anthropic-ratelimit-input-tokens-remaining", HeaderValue::from_static("100"));
        let reset = perpetuo_types::time::rfc3339_utc(now + 20_000);
        out.insert("anthropic-ratelimit-input-tokens-reset", HeaderValue::from_str(&reset).unwrap());
        pressure.observe("p", "m", 200, &out, None);
        let until = pressure.resting("p", "m", now).expect("rests");
        assert!((now + 18_000..=now + 21_000).contains(&until), "{until} vs {now}");
        assert_eq!(pressure.resting("p", "m", until + 1), None, "not after its reset");
        assert_eq!(pressure.resting("p", "other", now), None, "the provider's other models are served");
        let view = pressure.view("p").unwrap();
        assert_eq!(view.resting_until, Some(until));
        assert!(view.reason.unwrap().starts_with("m: "), "the view names the model that rests");
        pressure.observe("q", "m", 429, &HeaderMap::new(), Some(Duration::from_secs(5)));
        assert!(pressure.resting("q", "m", now_ms()).is_some());
        assert!(pressure.resting("q", "n", now_ms()).is_none());
        // Absurd values are bounded.
        let mut absurd = HeaderMap::new();
        absurd.insert("x-ratelimit-remaining-tokens", HeaderValue::from_static("0"));
        absurd.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("9999999h"));
        pressure.observe("r", "m", 200, &absurd, None);
        let until = pressure.resting("r", "m", now_ms()).unwrap();
        assert!(until <= now_ms() + 600_000);
    }
}
