//! What the usage tab and the usage API read: totals, percentiles and breakdowns from the per-day
//! rollups (fast however many requests a workspace makes), and the request log from the raw
//! records (one index range per page). Every query is scoped by the workspace.

use std::collections::HashMap;

use surrealdb::types::SurrealValue;

use surrealdb::types::RecordId;

use super::ledger;
use super::record::UsageRecord;
use super::rollups::{HIST_LEN, LATENCY_BUCKETS_MS};
use crate::platform::db::Db;
use crate::platform::error::ServiceError;
use crate::workspaces::WorkspaceId;
use perpetuo_types::{
    DAY_MS, GroupBy, Period, RequestFilter, RequestPage, SeriesPoint, StatusFilter, UsageGroup, UsageSummary,
};

pub const MAX_PAGE: usize = 500;

/// The reports service: what the usage tab, the usage API and the CSV export read.
#[derive(Debug, Clone)]
pub struct Reports {
    db: Db,
}

impl Reports {
    pub fn new(db: Db) -> Self {
        Self { db }
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

    fn group(self, key: String, label: String) -> UsageGroup {
        UsageGroup {
            cost_nanos: self.cost(),
            key,
            label,
            requests: self.requests.unwrap_or(0),
            errors: self.errors.unwrap_or(0),
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
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
            prompt_tokens: totals.prompt_tokens.unwrap_or(0),
            completion_tokens: totals.completion_tokens.unwrap_or(0),
            cache_read_tokens: totals.cache_read_tokens.unwrap_or(0),
            cache_write_tokens: totals.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: totals.reasoning_tokens.unwrap_or(0),
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

/// The status code a filter names, or 0.
fn status_code(filter: &RequestFilter) -> i64 {
    match filter.status {
        StatusFilter::Code(code) => i64::from(code),
        StatusFilter::Any | StatusFilter::Ok | StatusFilter::Error => 0,
    }
}

type Query<'a> = surrealdb::method::Query<'a, surrealdb::engine::any::Any>;

/// Binds the values [`conditions`] and [`batch_conditions`] refer to.
fn bind_filter<'a>(query: Query<'a>, filter: &RequestFilter) -> Query<'a> {
    query
        .bind(("key", filter.key.clone().unwrap_or_default()))
        .bind(("provider", filter.provider.clone().unwrap_or_default()))
        .bind(("model", filter.model.clone().unwrap_or_default()))
        .bind(("route", filter.route.clone().unwrap_or_default()))
        .bind(("status", status_code(filter)))
}

/// The filter conditions on the rollups, as fixed fragments with bound values.
fn conditions(filter: &RequestFilter) -> String {
    let mut sql = String::new();
    if filter.key.is_some() {
        sql.push_str(" AND key_id = $key");
    }
    if filter.provider.is_some() {
        sql.push_str(" AND provider_id = $provider");
    }
    if filter.model.is_some() {
        sql.push_str(" AND model = $model");
    }
    if filter.route.is_some() {
        // Rollups from before routes were kept have none: they match no route.
        sql.push_str(" AND route = $route");
    }
    sql
}

/// The filter conditions on batch summaries: a batch that cannot hold a match is not read.
fn batch_conditions(filter: &RequestFilter) -> String {
    let mut sql = String::new();
    if filter.key.is_some() {
        sql.push_str(" AND $key IN keys");
    }
    if filter.provider.is_some() {
        sql.push_str(" AND $provider IN providers");
    }
    if filter.model.is_some() {
        sql.push_str(" AND $model IN models");
    }
    if filter.route.is_some() {
        // Batches from before routes were summarised do not say: their records are checked.
        sql.push_str(" AND (routes = NONE OR $route IN routes)");
    }
    match filter.status {
        StatusFilter::Any => {}
        StatusFilter::Ok => sql.push_str(" AND errors < count"),
        StatusFilter::Error => sql.push_str(" AND errors > 0"),
        StatusFilter::Code(_) => sql.push_str(" AND $status IN statuses"),
    }
    sql
}

/// Whether a record matches the filter's key, provider, model and status.
fn matches(filter: &RequestFilter, r: &UsageRecord) -> bool {
    filter.key.as_ref().is_none_or(|k| *k == r.key_id)
        && filter.provider.as_ref().is_none_or(|p| Some(p) == r.provider_id.as_ref())
        && filter.model.as_ref().is_none_or(|m| *m == r.model)
        && filter.route.as_ref().is_none_or(|route| route == perpetuo_types::route_name(&r.endpoint))
        && match filter.status {
            StatusFilter::Any => true,
            StatusFilter::Ok => r.ok,
            StatusFilter::Error => !r.ok,
            StatusFilter::Code(code) => r.status == i64::from(code),
        }
}

/// Batch summaries read per query, and batches' records fetched per round trip.
const METAS_PER_QUERY: usize = 64;
const ROWS_PER_FETCH: usize = 4;

impl Reports {
    /// One page of the request log, newest first, with the number of records matching the filters.
    ///
    /// Batches are read newest first (by their newest record) from where the newest wanted record
    /// can be, skipping those whose summary cannot match; the page is complete once more than a
    /// page of matches is newer than anything the unread batches can hold.
    pub async fn requests(
        &self,
        ws: &WorkspaceId,
        filter: &RequestFilter,
        labels: &Labels,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RequestPage, ServiceError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (from, to) = day_range(&filter.period);
        let (from_ts, to_ts) = (from, to + DAY_MS);
        let cursor = cursor.and_then(parse_cursor);
        let upper = cursor.as_ref().map_or(to_ts, |(ts, _)| to_ts.min(ts.saturating_add(1)));
        let wanted = |r: &UsageRecord| {
            r.ts >= from_ts
                && r.ts < upper
                && cursor.as_ref().is_none_or(|(ts, id)| r.ts < *ts || (r.ts == *ts && r.request_id < *id))
                && matches(filter, r)
        };
        let newest_first =
            |a: &UsageRecord, b: &UsageRecord| b.ts.cmp(&a.ts).then_with(|| b.request_id.cmp(&a.request_id));
        let sql = format!(
            // The upper bound comes first: SurrealDB makes the first range condition the index
            // range, read backward from it.
            "SELECT record::id(id) AS id, ts_max FROM usage_batch WHERE workspace = $ws AND ts_max <= $hi \
             AND ts_max >= $from AND ts_min < $upper{} ORDER BY ts_max DESC LIMIT $n",
            batch_conditions(filter)
        );
        #[derive(SurrealValue)]
        struct Meta {
            id: String,
            ts_max: i64,
        }
        let mut hi = upper.saturating_add(ledger::MAX_SPAN_MS);
        let mut per_query = METAS_PER_QUERY;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut found: Vec<UsageRecord> = Vec::new();
        // Whether more than a page of matches is newer than any record batches up to `bound` hold.
        let complete = |found: &Vec<UsageRecord>, bound: i64| found.len() > limit && found[limit].ts > bound;
        'scan: loop {
            let query = self
                .db
                .query(sql.as_str())
                .bind(("ws", ws.as_str().to_owned()))
                .bind(("hi", hi))
                .bind(("from", from_ts))
                .bind(("upper", upper))
                .bind(("n", i64::try_from(per_query).unwrap_or(i64::MAX)));
            let metas: Vec<Meta> = bind_filter(query, filter).await?.take(0)?;
            let fresh: Vec<&Meta> = metas.iter().filter(|m| !seen.contains(&m.id)).collect();
            if fresh.is_empty() {
                if metas.len() < per_query {
                    break;
                }
                // A page of summaries all ending at the same millisecond: ask for more at once.
                per_query *= 2;
                continue;
            }
            for chunk in fresh.chunks(ROWS_PER_FETCH) {
                if complete(&found, chunk[0].ts_max) {
                    break 'scan;
                }
                let ids: Vec<String> = chunk.iter().map(|m| m.id.clone()).collect();
                found.extend(ledger::rows(&self.db, &ids).await?.into_iter().filter(|r| wanted(r)));
                found.sort_by(newest_first);
                // Anything past the first page and one can never reach the page.
                found.truncate(limit + 1);
                seen.extend(ids);
            }
            hi = metas.last().map_or(hi, |m| m.ts_max);
            if metas.len() < per_query && fresh.len() == metas.len() && complete(&found, i64::MIN) {
                break;
            }
            if metas.len() < per_query {
                break;
            }
        }
        let next_cursor = (found.len() > limit).then(|| {
            found.truncate(limit);
            found.last().map(|r| format!("{}_{}", r.ts, r.request_id))
        });
        let total = self.count(ws, filter).await?;
        let data = found
            .into_iter()
            .map(|r| {
                let mut row = r.row();
                row.key_name = labels.key(&row.key_id);
                row
            })
            .collect();
        Ok(RequestPage { data, total, next_cursor: next_cursor.flatten() })
    }
}

fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (ts, id) = raw.split_once('_')?;
    let ts = ts.parse().ok()?;
    // Bound as a parameter, so only its size needs a limit.
    (id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())).then(|| (ts, id.to_owned()))
}

impl Reports {
    /// How many records match, from the rollups (never a scan of raw records): the daily totals, or
    /// the per-status counts when the filter names a status code.
    async fn count(&self, ws: &WorkspaceId, filter: &RequestFilter) -> Result<i64, ServiceError> {
        let (from, to) = day_range(&filter.period);
        #[derive(SurrealValue)]
        struct Count {
            n: Option<i64>,
            e: Option<i64>,
        }
        let conds = conditions(filter);
        let sql = match filter.status {
            StatusFilter::Code(_) => format!(
                "SELECT math::sum(requests) AS n FROM usage_status_daily WHERE workspace = $ws AND day >= $from AND day <= $to{conds} AND status = $status GROUP ALL"
            ),
            StatusFilter::Any | StatusFilter::Ok | StatusFilter::Error => format!(
                "SELECT math::sum(requests) AS n, math::sum(errors) AS e FROM usage_daily WHERE workspace = $ws AND day >= $from AND day <= $to{conds} GROUP ALL"
            ),
        };
        let query = self.db.query(sql).bind(("ws", ws.as_str().to_owned())).bind(("from", from)).bind(("to", to));
        let mut response = bind_filter(query, filter).await?;
        let row: Option<Count> = response.take(0)?;
        let (n, e) = row.map_or((0, 0), |c| (c.n.unwrap_or(0), c.e.unwrap_or(0)));
        Ok(match filter.status {
            StatusFilter::Any | StatusFilter::Code(_) => n,
            StatusFilter::Ok => n - e,
            StatusFilter::Error => e,
        })
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

    #[test]
    fn cursors_parse_strictly() {
        assert_eq!(parse_cursor("1700_req_abc"), Some((1700, "req_abc".into())));
        assert_eq!(parse_cursor("x_req"), None);
        assert_eq!(parse_cursor("1_a b"), None);
    }
}
