//! The per-day rollups the usage tab reads instead of raw records: totals per workspace, day,
//! provider, model, key and route (with latency histograms), and request counts per status. The writer
//! folds each batch into them once per key, in the batch's own transaction.

use std::collections::HashMap;

use surrealdb::types::SurrealValue;

use super::TokenColumns as _;
use super::record::UsageRecord;
use perpetuo_types::DAY_MS;

/// A day's rollup row, keyed by workspace, day, provider, model and key.
#[derive(Debug, Clone, SurrealValue)]
pub struct Rollup {
    id: String,
    workspace: String,
    day: i64,
    key_id: String,
    provider_id: String,
    provider_label: String,
    model: String,
    route: String,
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    cost_nanos: i64,
    unpriced: i64,
    latency_ms_sum: i64,
    latency_hist: Vec<i64>,
    ttft_hist: Vec<i64>,
    zeros: Vec<i64>,
}

impl super::TokenColumns for Rollup {
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

/// Upper bounds (inclusive) of the latency histogram buckets kept in the rollups, in ms; the
/// last bucket takes everything above.
pub const LATENCY_BUCKETS_MS: [i64; 14] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 60_000, 120_000];
pub const HIST_LEN: usize = LATENCY_BUCKETS_MS.len() + 1;

pub fn bucket(ms: i64) -> usize {
    LATENCY_BUCKETS_MS.iter().position(|bound| ms <= *bound).unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Requests per status in a day's slice.
#[derive(Debug, Clone, SurrealValue)]
pub struct StatusRollup {
    id: String,
    workspace: String,
    day: i64,
    key_id: String,
    provider_id: String,
    model: String,
    route: String,
    status: i64,
    requests: i64,
}

pub fn status_rollups<'a>(batch: impl IntoIterator<Item = &'a UsageRecord>) -> Vec<StatusRollup> {
    let mut by_key: HashMap<String, StatusRollup> = HashMap::new();
    for r in batch {
        let day = r.ts.div_euclid(DAY_MS) * DAY_MS;
        let provider_id = r.provider_id.clone().unwrap_or_default();
        let route = perpetuo_types::route_name(&r.endpoint);
        let id = format!("{}|{day}|{provider_id}|{}|{}|{}|{route}", r.workspace, r.model, r.key_id, r.status);
        by_key
            .entry(id.clone())
            .or_insert_with(|| StatusRollup {
                id,
                workspace: r.workspace.clone(),
                day,
                key_id: r.key_id.clone(),
                provider_id,
                model: r.model.clone(),
                route: route.to_owned(),
                status: r.status,
                requests: 0,
            })
            .requests += 1;
    }
    by_key.into_values().collect()
}

pub fn rollups<'a>(batch: impl IntoIterator<Item = &'a UsageRecord>) -> Vec<Rollup> {
    let mut by_key: HashMap<String, Rollup> = HashMap::new();
    for r in batch {
        let day = r.ts.div_euclid(DAY_MS) * DAY_MS;
        let provider_id = r.provider_id.clone().unwrap_or_default();
        let route = perpetuo_types::route_name(&r.endpoint);
        let id = format!("{}|{day}|{provider_id}|{}|{}|{route}", r.workspace, r.model, r.key_id);
        let entry = by_key.entry(id.clone()).or_insert_with(|| Rollup {
            id,
            workspace: r.workspace.clone(),
            day,
            key_id: r.key_id.clone(),
            provider_id,
            provider_label: r.provider_label.clone().unwrap_or_default(),
            model: r.model.clone(),
            route: route.to_owned(),
            requests: 0,
            errors: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_nanos: 0,
            unpriced: 0,
            latency_ms_sum: 0,
            latency_hist: vec![0; HIST_LEN],
            ttft_hist: vec![0; HIST_LEN],
            zeros: vec![0; HIST_LEN],
        });
        entry.requests += 1;
        entry.errors += i64::from(!r.ok);
        entry.add_tokens(&r.tokens);
        match r.cost_nanos {
            Some(cost) => entry.cost_nanos += cost,
            None => entry.unpriced += 1,
        }
        entry.latency_ms_sum += r.latency_ms;
        entry.latency_hist[bucket(r.latency_ms)] += 1;
        if let Some(ttft) = r.ttft_ms {
            entry.ttft_hist[bucket(ttft)] += 1;
        }
    }
    by_key.into_values().collect()
}

/// The statements that fold `$rollups` and `$statuses` into the tables (bound by the caller).
pub const UPSERTS: &str = "
    FOR $r IN $rollups {
        UPSERT type::record('usage_daily', $r.id) SET
            workspace = $r.workspace, day = $r.day, key_id = $r.key_id, provider_id = $r.provider_id,
            provider_label = $r.provider_label, model = $r.model, route = $r.route,
            requests = (requests ?? 0) + $r.requests,
            errors = (errors ?? 0) + $r.errors,
            prompt_tokens = (prompt_tokens ?? 0) + $r.prompt_tokens,
            completion_tokens = (completion_tokens ?? 0) + $r.completion_tokens,
            cache_read_tokens = (cache_read_tokens ?? 0) + $r.cache_read_tokens,
            cache_write_tokens = (cache_write_tokens ?? 0) + $r.cache_write_tokens,
            reasoning_tokens = (reasoning_tokens ?? 0) + $r.reasoning_tokens,
            cost_nanos = (cost_nanos ?? 0) + $r.cost_nanos,
            unpriced = (unpriced ?? 0) + $r.unpriced,
            latency_ms_sum = (latency_ms_sum ?? 0) + $r.latency_ms_sum,
            latency_hist = vector::add(latency_hist ?? $r.zeros, $r.latency_hist),
            ttft_hist = vector::add(ttft_hist ?? $r.zeros, $r.ttft_hist)
        RETURN NONE;
    };
    FOR $s IN $statuses {
        UPSERT type::record('usage_status_daily', $s.id) SET
            workspace = $s.workspace, day = $s.day, key_id = $s.key_id, provider_id = $s.provider_id,
            model = $s.model, route = $s.route, status = $s.status, requests = (requests ?? 0) + $s.requests
        RETURN NONE;
    };
";
