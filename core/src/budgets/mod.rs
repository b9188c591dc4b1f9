//! Budgets per workspace and per API key: what an owner sets (cached, followed across instances)
//! and the reservations that keep every instance's calls within them.
//!
//! Before a call, its worst case is reserved against every budget that applies: from this
//! instance's slice of each budget, in memory ([`escrow`]: slices are taken from the database
//! in transactions of conditional updates, so slices plus spend never pass a limit on any number of
//! instances), or, when the slices have no room (near a limit), in one such transaction for the
//! call alone. After the call, the hold is settled once to the actual cost and tokens. A hold whose
//! settlement never came (an instance that died mid-call) is settled at its worst case by the
//! sweeper, and a dead instance's slices are charged whole.

mod escrow;
mod holds;
pub mod period;
mod slice;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use surrealdb::types::{Action, SurrealValue};

use crate::platform::cache::Slots;
use crate::platform::db::{Db, is_retryable, now_ms, root_cause};
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::workspaces::{OwnerScope, WorkspaceId};
use perpetuo_types::{BudgetInput, BudgetScope, BudgetView};

pub use period::Period;

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 100_000;
/// Dollars to billionths of a dollar.
const NANOS_PER_USD: f64 = 1e9;
/// The largest limit accepted (a billion dollars, or a trillion tokens): beyond any real budget,
/// and far from `i64` overflow when reservations add up.
const MAX_USD: f64 = 1e9;
const MAX_TOKENS: i64 = 1_000_000_000_000;
const MAX_PERIOD_DAYS: u32 = 3_660;
/// Attempts at a reservation or settlement that lost a write conflict to a concurrent one.
const CONFLICT_ATTEMPTS: u32 = 50;

/// One budget as the gateway applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub scope: BudgetScope,
    pub usd_nanos: Option<i64>,
    pub tokens: Option<i64>,
    pub period: Period,
    pub allow_unpriced: bool,
}

impl Rule {
    fn stored_scope(&self) -> String {
        stored_scope(&self.scope)
    }

    /// The scope in words, for messages.
    fn name(&self) -> &'static str {
        match self.scope {
            BudgetScope::Workspace => "the workspace's budget",
            BudgetScope::Key(_) => "this API key's budget",
            BudgetScope::NewKeys => "the budget new keys get",
        }
    }

    fn applies_to(&self, key_id: &str) -> bool {
        match &self.scope {
            BudgetScope::Workspace => true,
            BudgetScope::Key(id) => id == key_id,
            // A template for new keys, not a budget of its own.
            BudgetScope::NewKeys => false,
        }
    }
}

fn stored_scope(scope: &BudgetScope) -> String {
    match scope {
        BudgetScope::Workspace => "workspace".into(),
        BudgetScope::Key(id) => format!("key:{id}"),
        BudgetScope::NewKeys => "new_keys".into(),
    }
}

/// A scope as the store (and the forms) write it.
pub fn parse_scope(stored: &str) -> BudgetScope {
    match stored.strip_prefix("key:") {
        Some(id) => BudgetScope::Key(id.to_owned()),
        None if stored == "new_keys" => BudgetScope::NewKeys,
        None => BudgetScope::Workspace,
    }
}

/// The budgets that apply to one call.
#[derive(Debug, Clone, Default)]
pub struct Applicable(pub Vec<Rule>);

impl Applicable {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether calls to a model with no known price may go on under every one of them (a budget
    /// of tokens alone does not need a price).
    pub fn allow_unpriced(&self) -> bool {
        self.0.iter().all(|r| r.allow_unpriced || r.usd_nanos.is_none())
    }
}

/// A call's worst case, reserved before it is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    pub nanos: i64,
    pub tokens: i64,
}

/// A reservation in the database, to be settled once.
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: String,
    /// The workspace whose budgets it holds.
    pub workspace: String,
    /// Everything reserved under it (the first reservation and every extension).
    pub need: Need,
    /// The parts held in this instance's slices (the first reservation, extensions).
    local: Vec<holds::LocalPart>,
    /// The parts reserved in the database, in order.
    db: Vec<holds::DbPart>,
    /// The counters it holds, with their limits (what an extension must fit again).
    uses: Vec<Value>,
    counters: Vec<(slice::Counter, slice::Pair)>,
    /// Set by the first settlement: the slices' part is settled once.
    settled: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a reservation was refused.
#[derive(Debug)]
pub enum BudgetError {
    /// The call does not fit; the message names the budget and what is left.
    Exceeded(String),
    Service(ServiceError),
}

impl From<ServiceError> for BudgetError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl From<surrealdb::Error> for BudgetError {
    fn from(e: surrealdb::Error) -> Self {
        Self::Service(ServiceError::Database(e))
    }
}

#[derive(SurrealValue)]
struct ConfigRow {
    scope: String,
    usd_nanos: Option<i64>,
    tokens: Option<i64>,
    period_days: Option<i64>,
    anchor: i64,
    allow_unpriced: bool,
}

impl ConfigRow {
    fn rule(&self) -> Rule {
        let period = match self.period_days.and_then(|d| u32::try_from(d).ok()).filter(|d| *d > 0) {
            Some(days) => Period::Days { days, anchor: self.anchor },
            None => Period::Month,
        };
        Rule {
            scope: parse_scope(&self.scope),
            usd_nanos: self.usd_nanos,
            tokens: self.tokens,
            period,
            allow_unpriced: self.allow_unpriced,
        }
    }
}

#[derive(SurrealValue, Default)]
struct UseRow {
    spent_nanos: i64,
    reserved_nanos: i64,
    spent_tokens: i64,
    reserved_tokens: i64,
    calls: i64,
}

struct BudgetCache {
    rules: Slots<Arc<Vec<Rule>>>,
}

impl Follower for BudgetCache {
    fn table(&self) -> &'static str {
        "budget"
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

/// The budgets service.
#[derive(Clone)]
pub struct Budgets {
    db: Db,
    cache: Arc<BudgetCache>,
    /// The runtime settlements run on: the one the service was made on (the process's main
    /// runtime), so a serving thread that stops does not take pending settlements with it.
    runtime: Option<tokio::runtime::Handle>,
    /// One transaction at a time per workspace on this instance: concurrent calls queue here
    /// rather than all racing on the same counters (only the instances race each other).
    turns: Arc<dashmap::DashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This instance's slices of the budgets.
    escrow: Arc<escrow::Escrow>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").finish_non_exhaustive()
    }
}

/// An owner's input in stored units: nano-dollars, tokens, period days.
type Limits = (Option<i64>, Option<i64>, Option<u32>);

/// Checks an owner's input.
fn parse_input(input: &BudgetInput) -> Result<Limits, ServiceError> {
    let usd = match input.usd_limit {
        None => None,
        Some(usd) if usd.is_finite() && (0.0..=MAX_USD).contains(&usd) => Some((usd * NANOS_PER_USD).round() as i64),
        Some(_) => {
            return Err(ServiceError::Invalid(format!("A dollar limit must be a number from 0 to {MAX_USD:.0}.")));
        }
    };
    let tokens = match input.token_limit {
        None => None,
        Some(t) if (0..=MAX_TOKENS).contains(&t) => Some(t),
        Some(_) => return Err(ServiceError::Invalid(format!("A token limit must be from 0 to {MAX_TOKENS}."))),
    };
    if usd.is_none() && tokens.is_none() {
        return Err(ServiceError::Invalid("Set a dollar limit, a token limit, or both.".into()));
    }
    let days = match input.period_days {
        None | Some(0) => None,
        Some(d) if d <= MAX_PERIOD_DAYS => Some(d),
        Some(_) => {
            return Err(ServiceError::Invalid(format!("A period is at most {MAX_PERIOD_DAYS} days.")));
        }
    };
    Ok((usd, tokens, days))
}

fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// `$1.234567` with as many decimals as a small amount needs.
pub fn format_usd(nanos: i64) -> String {
    let dollars = usd(nanos);
    if dollars != 0.0 && dollars.abs() < 0.01 { format!("${dollars:.6}") } else { format!("${dollars:.2}") }
}

impl Budgets {
    pub fn new(db: Db) -> Self {
        Self {
            escrow: Arc::new(escrow::Escrow::new(db.clone(), crate::platform::db::new_id(), Arc::new(|| 1))),
            db,
            cache: Arc::new(BudgetCache { rules: Slots::new(CACHE_TTL, CACHE_CAPACITY) }),
            runtime: tokio::runtime::Handle::try_current().ok(),
            turns: Arc::default(),
        }
    }

    /// As instance `id` among those sharing the database, whose slices of a budget are a share of
    /// its room divided by the number `instances` says are alive.
    pub fn with_instances(mut self, id: String, instances: Arc<dyn Fn() -> u32 + Send + Sync>) -> Self {
        self.escrow = Arc::new(escrow::Escrow::new(self.db.clone(), id, instances));
        self
    }

    /// Every second: writes what calls spent from this instance's slices, and returns idle ones.
    pub async fn tick(&self) {
        self.escrow.tick().await;
    }

    /// Returns every slice this instance holds (at shutdown, when no call is left).
    pub async fn close(&self) {
        self.escrow.close().await;
    }

    /// Charges the slices of instances that stopped writing them (they died) as spent. Returns
    /// how many.
    pub async fn sweep_slices(&self) -> Result<usize, ServiceError> {
        Ok(escrow::Escrow::sweep(&self.db, escrow::SLICE_ALIVE_FOR).await?)
    }

    /// Runs `work` when no other budget transaction of the workspace runs on this instance.
    async fn in_turn<T>(&self, ws: &str, work: impl std::future::Future<Output = T>) -> T {
        let turn = Arc::clone(self.turns.entry(ws.to_owned()).or_default().value());
        let held = turn.lock().await;
        let out = work.await;
        drop(held);
        drop(turn);
        // Nobody else waits for this workspace: its turn is forgotten.
        self.turns.remove_if(ws, |_, turn| Arc::strong_count(turn) == 1);
        out
    }

    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::clone(&self.cache) as Arc<dyn Follower>
    }

    /// Every budget of a workspace (cached; followed across instances).
    pub async fn rules(&self, ws: &WorkspaceId) -> Result<Arc<Vec<Rule>>, ServiceError> {
        if let Some(rules) = self.cache.rules.get(ws.as_str()) {
            return Ok(rules);
        }
        let seen = self.cache.rules.generation();
        let rows = self.rows(ws).await?;
        let rules = Arc::new(rows.iter().map(ConfigRow::rule).collect::<Vec<_>>());
        self.cache.rules.put(ws.as_str().to_owned(), Arc::clone(&rules), seen);
        Ok(rules)
    }

    /// The budgets a call with this key must fit.
    pub async fn applicable(&self, ws: &WorkspaceId, key_id: &str) -> Result<Applicable, ServiceError> {
        let rules = self.rules(ws).await?;
        if rules.is_empty() {
            return Ok(Applicable::default());
        }
        Ok(Applicable(rules.iter().filter(|r| r.applies_to(key_id)).cloned().collect()))
    }

    /// A budget's counters for the period starting at `start` (zero when nothing was charged).
    async fn counters(&self, ws: &WorkspaceId, rule: &Rule, start: i64) -> Result<UseRow, ServiceError> {
        let mut response = self
            .db
            .query(
                "SELECT spent_nanos, reserved_nanos, spent_tokens, reserved_tokens, calls \
                 FROM type::record('budget_use', [$ws, $scope, $start])",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", rule.stored_scope()))
            .bind(("start", start))
            .await?;
        Ok(response.take::<Option<UseRow>>(0)?.unwrap_or_default())
    }

    async fn rows(&self, ws: &WorkspaceId) -> Result<Vec<ConfigRow>, ServiceError> {
        let mut response = self
            .db
            .query(
                "SELECT scope, usd_nanos, tokens, period_days, anchor, allow_unpriced FROM budget \
                 WHERE workspace = $ws ORDER BY scope",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        Ok(response.take(0)?)
    }

    /// Sets (or replaces) a budget. A key's budget needs a key of this workspace. The period's
    /// anchor is kept when the budget already existed, so changing a limit does not restart it.
    pub async fn set(&self, owner: &OwnerScope, scope: &BudgetScope, input: &BudgetInput) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let (usd, tokens, days) = parse_input(input)?;
        if let BudgetScope::Key(id) = scope {
            let mut response = self
                .db
                .query("SELECT VALUE id FROM type::record('api_key', $id) WHERE workspace = $ws")
                .bind(("id", id.clone()))
                .bind(("ws", ws.as_str().to_owned()))
                .await?;
            let found: Vec<surrealdb::types::RecordId> = response.take(0)?;
            if found.is_empty() {
                return Err(ServiceError::NotFound("API key"));
            }
        }
        let now = now_ms();
        self.db
            .query(
                "UPSERT type::record('budget', [$ws, $scope]) SET workspace = $ws, scope = $scope, \
                 usd_nanos = $usd, tokens = $tokens, period_days = $days, anchor = anchor OR $now, \
                 allow_unpriced = $allow, updated_at = $now RETURN NONE",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", stored_scope(scope)))
            .bind(("usd", usd))
            .bind(("tokens", tokens))
            .bind(("days", days.map(i64::from)))
            .bind(("allow", input.allow_unpriced))
            .bind(("now", now))
            .await?
            .check()?;
        self.cache.rules.invalidate(ws.as_str());
        Ok(())
    }

    /// Gives a key just created the budget the workspace's owners set for new keys, if any. Not
    /// an owner's act (a member's new key gets it too): it only copies what an owner set.
    pub async fn give_new_key(&self, ws: &WorkspaceId, key_id: &str) -> Result<(), ServiceError> {
        self.db
            .query(
                "LET $template = (SELECT * FROM type::record('budget', [$ws, 'new_keys']))[0];
                 IF $template != NONE {
                     UPSERT type::record('budget', [$ws, $scope]) SET workspace = $ws, scope = $scope,
                         usd_nanos = $template.usd_nanos, tokens = $template.tokens, period_days = $template.period_days,
                         anchor = $now, allow_unpriced = $template.allow_unpriced, updated_at = $now RETURN NONE;
                 };",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", stored_scope(&BudgetScope::Key(key_id.to_owned()))))
            .bind(("now", now_ms()))
            .await?
            .check()?;
        self.cache.rules.invalidate(ws.as_str());
        Ok(())
    }

    /// Removes a budget (its period's counters stay, for the record).
    pub async fn remove(&self, owner: &OwnerScope, scope: &BudgetScope) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let mut response = self
            .db
            .query("DELETE type::record('budget', [$ws, $scope]) RETURN BEFORE")
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("scope", stored_scope(scope)))
            .await?;
        let removed: Vec<Value> = response.take(0)?;
        self.cache.rules.invalidate(ws.as_str());
        if removed.is_empty() { Err(ServiceError::NotFound("budget")) } else { Ok(()) }
    }

    /// Every budget of the workspace with its current period. `key_names` names keys' budgets.
    pub async fn list(
        &self,
        ws: &WorkspaceId,
        key_names: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<BudgetView>, ServiceError> {
        // What this instance's calls spent is written first (other instances' within a second).
        self.escrow.flush(ws.as_str()).await;
        let now = now_ms();
        let mut views = Vec::new();
        for row in self.rows(ws).await? {
            let rule = row.rule();
            let (start, end) = rule.period.current(now);
            let counters = self.counters(ws, &rule, start).await?;
            let key_name = match &rule.scope {
                BudgetScope::Key(id) => match key_names.get(id) {
                    Some(name) => Some(name.clone()),
                    // The key is gone: its budget no longer applies to anything.
                    None => continue,
                },
                BudgetScope::Workspace | BudgetScope::NewKeys => None,
            };
            views.push(BudgetView {
                scope: rule.scope.clone(),
                key_name,
                usd_limit: rule.usd_nanos.map(usd),
                token_limit: rule.tokens,
                period_days: match rule.period {
                    Period::Month => None,
                    Period::Days { days, .. } => Some(days),
                },
                allow_unpriced: rule.allow_unpriced,
                period_start: start,
                period_end: end,
                spent_usd: usd(counters.spent_nanos),
                reserved_usd: usd(counters.reserved_nanos),
                spent_tokens: counters.spent_tokens,
                reserved_tokens: counters.reserved_tokens,
                calls: counters.calls,
            });
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests;
