//! What the usage tab and the usage API read: totals, percentiles and breakdowns from the per-day
//! rollups (fast however many requests a workspace makes), and the request log from the raw
//! records (one index range per page). Every query is scoped by the workspace.

mod log;

#[cfg(test)]
use log::parse_cursor;

use std::collections::HashMap;

use surrealdb::types::SurrealValue;

use surrealdb::types::RecordId;

use super::ledger;
use super::record::UsageRecord;
use super::rollups::{HIST_LEN, LATENCY_BUCKETS_MS};
use crate::platform::db::{Db, Reader};
use crate::platform::error::ServiceError;
use crate::workspaces::WorkspaceId;
use perpetuo_types::{
    DAY_MS, GroupBy, Period, RequestFilter, RequestPage, SeriesPoint, StatusFilter, TokenCounts, UsageGroup,
    UsageSummary,
};

pub const MAX_PAGE: usize = 500;

/// The reports service: what the usage tab, the usage API and the CSV export read.
#[derive(Debug, Clone)]
pub struct Reports {
    db: Reader,
}

impl Reports {
    pub fn new(db: Db) -> Self {
        Self { db: db.live() }
    }

    /// The same reports, every one read from one snapshot of the database: what a page that shows
    /// several of them uses, so its totals, counts and rows agree while records are committed.
    /// Read-only: what it would write is never committed.
    pub async fn snapshot(&self) -> Self {
        match &self.db {
            Reader::Live(db) => Self { db: db.snapshot().await },
            Reader::Snapshot(_) => self.clone(),
        }
    }

    /// The current names of the workspace's keys and providers.
    pub async fn labels(&self, ws: &WorkspaceId) -> Result<Labels, ServiceError> {
        #[derive(SurrealValue)]
        struct Named {
            id: String,
            name: String,
        }
        let mut response = self
            .db
            .query(
                "SELECT record::id(id) AS id, name, created_at FROM api_key WHERE workspace = $ws ORDER BY created_at DESC;
                 SELECT record::id(id) AS id, label AS name, priority, created_at FROM provider WHERE workspace = $ws ORDER BY priority ASC, created_at ASC;",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        let pairs = |rows: Vec<Named>| rows.into_iter().map(|r| (r.id, r.name)).collect();
        let keys: Vec<Named> = response.take(0)?;
        let providers: Vec<Named> = response.take(1)?;
        Ok(Labels::new(pairs(keys), pairs(providers)))
    }
}

/// Summed rollup columns, per group (`dim`) or for the whole period (no `dim`).
#[derive(SurrealValue, Default)]
struct Sums {
    dim: Option<String>,
    requests: Option<i64>,
    errors: Option<i64>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    cache_read_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
    cost_nanos: Option<i64>,
    unpriced: Option<i64>,
}

/// The rollup sums, as selected by every aggregate query here.
const SUMS: &str = "math::sum(requests) AS requests, math::sum(errors) AS errors, math::sum(prompt_tokens) AS prompt_tokens, \
    math::sum(completion_tokens) AS completion_tokens, math::sum(cache_read_tokens ?? 0) AS cache_read_tokens, \
    math::sum(cache_write_tokens ?? 0) AS cache_write_tokens, math::sum(reasoning_tokens ?? 0) AS reasoning_tokens, \
    math::sum(cost_nanos) AS cost_nanos, math::sum(unpriced) AS unpriced";

impl Sums {
    /// Unknown is not zero: no cost when nothing in the group was priced.
    fn cost(&self) -> Option<i64> {
        (self.requests.unwrap_or(0) > self.unpriced.unwrap_or(0)).then(|| self.cost_nanos.unwrap_or(0))
    }

    /// The summed columns as token counts.
    fn tokens(&self) -> TokenCounts {
        let n = |v: Option<i64>| v.unwrap_or(0);
        TokenCounts::from_stored(
            n(self.prompt_tokens),
            n(self.completion_tokens),
            n(self.cache_read_tokens),
            n(self.cache_write_tokens),
            n(self.reasoning_tokens),
        )
    }

    fn group(self, key: String, label: String) -> UsageGroup {
        UsageGroup {
            cost_nanos: self.cost(),
            key,
            label,
            requests: self.requests.unwrap_or(0),
            errors: self.errors.unwrap_or(0),
            tokens: self.tokens(),
            unpriced_requests: self.unpriced.unwrap_or(0),
        }
    }
}

/// The current names of a workspace's keys and providers, read once per page: rollups and records
/// hold ids, people read names.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Key id -> name, newest key first.
    pub keys: Vec<(String, String)>,
    /// Provider id -> label, in priority order.
    pub providers: Vec<(String, String)>,
    names: HashMap<String, String>,
}

impl Labels {
    fn new(keys: Vec<(String, String)>, providers: Vec<(String, String)>) -> Self {
        let names = keys.iter().chain(&providers).cloned().collect();
        Self { keys, providers, names }
    }

    /// A group's display name: a key's or provider's current name, else the stored value.
    fn group(&self, dim: &str) -> String {
        self.names.get(dim).cloned().unwrap_or_else(|| if dim.is_empty() { "(none)".into() } else { dim.to_owned() })
    }

    /// A key's current name in the request log.
    fn key(&self, id: &str) -> String {
        self.keys.iter().find(|(k, _)| k == id).map_or_else(|| "(deleted key)".into(), |(_, name)| name.clone())
    }
}

#[derive(SurrealValue)]
struct Hists {
    latency_hist: Vec<i64>,
    ttft_hist: Vec<i64>,
}

/// The percentile `q` (0..1) of a bucketed histogram, interpolated within its bucket.
pub fn percentile(hist: &[i64], q: f64) -> Option<i64> {
    let total: i64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0);
    let mut seen = 0.0;
    for (i, count) in hist.iter().enumerate() {
        let count = *count as f64;
        if count > 0.0 && seen + count >= rank {
            // Linear within the bucket; the open-ended last bucket reports its lower bound.
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS_MS[i - 1] as f64 };
            let Some(upper) = LATENCY_BUCKETS_MS.get(i).map(|u| *u as f64) else {
                return Some(lower as i64);
            };
            return Some((lower + (upper - lower) * (rank - seen) / count).round() as i64);
        }
        seen += count;
    }
    None
}

fn day_range(period: &Period) -> (i64, i64) {
    (period.from_day, period.to_day)
}

impl Reports {
    /// Totals and percentiles for the period.
    pub async fn summary(&self, ws: &WorkspaceId, period: &Period) -> Result<UsageSummary, ServiceError> {
        let (from, to) = day_range(period);
        let mut response = self
            .db
            .query(format!(
                "SELECT {SUMS} FROM usage_daily WHERE workspace = $ws AND day >= $from AND day <= $to GROUP ALL;
             SELECT latency_hist, ttft_hist FROM usage_daily WHERE workspace = $ws AND day >= $from AND day <= $to;"
            ))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("from", from))
            .bind(("to", to))
            .await?;
        let totals: Sums = response.take::<Option<Sums>>(0)?.unwrap_or_default();
        let hists: Vec<Hists> = response.take(1)?;
        let mut latency = vec![0i64; HIST_LEN];
        let mut ttft = vec![0i64; HIST_LEN];
        for h in &hists {
            for (acc, v) in latency.iter_mut().zip(&h.latency_hist) {
                *acc += v;
            }
            for (acc, v) in ttft.iter_mut().zip(&h.ttft_hist) {
                *acc += v;
            }
        }
        Ok(UsageSummary {
            from_day: from,
            to_day: to,
            cost_nanos: totals.cost(),
            requests: totals.requests.unwrap_or(0),
            errors: totals.errors.unwrap_or(0),
            tokens: totals.tokens(),
            unpriced_requests: totals.unpriced.unwrap_or(0),
            latency_p50_ms: percentile(&latency, 0.50),
            latency_p95_ms: percentile(&latency, 0.95),
            ttft_p50_ms: percentile(&ttft, 0.50),
        })
    }
}

/// The rollup column a dimension groups by. Fixed strings only: never input.
fn dimension(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Day => "day",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider_id",
        GroupBy::Key => "key_id",
    }
}

impl Reports {
    /// Totals per day, model, provider or key. `labels` turns provider and key ids into names.
    pub async fn grouped(
        &self,
        ws: &WorkspaceId,
        period: &Period,
        by: GroupBy,
        labels: &Labels,
    ) -> Result<Vec<UsageGroup>, ServiceError> {
        let (from, to) = day_range(period);
        // Days group as text too, so one row type serves every dimension.
        let column = match by {
            GroupBy::Day => "<string> day",
            other => dimension(other),
        };
        let mut response = self.db
        .query(format!(
            "SELECT {column} AS dim, {SUMS} FROM usage_daily WHERE workspace = $ws AND day >= $from AND day <= $to GROUP BY dim"
        ))
        .bind(("ws", ws.as_str().to_owned()))
        .bind(("from", from))
        .bind(("to", to))
        .await?;
        let rows: Vec<Sums> = response.take(0)?;
        let mut groups: Vec<UsageGroup> = rows
            .into_iter()
            .map(|mut row| {
                let dim = row.dim.take().unwrap_or_default();
                let name = match by {
                    GroupBy::Day => dim.parse().map(perpetuo_types::format_day).unwrap_or_else(|_| dim.clone()),
                    GroupBy::Model | GroupBy::Provider | GroupBy::Key => labels.group(&dim),
                };
                row.group(dim, name)
            })
            .collect();
        match by {
            GroupBy::Day => groups.sort_by_key(|g| g.key.parse::<i64>().unwrap_or(0)),
            GroupBy::Model | GroupBy::Provider | GroupBy::Key => {
                groups.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.label.cmp(&b.label)));
            }
        }
        Ok(groups)
    }
}

#[derive(SurrealValue)]
struct SeriesRow {
    day: i64,
    dim: String,
    requests: Option<i64>,
    cost_nanos: Option<i64>,
}

impl Reports {
    /// Requests and cost per day, broken down by a dimension (for the stacked charts).
    pub async fn series(
        &self,
        ws: &WorkspaceId,
        period: &Period,
        by: GroupBy,
        labels: &Labels,
    ) -> Result<Vec<SeriesPoint>, ServiceError> {
        let (from, to) = day_range(period);
        let column = match by {
            GroupBy::Day => "model",
            other => dimension(other),
        };
        let mut response = self
            .db
            .query(format!(
                "SELECT day, {column} AS dim, math::sum(requests) AS requests, math::sum(cost_nanos) AS cost_nanos
             FROM usage_daily WHERE workspace = $ws AND day >= $from AND day <= $to GROUP BY day, dim ORDER BY day ASC"
            ))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("from", from))
            .bind(("to", to))
            .await?;
        let rows: Vec<SeriesRow> = response.take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| SeriesPoint {
                day: r.day,
                label: labels.group(&r.dim),
                requests: r.requests.unwrap_or(0),
                cost_nanos: r.cost_nanos.unwrap_or(0),
            })
            .collect())
    }
}

impl Reports {
    /// Deletes request records older than the retention, workspace by workspace (each a range of
    /// the workspace's own index), a bounded number of batches at a time. Rollups are kept.
    pub async fn prune(&self, older_than_ms: i64) -> Result<usize, ServiceError> {
        #[derive(SurrealValue)]
        struct Batch {
            id: String,
            count: i64,
        }
        let mut response = self.db.query("SELECT VALUE record::id(id) FROM workspace").await?;
        let workspaces: Vec<String> = response.take(0)?;
        let mut removed = 0;
        for ws in workspaces {
            loop {
                let mut response = self
                    .db
                    .query("SELECT record::id(id) AS id, count FROM usage_batch WHERE workspace = $ws AND ts_max < $cutoff LIMIT 500")
                    .bind(("ws", ws.clone()))
                    .bind(("cutoff", older_than_ms))
                    .await?;
                let batches: Vec<Batch> = response.take(0)?;
                if batches.is_empty() {
                    break;
                }
                let ids = |table: &str| -> Vec<RecordId> {
                    batches.iter().map(|b| RecordId::new(table, b.id.as_str())).collect()
                };
                removed += batches.iter().map(|b| usize::try_from(b.count).unwrap_or(0)).sum::<usize>();
                self.db
                    .query("BEGIN; DELETE $batches RETURN NONE; DELETE $rows RETURN NONE; COMMIT;")
                    .bind(("batches", ids("usage_batch")))
                    .bind(("rows", ids("usage_rows")))
                    .await?
                    .check()?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_buckets() {
        let mut hist = vec![0; HIST_LEN];
        hist[4] = 50; // 50..=100 ms
        hist[7] = 45; // 500..=1000 ms
        hist[10] = 5; // 5..=10 s
        assert_eq!(percentile(&hist, 0.5), Some(100), "the 50th of 100 is the last of the first bucket");
        assert_eq!(percentile(&hist, 0.25), Some(75), "halfway through 50..100");
        assert_eq!(percentile(&hist, 0.95), Some(1000));
        assert_eq!(percentile(&hist, 0.99), Some(9000));
        let mut open = vec![0; HIST_LEN];
        open[HIST_LEN - 1] = 3;
        assert_eq!(percentile(&open, 0.5), Some(120_000), "beyond the last bound: that bound");
        assert_eq!(percentile(&[0; HIST_LEN], 0.5), None);
    }

    /// A page read from a snapshot does not see a record committed while it is read, in any of
    /// its figures; the live reports do, in all of them.
    #[tokio::test]
    async fn a_snapshot_sees_one_state_of_the_ledger() {
        let db = Db::memory().await.unwrap();
        let ws = WorkspaceId::trusted("ws1".into());
        let first = super::super::record::tests::record("ws1", "m", true);
        let day = first.ts.div_euclid(DAY_MS) * DAY_MS;
        let filter = RequestFilter {
            period: Period { from_day: day, to_day: day },
            key: None,
            provider: None,
            model: None,
            route: None,
            status: StatusFilter::Any,
        };
        ledger::insert(&db, std::slice::from_ref(&first), true).await.unwrap();
        let live = Reports::new(db.clone());
        let snapshot = live.snapshot().await;
        assert!(matches!(snapshot.db, Reader::Snapshot(_)), "the embedded engine opens a read transaction");
        let labels = snapshot.labels(&ws).await.unwrap();
        let mut second = first.clone();
        second.request_id = "req2".into();
        second.ts += 1;
        ledger::insert(&db, &[second], true).await.unwrap();
        for (reports, n) in [(&snapshot, 1), (&live, 2)] {
            assert_eq!(reports.summary(&ws, &filter.period).await.unwrap().requests, n);
            let page = reports.requests(&ws, &filter, &labels, 50, None).await.unwrap();
            assert_eq!((page.total, page.data.len()), (n, usize::try_from(n).unwrap()));
        }
        drop(snapshot);
        assert_eq!(live.summary(&ws, &filter.period).await.unwrap().requests, 2, "the live database is untouched");
    }

    #[test]
    fn cursors_parse_strictly() {
        assert_eq!(parse_cursor("1700_req_abc"), Some((1700, "req_abc".into())));
        assert_eq!(parse_cursor("x_req"), None);
        assert_eq!(parse_cursor("1_a b"), None);
    }
}
