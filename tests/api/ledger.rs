//! The usage ledger against the real binary on the embedded file database: every answered request
//! has exactly one record after a saturating burst, and after a `kill -9` in the middle of one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::mock::{Flavor, Mock};
use crate::process::{Running, assert_exactly_once, burst, recorded_ids, workspace};

#[tokio::test]
async fn a_saturating_burst_gets_every_answer_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(Flavor::OpenAi).await;
    let running = Running::start(dir.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (token, key) = workspace(&client, &running.base, &mock).await;
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    burst(&client, &running.base, &key, 3000, 64, Arc::clone(&answered)).await;
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 3000, "the burst itself is answered");
    let recorded = recorded_ids(&client, &running.base, &token, answered.len()).await;
    assert_eq!(recorded.len(), 3000);
    assert_exactly_once(&answered, &recorded);
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_burst_loses_no_answered_record() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(Flavor::OpenAi).await;
    let mut running = Running::start(dir.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (token, key) = workspace(&client, &running.base, &mock).await;
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let base = running.base.clone();
    let calls = burst(&client, &base, &key, 100_000, 32, Arc::clone(&answered));
    let killer = async {
        // Killed once a good part of the burst is answered, while calls are in flight.
        poll(Duration::from_secs(60), || async { (answered.lock().unwrap().len() >= 1500).then_some(()) })
            .await
            .expect("the burst was being answered");
        running.kill_9();
    };
    tokio::join!(calls, killer);
    let answered = answered.lock().unwrap().clone();
    let restarted = Running::start(dir.path());
    let recorded = recorded_ids(&client, &restarted.base, &token, answered.len()).await;
    eprintln!("kill -9 mid-burst: {} answered, {} recorded after the restart", answered.len(), recorded.len());
    assert_exactly_once(&answered, &recorded);
    let distinct: HashSet<&String> = recorded.iter().collect();
    assert_eq!(distinct.len(), recorded.len());
}

/// With the database refusing writes, records wait on disk up to the spool's bound; past it new
/// calls are refused (no answered call without its record) and readiness and the metrics say so;
/// once the database takes writes again, everything is written and calls are accepted.
#[tokio::test]
async fn a_full_spool_refuses_new_calls_until_the_database_catches_up() {
    let mut options = Options::default();
    options.settings.usage_spool_max_bytes = 8 * 1024;
    options.settings.metrics_public = true;
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("P", "openai_compatible", &mock.base_url(), 1).await;
    let db = &gw.app.state.db;
    db.query("DEFINE FIELD OVERWRITE count ON usage_batch TYPE string").await.unwrap().check().unwrap();

    let mut answered = 0;
    let refused = loop {
        let response = gw.chat(&chat_body("mock-small")).await;
        if response.status() == 503 {
            break response;
        }
        assert_eq!(response.status(), 200);
        answered += 1;
        assert!(answered < 1000, "the spool never filled");
    };
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "usage_ledger_full", "{body}");
    let ready = gw.app.client.get(gw.app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("usage spool full"));
    let metrics = gw.app.client.get(gw.app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("perpetuo_usage_spool_full 1"), "{metrics}");
    assert!(metrics.contains("perpetuo_usage_database_failing 1"), "{metrics}");

    db.query("DEFINE FIELD OVERWRITE count ON usage_batch TYPE int").await.unwrap().check().unwrap();
    let ready = poll(Duration::from_secs(20), || async {
        (gw.app.client.get(gw.app.url("/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready again once the records are written");
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    // Every answered call, and the refusal itself, has its record.
    let records = gw.usage(answered + 2).await;
    assert_eq!(records.len(), answered + 2);
    assert_eq!(records.iter().filter(|r| r["error_class"] == "usage_ledger_full").count(), 1);
}

/// Perpetuo on a SurrealDB server that becomes unreachable for 30 s under traffic: calls with
/// known keys keep being answered (their records wait in the spool), readiness says the database
/// is gone, and once it is back every answered call has exactly one record.
// Several threads: the relay's tasks must run while the test waits on the binary's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_unreachable_for_30_s_under_traffic_loses_no_record() {
    use crate::surreal::{CutRelay, PASS, SurrealServer, USER};
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = SurrealServer::start(&dir.path().join("surreal")).await else { return };
    let relay = CutRelay::start(server.addr).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    let running = Running::start_with(
        dir.path(),
        &[
            ("DATABASE_URL", format!("ws://{}", relay.addr)),
            ("DATABASE_USER", USER.into()),
            ("DATABASE_PASS", PASS.into()),
            ("USAGE_SPOOL_DIR", dir.path().join("spool").display().to_string()),
        ],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (token, key) = workspace(&client, &running.base, &mock).await;
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, base, key, answered, stop) =
            (client.clone(), running.base.clone(), key.clone(), Arc::clone(&answered), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                burst(&client, &base, &key, 8, 4, Arc::clone(&answered)).await;
            }
        })
    };
    let ready = |base: String, client: reqwest::Client| async move {
        client.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    poll(Duration::from_secs(30), || async { (answered.lock().unwrap().len() >= 50).then_some(()) }).await.unwrap();

    relay.cut().await;
    let before = answered.lock().unwrap().len();
    let not_ready = poll(Duration::from_secs(10), || async {
        (ready(running.base.clone(), client.clone()).await == 503).then_some(())
    })
    .await;
    assert!(not_ready.is_some(), "/readyz says the database is gone");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = answered.lock().unwrap().len() - before;
    relay.restore();

    let ready_again = poll(Duration::from_secs(60), || async {
        (ready(running.base.clone(), client.clone()).await == 200).then_some(())
    })
    .await;
    assert!(ready_again.is_some(), "ready again once the database is back");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.unwrap();
    let answered = answered.lock().unwrap().clone();
    assert!(during > 0, "calls with a known key were answered while the database was away");
    let recorded = recorded_ids(&client, &running.base, &token, answered.len()).await;
    eprintln!(
        "database away 30 s: {} answered ({during} during the outage), {} recorded",
        answered.len(),
        recorded.len()
    );
    assert_exactly_once(&answered, &recorded);
}
