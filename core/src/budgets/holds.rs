//! Reservations: a call's worst case held against every budget that applies (and extended for
//! another attempt), settled once at what the call was charged, and the sweep of holds no instance
//! settled.

use super::*;

impl Budgets {
    /// Reserves `need` against every applicable budget, all or none, under the hold `id` (the
    /// request's id). Concurrent reservations on any instance serialise on the counters.
    pub async fn reserve(
        &self,
        ws: &WorkspaceId,
        applicable: &Applicable,
        id: &str,
        need: Need,
    ) -> Result<Hold, BudgetError> {
        let now = now_ms();
        let uses: Vec<Value> = applicable
            .0
            .iter()
            .map(|rule| {
                let (start, _) = rule.period.current(now);
                json!({
                    "key": [ws.as_str(), rule.stored_scope(), start],
                    "scope": rule.stored_scope(),
                    "nanos": rule.usd_nanos.unwrap_or(-1),
                    "tokens": rule.tokens.unwrap_or(-1),
                })
            })
            .collect();
        let query = "BEGIN TRANSACTION;
            FOR $u IN $uses {
                LET $at = type::record('budget_use', $u.key);
                INSERT IGNORE INTO budget_use { id: $at, workspace: $ws };
                LET $taken = (UPDATE $at SET reserved_nanos += $n, reserved_tokens += $t, calls += 1
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
        let hold = Hold { id: id.to_owned(), workspace: ws.as_str().to_owned(), need, uses };
        self.take(ws, applicable, query, &hold, need, now).await?;
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
        let query = "BEGIN TRANSACTION;
            IF (SELECT VALUE id FROM type::record('budget_hold', $id)) = [] { THROW 'hold_missing'; };
            FOR $u IN $uses {
                LET $at = type::record('budget_use', $u.key);
                LET $taken = (UPDATE $at SET reserved_nanos += $n, reserved_tokens += $t
                    WHERE ($u.nanos < 0 OR spent_nanos + reserved_nanos + $n <= $u.nanos)
                      AND ($u.tokens < 0 OR spent_tokens + reserved_tokens + $t <= $u.tokens)
                    RETURN AFTER);
                IF array::len($taken) = 0 { THROW 'budget_exceeded:' + $u.scope; };
            };
            UPDATE type::record('budget_hold', $id) SET nanos += $n, tokens += $t RETURN NONE;
            COMMIT TRANSACTION;";
        self.take(ws, applicable, query, hold, more, now_ms()).await?;
        hold.need.nanos = hold.need.nanos.saturating_add(more.nanos);
        hold.need.tokens = hold.need.tokens.saturating_add(more.tokens);
        Ok(())
    }

    /// Runs a reservation transaction for `need` under `hold`, retrying write conflicts; a
    /// budget it does not fit is refused with a message naming it.
    async fn take(
        &self,
        ws: &WorkspaceId,
        applicable: &Applicable,
        query: &str,
        hold: &Hold,
        need: Need,
        now: i64,
    ) -> Result<(), BudgetError> {
        let retried = self.db.retrying(CONFLICT_ATTEMPTS, || async {
            let mut response = self
                .db
                .query(query)
                .bind(("uses", hold.uses.clone()))
                .bind(("ws", ws.as_str().to_owned()))
                .bind(("n", need.nanos))
                .bind(("t", need.tokens))
                .bind(("id", hold.id.clone()))
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
                "it could cost up to {}, and {} of {} for {period} has {} left ({} spent, {} reserved by calls in flight)",
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
    /// same hold changes nothing).
    pub async fn settle(&self, hold: &Hold, nanos: i64, tokens: i64) -> Result<(), ServiceError> {
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
                .bind(("id", hold.id.clone()))
                .bind(("n", nanos.max(0)))
                .bind(("t", tokens.max(0)))
                .await?;
            root_cause(response.take_errors()).map_or(Ok(()), Err)
        });
        let settled = self.in_turn(&hold.workspace, retried).await;
        match settled {
            Ok(()) => Ok(()),
            Err(e) if is_retryable(&e) => Err(ServiceError::Unavailable),
            Err(e) => Err(e.into()),
        }
    }

    /// Settles, in the background, retrying while the database is away (up to `patience`); what
    /// is never settled is charged at its worst case by [`Budgets::sweep`].
    pub fn settle_later(&self, hold: Hold, nanos: i64, tokens: i64, patience: Duration) {
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
            let stale = Hold { id: hold.id.clone(), workspace: hold.workspace.clone(), need, uses: Vec::new() };
            self.settle(&stale, hold.nanos, hold.tokens).await?;
        }
        Ok(stale.len())
    }
}
