//! Budgets on a page: where a period stands (a progress bar of spent, reserved and left) and the
//! form that sets one. Both work without JavaScript.

use leptos::prelude::*;

use crate::server_fns::budgets::{RemoveBudget, SetBudget};
use perpetuo_types::{BudgetScope, BudgetView, format_ts};

/// `workspace` or `key:<id>`: the scope as the forms send it.
pub fn scope_field(scope: &BudgetScope) -> String {
    match scope {
        BudgetScope::Workspace => "workspace".into(),
        BudgetScope::Key(id) => format!("key:{id}"),
        BudgetScope::NewKeys => "new_keys".into(),
    }
}

fn dollars(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.01 { format!("${usd:.6}") } else { format!("${usd:.2}") }
}

/// The limits in words: `$25.00 and 1000000 tokens per month`.
pub fn describe(view: &BudgetView) -> String {
    let mut limits = Vec::new();
    if let Some(usd) = view.usd_limit {
        limits.push(dollars(usd));
    }
    if let Some(tokens) = view.token_limit {
        limits.push(format!("{tokens} tokens"));
    }
    let period = view.period_days.map_or_else(|| "per month".to_owned(), |d| format!("per {d} days"));
    format!("{} {period}", limits.join(" and "))
}

/// One budget's period: a labelled bar and the figures.
#[component]
pub fn BudgetBar(view: BudgetView) -> impl IntoView {
    let (spent, reserved) = view.bar();
    let name = match &view.scope {
        BudgetScope::Workspace => "Workspace".to_owned(),
        BudgetScope::Key(_) => format!("Key “{}”", view.key_name.clone().unwrap_or_default()),
        BudgetScope::NewKeys => "New keys'".to_owned(),
    };
    let mut figures = Vec::new();
    if view.usd_limit.is_some() {
        figures.push(format!(
            "{} spent, {} reserved, {} left",
            dollars(view.spent_usd),
            dollars(view.reserved_usd),
            dollars(view.left_usd().unwrap_or_default())
        ));
    }
    if view.token_limit.is_some() {
        figures.push(format!(
            "{} tokens used, {} reserved, {} left",
            view.spent_tokens,
            view.reserved_tokens,
            view.left_tokens().unwrap_or_default()
        ));
    }
    let label = format!("{name} budget: {}", describe(&view));
    let until = format!("Period {} – {}", format_ts(view.period_start), format_ts(view.period_end));
    let now = format!("{:.0}", spent + reserved);
    view! {
        <div class="budget" data-budget=name.clone()>
            <p><strong>{label.clone()}</strong> " · " <span class="muted">{until}</span></p>
            <div class="bar" role="progressbar" aria-label=label aria-valuemin="0" aria-valuemax="100" aria-valuenow=now>
                <span class="spent" style=format!("width: {spent:.1}%")></span>
                <span class="reserved" style=format!("width: {reserved:.1}%")></span>
            </div>
            <p class="muted">{figures.join("; ")}</p>
        </div>
    }
}

/// The form that sets (or replaces) a budget, filled with the current one.
#[component]
pub fn BudgetForm(
    scope: String,
    current: Option<BudgetView>,
    set: ServerAction<SetBudget>,
    remove: ServerAction<RemoveBudget>,
    /// Makes the fields' ids unique on a page with several forms.
    id: String,
) -> impl IntoView {
    let usd = current.as_ref().and_then(|c| c.usd_limit).map(|v| format!("{v}")).unwrap_or_default();
    let tokens = current.as_ref().and_then(|c| c.token_limit).map(|v| v.to_string()).unwrap_or_default();
    let days = current.as_ref().and_then(|c| c.period_days).map(|v| v.to_string()).unwrap_or_default();
    let allow = current.as_ref().is_some_and(|c| c.allow_unpriced);
    let ids = ["usd", "tokens", "days", "unpriced"].map(|f| format!("budget-{f}-{id}"));
    let remove_form = current.is_some().then(|| {
        let scope = scope.clone();
        view! {
            <ActionForm action=remove attr:class="inline">
                <input type="hidden" name="scope" value=scope/>
                <button type="submit" class="secondary">"Remove budget"</button>
            </ActionForm>
        }
    });
    view! {
        <ActionForm action=set attr:class="budget-form">
            <input type="hidden" name="scope" value=scope/>
            <label for=ids[0].clone()>"Dollar limit"</label>
            <input id=ids[0].clone() name="usd_limit" inputmode="decimal" placeholder="No dollar limit" value=usd/>
            <label for=ids[1].clone()>"Token limit"</label>
            <input id=ids[1].clone() name="token_limit" type="number" min="0" placeholder="No token limit" value=tokens/>
            <label for=ids[2].clone()>"Period (days)"</label>
            <input id=ids[2].clone() name="period_days" type="number" min="1" max="3660" placeholder="Calendar month" value=days/>
            <label class="check" for=ids[3].clone()>
                <input id=ids[3].clone() name="allow_unpriced" type="checkbox" value="on" checked=allow/>
                " Allow models with no known price"
            </label>
            <button type="submit" disabled=move || set.pending().get()>"Save budget"</button>
        </ActionForm>
        {remove_form}
    }
}
