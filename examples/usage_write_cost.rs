//! What one usage record costs: the request's own append to the spool, and the writer's CPU per
//! record to read it back and commit it to the ledger (batches, rollups, checkpoint), by records
//! per commit, on the in-memory and the embedded file engine.
//! `cargo run --release --example usage_write_cost -- [records per size, default 50000]`

use std::io::Write as _;
use std::time::Instant;

use perpetuo_core::platform::config::{DatabaseUrl, Settings};
use perpetuo_core::platform::db::Db;
use perpetuo_core::usage::UsageRecord;
use perpetuo_core::usage::ledger::commit;
use perpetuo_core::usage::spool::{Position, Spool};

fn record(i: usize) -> UsageRecord {
    UsageRecord {
        ts: 1_764_000_000_000 + i as i64,
        workspace: "w0123456789abcdefghij".into(),
        request_id: format!("req_{i:020}"),
        key_id: format!("k{}", i % 3),
        provider_id: Some("p1".into()),
        provider_label: Some("mock".into()),
        provider_kind: Some("openai_compatible".into()),
        model: "bench-model".into(),
        served_model: None,
        endpoint: "chat".into(),
        stream: i.is_multiple_of(2),
        status: 200,
        ok: true,
        error_class: None,
        attempts: 1,
        tokens: perpetuo_core::usage::TokenCounts {
            prompt: u64::try_from(12).unwrap_or(0),
            completion: u64::try_from(8).unwrap_or(0),
            ..Default::default()
        },
        cost_nanos: Some(1000),
        latency_ms: 1,
        upstream_ms: 1,
        ttft_ms: i.is_multiple_of(2).then_some(1),
        estimated: false,
        abandoned: 0,
        reserved_nanos: None,
        reserved_tokens: None,
        dropped_tools: None,
        timeline: Vec::new(),
        price: None,
    }
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let dir = std::env::temp_dir().join(format!("perpetuo-write-cost-{}", std::process::id()));
    let mut out = std::io::stdout();
    writeln!(out, "{:<10} {:>7} {:>12} {:>14} {:>16}", "engine", "commit", "append/rec", "writer/rec", "writer rec/s")?;
    for engine in ["memory", "surrealkv"] {
        for size in [250, 1000, 2000] {
            let mut settings = Settings::for_tests();
            settings.database_url = match engine {
                "memory" => DatabaseUrl::Memory,
                _ => DatabaseUrl::SurrealKv(dir.join(format!("db{size}"))),
            };
            let db = Db::open(&settings).await?;
            let (spool, instance) = Spool::open(&dir.join(format!("spool-{engine}-{size}")), u64::MAX)?;
            let records: Vec<UsageRecord> = (0..total).map(record).collect();
            let cpu = cpu_seconds();
            for r in &records {
                spool.append(r)?;
            }
            let append = cpu_seconds() - cpu;
            let (cpu, started) = (cpu_seconds(), Instant::now());
            let mut at = Position::default();
            loop {
                let (lines, to, bytes) = spool.read(at, size)?;
                if lines.is_empty() {
                    break;
                }
                commit(&db, &instance, &lines, at, to).await?;
                spool.committed(bytes, to);
                at = to;
            }
            let (secs, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            let per = |s: f64| format!("{:.1}us", s * 1e6 / total as f64);
            writeln!(out, "{engine:<10} {size:>7} {:>12} {:>14} {:>16.0}", per(append), per(cpu), total as f64 / secs)?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
