//! Limits in tokens and in flight on a page: the form that sets a scope's (filled with the
//! current ones) and what a provider last said about its own. Both work without JavaScript.

use leptos::prelude::*;

use crate::server_fns::limits::{RemoveLimits, SetLimits};
use perpetuo_types::{LimitView, ProviderPressure, format_ts};

/// The actions a limit form takes.
#[derive(Clone, Copy)]
pub struct LimitActions {
    pub set: ServerAction<SetLimits>,
    pub remove: ServerAction<RemoveLimits>,
}

impl LimitActions {
    pub fn new() -> Self {
        Self { set: ServerAction::new(), remove: ServerAction::new() }
    }

    /// Changes whenever a limit was set or removed (for the resources that list them).
    pub fn version(&self) -> (usize, usize) {
        (self.set.version().get(), self.remove.version().get())
    }
}

impl Default for LimitActions {
    fn default() -> Self {
        Self::new()
    }
}

/// The limits in words, or `None`.
pub fn describe(current: Option<&LimitView>) -> String {
    current.map_or_else(|| "None".to_owned(), |l| l.limits.describe())
}

/// The form that sets (or replaces) a scope's limits.
#[component]
pub fn LimitForm(
    /// `workspace`, `key:<id>` or `provider:<id>`.
    scope: String,
    current: Option<LimitView>,
    actions: LimitActions,
    /// Makes the fields' ids unique on a page with several forms.
    id: String,
) -> impl IntoView {
    let limits = current.as_ref().map(|c| c.limits).unwrap_or_default();
    let text = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let ids = ["input", "output", "total", "flight"].map(|f| format!("limit-{f}-{id}"));
    let remove_form = current.is_some().then(|| {
        let scope = scope.clone();
        view! {
            <ActionForm action=actions.remove attr:class="inline">
                <input type="hidden" name="scope" value=scope/>
                <button type="submit" class="secondary">"Remove limits"</button>
            </ActionForm>
        }
    });
    let set = actions.set;
    view! {
        <ActionForm action=set attr:class="limit-form">
            <input type="hidden" name="scope" value=scope/>
            <label for=ids[0].clone()>"Input tokens a minute"</label>
            <input id=ids[0].clone() name="input_tokens_per_min" type="number" min="1" placeholder="No limit" value=text(limits.input_tokens_per_min)/>
            <label for=ids[1].clone()>"Output tokens a minute"</label>
            <input id=ids[1].clone() name="output_tokens_per_min" type="number" min="1" placeholder="No limit" value=text(limits.output_tokens_per_min)/>
            <label for=ids[2].clone()>"Tokens a minute (input and output)"</label>
            <input id=ids[2].clone() name="tokens_per_min" type="number" min="1" placeholder="No limit" value=text(limits.tokens_per_min)/>
            <label for=ids[3].clone()>"Calls in flight at once"</label>
            <input id=ids[3].clone() name="max_in_flight" type="number" min="1" placeholder="No limit" value=text(limits.max_in_flight.map(u64::from))/>
            <button type="submit" disabled=move || set.pending().get()>"Save limits"</button>
        </ActionForm>
        {remove_form}
    }
}

/// A time to the second (a rest lasts seconds).
fn to_the_second(ms: i64) -> String {
    format!("{}:{:02}", format_ts(ms), ms.div_euclid(1000).rem_euclid(60))
}

/// What a provider last said about its own rate limits, in one line (a rest that ended is not
/// in the view).
pub fn pressure_text(p: &ProviderPressure) -> String {
    let mut parts = Vec::new();
    let left = |remaining: Option<u64>, limit: Option<u64>, what: &str| match (remaining, limit) {
        (Some(r), Some(l)) => Some(format!("{r} of {l} {what} left")),
        (Some(r), None) => Some(format!("{r} {what} left")),
        _ => None,
    };
    parts.extend(left(p.requests_remaining, p.requests_limit, "requests"));
    parts.extend(left(p.tokens_remaining, p.tokens_limit, "tokens"));
    let said = if parts.is_empty() { "–".to_owned() } else { parts.join(", ") };
    let mut line = format!("Its own limits (said {}): {said}", to_the_second(p.seen_at));
    if let Some(until) = p.resting_until {
        line.push_str(&format!(
            " · resting until {}: calls go to the next provider meanwhile ({})",
            to_the_second(until),
            p.reason.clone().unwrap_or_default()
        ));
    }
    line
}
