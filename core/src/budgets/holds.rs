//! Reservations: a call's worst case held against every budget that applies (and extended for
//! another attempt), settled once at what the call was charged, and the sweep of holds no instance
//! settled. A call is served from this instance's slices of the budgets ([`super::escrow`]) when
//! they have room, and reserves in the database otherwise (near a limit, or while slices cannot be
//! renewed).

use super::slice::{Counter, Pair};
use super::*;

/// The part of a hold kept in this instance's slices.
#[derive(Clone)]
pub(super) struct LocalPart {
    slices: Vec<Arc<super::escrow::Slice>>,
    need: Need,
}

impl std::fmt::Debug for LocalPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPart").field("need", &self.need).finish_non_exhaustive()
    }
}

/// A reservation in the database (`budget_hold`).
#[derive(Debug, Clone)]
pub(super) struct DbPart {
    id: String,
    need: Need,
}

/// Splits what a call was charged over the parts of its hold, in order, each up to what it
/// holds (the last takes whatever is left).
fn split(parts: &[Need], charged: Need) -> Vec<Need> {
    let mut left = charged;
    let count = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let last = i + 1 == count;
            let take = if last {
                left
            } else {
                Need { nanos: left.nanos.min(part.nanos).max(0), tokens: left.tokens.min(part.tokens).max(0) }
            };
            left = Need { nanos: left.nanos - take.nanos, tokens: left.tokens - take.tokens };
            take
        })
        .collect()
}

/// Settles the part of a hold kept in slices (once); returns the shares of its database parts.
fn settle_slices(hold: &Hold, nanos: i64, tokens: i64) -> Vec<Need> {
    let charged = Need { nanos: nanos.max(0), tokens: tokens.max(0) };
    let parts: Vec<Need> = hold.local.iter().map(|l| l.need).chain(hold.db.iter().map(|d| d.need)).collect();
    let mut shares = split(&parts, charged);
    let db = shares.split_off(hold.local.len());
    if !hold.settled.swap(true, std::sync::atomic::Ordering::SeqCst) {
        for (part, share) in hold.local.iter().zip(shares) {
            for slice in &part.slices {
                slice.settle(part.need, share);
            }
        }
    }
    db
}

impl Hold {
    fn new(id: &str, ws: &WorkspaceId, counters: Vec<(Counter, Pair)>, uses: Vec<Value>) -> Self {
        Self {
            id: id.to_owned(),
            workspace: ws.as_str().to_owned(),
            need: Need::default(),
            local: Vec::new(),
            db: Vec::new(),
            uses,
            counters,
            settled: Arc::default(),
        }
    }

    /// Whether any part of it is held in the database.
    pub fn in_database(&self) -> bool {
        !self.db.is_empty()
    }
}

impl Budgets {
    /// Reserves `need` against every applicable budget, all or none, under the hold `id` (the
    /// request's id): from this instance's slices when they have room, else in the database
    /// (concurrent reservations on any instance serialise on the counters).
    pub async fn reserve(
        &self,
        ws: &WorkspaceId,
        applicable: &Applicable,
        id: &str,
        need: Need,
    ) -> Result<Hold, BudgetError> {
        let now = now_ms();
        let counters: Vec<(Counter, Pair)> =
            applicable.0.iter().map(|rule| Counter::of(ws.as_str(), rule, now)).collect();
        let uses: Vec<Value> = applicable
            .0
            .iter()
            .zip(&counters)
            .map(|(rule, (counter, _))| {
                json!({
                    "key": [counter.ws, counter.scope, counter.start],
                    "scope": counter.scope,
                    "nanos": rule.usd_nanos.unwrap_or(-1),
                    "tokens": rule.tokens.unwrap_or(-1),
                })
            })
            .collect();
        let mut hold = Hold::new(id, ws, counters, uses);
        hold.need = need;
        if let Some(slices) = self.escrow.take(&hold.counters, need, true).await {
            hold.local.push(LocalPart { slices, need });
            return Ok(hold);
        }
        self.escrow.give_back(&hold.counters).await;
        self.take(ws, applicable, &hold.uses, id, need, 1, now).await?;
        hold.db.push(DbPart { id: id.to_owned(), need });
        Ok(hold)
    }

    /// Reserves `more` under an existing hold (another attempt that may be billed), against the
    /// same counters and limits, all or none.
    pub async fn extend(
        &self,
        ws: &WorkspaceId,
        applicable: &Applicable,
        hold: &mut Hold,
        more: Need,
    ) -> Result<(), BudgetError> {
        if hold.settled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BudgetError::Service(ServiceError::Invalid(
                "This call's reservation is already settled.".into(),
            )));
        }
        if let Some(slices) = self.escrow.take(&hold.counters, more, false).await {
            hold.local.push(LocalPart { slices, need: more });
        } else {
            self.escrow.give_back(&hold.counters).await;
            let id = format!("{}~{}", hold.id, hold.local.len() + hold.db.len());
            self.take(ws, applicable, &hold.uses, &id, more, 0, now_ms()).await?;
            hold.db.push(DbPart { id, need: more });
        }
        hold.need.nanos = hold.need.nanos.saturating_add(more.nanos);
        hold.need.tokens = hold.need.tokens.saturating_add(more.tokens);
        Ok(())
    }

    /// Reserves `need` in the database under the hold `id`, retrying write conflicts; a budget
    /// it does not fit is refused with a message naming it. `calls`: the calls it counts (1 for a
    /// call's first reservation, 0 for an extension).
    #[allow(clippy::too_many_arguments)]
    async fn take(
        &self,
        ws: &WorkspaceId,
        applicable: &Applicable,
        uses: &[Value],
        id: &str,
        need: Need,
        calls: i64,
        now: i64,
    ) -> Result<(), BudgetError> {
        let query = "BEGIN TRANSACTION;
            FOR $u IN $uses {
                LET $at = type::record('budget_use', $u.key);
                INSERT IGNORE INTO budget_use { id: $at, workspace: $ws };
                LET $taken = (UPDATE $at SET reserved_nanos += $n, reserved_tokens += $t, calls += $calls
                    WHERE ($u.nanos < 0 OR spent_nanos + reserved_nanos + $n <= $u.nanos)
                      AND ($u.tokens < 0 OR spent_tokens + reserved_tokens + $t <= $u.tokens)
                    RETURN AFTER);
                IF array::len($taken) = 0 { THROW 'budget_exceeded:' + $u.scope; };
            };
            CREATE type::record('budget_hold', $id) CONTENT {
                workspace: $ws,
                uses: $uses.map(|$u| type::record('budget_use', $u.key)),
                nanos: $n, tokens: $t, at: $now
            } RETURN NONE;
            COMMIT TRANSACTION;";
        let retried = self.db.retrying(CONFLICT_ATTEMPTS, || async {
            let mut response = self
                .db
                .query(query)
                .bind(("uses", uses.to_vec()))
                .bind(("ws", ws.as_str().to_owned()))
                .bind(("n", need.nanos))
                .bind(("t", need.tokens))
                .bind(("calls", calls))
                .bind(("id", id.to_owned()))
                .bind(("now", now))
                .await?;
            root_cause(response.take_errors()).map_or(Ok(()), Err)
        });
        let sent = self.in_turn(ws.as_str(), retried).await;
        let Err(error) = sent else { return Ok(()) };
        let message = error.message();
        if let Some(scope) = message.split("budget_exceeded:").nth(1) {
            let scope = scope.split(['\'', '"', ' ']).next().unwrap_or("").to_owned();
            let rule = applicable.0.iter().find(|r| r.stored_scope() == scope).or(applicable.0.first());
            return Err(BudgetError::Exceeded(self.refusal(ws, rule, need, now).await));
        }
        if is_retryable(&error) {
            // Still losing after every try: the database is too contended to answer now.
            return Err(BudgetError::Service(ServiceError::Unavailable));
        }
        Err(error.into())
    }

    /// The message of a refusal: which budget, what the call could cost, what is left.
    async fn refusal(&self, ws: &WorkspaceId, rule: Option<&Rule>, need: Need, now: i64) -> String {
        let Some(rule) = rule else {
            return "This request does not fit the budget.".into();
        };
        let (start, end) = rule.period.current(now);
        let counters = self.counters(ws, rule, start).await.unwrap_or_default();
        let until = perpetuo_types::time::rfc3339_utc(end);
        let period = match rule.period {
            Period::Month => "this month".to_owned(),
            Period::Days { days, .. } => format!("this {days}-day period"),
        };
        let mut parts = Vec::new();
        if let Some(limit) = rule.usd_nanos {
            let left = (limit - counters.spent_nanos - counters.reserved_nanos).max(0);
            parts.push(format!(
                "it could cost up to {}, and {} of {} for {period} has {} left ({} spent, {} set aside for calls in flight)",
                format_usd(need.nanos),
                rule.name(),
                format_usd(limit),
                format_usd(left),
                format_usd(counters.spent_nanos),
                format_usd(counters.reserved_nanos),
            ));
        }
        if let Some(limit) = rule.tokens {
            let left = (limit - counters.spent_tokens - counters.reserved_tokens).max(0);
            parts.push(format!(
                "it could use up to {} tokens, and the token limit of {} ({limit} for {period}) has {left} left",
                need.tokens,
                rule.name(),
            ));
        }
        format!("This request does not fit the budget: {}. The period ends at {until}.", parts.join("; "))
    }

    /// Settles a hold at what the call actually cost and used (once: a second settlement of the
    /// same hold changes nothing). The charge is split over the hold's parts in order (its slices'
    /// parts, then its database reservations), each up to what it holds.
    pub async fn settle(&self, hold: &Hold, nanos: i64, tokens: i64) -> Result<(), ServiceError> {
        let db = settle_slices(hold, nanos, tokens);
        for (part, share) in hold.db.iter().zip(db) {
            self.settle_in_database(&part.id, &hold.workspace, share).await?;
        }
        Ok(())
    }

    /// Settles one reservation in the database (once: it is removed with its settlement).
    async fn settle_in_database(&self, id: &str, ws: &str, charged: Need) -> Result<(), ServiceError> {
        let query = "BEGIN TRANSACTION;
            LET $h = (SELECT * FROM type::record('budget_hold', $id))[0];
            IF $h != NONE {
                FOR $u IN $h.uses {
                    UPDATE $u SET reserved_nanos -= $h.nanos, reserved_tokens -= $h.tokens,
                        spent_nanos += $n, spent_tokens += $t;
                };
                DELETE type::record('budget_hold', $id);
            };
            COMMIT TRANSACTION;";
        let retried = self.db.retrying(CONFLICT_ATTEMPTS, || async {
            let mut response = self
                .db
                .query(query)
                .bind(("id", id.to_owned()))
                .bind(("n", charged.nanos))
                .bind(("t", charged.tokens))
                .await?;
            root_cause(response.take_errors()).map_or(Ok(()), Err)
        });
        match self.in_turn(ws, retried).await {
            Ok(()) => Ok(()),
            Err(e) if is_retryable(&e) => Err(ServiceError::Unavailable),
            Err(e) => Err(e.into()),
        }
    }

    /// Settles, in the background, retrying while the database is away (up to `patience`); what
    /// is never settled is charged at its worst case by [`Budgets::sweep`].
    pub fn settle_later(&self, hold: Hold, nanos: i64, tokens: i64, patience: Duration) {
        if hold.db.is_empty() {
            // Held in this instance's slices alone: settled in memory, now.
            settle_slices(&hold, nanos, tokens);
            return;
        }
        let budgets = self.clone();
        let settle = async move {
            let started = std::time::Instant::now();
            let mut wait = Duration::from_millis(100);
            loop {
                match budgets.settle(&hold, nanos, tokens).await {
                    Ok(()) => return,
                    Err(e) if started.elapsed() >= patience => {
                        tracing::warn!(error = %e, "a budget hold could not be settled; the sweeper will charge its worst case");
                        return;
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        };
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(settle)),
            None => drop(tokio::spawn(settle)),
        }
    }

    /// Charges holds older than `age` at their worst case (their instance never settled them).
    /// Returns how many.
    pub async fn sweep(&self, age: Duration) -> Result<usize, ServiceError> {
        #[derive(SurrealValue)]
        struct Stale {
            id: String,
            workspace: String,
            nanos: i64,
            tokens: i64,
        }
        let before = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let mut response = self
            .db
            .query(
                "SELECT record::id(id) AS id, workspace, nanos, tokens FROM budget_hold WHERE at < $before LIMIT 1000",
            )
            .bind(("before", before))
            .await?;
        let stale: Vec<Stale> = response.take(0)?;
        for hold in &stale {
            let need = Need { nanos: hold.nanos, tokens: hold.tokens };
            self.settle_in_database(&hold.id, &hold.workspace, need).await?;
        }
        Ok(stale.len())
    }
}
