//! The request log: records read batch by batch, newest first, through the filters (a batch whose
//! summary cannot match is skipped unread), paged by cursor, and counted.

use super::*;

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
    /// One call's record, found from its id (whose arrival time says which batches can hold it).
    pub async fn request(
        &self,
        ws: &WorkspaceId,
        id: &str,
        labels: &Labels,
    ) -> Result<perpetuo_types::RequestRow, ServiceError> {
        let not_found = ServiceError::NotFound("request");
        let Some(ts) = super::super::record::request_ts(id) else { return Err(not_found) };
        #[derive(SurrealValue)]
        struct Meta {
            id: String,
        }
        let metas: Vec<Meta> = self
            .db
            .query(
                "SELECT record::id(id) AS id FROM usage_batch WHERE workspace = $ws AND ts_max <= $hi \
                 AND ts_max >= $ts AND ts_min <= $ts",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("hi", ts.saturating_add(ledger::MAX_SPAN_MS)))
            .bind(("ts", ts))
            .await?
            .take(0)?;
        for chunk in metas.chunks(ROWS_PER_FETCH) {
            let ids: Vec<String> = chunk.iter().map(|m| m.id.clone()).collect();
            if let Some(record) = ledger::rows(&self.db, &ids).await?.into_iter().find(|r| r.request_id == id) {
                let mut row = record.row();
                row.key_name = labels.key(&row.key_id);
                return Ok(row);
            }
        }
        Err(not_found)
    }

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

pub(super) fn parse_cursor(raw: &str) -> Option<(i64, String)> {
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
