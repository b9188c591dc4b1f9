//! Usage on the wire: periods, filters, totals, breakdowns, the request log and prices.

use serde::{Deserialize, Serialize};
#[cfg(feature = "ssr")]
use surrealdb::types::SurrealValue;

use super::forms::given;
use super::time::{DAY_MS, parse_day};

/// A period of whole UTC days, both ends included (Unix ms at 00:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from_day: i64,
    pub to_day: i64,
}

/// The longest period one query may cover.
pub const MAX_PERIOD_DAYS: i64 = 400;

impl Period {
    /// The `days` days ending today (today included).
    pub fn last_days(days: i64, now_ms: i64) -> Self {
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
        Self { from_day: today - (days.max(1) - 1) * DAY_MS, to_day: today }
    }

    /// From the dashboard's or the API's fields: a preset (`today`, `7d`, `30d`) or `from`/`to`
    /// dates (`YYYY-MM-DD`); the last 30 days when nothing is given.
    pub fn parse(preset: Option<&str>, from: Option<&str>, to: Option<&str>, now_ms: i64) -> Result<Self, String> {
        fn given(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        match given(preset) {
            Some("today") => return Ok(Self::last_days(1, now_ms)),
            Some("7d") => return Ok(Self::last_days(7, now_ms)),
            Some("30d") => return Ok(Self::last_days(30, now_ms)),
            Some("custom") | None => {}
            Some(other) => return Err(format!("Unknown period `{other}`; use today, 7d, 30d or from/to dates.")),
        }
        let default = Self::last_days(30, now_ms);
        let day = |raw: Option<&str>, fallback: i64, name: &str| -> Result<i64, String> {
            match given(raw) {
                None => Ok(fallback),
                Some(raw) => parse_day(raw).ok_or_else(|| format!("`{name}` must be a date such as 2025-01-31.")),
            }
        };
        let to_day = day(to, default.to_day, "to")?;
        let from_day = day(from, to_day - 29 * DAY_MS, "from")?;
        if from_day > to_day {
            return Err("`from` must not be after `to`.".into());
        }
        if (to_day - from_day) / DAY_MS >= MAX_PERIOD_DAYS {
            return Err(format!("A period can cover at most {MAX_PERIOD_DAYS} days."));
        }
        Ok(Self { from_day, to_day })
    }
}

/// How usage is broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Model,
    Provider,
    Key,
}

impl GroupBy {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "day" => Ok(Self::Day),
            "model" => Ok(Self::Model),
            "provider" => Ok(Self::Provider),
            "key" => Ok(Self::Key),
            other => Err(format!("Unknown group_by `{other}`; use day, model, provider or key.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Key => "key",
        }
    }
}

/// Which statuses the request log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Any,
    Ok,
    Error,
    Code(u16),
}

impl StatusFilter {
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("any") => Ok(Self::Any),
            Some("ok") => Ok(Self::Ok),
            Some("error") => Ok(Self::Error),
            Some(code) => code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(Self::Code)
                .ok_or_else(|| "`status` must be ok, error or an HTTP status code.".to_owned()),
        }
    }

    pub fn as_query(self) -> String {
        match self {
            Self::Any => String::new(),
            Self::Ok => "ok".into(),
            Self::Error => "error".into(),
            Self::Code(c) => c.to_string(),
        }
    }
}

/// The request log's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFilter {
    pub period: Period,
    pub key: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The route (`chat`, `embeddings`, `messages`, `responses`).
    pub route: Option<String>,
    pub status: StatusFilter,
}

/// The gateway routes a request can have come in on, as records name them.
pub const ROUTES: [&str; 4] = ["chat", "messages", "responses", "embeddings"];

/// A route filter as typed: one of [`ROUTES`] or nothing.
pub fn parse_route(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) if ROUTES.contains(&r) => Ok(Some(r.to_owned())),
        Some(_) => Err(format!("`route` must be one of: {}.", ROUTES.join(", "))),
    }
}

/// A stored route name as shown (records from before routes were named say `chat.completions`).
pub fn route_name(stored: &str) -> &str {
    if stored == "chat.completions" { "chat" } else { stored }
}

/// Token counts of a call, or of many added up: the one shape every record, total, report,
/// export and budget uses. On the wire its fields are `prompt_tokens`, `completion_tokens`,
/// `cache_read_tokens`, `cache_write_tokens` and `reasoning_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Every input token, cached ones included.
    #[serde(rename = "prompt_tokens")]
    pub prompt: u64,
    /// Every output token, reasoning ones included.
    #[serde(rename = "completion_tokens")]
    pub completion: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache (billed at a discount).
    #[serde(rename = "cache_read_tokens", default)]
    pub cache_read: u64,
    /// Of the prompt tokens, those written to the prompt cache (Anthropic bills them at a premium).
    #[serde(rename = "cache_write_tokens", default)]
    pub cache_write: u64,
    /// Of the completion tokens, those spent reasoning (billed as output; shown apart).
    #[serde(rename = "reasoning_tokens", default)]
    pub reasoning: u64,
    /// Of the cache writes, those kept for an hour (Anthropic bills them at 2x input, against
    /// 1.25x for the 5-minute ones).
    #[serde(rename = "cache_write_1h_tokens", default, skip_serializing_if = "is_zero")]
    pub cache_write_1h: u64,
    /// Web searches the provider ran for the call (hosted tools billed per use, as the provider
    /// reports them: Anthropic's `server_tool_use.web_search_requests`).
    #[serde(rename = "web_search_requests", default, skip_serializing_if = "is_zero")]
    pub web_searches: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::ops::Add for TokenCounts {
    type Output = Self;

    /// Two counts added (two attempts of a call, or many calls), saturating.
    fn add(self, other: Self) -> Self {
        Self {
            prompt: self.prompt.saturating_add(other.prompt),
            completion: self.completion.saturating_add(other.completion),
            cache_read: self.cache_read.saturating_add(other.cache_read),
            cache_write: self.cache_write.saturating_add(other.cache_write),
            reasoning: self.reasoning.saturating_add(other.reasoning),
            cache_write_1h: self.cache_write_1h.saturating_add(other.cache_write_1h),
            web_searches: self.web_searches.saturating_add(other.web_searches),
        }
    }
}

impl std::ops::AddAssign for TokenCounts {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl std::iter::Sum for TokenCounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

impl TokenCounts {
    /// Every token, input and output (what a token budget counts), saturating.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }

    /// From stored counts (never negative; a negative one reads as 0).
    pub fn from_stored(prompt: i64, completion: i64, cache_read: i64, cache_write: i64, reasoning: i64) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            prompt: n(prompt),
            completion: n(completion),
            cache_read: n(cache_read),
            cache_write: n(cache_write),
            reasoning: n(reasoning),
            cache_write_1h: 0,
            web_searches: 0,
        }
    }
}

/// Totals for a period. `cost_nanos` is `None` when no request in it had a known price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub from_day: i64,
    pub to_day: i64,
    pub requests: i64,
    pub errors: i64,
    #[serde(flatten)]
    pub tokens: TokenCounts,
    pub cost_nanos: Option<i64>,
    pub unpriced_requests: i64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub ttft_p50_ms: Option<i64>,
}

/// Totals of one group (a day, a model, a provider or a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageGroup {
    pub key: String,
    pub label: String,
    pub requests: i64,
    pub errors: i64,
    #[serde(flatten)]
    pub tokens: TokenCounts,
    pub cost_nanos: Option<i64>,
    pub unpriced_requests: i64,
}

/// One bar segment of a chart: a day and a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub day: i64,
    pub label: String,
    pub requests: i64,
    pub cost_nanos: i64,
}

/// One gateway request in the log (from its usage record; the key's name is filled in by the
/// reports service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    pub ts: i64,
    pub request_id: String,
    pub key_id: String,
    #[serde(default)]
    pub key_name: String,
    pub provider_id: Option<String>,
    pub provider_label: Option<String>,
    pub model: String,
    /// The gateway route it came in on (`chat`, `messages`, `responses`, `embeddings`).
    #[serde(alias = "endpoint")]
    pub route: String,
    /// The model the provider was asked for, when it differs from `model` (an alias's target).
    #[serde(default)]
    pub served_model: Option<String>,
    pub stream: bool,
    pub status: i64,
    pub ok: bool,
    pub error_class: Option<String>,
    pub attempts: i64,
    #[serde(flatten)]
    pub tokens: TokenCounts,
    pub cost_nanos: Option<i64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    /// Whether some token counts are Perpetuo's estimate (a stream cut short before the provider
    /// said its usage, an attempt abandoned after it reached the provider).
    #[serde(default)]
    pub estimated: bool,
    /// Attempts that reached a provider and were abandoned (charged at their worst case).
    #[serde(default)]
    pub abandoned: i64,
    /// What a budget reserved for the call, when one applied.
    #[serde(default)]
    pub reserved_nanos: Option<i64>,
    #[serde(default)]
    pub reserved_tokens: Option<i64>,
    /// The hosted tools the client offered that the provider went without (`web_search, ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_tools: Option<String>,
    /// The providers the call went to or passed over, in order (empty for records written before
    /// Perpetuo kept them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<AttemptStep>,
    /// The price the answer was charged at (none when unknown, or for records made before
    /// Perpetuo kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceUsed>,
}

/// The price a call was charged at, in dollars per million tokens, and whose it was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceUsed {
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub cache_read_per_million: f64,
    pub cache_write_per_million: f64,
    /// The workspace's own price for the model, not the price table's.
    pub workspace_price: bool,
}

/// One step of a call: an attempt at a provider, or a candidate passed over and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptStep {
    /// The attempt's number (1, 2, ...); 0 for a candidate passed over.
    pub attempt: u32,
    pub provider_id: String,
    pub provider_label: String,
    pub provider_kind: String,
    /// The model the provider was asked for.
    pub model: String,
    /// When it started, in milliseconds after the call arrived, and how long it took (to the
    /// answer, or a stream's first bytes).
    pub started_ms: i64,
    pub duration_ms: i64,
    /// `answered`, the attempt's error class (`upstream_5xx`, `timeout`, ...), or why the
    /// candidate was passed over (`breaker_open`, `key_rejected`, `cannot_express`).
    pub outcome: String,
}

/// A page of the request log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPage {
    pub data: Vec<RequestRow>,
    /// Records matching the filters (all pages).
    pub total: i64,
    pub next_cursor: Option<String>,
}

/// Dollars from billionths of a dollar, or "unknown".
pub fn format_cost(nanos: Option<i64>) -> String {
    match nanos {
        None => "unknown".into(),
        Some(n) => {
            let dollars = n as f64 / 1e9;
            if dollars == 0.0 {
                "$0".into()
            } else if dollars < 0.01 {
                format!("${dollars:.6}")
            } else {
                format!("${dollars:.2}")
            }
        }
    }
}
/// A workspace's own price for a model, in dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(SurrealValue))]
pub struct PriceOverride {
    pub kind: String,
    pub model: String,
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub updated_at: i64,
}

/// The tab's query string, as typed (everything optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

impl UsageQuery {
    /// The request-log filter these fields describe: the one parser behind the usage tab, its
    /// CSV export and the management API.
    pub fn filter(&self, now: i64) -> Result<crate::RequestFilter, String> {
        Ok(crate::RequestFilter {
            period: Period::parse(self.period.as_deref(), self.from.as_deref(), self.to.as_deref(), now)?,
            key: given(self.key.as_deref()),
            provider: given(self.provider.as_deref()),
            model: given(self.model.as_deref()),
            route: crate::parse_route(self.route.as_deref())?,
            status: StatusFilter::parse(self.status.as_deref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000; // 2023-11-14 22:13 UTC

    #[test]
    fn presets_and_custom_ranges() {
        let today = parse_day("2023-11-14").unwrap();
        assert_eq!(Period::parse(Some("today"), None, None, NOW), Ok(Period { from_day: today, to_day: today }));
        assert_eq!(Period::parse(Some("7d"), None, None, NOW).unwrap().from_day, today - 6 * DAY_MS);
        assert_eq!(Period::parse(None, None, None, NOW).unwrap().from_day, today - 29 * DAY_MS);
        let custom = Period::parse(Some("custom"), Some("2023-01-01"), Some("2023-01-31"), NOW).unwrap();
        assert_eq!((custom.to_day - custom.from_day) / DAY_MS, 30);
        assert!(Period::parse(None, Some("2023-02-01"), Some("2023-01-01"), NOW).is_err());
        assert!(Period::parse(None, Some("2020-01-01"), Some("2023-01-01"), NOW).is_err());
        assert!(Period::parse(Some("forever"), None, None, NOW).is_err());
        assert!(Period::parse(None, Some("yesterday"), None, NOW).is_err());
    }

    #[test]
    fn status_filters_and_costs() {
        assert_eq!(StatusFilter::parse(Some("error")), Ok(StatusFilter::Error));
        assert_eq!(StatusFilter::parse(Some("429")), Ok(StatusFilter::Code(429)));
        assert!(StatusFilter::parse(Some("99")).is_err());
        assert_eq!(format_cost(None), "unknown");
        assert_eq!(format_cost(Some(5_850)), "$0.000006");
        assert_eq!(format_cost(Some(1_234_000_000)), "$1.23");
    }
}
