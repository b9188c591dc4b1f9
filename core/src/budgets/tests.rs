use super::*;

fn owner(ws: &WorkspaceId) -> crate::workspaces::OwnerScope {
    crate::workspaces::OwnerScope::trusted("u1", ws)
}

fn member(ws: &WorkspaceId) -> crate::workspaces::Membership {
    use crate::workspaces::{Membership, Role};
    Membership::trusted("u1", ws, Role::Owner)
}

async fn service() -> (Budgets, WorkspaceId) {
    let db = Db::memory().await.unwrap();
    (Budgets::new(db), WorkspaceId::trusted("ws1".into()))
}

fn dollars(usd: f64) -> BudgetInput {
    BudgetInput { usd_limit: Some(usd), ..BudgetInput::default() }
}

#[tokio::test]
async fn a_budget_is_set_listed_and_removed() {
    let (budgets, ws) = service().await;
    assert!(
        budgets.set(&owner(&ws), &BudgetScope::Workspace, &BudgetInput::default()).await.is_err(),
        "a limit is needed"
    );
    assert!(budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(-1.0)).await.is_err());
    assert!(budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(f64::NAN)).await.is_err());
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(12.5)).await.unwrap();
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].usd_limit, Some(12.5));
    assert_eq!(views[0].spent_usd, 0.0);
    assert!(views[0].period_start <= now_ms() && now_ms() < views[0].period_end);
    let other = WorkspaceId::trusted("ws2".into());
    assert!(budgets.list(&other, &Default::default()).await.unwrap().is_empty(), "per workspace");
    assert!(budgets.set(&owner(&ws), &BudgetScope::Key("nokey".into()), &dollars(1.0)).await.is_err(), "unknown key");
    budgets.remove(&owner(&ws), &BudgetScope::Workspace).await.unwrap();
    assert!(budgets.list(&ws, &Default::default()).await.unwrap().is_empty());
    assert!(budgets.rules(&ws).await.unwrap().is_empty(), "the cache forgot it");
}

#[tokio::test]
async fn reservations_fit_exactly_and_settle_once() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k1").await.unwrap();
    let need = Need { nanos: 400_000_000, tokens: 10 };
    let a = budgets.reserve(&ws, &rules, "a", need).await.unwrap();
    let b = budgets.reserve(&ws, &rules, "b", need).await.unwrap();
    let refused = budgets.reserve(&ws, &rules, "c", need).await.unwrap_err();
    let BudgetError::Exceeded(message) = refused else { panic!("not a refusal: {refused:?}") };
    assert!(message.contains("workspace's budget") && message.contains("$0.20 left"), "{message}");
    // Settled below its worst case: the difference is free again.
    budgets.settle(&a, 100_000_000, 5).await.unwrap();
    budgets.settle(&a, 100_000_000, 5).await.unwrap();
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert!((views[0].spent_usd - 0.1).abs() < 1e-9, "{views:?}");
    // `a` came from this instance's slice ($0.50: half the room), which keeps the $0.30 it gave
    // back; `b` (the slice could not be renewed for it) holds $0.40 in the database.
    assert!((views[0].reserved_usd - 0.7).abs() < 1e-9, "a second settlement changed nothing: {views:?}");
    assert_eq!(views[0].spent_tokens, 5);
    budgets.reserve(&ws, &rules, "c", need).await.unwrap();
    budgets.settle(&b, 0, 0).await.unwrap();
}

#[tokio::test]
async fn every_applicable_budget_must_fit_or_none_is_charged() {
    let (budgets, ws) = service().await;
    let keys = crate::keys::ApiKeys::new(budgets.db.clone());
    let name = perpetuo_types::NewApiKey { name: "first".into(), ..Default::default() };
    let k1 = keys.create(&member(&ws), name).await.unwrap().key.id;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(10.0)).await.unwrap();
    let tokens = BudgetInput { token_limit: Some(100), ..BudgetInput::default() };
    budgets.set(&owner(&ws), &BudgetScope::Key(k1.clone()), &tokens).await.unwrap();
    let for_k1 = budgets.applicable(&ws, &k1).await.unwrap();
    assert_eq!(for_k1.0.len(), 2);
    assert_eq!(budgets.applicable(&ws, "k2").await.unwrap().0.len(), 1, "another key: only the workspace's");
    let refused = budgets.reserve(&ws, &for_k1, "a", Need { nanos: 1_000, tokens: 101 }).await.unwrap_err();
    let BudgetError::Exceeded(message) = refused else { panic!("not a refusal") };
    assert!(message.contains("API key's budget") && message.contains("101 tokens"), "{message}");
    let names = [(k1.clone(), "first".to_owned())].into_iter().collect();
    let views = budgets.list(&ws, &names).await.unwrap();
    assert!(views.iter().all(|v| v.reserved_usd == 0.0 && v.reserved_tokens == 0), "nothing half-reserved: {views:?}");
    assert_eq!(views.iter().find(|v| v.key_name.as_deref() == Some("first")).unwrap().token_limit, Some(100));
}

#[tokio::test]
async fn concurrent_reservations_never_pass_the_limit() {
    let (budgets, ws) = service().await;
    // Worth exactly 50 calls of 2 cents.
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let need = Need { nanos: 20_000_000, tokens: 1 };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (budgets, ws, rules) = (budgets.clone(), ws.clone(), rules.clone());
        tasks.spawn(async move { budgets.reserve(&ws, &rules, &format!("r{i}"), need).await });
    }
    let (mut granted, mut refused) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => granted += 1,
            Err(BudgetError::Exceeded(_)) => refused += 1,
            Err(BudgetError::Service(e)) => panic!("{e:?}"),
        }
    }
    assert_eq!((granted, refused), (50, 150));
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert!((views[0].reserved_usd - 1.0).abs() < 1e-9, "{views:?}");
}

#[tokio::test]
async fn unsettled_holds_are_charged_their_worst_case_by_the_sweeper() {
    let (budgets, ws) = service().await;
    // Too close to the limit for a slice ($0.25, half the room, does not cover $0.30): the call
    // reserves in the database.
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(0.5)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    budgets.reserve(&ws, &rules, "lost", Need { nanos: 300_000_000, tokens: 7 }).await.unwrap();
    assert_eq!(budgets.sweep(Duration::from_secs(3600)).await.unwrap(), 0, "a young hold is left alone");
    assert_eq!(budgets.sweep(Duration::ZERO).await.unwrap(), 1);
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert!((views[0].spent_usd - 0.3).abs() < 1e-9 && views[0].reserved_usd == 0.0, "{views:?}");
    assert_eq!(views[0].spent_tokens, 7);
}

#[tokio::test]
async fn an_extension_fits_the_same_limits_or_changes_nothing() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let need = Need { nanos: 400_000_000, tokens: 10 };
    let mut hold = budgets.reserve(&ws, &rules, "a", need).await.unwrap();
    budgets.extend(&ws, &rules, &mut hold, need).await.unwrap();
    assert_eq!(hold.need, Need { nanos: 800_000_000, tokens: 20 });
    let refused = budgets.extend(&ws, &rules, &mut hold, need).await.unwrap_err();
    assert!(matches!(refused, BudgetError::Exceeded(_)), "{refused:?}");
    assert_eq!(hold.need.nanos, 800_000_000, "a refused extension leaves the hold as it was");
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert!((views[0].reserved_usd - 0.8).abs() < 1e-9, "{views:?}");
    // Settling releases everything the hold reserved, extensions included.
    budgets.settle(&hold, 500_000_000, 15).await.unwrap();
    let views = budgets.list(&ws, &Default::default()).await.unwrap();
    assert!((views[0].spent_usd - 0.5).abs() < 1e-9 && views[0].reserved_usd.abs() < 1e-9, "{views:?}");
    assert!(budgets.extend(&ws, &rules, &mut hold, need).await.is_err(), "a settled hold cannot grow");
}

async fn spent_and_reserved(budgets: &Budgets, ws: &WorkspaceId) -> (i64, i64, i64) {
    let views = budgets.list(ws, &Default::default()).await.unwrap();
    let nanos = |usd: f64| (usd * 1e9).round() as i64;
    (nanos(views[0].spent_usd), nanos(views[0].reserved_usd), views[0].calls)
}

async fn slice_rows(db: &Db) -> Vec<Value> {
    let mut response = db.query("SELECT instance, nanos, tokens, seq FROM budget_slice").await.unwrap();
    response.take(0).unwrap()
}

#[tokio::test]
async fn calls_under_a_roomy_budget_are_reserved_and_settled_in_memory() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1000.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let need = Need { nanos: 2_000_000, tokens: 100 };
    for i in 0..200 {
        let hold = budgets.reserve(&ws, &rules, &format!("r{i}"), need).await.unwrap();
        assert!(!hold.in_database(), "call {i} reserved in the database");
        budgets.settle(&hold, 1_000_000, 60).await.unwrap();
    }
    let mut response = budgets.db.query("SELECT VALUE id FROM budget_hold").await.unwrap();
    let holds: Vec<surrealdb::types::RecordId> = response.take(0).unwrap();
    assert!(holds.is_empty(), "no per-call reservation: {holds:?}");
    let rows = slice_rows(&budgets.db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let writes = rows[0]["seq"].as_i64().unwrap();
    assert!(writes <= 8, "200 calls took {writes} writes of the slice");
    let (spent, reserved, calls) = spent_and_reserved(&budgets, &ws).await;
    assert_eq!((spent, calls), (200 * 1_000_000, 200), "spend written exactly when read");
    assert!(reserved > 0, "the slice stays set aside while the instance runs");
    budgets.close().await;
    assert_eq!(spent_and_reserved(&budgets, &ws).await, (200 * 1_000_000, 0, 200), "returned at shutdown");
    assert!(slice_rows(&budgets.db).await.is_empty(), "no slice left behind");
}

#[tokio::test]
async fn a_slice_running_low_is_topped_up_before_a_call_has_to_wait_for_it() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1000.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let need = Need { nanos: 2_000_000, tokens: 100 };
    for i in 0..2000 {
        let hold = budgets.reserve(&ws, &rules, &format!("r{i}"), need).await.unwrap();
        assert!(!hold.in_database(), "call {i} reserved in the database");
        budgets.settle(&hold, 1_000_000, 60).await.unwrap();
        // Between calls, as a serving thread between requests: a top-up under way gets its turn.
        tokio::task::yield_now().await;
    }
    let waited = budgets.escrow.waited.load(std::sync::atomic::Ordering::Relaxed);
    // The slice's first grant (8 calls' worth) is waited for; the slice is then topped up ahead
    // of need as its batch doubles, so no call waits again.
    assert_eq!(waited, 1, "calls that waited for a renewal");
    let rows = slice_rows(&budgets.db).await;
    assert!(rows[0]["seq"].as_i64().unwrap() > 3, "the slice was topped up: {rows:?}");
    assert_eq!(spent_and_reserved(&budgets, &ws).await.0, 2000 * 1_000_000, "spend exact");
    budgets.close().await;
    assert_eq!(spent_and_reserved(&budgets, &ws).await, (2000 * 1_000_000, 0, 2000), "all returned at close");
}

#[tokio::test]
async fn three_instances_sharing_a_budget_never_pass_it_and_leave_none_of_it_unused() {
    let db = Db::memory().await.unwrap();
    let ws = WorkspaceId::trusted("ws1".into());
    let nodes: Vec<Budgets> =
        (0..3).map(|i| Budgets::new(db.clone()).with_instances(format!("node{i}"), Arc::new(|| 3))).collect();
    // Worth exactly 50 calls of 2 cents.
    nodes[0].set(&owner(&ws), &BudgetScope::Workspace, &dollars(1.0)).await.unwrap();
    let need = Need { nanos: 20_000_000, tokens: 1 };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (budgets, ws) = (nodes[i % 3].clone(), ws.clone());
        tasks.spawn(async move {
            let rules = budgets.applicable(&ws, "k").await.unwrap();
            let hold = budgets.reserve(&ws, &rules, &format!("r{i}"), need).await;
            // Some calls finish (at their worst case) while others still arrive.
            if let Ok(hold) = &hold
                && i % 2 == 0
            {
                budgets.settle(hold, need.nanos, need.tokens).await.unwrap();
            }
            hold.map_err(|e| matches!(e, BudgetError::Exceeded(_)))
        });
    }
    let (mut held, mut refused) = (Vec::new(), 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(hold) => held.push(hold),
            Err(true) => refused += 1,
            Err(false) => panic!("a reservation failed"),
        }
    }
    assert_eq!(held.len() + refused, 300);
    assert!(held.len() <= 50, "{} granted", held.len());
    assert!(held.len() >= 45, "room left unused: {} granted", held.len());
    for (i, hold) in held.iter().enumerate() {
        nodes[i % 3].settle(hold, need.nanos, need.tokens).await.unwrap();
    }
    for node in &nodes {
        node.close().await;
    }
    let (spent, reserved, _) = spent_and_reserved(&nodes[1], &ws).await;
    assert_eq!((spent, reserved), (held.len() as i64 * 20_000_000, 0));
}

#[tokio::test]
async fn a_dead_instances_slice_is_charged_whole_and_never_under() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(10.0)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let need = Need { nanos: 100_000_000, tokens: 10 };
    let done = budgets.reserve(&ws, &rules, "done", need).await.unwrap();
    budgets.settle(&done, 30_000_000, 4).await.unwrap();
    let _in_flight = budgets.reserve(&ws, &rules, "in-flight", need).await.unwrap();
    // The instance dies: nothing written, nothing returned.
    let rows = slice_rows(&budgets.db).await;
    let slice = rows[0]["nanos"].as_i64().unwrap();
    assert_eq!(escrow::Escrow::sweep(&budgets.db, Duration::from_secs(3600)).await.unwrap(), 0, "a live slice stays");
    assert_eq!(escrow::Escrow::sweep(&budgets.db, Duration::ZERO).await.unwrap(), 1);
    let after = Budgets::new(budgets.db.clone());
    let (spent, reserved, _) = spent_and_reserved(&after, &ws).await;
    assert_eq!((spent, reserved), (slice, 0), "the whole slice is charged");
    assert!(spent >= 30_000_000 + 100_000_000, "at least what the calls could cost: {spent}");
}

#[tokio::test]
async fn a_lowered_limit_applies_to_the_next_call() {
    let (budgets, ws) = service().await;
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(100.0)).await.unwrap();
    let need = Need { nanos: 40_000_000, tokens: 1 };
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    let first = budgets.reserve(&ws, &rules, "a", need).await.unwrap();
    budgets.settle(&first, need.nanos, need.tokens).await.unwrap();
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(0.1)).await.unwrap();
    let rules = budgets.applicable(&ws, "k").await.unwrap();
    budgets.reserve(&ws, &rules, "b", need).await.expect("$0.06 left");
    let refused = budgets.reserve(&ws, &rules, "c", need).await.unwrap_err();
    assert!(matches!(refused, BudgetError::Exceeded(_)), "{refused:?}");
}
