//! How the usage queries scale: writes a million request records for one workspace (through the
//! usage writer's own batch insert, rollups included) into an embedded database, then times each
//! query the usage tab and the usage API run.
//! `cargo run --release --example usage_scale -- [records, default 1000000] [surrealkv dir]`

use std::io::Write as _;
use std::time::Instant;

use perpetuo_core::platform::config::{DatabaseUrl, Settings};
use perpetuo_core::platform::db::Db;
use perpetuo_core::usage::Reports;
use perpetuo_core::usage::UsageRecord;
use perpetuo_core::usage::ledger::insert;
use perpetuo_core::workspaces::Workspaces;
use perpetuo_types::{GroupBy, Period, RequestFilter, StatusFilter};

fn out(line: String) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut settings = Settings::for_tests();
    let dir = tempfile_dir(args.get(2));
    settings.database_url = DatabaseUrl::SurrealKv(dir.join("scale.db"));
    let db = Db::open(&settings).await?;
    // Straight into the tables: one user, one workspace, its membership.
    let workspaces = Workspaces::new(db.clone());
    let user = "scale_user";
    let ws = workspaces.create(user, "Scale").await?;
    let ws = workspaces.authorize(user, &ws.id).await?;
    let reports = Reports::new(db.clone());

    let now = perpetuo_core::platform::db::now_ms();
    let models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku", "llama-3.3-70b", "mistral-small"];
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..total {
        // Spread over the last 30 days.
        let ts = now - (i as i64 % (30 * 86_400)) * 1000;
        batch.push(UsageRecord {
            ts,
            workspace: ws.as_str().to_owned(),
            request_id: format!("req_{i:09}"),
            key_id: format!("key{}", i % 20),
            provider_id: Some(format!("prov{}", i % 4)),
            provider_label: Some(format!("Provider {}", i % 4)),
            provider_kind: Some("openai".into()),
            model: models[i % models.len()].into(),
            served_model: None,
            endpoint: "chat".into(),
            stream: i % 3 == 0,
            status: if i % 50 == 0 { 502 } else { 200 },
            ok: i % 50 != 0,
            error_class: (i % 50 == 0).then(|| "upstream_5xx".into()),
            attempts: 1,
            tokens: perpetuo_core::usage::TokenCounts {
                prompt: u64::try_from(100 + (i % 900) as i64).unwrap_or(0),
                completion: u64::try_from(20 + (i % 300) as i64).unwrap_or(0),
                ..Default::default()
            },
            cost_nanos: Some(1000 + (i % 5000) as i64),
            latency_ms: 50 + (i % 2000) as i64,
            upstream_ms: 48 + (i % 2000) as i64,
            ttft_ms: (i % 3 == 0).then_some(30 + (i % 500) as i64),
            estimated: false,
            abandoned: 0,
            reserved_nanos: None,
            reserved_tokens: None,
            dropped_tools: None,
            timeline: Vec::new(),
            price: None,
        });
        if batch.len() == 1000 {
            insert(&db, &batch, true).await?;
            batch.clear();
        }
    }
    insert(&db, &batch, true).await?;
    let secs = started.elapsed().as_secs_f64();
    out(format!(
        "wrote {total} records in {secs:.1} s ({:.0} records/s, batches of 1000 with rollups)",
        total as f64 / secs
    ));

    let period = Period::last_days(30, now);
    let labels = reports.labels(&ws).await?;
    let filter = |status: StatusFilter, model: Option<&str>| RequestFilter {
        period,
        key: None,
        provider: None,
        model: model.map(str::to_owned),
        route: None,
        status,
    };
    async fn time<F: std::future::Future<Output = Result<T, perpetuo_core::ServiceError>>, T>(
        label: &str,
        f: F,
    ) -> Result<T, perpetuo_core::ServiceError> {
        let started = Instant::now();
        let value = f.await?;
        out(format!("{label:<52} {:>9.1} ms", started.elapsed().as_secs_f64() * 1e3));
        Ok(value)
    }
    let summary = time("summary (totals, p50/p95 latency, ttft)", reports.summary(&ws, &period)).await?;
    out(format!(
        "  -> {} requests, {} errors, p50 {:?} ms, p95 {:?} ms",
        summary.requests, summary.errors, summary.latency_p50_ms, summary.latency_p95_ms
    ));
    time("group by model", reports.grouped(&ws, &period, GroupBy::Model, &labels)).await?;
    time("group by day", reports.grouped(&ws, &period, GroupBy::Day, &labels)).await?;
    time("chart series (day x model)", reports.series(&ws, &period, GroupBy::Model, &labels)).await?;
    let page = time(
        "request log, first page of 50 (+ total)",
        reports.requests(&ws, &filter(StatusFilter::Any, None), &labels, 50, None),
    )
    .await?;
    out(format!("  -> total {}", page.total));
    let cursor = page.next_cursor.clone();
    time(
        "request log, next page",
        reports.requests(&ws, &filter(StatusFilter::Any, None), &labels, 50, cursor.as_deref()),
    )
    .await?;
    time(
        "request log, model filter",
        reports.requests(&ws, &filter(StatusFilter::Any, Some("gpt-4o")), &labels, 50, None),
    )
    .await?;
    let by_key = RequestFilter { key: Some("key7".into()), ..filter(StatusFilter::Any, None) };
    time("request log, key filter", reports.requests(&ws, &by_key, &labels, 50, None)).await?;
    time("request log, failed only", reports.requests(&ws, &filter(StatusFilter::Error, None), &labels, 50, None))
        .await?;
    time("request log, status 502", reports.requests(&ws, &filter(StatusFilter::Code(502), None), &labels, 50, None))
        .await?;
    Ok(())
}

fn tempfile_dir(given: Option<&String>) -> std::path::PathBuf {
    match given {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("perpetuo-scale-{}", std::process::id())),
    }
}
