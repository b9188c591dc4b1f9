//! One gateway request's usage record: what the gateway hands to the spool, what the ledger
//! stores (as one JSON line inside its batch) and what the request log shows.

use serde::{Deserialize, Serialize};

use perpetuo_types::{RequestRow, TokenCounts};

/// One gateway request, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unix milliseconds when the request arrived.
    pub ts: i64,
    pub workspace: String,
    pub request_id: String,
    pub key_id: String,
    pub provider_id: Option<String>,
    pub provider_label: Option<String>,
    pub provider_kind: Option<String>,
    /// The model as the client asked for it.
    pub model: String,
    /// `chat.completions` or `embeddings`.
    /// The model the provider was asked for, when it differs from `model` (an alias, a
    /// `kind/` prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<String>,
    pub endpoint: String,
    pub stream: bool,
    /// The HTTP status the client got (499 when it went away first).
    pub status: i64,
    pub ok: bool,
    pub error_class: Option<String>,
    pub attempts: i64,
    /// Its tokens (stored as `prompt_tokens`, `completion_tokens`, ... beside the other fields).
    #[serde(flatten)]
    pub tokens: TokenCounts,
    /// Estimated cost in billionths of a dollar; `None` when the price is unknown.
    pub cost_nanos: Option<i64>,
    pub latency_ms: i64,
    /// Time spent waiting on upstreams (the rest is Perpetuo's own overhead).
    pub upstream_ms: i64,
    /// Time to the first token of a stream.
    pub ttft_ms: Option<i64>,
    /// Whether some of the token counts are Perpetuo's estimate rather than the provider's report
    /// (a stream cut short before its usage, an attempt abandoned after it reached the provider).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    /// Attempts that reached a provider and were abandoned (charged at their worst case).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub abandoned: i64,
    /// What a budget reserved for the call (its worst case), when one applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_nanos: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_tokens: Option<i64>,
    /// The hosted tools the client offered that the provider went without (`web_search, ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_tools: Option<String>,
    /// The call's attempts and the candidates it passed over, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<perpetuo_types::AttemptStep>,
    /// The price the answer was charged at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<perpetuo_types::PriceUsed>,
}

/// A new request id: `req_`, the arrival time (Unix milliseconds, base 36, nine characters) and
/// eleven random ones, so that a call's record can be found from its id alone.
pub fn request_id(ts_ms: i64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = u64::try_from(ts_ms).unwrap_or(0);
    let mut time = [b'0'; 9];
    for digit in time.iter_mut().rev() {
        *digit = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    let random = crate::platform::db::new_id();
    format!("req_{}{}", String::from_utf8_lossy(&time), &random[..11])
}

/// The arrival time a request id carries (`None` for ids made before they carried one, or not
/// ids at all).
pub fn request_ts(id: &str) -> Option<i64> {
    let rest = id.strip_prefix("req_")?;
    if rest.len() != 20 || !rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return None;
    }
    i64::from_str_radix(&rest[..9], 36).ok()
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl UsageRecord {
    /// The request log's row (the key's name is filled in by the reports service).
    pub fn row(self) -> RequestRow {
        RequestRow {
            ts: self.ts,
            request_id: self.request_id,
            key_id: self.key_id,
            key_name: String::new(),
            provider_id: self.provider_id,
            provider_label: self.provider_label,
            model: self.model,
            route: perpetuo_types::route_name(&self.endpoint).to_owned(),
            served_model: self.served_model,
            stream: self.stream,
            status: self.status,
            ok: self.ok,
            error_class: self.error_class,
            attempts: self.attempts,
            tokens: self.tokens,
            cost_nanos: self.cost_nanos,
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            estimated: self.estimated,
            abandoned: self.abandoned,
            reserved_nanos: self.reserved_nanos,
            reserved_tokens: self.reserved_tokens,
            dropped_tools: self.dropped_tools.clone(),
            timeline: self.timeline,
            price: self.price,
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    #[test]
    fn request_ids_carry_their_time() {
        let id = request_id(1_764_633_600_123);
        assert_eq!(id.len(), 24);
        assert_eq!(request_ts(&id), Some(1_764_633_600_123));
        assert!(request_id(1) < request_id(2), "ids sort by time");
        assert_eq!(request_ts("req_abc"), None);
        assert_eq!(request_ts("req_ABCDEFGHIJKLMNOPQRST"), None);
    }

    /// A record for tests.
    pub fn record(ws: &str, model: &str, ok: bool) -> UsageRecord {
        UsageRecord {
            ts: 1_700_000_000_000,
            workspace: ws.into(),
            request_id: "req".into(),
            key_id: "k1".into(),
            provider_id: Some("p1".into()),
            provider_label: Some("P".into()),
            provider_kind: Some("openai".into()),
            model: model.into(),
            served_model: None,
            endpoint: "chat".into(),
            stream: false,
            status: if ok { 200 } else { 502 },
            ok,
            error_class: (!ok).then(|| "upstream_5xx".into()),
            attempts: 1,
            tokens: TokenCounts {
                prompt: 10,
                completion: 5,
                cache_read: 2,
                cache_write: 0,
                reasoning: 1,
                ..TokenCounts::default()
            },
            cost_nanos: ok.then_some(100),
            latency_ms: 20,
            upstream_ms: 18,
            ttft_ms: None,
            estimated: false,
            abandoned: 0,
            reserved_nanos: None,
            reserved_tokens: None,
            dropped_tools: None,
            timeline: Vec::new(),
            price: None,
        }
    }

    #[test]
    fn a_record_survives_its_line() {
        let r = record("w1", "m", false);
        let line = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(serde_json::from_str::<UsageRecord>(&line).ok(), Some(r.clone()));
        // Lines written before reasoning and cache tokens were recorded still read.
        let mut old: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        for field in ["cache_read_tokens", "cache_write_tokens", "reasoning_tokens"] {
            old.as_object_mut().map(|o| o.remove(field));
        }
        let read: UsageRecord = serde_json::from_value(old).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((read.tokens.cache_read, read.tokens.reasoning), (0, 0));
    }
}
