//! Limits in tokens and in flight, for a workspace, an API key or a provider (its share of its
//! account's quota): what an owner sets (cached, followed across instances), and the admission
//! that keeps every instance's calls within them.
//!
//! A call is admitted before its first attempt under the workspace's and its key's limits, and
//! each attempt under its provider's: a place in flight is taken for each concurrency limit, and
//! the call's estimate (its prompt on the high side, the most it may write) is reserved in each
//! token bucket. When the call is recorded it settles to what it used: the difference goes back
//! to the buckets (or, for a provider that counted more, is charged). A place is given back when
//! the call ends (a stream, when it ends); tokens are never given back for a call that was not
//! settled (its future dropped): the bucket keeps the estimate, on the safe side.

pub mod inflight;
pub mod tokens;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use surrealdb::types::{Action, SurrealValue};

use crate::platform::cache::Slots;
use crate::platform::db::{Db, now_ms};
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::workspaces::{OwnerScope, WorkspaceId};
use perpetuo_types::{LimitInput, LimitScope, LimitView};

pub use inflight::{InFlight, Place};
pub use tokens::{Decided, Left, Short, TokenBuckets};

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 100_000;

/// One scope's limits as the gateway applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub scope: LimitScope,
    pub limits: LimitInput,
}

impl Rule {
    /// The scope in words, for messages.
    pub fn name(&self) -> &'static str {
        match self.scope {
            LimitScope::Workspace => "the workspace's",
            LimitScope::Key(_) => "this API key's",
            LimitScope::Provider(_) => "the provider's",
            LimitScope::NewKeys => "new keys'",
        }
    }
}

mod counted;
pub use counted::Counted;

/// A call's tokens: reserved (its estimate) or used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    pub input: u64,
    pub output: u64,
}

/// Where a token limit stands for the call, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub counted: Counted,
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// One bucket reservation, settled once.
#[derive(Debug, Clone)]
struct Reserved {
    slot: String,
    per_min: u64,
    counted: Counted,
    tokens: u64,
    /// Where they came from (what is given back or owed goes back there).
    source: tokens::Source,
}

/// Reservations still to settle (see [`Limits::settle_now`]).
#[derive(Debug, Default)]
pub struct Unsettled(Vec<Reserved>);

impl Unsettled {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a call holds under its limits: places in flight (given back when dropped) and tokens
/// (settled once).
#[derive(Debug, Default)]
pub struct Admitted {
    places: Vec<Place>,
    reserved: Mutex<Vec<Reserved>>,
    /// The tightest token limit, for the rate-limit headers.
    pub standing: Option<Standing>,
}

/// An admission under way: if it is dropped before it ends (its call gave up waiting), the
/// tokens it reserved so far go back (its places go back as they are dropped).
struct Unfinished {
    limits: Limits,
    admitted: Option<Admitted>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(admitted) = self.admitted.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let limits = self.limits.clone();
        drop(runtime.spawn(async move { limits.settle(&admitted, Need::default()).await }));
    }
}

/// Why a call was not admitted.
#[derive(Debug)]
pub enum Refused {
    /// A token limit: the message names it; try again after `retry_after`.
    Tokens { message: String, standing: Standing, retry_after: Duration },
    /// A concurrency limit is full.
    InFlight { message: String, limit: u32 },
}

impl Refused {
    pub fn message(&self) -> &str {
        match self {
            Self::Tokens { message, .. } | Self::InFlight { message, .. } => message,
        }
    }

    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Tokens { retry_after, .. } => *retry_after,
            Self::InFlight { .. } => Duration::from_secs(1),
        }
    }
}

#[derive(SurrealValue)]
struct RuleRow {
    scope: String,
    input_tpm: Option<i64>,
    output_tpm: Option<i64>,
    tpm: Option<i64>,
    in_flight: Option<i64>,
}

impl RuleRow {
    fn rule(&self) -> Rule {
        let tokens = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
        Rule {
            scope: LimitScope::parse_field(&self.scope),
            limits: LimitInput {
                input_tokens_per_min: tokens(self.input_tpm),
                output_tokens_per_min: tokens(self.output_tpm),
                tokens_per_min: tokens(self.tpm),
                max_in_flight: self.in_flight.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0),
            },
        }
    }
}

struct RuleCache {
    rules: Slots<Arc<Vec<Rule>>>,
}

impl Follower for RuleCache {
    fn table(&self) -> &'static str {
        "limit_rule"
    }

    fn changed(&self, _: Action, record: &Value) {
        match record.get("workspace").and_then(Value::as_str) {
            Some(ws) => self.rules.invalidate(ws),
            None => self.rules.clear(),
        }
    }

    fn clear(&self) {
        self.rules.clear();
    }
}

/// The limits service.
#[derive(Clone)]
pub struct Limits {
    db: Db,
    cache: Arc<RuleCache>,
    tokens: Arc<TokenBuckets>,
    in_flight: InFlight,
    /// Instances sharing the buckets (the share each takes when the database is slow).
    instances: Arc<dyn Fn() -> u32 + Send + Sync>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("tokens", &self.tokens)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limits kept by this instance alone (the embedded database).
    pub fn local(db: Db) -> Self {
        Self::with(db, tokens::Store::Local, inflight::Store::Local, Arc::new(|| 1))
    }

    /// Limits shared by every instance on the database: `instance` is this one's id in
    /// `instance`, `instances` counts those alive, `timeout` bounds each lease.
    pub fn shared(db: Db, instance: String, timeout: Duration, instances: Arc<dyn Fn() -> u32 + Send + Sync>) -> Self {
        let t = tokens::Store::Shared { db: db.clone(), timeout };
        let f = inflight::Store::Shared { db: db.clone(), instance, timeout };
        Self::with(db, t, f, instances)
    }

    fn with(db: Db, t: tokens::Store, f: inflight::Store, instances: Arc<dyn Fn() -> u32 + Send + Sync>) -> Self {
        Self {
            db,
            cache: Arc::new(RuleCache { rules: Slots::new(CACHE_TTL, CACHE_CAPACITY) }),
            tokens: Arc::new(TokenBuckets::new(t)),
            in_flight: InFlight::new(f),
            instances,
        }
    }

    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::clone(&self.cache) as Arc<dyn Follower>
    }

    /// Every limit of a workspace (cached; followed across instances).
    pub async fn rules(&self, ws: &WorkspaceId) -> Result<Arc<Vec<Rule>>, ServiceError> {
        if let Some(rules) = self.cache.rules.get(ws.as_str()) {
            return Ok(rules);
        }
        let seen = self.cache.rules.generation();
        let mut response = self
            .db
            .query("SELECT scope, input_tpm, output_tpm, tpm, in_flight FROM limit_rule WHERE workspace = $ws ORDER BY scope")
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        let rows: Vec<RuleRow> = response.take(0)?;
        let rules = Arc::new(rows.iter().map(RuleRow::rule).collect::<Vec<_>>());
        self.cache.rules.put(ws.as_str().to_owned(), Arc::clone(&rules), seen);
        Ok(rules)
    }

    /// The workspace's and the key's limits, for a call with this key.
    pub async fn for_call(&self, ws: &WorkspaceId, key_id: &str) -> Result<Vec<Rule>, ServiceError> {
        let rules = self.rules(ws).await?;
        Ok(rules
            .iter()
            .filter(|r| match &r.scope {
                LimitScope::Workspace => true,
                LimitScope::Key(id) => id == key_id,
                // A template for new keys; a provider's apply per attempt.
                LimitScope::Provider(_) | LimitScope::NewKeys => false,
            })
            .cloned()
            .collect())
    }

    /// A provider's limits, if it has any.
    pub async fn for_provider(&self, ws: &WorkspaceId, provider_id: &str) -> Result<Option<Rule>, ServiceError> {
        let rules = self.rules(ws).await?;
        Ok(rules.iter().find(|r| matches!(&r.scope, LimitScope::Provider(id) if id == provider_id)).cloned())
    }

    fn slot(ws: &WorkspaceId, scope: &LimitScope, what: &str) -> String {
        format!("{}|{}|{what}", ws.as_str(), scope.field())
    }

    /// Admits a call under `rules`: a place for each concurrency limit (waiting up to `wait`),
    /// then its estimate `need` in each token bucket (waiting up to `wait` when it would fit by
    /// then). Nothing is held when it is refused.
    pub async fn admit(
        &self,
        ws: &WorkspaceId,
        rules: &[Rule],
        need: Need,
        wait: Duration,
    ) -> Result<Admitted, Refused> {
        let mut guard = Unfinished { limits: self.clone(), admitted: Some(Admitted::default()) };
        let outcome = self.admit_into(&mut guard, ws, rules, need, wait).await;
        let admitted = guard.admitted.take().unwrap_or_default();
        outcome.map(|()| admitted)
    }

    /// What [`Limits::admit`] does, into the guard's `Admitted`.
    async fn admit_into(
        &self,
        guard: &mut Unfinished,
        ws: &WorkspaceId,
        rules: &[Rule],
        need: Need,
        wait: Duration,
    ) -> Result<(), Refused> {
        let Some(admitted) = guard.admitted.as_mut() else { return Ok(()) };
        if rules.is_empty() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        for rule in rules {
            if let Some(limit) = rule.limits.max_in_flight {
                let slot = Self::slot(ws, &rule.scope, "fly");
                let left = wait.saturating_sub(started.elapsed());
                match self.in_flight.take(&slot, limit, left).await {
                    Some(place) => admitted.places.push(place),
                    None => {
                        let message = format!(
                            "Too many calls in flight: {} limit is {limit} at once. Try again when one ends.",
                            rule.name()
                        );
                        return Err(Refused::InFlight { message, limit });
                    }
                }
            }
        }
        for rule in rules {
            let limits = rule.limits;
            for (counted, per_min) in [
                (Counted::Input, limits.input_tokens_per_min),
                (Counted::Output, limits.output_tokens_per_min),
                (Counted::Total, limits.tokens_per_min),
            ] {
                let Some(per_min) = per_min else { continue };
                let n = counted.of(need);
                let slot = Self::slot(ws, &rule.scope, counted.tag());
                let outcome = loop {
                    match self.tokens.reserve(&slot, per_min, n, (self.instances)()).await {
                        Decided::Short(short)
                            if !short.never && short.retry_after <= wait.saturating_sub(started.elapsed()) =>
                        {
                            tokio::time::sleep(short.retry_after).await;
                        }
                        other => break other,
                    }
                };
                match outcome {
                    Decided::Fits(left, source) => {
                        admitted.reserved.get_mut().unwrap_or_else(|e| e.into_inner()).push(Reserved {
                            slot,
                            per_min,
                            counted,
                            tokens: n,
                            source,
                        });
                        let standing =
                            Standing { counted, limit: per_min, remaining: left.remaining, reset: left.reset };
                        tighter(&mut admitted.standing, standing);
                    }
                    Decided::Short(short) => {
                        // What was reserved under the other limits goes back.
                        self.settle(admitted, Need::default()).await;
                        let message = if short.never {
                            format!(
                                "This call needs about {n} {}, more than {} limit of {per_min} a minute allows.",
                                counted.words(),
                                rule.name()
                            )
                        } else {
                            format!(
                                "Token rate limit reached: {} limit is {per_min} {} a minute and this call needs about {n}. Try again in {} seconds.",
                                rule.name(),
                                counted.words(),
                                short.retry_after.as_secs().max(1)
                            )
                        };
                        let standing =
                            Standing { counted, limit: per_min, remaining: short.remaining, reset: short.retry_after };
                        return Err(Refused::Tokens { message, standing, retry_after: short.retry_after });
                    }
                }
            }
        }
        Ok(())
    }

    /// Settles a call's reservations to what it used (once; later calls do nothing).
    pub async fn settle(&self, admitted: &Admitted, used: Need) {
        let left = self.settle_now(admitted, used);
        self.settle_rest(left, used).await;
    }

    /// Settles, without waiting, what can be (buckets this instance keeps alone, not busy): once.
    /// The rest is for [`Limits::settle_rest`].
    pub fn settle_now(&self, admitted: &Admitted, used: Need) -> Unsettled {
        let mut reserved = std::mem::take(&mut *admitted.reserved.lock().unwrap_or_else(|e| e.into_inner()));
        reserved.retain(|r| {
            let (reserved, rate) = r.source.reserved(r.tokens, r.per_min);
            !self.tokens.settle_now(&r.slot, rate, reserved, r.counted.of(used))
        });
        Unsettled(reserved)
    }

    /// Settles what [`Limits::settle_now`] could not.
    pub async fn settle_rest(&self, left: Unsettled, used: Need) {
        for r in left.0 {
            let actual = r.counted.of(used);
            let (reserved, rate) = r.source.reserved(r.tokens, r.per_min);
            if actual < reserved {
                self.tokens.give_back(&r.slot, rate, reserved - actual, r.source).await;
            } else {
                self.tokens.charge(&r.slot, rate, actual - reserved, r.source).await;
            }
        }
    }

    /// Calls in flight on this instance under a scope's concurrency limit.
    pub fn in_flight_here(&self, ws: &WorkspaceId, scope: &LimitScope) -> u32 {
        self.in_flight.here(&Self::slot(ws, scope, "fly"))
    }

    /// Sets (or replaces) a scope's limits. A key's or provider's needs one of this workspace.
    pub async fn set(&self, owner: &OwnerScope, scope: &LimitScope, input: &LimitInput) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let input = input.check().map_err(ServiceError::Invalid)?;
        let (table, id) = match scope {
            LimitScope::Workspace | LimitScope::NewKeys => ("", ""),
            LimitScope::Key(id) => ("api_key", id.as_str()),
            LimitScope::Provider(id) => ("provider", id.as_str()),
        };
        if !table.is_empty() {
            let mut response = self
                .db
                .query("SELECT VALUE id FROM type::record($table, $id) WHERE workspace = $ws")
                .bind(("table", table))
                .bind(("id", id.to_owned()))
                .bind(("ws", ws.as_str().to_owned()))
                .await?;
            let found: Vec<surrealdb::types::RecordId> = response.take(0)?;
            if found.is_empty() {
                return Err(ServiceError::NotFound(if table == "api_key" { "API key" } else { "provider" }));
            }
        }
        let int = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        self.db
            .query(
                "UPSERT type::record('limit_rule', [$ws, $scope]) SET workspace = $ws, scope = $scope, \
                 input_tpm = $input, output_tpm = $output, tpm = $total, in_flight = $fly, updated_at = $now RETURN NONE",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", scope.field()))
            .bind(("input", int(input.input_tokens_per_min)))
            .bind(("output", int(input.output_tokens_per_min)))
            .bind(("total", int(input.tokens_per_min)))
            .bind(("fly", input.max_in_flight.map(i64::from)))
            .bind(("now", now_ms()))
            .await?
            .check()?;
        self.cache.rules.invalidate(ws.as_str());
        Ok(())
    }

    /// Gives a key just created the limits the workspace's owners set for new keys, if any. Not
    /// an owner's act (a member's new key gets them too): it only copies what an owner set.
    pub async fn give_new_key(&self, ws: &WorkspaceId, key_id: &str) -> Result<(), ServiceError> {
        self.db
            .query(
                "LET $template = (SELECT * FROM type::record('limit_rule', [$ws, 'new_keys']))[0];
                 IF $template != NONE {
                     UPSERT type::record('limit_rule', [$ws, $scope]) SET workspace = $ws, scope = $scope,
                         input_tpm = $template.input_tpm, output_tpm = $template.output_tpm, tpm = $template.tpm,
                         in_flight = $template.in_flight, updated_at = $now RETURN NONE;
                 };",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", LimitScope::Key(key_id.to_owned()).field()))
            .bind(("now", now_ms()))
            .await?
            .check()?;
        self.cache.rules.invalidate(ws.as_str());
        Ok(())
    }

    /// Removes a scope's limits.
    pub async fn remove(&self, owner: &OwnerScope, scope: &LimitScope) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let mut response = self
            .db
            .query("DELETE type::record('limit_rule', [$ws, $scope]) RETURN BEFORE")
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", scope.field()))
            .await?;
        let removed: Vec<Value> = response.take(0)?;
        self.cache.rules.invalidate(ws.as_str());
        if removed.is_empty() { Err(ServiceError::NotFound("limit")) } else { Ok(()) }
    }

    /// Every limit of the workspace; `names` names keys' and providers' (a limit whose key or
    /// provider is gone is left out).
    pub async fn list(
        &self,
        ws: &WorkspaceId,
        names: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<LimitView>, ServiceError> {
        let rules = self.rules(ws).await?;
        let mut views = Vec::new();
        for rule in rules.iter() {
            let name = match &rule.scope {
                LimitScope::Workspace | LimitScope::NewKeys => None,
                LimitScope::Key(id) | LimitScope::Provider(id) => match names.get(id) {
                    Some(name) => Some(name.clone()),
                    None => continue,
                },
            };
            views.push(LimitView {
                scope: rule.scope.clone(),
                name,
                limits: rule.limits,
                in_flight_here: self.in_flight_here(ws, &rule.scope),
            });
        }
        Ok(views)
    }

    /// Forgets buckets and slots this instance no longer needs.
    pub fn prune(&self) {
        self.tokens.prune();
        self.in_flight.prune();
    }

    /// Removes database buckets that are full again.
    pub async fn sweep(&self) -> Result<(), surrealdb::Error> {
        TokenBuckets::sweep(&self.db).await
    }
}

/// Keeps the standing with the smaller share left.
fn tighter(current: &mut Option<Standing>, candidate: Standing) {
    let share = |s: &Standing| s.remaining as f64 / s.limit.max(1) as f64;
    if current.is_none_or(|c| share(&candidate) < share(&c)) {
        *current = Some(candidate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(limits: LimitInput) -> Rule {
        Rule { scope: LimitScope::Key("k".into()), limits }
    }

    #[tokio::test]
    async fn a_call_is_admitted_under_every_limit_or_holds_nothing() {
        let limits = Limits::local(Db::memory().await.unwrap());
        let ws = WorkspaceId::trusted("w".into());
        let rules = [rule(LimitInput {
            input_tokens_per_min: Some(1_000),
            output_tokens_per_min: Some(2_000),
            max_in_flight: Some(2),
            ..LimitInput::default()
        })];
        let need = Need { input: 300, output: 800 };
        let first = limits.admit(&ws, &rules, need, Duration::ZERO).await.unwrap();
        // Input has 70 % left, output 60 %: output is the tighter.
        assert_eq!(first.standing.map(|s| (s.counted, s.remaining)), Some((Counted::Output, 1_200)));
        let second = limits.admit(&ws, &rules, need, Duration::ZERO).await.unwrap();
        assert!(matches!(
            limits.admit(&ws, &rules, need, Duration::ZERO).await,
            Err(Refused::InFlight { limit: 2, .. })
        ));
        // The first used little: what it did not use goes back.
        limits.settle(&first, Need { input: 100, output: 50 }).await;
        limits.settle(&first, Need::default()).await;
        drop(first);
        let third = limits.admit(&ws, &rules, need, Duration::ZERO).await.unwrap();
        drop((second, third));
        // Input has 300 left and output 350: refused by output, and the input it reserved
        // first goes back.
        let refused = limits.admit(&ws, &rules, need, Duration::ZERO).await.unwrap_err();
        let Refused::Tokens { standing, .. } = refused else { panic!("{refused:?}") };
        assert_eq!((standing.counted, standing.limit), (Counted::Output, 2_000));
        let input_only = limits.admit(&ws, &rules, Need { input: 300, output: 0 }, Duration::ZERO).await;
        assert!(input_only.is_ok(), "the refused call held no input tokens");
        drop(input_only);
        assert_eq!(limits.in_flight_here(&ws, &LimitScope::Key("k".into())), 0);
    }
}
