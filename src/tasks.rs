//! The background work of one instance, each on a clock until shutdown: the heartbeat that tells
//! the other instances on the database this one is alive, the expired-session sweep, the
//! limiters' pruning, API keys' last-use times, request-record retention, and the budget
//! holds no instance settled.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_sessions::session_store::ExpiredDeletion as _;

use perpetuo_core::AppState;
use perpetuo_core::accounts::sessions::SurrealSessionStore;
use perpetuo_core::platform::db::now_ms;
use perpetuo_types::DAY_MS;

/// Runs `tick` every `every` until `stop` fires (the first tick at once); with `last_on_stop`,
/// once more on the way out (so pending writes are not lost).
fn every<F, Fut>(every: Duration, stop: CancellationToken, last_on_stop: bool, mut tick: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    if last_on_stop {
                        tick().await;
                    }
                    break;
                }
                _ = interval.tick() => tick().await,
            }
        }
    })
}

/// Starts every background task; they end when `stop` fires.
pub fn spawn_all(state: &AppState, sessions: SurrealSessionStore, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    let limiters = state.clone();
    let keys = state.clone();
    let retention = state.clone();
    let holds = state.clone();
    let heartbeat = state.clone();
    let captures = state.clone();
    vec![
        every(Duration::from_secs(600), stop.clone(), false, move || {
            let state = captures.clone();
            async move {
                match state.captures().prune(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(captures = n, "pruned captured bodies past their retention"),
                    Err(e) => e.log_if_internal(),
                }
            }
        }),
        every(Duration::from_secs(5), stop.clone(), false, move || {
            let state = heartbeat.clone();
            async move { state.limiters.heartbeat().await }
        }),
        every(Duration::from_secs(600), stop.clone(), false, move || {
            let sessions = sessions.clone();
            async move {
                if let Err(e) = sessions.delete_expired().await {
                    tracing::warn!(error = %e, "expired-session sweep failed");
                }
            }
        }),
        every(Duration::from_secs(60), stop.clone(), false, move || {
            let state = limiters.clone();
            async move {
                state.limiters.prune();
                state.limiters.sweep_shared().await;
            }
        }),
        every(Duration::from_secs(5), stop.clone(), true, move || {
            let keys = keys.clone();
            async move {
                if let Err(e) = keys.keys().flush_last_used().await {
                    tracing::warn!(error = %e, "writing API key last-use times failed");
                }
            }
        }),
        every(Duration::from_secs(3600), stop.clone(), false, move || {
            let state = retention.clone();
            async move {
                let cutoff = now_ms() - i64::from(state.settings.usage_retention_days) * DAY_MS;
                match state.reports().prune(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "pruned request records past the retention period"),
                    Err(e) => e.log_if_internal(),
                }
            }
        }),
        // What calls spent from this instance's budget slices, written every second; every slice
        // returned at shutdown (after the last call).
        every(Duration::from_secs(1), stop.clone(), true, {
            let (state, stop) = (state.clone(), stop.clone());
            move || {
                let (state, stopping) = (state.clone(), stop.is_cancelled());
                async move { if stopping { state.budgets().close().await } else { state.budgets().tick().await } }
            }
        }),
        every(Duration::from_secs(10), stop.clone(), false, {
            let state = state.clone();
            move || {
                let state = state.clone();
                async move {
                    match state.budgets().sweep_slices().await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::warn!(slices = n, "charged the budget slices of instances that stopped as spent")
                        }
                        Err(e) => e.log_if_internal(),
                    }
                }
            }
        }),
        every(Duration::from_secs(60), stop.clone(), false, move || {
            let state = holds.clone();
            async move {
                // A hold outlives any call by far here: its instance died before settling it.
                let age = state.settings.upstream.total_timeout + Duration::from_secs(15 * 60);
                match state.budgets().sweep(age).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(holds = n, "charged budget holds that were never settled at their worst case")
                    }
                    Err(e) => e.log_if_internal(),
                }
            }
        }),
    ]
}
