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
    assert!((views[0].reserved_usd - 0.4).abs() < 1e-9, "a second settlement changed nothing: {views:?}");
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
    budgets.set(&owner(&ws), &BudgetScope::Workspace, &dollars(1.0)).await.unwrap();
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
