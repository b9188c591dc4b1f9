//! What one usage record costs the writer: CPU time per record for the writer's own batch insert
//! (rollups included), by batch size, on the in-memory and the embedded file engine. The figures
//! behind `usage::BATCH`.
//! `cargo run --release --example usage_write_cost -- [records per size, default 30000]`

use std::io::Write as _;
use std::time::Instant;

use app::server::platform::config::{DatabaseUrl, Settings};
use app::server::platform::db::Db;
use app::server::usage::UsageRecord;
use app::server::usage::writer::write;

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
        endpoint: "chat.completions".into(),
        stream: i.is_multiple_of(2),
        status: 200,
        ok: true,
        error_class: None,
        attempts: 1,
        prompt_tokens: 12,
        completion_tokens: 8,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_nanos: Some(1000),
        latency_ms: 1,
        upstream_ms: 1,
        ttft_ms: i.is_multiple_of(2).then_some(1),
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
    let total: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30_000);
    let dir = std::env::temp_dir().join(format!("perpetuo-write-cost-{}", std::process::id()));
    let mut out = std::io::stdout();
    writeln!(out, "{:<10} {:>6} {:>14} {:>12}", "engine", "batch", "records/s", "cpu/record")?;
    for engine in ["memory", "surrealkv"] {
        for size in [50, 250, 1000] {
            let mut settings = Settings::for_tests();
            settings.database_url = match engine {
                "memory" => DatabaseUrl::Memory,
                _ => DatabaseUrl::SurrealKv(dir.join(format!("db{size}"))),
            };
            let db = Db::open(&settings).await?;
            let (cpu, started) = (cpu_seconds(), Instant::now());
            let mut i = 0;
            while i < total {
                let batch: Vec<UsageRecord> = (i..(i + size).min(total)).map(record).collect();
                write(&db, &batch).await?;
                i += size;
            }
            let (secs, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            writeln!(out, "{engine:<10} {size:>6} {:>14.0} {:>10.0}us", total as f64 / secs, cpu * 1e6 / total as f64)?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
