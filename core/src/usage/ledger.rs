//! The usage ledger in the database: records stored in bulk, one batch per workspace per commit.
//!
//! - `usage_batch`: what the request log filters on (time span, keys, providers, models,
//!   statuses, errors) and the batch's billing totals, all typed; indexed by workspace and newest
//!   record.
//! - `usage_rows`: under the same key, the batch's records as JSON lines, exactly as the spool
//!   held them (no second encoding); the typed totals beside them are their checksum.
//! - `usage_checkpoint`: per instance, the spool position the last commit reached, written in
//!   the same transaction as the batches and the rollups, so a replay after a crash neither
//!   loses nor repeats a record.

use std::collections::{BTreeMap, BTreeSet};

use surrealdb::types::{RecordId, SurrealValue};

use super::TokenColumns as _;
use super::record::UsageRecord;
use super::rollups::{UPSERTS, rollups, status_rollups};
use super::spool::{Line, Position};
use crate::platform::db::{Db, Reader, now_ms, root_cause};

/// The longest time one batch spans: the request log reads batches newest first and starts this
/// far past the newest record it wants.
pub const MAX_SPAN_MS: i64 = 10 * 60 * 1000;
/// The most records in one batch.
pub const MAX_PER_BATCH: usize = 2000;

/// A batch's summary row.
#[derive(Debug, Clone, SurrealValue)]
struct Batch {
    id: String,
    workspace: String,
    ts_min: i64,
    ts_max: i64,
    count: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    cost_nanos: i64,
    unpriced: i64,
    keys: Vec<String>,
    providers: Vec<String>,
    models: Vec<String>,
    statuses: Vec<i64>,
    routes: Vec<String>,
}

impl super::TokenColumns for Batch {
    fn columns(&mut self) -> [&mut i64; 5] {
        [
            &mut self.prompt_tokens,
            &mut self.completion_tokens,
            &mut self.cache_read_tokens,
            &mut self.cache_write_tokens,
            &mut self.reasoning_tokens,
        ]
    }
}

#[derive(Debug, Clone, SurrealValue)]
struct Rows {
    id: String,
    lines: String,
}

/// Splits records into batches: by workspace, then in time order, each at most
/// [`MAX_SPAN_MS`] wide and [`MAX_PER_BATCH`] long.
fn batches(lines: &[Line]) -> Vec<Vec<&Line>> {
    let mut by_workspace: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for line in lines {
        by_workspace.entry(line.record.workspace.as_str()).or_default().push(line);
    }
    let mut out = Vec::new();
    for (_, mut group) in by_workspace {
        group.sort_by_key(|l| l.record.ts);
        let mut current: Vec<&Line> = Vec::new();
        for line in group {
            let first = current.first().map(|l| l.record.ts);
            if current.len() >= MAX_PER_BATCH || first.is_some_and(|t| line.record.ts - t >= MAX_SPAN_MS) {
                out.push(std::mem::take(&mut current));
            }
            current.push(line);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

fn summary(id: String, lines: &[&Line]) -> Batch {
    let mut b = Batch {
        id,
        workspace: lines.first().map(|l| l.record.workspace.clone()).unwrap_or_default(),
        ts_min: i64::MAX,
        ts_max: i64::MIN,
        count: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_nanos: 0,
        unpriced: 0,
        keys: Vec::new(),
        providers: Vec::new(),
        models: Vec::new(),
        statuses: Vec::new(),
        routes: Vec::new(),
    };
    let (mut keys, mut providers, mut models, mut statuses, mut routes) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in lines {
        let r = &line.record;
        b.ts_min = b.ts_min.min(r.ts);
        b.ts_max = b.ts_max.max(r.ts);
        b.count += 1;
        b.errors += i64::from(!r.ok);
        b.add_tokens(&r.tokens);
        match r.cost_nanos {
            Some(cost) => b.cost_nanos += cost,
            None => b.unpriced += 1,
        }
        keys.insert(r.key_id.as_str());
        providers.insert(r.provider_id.as_deref().unwrap_or_default());
        models.insert(r.model.as_str());
        statuses.insert(r.status);
        routes.insert(perpetuo_types::route_name(&r.endpoint));
    }
    b.keys = keys.into_iter().map(str::to_owned).collect();
    b.providers = providers.into_iter().map(str::to_owned).collect();
    b.models = models.into_iter().map(str::to_owned).collect();
    b.statuses = statuses.into_iter().collect();
    b.routes = routes.into_iter().map(str::to_owned).collect();
    b
}

/// Where the writer of `instance` got to; the start of the spool for a new instance.
pub async fn checkpoint(db: &Db, instance: &str) -> Result<Position, surrealdb::Error> {
    #[derive(SurrealValue)]
    struct Row {
        segment: i64,
        offset: i64,
    }
    let mut response = db
        .query("SELECT segment, offset FROM type::record('usage_checkpoint', $instance)")
        .bind(("instance", instance.to_owned()))
        .await?;
    Ok(response.take::<Option<Row>>(0)?.map_or(Position::default(), |r| Position {
        segment: u64::try_from(r.segment).unwrap_or(0),
        offset: u64::try_from(r.offset).unwrap_or(0),
    }))
}

/// Stores `lines` (read from `from` up to `to` in the spool of `instance`): the batches, their
/// rows, the rollups and the checkpoint, in one transaction.
pub async fn commit(
    db: &Db,
    instance: &str,
    lines: &[Line],
    from: Position,
    to: Position,
) -> Result<(), surrealdb::Error> {
    let groups = batches(lines);
    let mut metas = Vec::with_capacity(groups.len());
    let mut rows = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        // The same spool position always gives the same key: a batch cannot be stored twice.
        let id = format!("{instance}_{}_{}_{i}", from.segment, from.offset);
        let mut text = String::with_capacity(group.iter().map(|l| l.text.len() + 1).sum());
        for line in group {
            text.push_str(&line.text);
            text.push('\n');
        }
        rows.push(Rows { id: id.clone(), lines: text });
        metas.push(summary(id, group));
    }
    let records = || lines.iter().map(|l| &l.record);
    let mut response = db
        .query(format!(
            "BEGIN TRANSACTION;
             {UPSERTS}
             INSERT INTO usage_batch $metas RETURN NONE;
             INSERT INTO usage_rows $rows RETURN NONE;
             UPSERT type::record('usage_checkpoint', $instance) CONTENT {{ segment: $segment, offset: $offset, updated_at: $now }} RETURN NONE;
             COMMIT TRANSACTION;"
        ))
        .bind(("rollups", rollups(records())))
        .bind(("statuses", status_rollups(records())))
        .bind(("metas", metas))
        .bind(("rows", rows))
        .bind(("instance", instance.to_owned()))
        .bind(("segment", i64::try_from(to.segment).unwrap_or(i64::MAX)))
        .bind(("offset", i64::try_from(to.offset).unwrap_or(i64::MAX)))
        .bind(("now", now_ms()))
        .await?;
    match root_cause(response.take_errors()) {
        None => Ok(()),
        // The same batch is already there: a commit whose answer was lost with the connection
        // (the checkpoint says so). Anything else is a failure to retry.
        Some(e) if crate::platform::db::is_conflict(&e) && checkpoint(db, instance).await? >= to => Ok(()),
        Some(e) => Err(e),
    }
}

/// Writes records straight into the ledger (not through a spool): for tools and tests that load
/// known data, and for records kept in the old one-document-per-record table.
pub async fn insert(db: &Db, records: &[UsageRecord], with_rollups: bool) -> Result<(), surrealdb::Error> {
    let lines: Vec<Line> = records
        .iter()
        .map(|r| Line { text: serde_json::to_string(r).unwrap_or_default(), record: r.clone() })
        .collect();
    let groups = batches(&lines);
    let stamp = crate::platform::db::new_id();
    let mut metas = Vec::new();
    let mut rows = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let id = format!("direct_{stamp}_{i}");
        rows.push(Rows { id: id.clone(), lines: group.iter().map(|l| format!("{}\n", l.text)).collect() });
        metas.push(summary(id, group));
    }
    let upserts = if with_rollups { UPSERTS } else { "" };
    let mut response = db
        .query(format!(
            "BEGIN TRANSACTION; {upserts}
             INSERT INTO usage_batch $metas RETURN NONE;
             INSERT INTO usage_rows $rows RETURN NONE;
             COMMIT TRANSACTION;"
        ))
        .bind(("rollups", rollups(records.iter())))
        .bind(("statuses", status_rollups(records.iter())))
        .bind(("metas", metas))
        .bind(("rows", rows))
        .await?;
    match root_cause(response.take_errors()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Moves records from the old `usage` table (one document each) into batches; their rollups
/// already count them. Returns how many moved.
pub async fn adopt_legacy(db: &Db) -> Result<usize, surrealdb::Error> {
    let mut moved = 0;
    loop {
        let mut response = db.query("SELECT VALUE id FROM usage LIMIT 2000").await?;
        let ids: Vec<RecordId> = response.take(0)?;
        if ids.is_empty() {
            return Ok(moved);
        }
        let mut response = db.query("SELECT * OMIT id FROM $ids").bind(("ids", ids.clone())).await?;
        let values: Vec<serde_json::Value> = response.take(0)?;
        let records: Vec<UsageRecord> = values.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
        insert(db, &records, false).await?;
        db.query("DELETE $ids RETURN NONE").bind(("ids", ids.clone())).await?.check()?;
        moved += ids.len();
    }
}

/// The records of the batches under these keys, in the order given.
pub async fn rows(db: &Reader, ids: &[String]) -> Result<Vec<UsageRecord>, surrealdb::Error> {
    let ids: Vec<RecordId> = ids.iter().map(|id| RecordId::new("usage_rows", id.as_str())).collect();
    let mut response = db.query("SELECT VALUE lines FROM $ids").bind(("ids", ids)).await?;
    let texts: Vec<String> = response.take(0)?;
    let mut records = Vec::new();
    for text in texts {
        for line in text.lines().filter(|l| !l.is_empty()) {
            match serde_json::from_str::<UsageRecord>(line) {
                Ok(record) => records.push(record),
                Err(e) => tracing::error!(error = %e, "an unreadable usage record in the ledger was skipped"),
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::record;
    use super::*;

    fn line(ws: &str, ts: i64) -> Line {
        let mut r = record(ws, "m", true);
        r.ts = ts;
        Line { text: serde_json::to_string(&r).unwrap_or_default(), record: r }
    }

    #[test]
    fn batches_split_by_workspace_span_and_size() {
        let mut lines = vec![line("b", 5), line("a", 10), line("a", 0), line("a", MAX_SPAN_MS + 1)];
        lines.extend((0..MAX_PER_BATCH + 1).map(|i| line("c", i as i64)));
        let groups = batches(&lines);
        let shapes: Vec<(String, usize)> = groups.iter().map(|g| (g[0].record.workspace.clone(), g.len())).collect();
        assert_eq!(
            shapes,
            vec![("a".into(), 2), ("a".into(), 1), ("b".into(), 1), ("c".into(), MAX_PER_BATCH), ("c".into(), 1)]
        );
        assert_eq!(groups[0][0].record.ts, 0, "time order within a batch");
    }

    #[test]
    fn summaries_carry_the_filters_and_the_totals() {
        let mut failed = line("w", 7);
        failed.record.ok = false;
        failed.record.status = 502;
        failed.record.cost_nanos = None;
        let lines = [line("w", 3), failed];
        let b = summary("x".into(), &lines.iter().collect::<Vec<_>>());
        assert_eq!((b.ts_min, b.ts_max, b.count, b.errors, b.unpriced), (3, 7, 2, 1, 1));
        assert_eq!((b.prompt_tokens, b.cache_read_tokens, b.reasoning_tokens, b.cost_nanos), (20, 4, 2, 100));
        assert_eq!(b.statuses, vec![200, 502]);
        assert_eq!(b.models, vec!["m".to_owned()]);
    }
}
