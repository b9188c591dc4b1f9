//! Budget slices on instances that stop: a slice is returned to the budget when its instance shuts
//! down, and charged whole as spent when its instance dies holding it (never less than its calls
//! cost), on a real SurrealDB server shared by two instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, small_call};
use crate::helpers::*;
use crate::mock::{Flavor, Mock};

/// 7 output tokens at $1 per million: what one `small_call` costs, in nano-dollars.
const CALL_NANOS: i64 = 7_000;

/// A workspace with a price for `mock-small` and a dollar budget worth `calls` calls: (token, key).
async fn budgeted(cluster: &Cluster, mock: &Mock, calls: i64) -> (String, String) {
    let (token, _, key) = cluster.workspace(mock).await;
    let price = json!({"kind": "openai_compatible", "model": "mock-small", "input_per_million": 0.0, "output_per_million": 1.0});
    assert_eq!(cluster.post(0, "/api/v1/prices", Some(&token), &price).await.status(), 200);
    let budget = json!({"usd_limit": (calls * CALL_NANOS) as f64 / 1e9});
    let set = cluster
        .client
        .put(format!("{}/api/v1/budgets/workspace", cluster.base(0)))
        .bearer_auth(&token)
        .json(&budget)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    (token, key)
}

/// The workspace budget's spent and reserved nano-dollars, read through `node`.
async fn budget(cluster: &Cluster, node: usize, token: &str) -> (i64, i64) {
    let list: Value = cluster
        .client
        .get(format!("{}/api/v1/budgets", cluster.base(node)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nanos = |field: &str| (list["data"][0][field].as_f64().unwrap() * 1e9).round() as i64;
    (nanos("spent_usd"), nanos("reserved_usd"))
}

/// Calls through `node`, four at a time, until `stop` is set: how many were answered.
fn keep_calling(cluster: &Cluster, node: usize, key: &str, stop: &Arc<AtomicBool>) -> tokio::task::JoinSet<usize> {
    let mut callers = tokio::task::JoinSet::new();
    let answered = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (client, url, key) =
            (cluster.client.clone(), format!("{}/v1/chat/completions", cluster.base(node)), key.to_owned());
        let (stop, answered) = (Arc::clone(stop), Arc::clone(&answered));
        callers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = client.post(&url).bearer_auth(&key).json(&small_call()).send().await;
                if let Ok(response) = sent
                    && response.status() == 200
                    && response.bytes().await.is_ok()
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            answered.load(Ordering::Relaxed)
        });
    }
    callers
}

async fn answered(mut callers: tokio::task::JoinSet<usize>) -> i64 {
    let mut most = 0;
    while let Some(n) = callers.join_next().await {
        most = most.max(n.unwrap());
    }
    most as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_shuts_down_returns_its_budget_slice() {
    let Some(mut cluster) = Cluster::start(2, &[]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, key) = budgeted(&cluster, &mock, 1_000_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let callers = keep_calling(&cluster, 1, &key, &stop);
    // Node 1 serves calls from its slice: the budget counts the slice as reserved.
    let (_, reserved) = poll(Duration::from_secs(20), || async {
        let (spent, reserved) = budget(&cluster, 0, &token).await;
        (spent > 0 && reserved > 0).then_some((spent, reserved))
    })
    .await
    .expect("node 1 took a slice and wrote its spend");
    assert!(reserved > CALL_NANOS, "a slice covers more than one call: {reserved}");
    // Calls never stop long enough for the slice to go back idle: only the shutdown returns it.
    stop.store(true, Ordering::Relaxed);
    cluster.node(1).stop();
    let served = answered(callers).await;
    let line = cluster.node(1).log_line("budget slices at shutdown", Duration::from_secs(5));
    assert!(line.is_some(), "node 1 said it returned its slice at shutdown");
    let (spent, reserved) = budget(&cluster, 0, &token).await;
    let records = crate::process::recorded_costs(&cluster.client, cluster.base(0), &token, served as usize).await;
    let recorded: i64 = records.iter().sum();
    eprintln!("node 1 answered {served} calls, stopped: spent {spent}, reserved {reserved}, records {recorded}");
    assert_eq!(reserved, 0, "nothing stays reserved once the only instance that held a slice stopped");
    assert_eq!(spent, recorded, "the budget's spend is exactly what the records cost");
    assert!(spent >= served * CALL_NANOS, "{spent} < {served} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_holding_a_slice_has_it_charged_whole_and_the_budget_is_never_passed() {
    let Some(mut cluster) = Cluster::start(2, &[]).await else { return };
    let mock = Mock::start(Flavor::OpenAi).await;
    let (token, key) = budgeted(&cluster, &mock, 100_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let callers = keep_calling(&cluster, 1, &key, &stop);
    poll(Duration::from_secs(20), || async {
        let (spent, reserved) = budget(&cluster, 0, &token).await;
        (spent > 0 && reserved > 0).then_some(())
    })
    .await
    .expect("node 1 took a slice and wrote its spend");
    cluster.node(1).kill_9();
    stop.store(true, Ordering::Relaxed);
    let served = answered(callers).await;
    let (spent_at_kill, held) = budget(&cluster, 0, &token).await;
    assert!(held > 0, "the dead instance's slice stays reserved until its heartbeat lapses");
    // Within the slice's lifetime (30 s) and a sweep (10 s), the slice is charged whole.
    let line = cluster.node(0).log_line("charged the budget slices of instances that stopped", Duration::from_secs(60));
    assert!(line.is_some(), "node 0's sweeper charged the dead slice");
    let (spent, reserved) = budget(&cluster, 0, &token).await;
    eprintln!(
        "killed node 1 after {served} answered calls: spent {spent_at_kill} + held {held} at the kill; after the sweep spent {spent}, reserved {reserved}"
    );
    assert_eq!(reserved, 0);
    assert_eq!(spent, spent_at_kill + held, "the slice is charged whole, as reserved");
    assert!(spent >= served * CALL_NANOS, "never less than what the answered calls cost: {spent} < {served} calls");
    assert!(spent <= 100_000 * CALL_NANOS, "never more than the budget");
    // The survivor keeps serving against what is left.
    assert_eq!(cluster.chat(0, &key, &small_call()).await.status(), 200);
}
