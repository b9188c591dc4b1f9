//! Prometheus metrics, kept in atomics and rendered as text on `GET /metrics`. Labels are
//! provider kinds, model names that a provider actually served, statuses and error classes:
//! never a key, an email, a workspace or prompt text. Distinct label sets are capped so a client
//! inventing model names cannot grow memory.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use perpetuo_types::ErrorClass;

const MAX_SERIES: usize = 2000;
/// Latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: DashMap<(u16, String, String), AtomicU64>,
    upstream_errors: DashMap<(String, ErrorClass), AtomicU64>,
    rate_limited: DashMap<&'static str, AtomicU64>,
    budget: DashMap<&'static str, AtomicU64>,
    count_tokens: AtomicU64,
    /// Client connections open now.
    connections: AtomicU64,
    pub latency: Histogram,
    pub overhead: Histogram,
}

/// Sample lines in a stable order (the maps iterate in any order).
fn push_sorted(out: &mut String, rows: impl Iterator<Item = String>) {
    let mut rows: Vec<String> = rows.collect();
    rows.sort();
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// One finished gateway request. `model` is only the name a provider served (or `unknown`).
    pub fn request(&self, status: u16, provider_kind: &str, model: &str, latency_s: f64, overhead_s: f64) {
        let key = (status, provider_kind.to_owned(), model.to_owned());
        if let Some(counter) = self.requests.get(&key) {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            let key = if self.requests.len() >= MAX_SERIES {
                (status, provider_kind.to_owned(), "other".to_owned())
            } else {
                key
            };
            self.requests.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(latency_s);
        self.overhead.observe(overhead_s.max(0.0));
    }

    pub fn upstream_error(&self, provider_kind: &str, class: ErrorClass) {
        let key = (provider_kind.to_owned(), class);
        self.upstream_errors.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused by a limiter: `ip`, `key` or `login`.
    pub fn rate_limited(&self, limiter: &'static str) {
        self.rate_limited.entry(limiter).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// A token count answered (`/v1/messages/count_tokens`).
    pub fn counted_tokens(&self) {
        self.count_tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection accepted.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Token counts answered so far.
    pub fn count_tokens(&self) -> u64 {
        self.count_tokens.load(Ordering::Relaxed)
    }

    /// A budget event: `reserved`, `refused` or `settled`.
    pub fn budget(&self, event: &'static str) {
        self.budget.entry(event).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition, with the gauges passed in by the caller.
    pub fn render(&self, gauges: &[(&str, &str, f64)], counters: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP perpetuo_requests_total Gateway requests by status, provider kind and model.\n# TYPE perpetuo_requests_total counter\n");
        push_sorted(
            &mut out,
            self.requests.iter().map(|e| {
                let (status, kind, model) = e.key();
                format!(
                    "perpetuo_requests_total{{status=\"{status}\",provider=\"{}\",model=\"{}\"}} {}",
                    escape(kind),
                    escape(model),
                    e.value().load(Ordering::Relaxed)
                )
            }),
        );
        out.push_str("# HELP perpetuo_request_duration_seconds Total time of gateway requests.\n# TYPE perpetuo_request_duration_seconds histogram\n");
        self.latency.render(&mut out, "perpetuo_request_duration_seconds", "");
        out.push_str("# HELP perpetuo_overhead_duration_seconds Perpetuo's own time per request (total minus upstream wait).\n# TYPE perpetuo_overhead_duration_seconds histogram\n");
        self.overhead.render(&mut out, "perpetuo_overhead_duration_seconds", "");
        out.push_str("# HELP perpetuo_upstream_errors_total Failed upstream attempts by provider kind and error class.\n# TYPE perpetuo_upstream_errors_total counter\n");
        push_sorted(
            &mut out,
            self.upstream_errors.iter().map(|e| {
                format!(
                    "perpetuo_upstream_errors_total{{provider=\"{}\",class=\"{}\"}} {}",
                    escape(&e.key().0),
                    e.key().1.as_str(),
                    e.value().load(Ordering::Relaxed)
                )
            }),
        );
        out.push_str("# HELP perpetuo_rate_limited_total Requests refused by a rate limiter.\n# TYPE perpetuo_rate_limited_total counter\n");
        for limiter in ["ip", "key", "login", "tokens", "in_flight", "provider"] {
            let n = self.rate_limited.get(limiter).map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(out, "perpetuo_rate_limited_total{{limiter=\"{limiter}\"}} {n}");
        }
        out.push_str("# HELP perpetuo_budget_events_total Budget reservations made, extended (another attempt that may be billed), refused and settled.\n# TYPE perpetuo_budget_events_total counter\n");
        for event in ["reserved", "extended", "refused", "settled"] {
            let n = self.budget.get(event).map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(out, "perpetuo_budget_events_total{{event=\"{event}\"}} {n}");
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request(200, "openai", "gpt-4o", 0.2, 0.0001);
        m.request(200, "openai", "gpt-4o", 0.3, 0.0002);
        m.upstream_error("anthropic", ErrorClass::Upstream5xx);
        m.rate_limited("key");
        let text = m.render(&[("perpetuo_usage_queue_depth", "Queued usage records.", 3.0)], &[]);
        assert!(
            text.contains("perpetuo_requests_total{status=\"200\",provider=\"openai\",model=\"gpt-4o\"} 2"),
            "{text}"
        );
        assert!(text.contains("perpetuo_request_duration_seconds_count 2"));
        assert!(text.contains("perpetuo_request_duration_seconds_bucket{le=\"0.25\"} 1"));
        assert!(text.contains("perpetuo_upstream_errors_total{provider=\"anthropic\",class=\"upstream_5xx\"} 1"));
        assert!(text.contains("perpetuo_rate_limited_total{limiter=\"key\"} 1"));
        assert!(text.contains("perpetuo_usage_queue_depth 3"));
    }

    #[test]
    fn label_sets_are_capped() {
        let m = Metrics::default();
        for i in 0..(MAX_SERIES + 500) {
            m.request(200, "openai", &format!("model-{i}"), 0.1, 0.0);
        }
        assert!(m.requests.len() <= MAX_SERIES + 1);
        assert!(m.render(&[], &[]).contains("model=\"other\""));
    }
}
