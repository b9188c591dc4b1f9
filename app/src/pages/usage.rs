//! Tab 4: what the workspace's apps used and spent, and every request. Filters are plain GET
//! forms and links, so the tab works the same without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::budget::BudgetBar;
use crate::components::chart::{Measure, StackedBars};
use crate::components::form::{FormError, action_error};
use crate::server_fns::budgets::list_budgets;
use crate::server_fns::usage::{Choice, DeletePrice, SetPrice, UsageData, UsageQuery, usage_report};
use perpetuo_types::{
    AttemptStep, GroupBy, ProviderKind, RequestRow, format_cost, format_day, format_ts, query_string,
};

fn query_from_url(q: &leptos_router::params::ParamsMap) -> UsageQuery {
    UsageQuery {
        period: q.get("period"),
        from: q.get("from"),
        to: q.get("to"),
        by: q.get("by"),
        key: q.get("key"),
        provider: q.get("provider"),
        model: q.get("model"),
        route: q.get("route"),
        status: q.get("status"),
        cursor: q.get("cursor"),
    }
}

fn link(q: &UsageQuery, cursor: Option<&str>) -> String {
    query_string(&[
        ("period", q.period.as_deref().unwrap_or_default()),
        ("from", q.from.as_deref().unwrap_or_default()),
        ("to", q.to.as_deref().unwrap_or_default()),
        ("by", q.by.as_deref().unwrap_or_default()),
        ("key", q.key.as_deref().unwrap_or_default()),
        ("provider", q.provider.as_deref().unwrap_or_default()),
        ("model", q.model.as_deref().unwrap_or_default()),
        ("route", q.route.as_deref().unwrap_or_default()),
        ("status", q.status.as_deref().unwrap_or_default()),
        ("cursor", cursor.unwrap_or_default()),
    ])
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let set_price = ServerAction::<SetPrice>::new();
    let delete_price = ServerAction::<DeletePrice>::new();
    let report = Resource::new(
        move || (query_from_url(&query.get()), set_price.version().get(), delete_price.version().get()),
        |(q, _, _)| usage_report(q),
    );
    let budgets = Resource::new(|| (), |_| list_budgets());
    let price_errors = [action_error(set_price), action_error(delete_price)];
    let price_error = Signal::derive(move || price_errors.iter().find_map(|e| e.get()));
    view! {
        <Title text="Usage · Perpetuo"/>
        <h1>"Usage"</h1>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match budgets.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => view! {
                        <section aria-label="Budgets">
                            <h2>"Budgets"</h2>
                            {list.into_iter().map(|view| view! { <BudgetBar view=view/> }).collect_view()}
                        </section>
                    }.into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let q = query_from_url(&query.get_untracked());
                match report.await {
                    Ok(data) => view! { <Report data=data q=q set_price=set_price delete_price=delete_price/> }.into_any(),
                    Err(e) => view! {
                        <p class="form-error" role="alert">{e.to_string()}</p>
                        <p><a href="/usage">"Back to the last 30 days"</a></p>
                    }.into_any(),
                }
            })}
        </Transition>
        <FormError message=price_error/>
    }
}

fn options(choices: &[Choice], selected: Option<&str>, any: &'static str) -> AnyView {
    let selected = selected.unwrap_or_default().to_owned();
    let items = choices
        .iter()
        .map(|c| {
            let is = c.value == selected;
            view! { <option value=c.value.clone() selected=is>{c.label.clone()}</option> }
        })
        .collect_view();
    view! { <option value="">{any}</option>{items} }.into_any()
}

#[component]
fn Report(
    data: UsageData,
    q: UsageQuery,
    set_price: ServerAction<SetPrice>,
    delete_price: ServerAction<DeletePrice>,
) -> impl IntoView {
    let s = data.summary.clone();
    let error_rate =
        if s.requests > 0 { format!("{:.1}%", 100.0 * s.errors as f64 / s.requests as f64) } else { "–".into() };
    let ms = |v: Option<i64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v} ms"));
    let cost = match (s.cost_nanos, s.unpriced_requests) {
        (None, 0) => "$0".to_owned(),
        (None, _) => "unknown".to_owned(),
        (Some(c), 0) => format_cost(Some(c)),
        (Some(c), n) => format!("{} + {n} unpriced", format_cost(Some(c))),
    };
    let period_value = q
        .period
        .clone()
        .unwrap_or_else(|| if q.from.is_some() || q.to.is_some() { "custom".into() } else { "30d".into() });
    let by = data.by;
    let by_label = match by {
        GroupBy::Day => "model",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::Key => "API key",
    };
    let models: Vec<Choice> = data.models.iter().map(|m| Choice { value: m.clone(), label: m.clone() }).collect();
    let status_value = data.status.as_query();
    let newer = q.cursor.is_some().then(|| format!("/usage?{}", link(&q, None)));
    let older = data.log.next_cursor.as_deref().map(|c| format!("/usage?{}", link(&q, Some(c))));
    let csv = format!("/usage/export.csv?{}", link(&q, None));
    let shown = data.log.data.len();
    let total = data.log.total;
    let filtered = [&q.key, &q.provider, &q.model, &q.route, &q.status]
        .iter()
        .any(|f| f.as_deref().is_some_and(|v| !v.is_empty()));
    let empty = (total == 0).then(|| {
        if filtered {
            view! { <p class="empty" data-testid="no-usage">"No request matches these filters in this period."</p> }.into_any()
        } else {
            view! {
                <div class="empty" data-testid="no-usage">
                    <p>"No calls in this period yet. Every call to " <code>"/v1"</code> " with one of this workspace's " <a href="/keys">"API keys"</a> " appears here within a second of its answer: time, key, provider, model, status, tokens, cost and latency, failed calls included; the totals and the chart above follow."</p>
                </div>
            }.into_any()
        }
    });
    view! {
        <form method="get" action="/usage" class="filters" aria-label="Period">
            <label>"Period"
                <select name="period">
                    {[("today", "Today"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("custom", "Custom")].into_iter().map(|(v, l)| {
                        let is = v == period_value;
                        view! { <option value=v selected=is>{l}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"From" <input type="date" name="from" value=format_day(data.period.from_day)/></label>
            <label>"To" <input type="date" name="to" value=format_day(data.period.to_day)/></label>
            <label>"Break down by"
                <select name="by">
                    {[("model", "Model"), ("provider", "Provider"), ("key", "API key")].into_iter().map(|(v, l)| {
                        let is = v == by.as_str();
                        view! { <option value=v selected=is>{l}</option> }
                    }).collect_view()}
                </select>
            </label>
            <button type="submit">"Apply"</button>
        </form>
        <p class="muted">{format!("{} to {} (UTC)", format_day(data.period.from_day), format_day(data.period.to_day))}</p>

        <div class="cards" data-testid="usage-summary">
            <Card label="Requests" value=s.requests.to_string()/>
            <Card label="Error rate" value=error_rate/>
            <Card label="Prompt tokens" value=s.tokens.prompt.to_string()/>
            <Card label="Completion tokens" value=s.tokens.completion.to_string()/>
            <Card label="Cached prompt tokens" value=format!("{} read / {} written", s.tokens.cache_read, s.tokens.cache_write)/>
            <Card label="Reasoning tokens" value=s.tokens.reasoning.to_string()/>
            <Card label="Estimated cost" value=cost/>
            <Card label="Latency p50" value=ms(s.latency_p50_ms)/>
            <Card label="Latency p95" value=ms(s.latency_p95_ms)/>
            <Card label="Time to first token p50" value=ms(s.ttft_p50_ms)/>
        </div>

        <StackedBars title=format!("Requests per day by {by_label}") points=data.series.clone() from_day=data.period.from_day to_day=data.period.to_day measure=Measure::Requests/>
        <StackedBars title=format!("Cost per day by {by_label}") points=data.series.clone() from_day=data.period.from_day to_day=data.period.to_day measure=Measure::Cost/>

        <h2>{format!("By {by_label}")}</h2>
        <table class="list" aria-label="Breakdown">
            <thead><tr><th>{by_label}</th><th>"Requests"</th><th>"Errors"</th><th>"Prompt tokens"</th><th>"Completion tokens"</th><th>"Cost"</th></tr></thead>
            <tbody>
                {data.groups.iter().map(|g| view! {
                    <tr>
                        <td>{g.label.clone()}</td><td>{g.requests}</td><td>{g.errors}</td><td>{g.tokens.prompt}</td><td>{g.tokens.completion}</td>
                        <td>{if g.unpriced_requests > 0 && g.cost_nanos.is_some() { format!("{} + {} unpriced", format_cost(g.cost_nanos), g.unpriced_requests) } else { format_cost(g.cost_nanos) }}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>

        <h2>"Requests"</h2>
        <form method="get" action="/usage" class="filters" aria-label="Request filters">
            <input type="hidden" name="period" value=q.period.clone().unwrap_or_default()/>
            <input type="hidden" name="from" value=q.from.clone().unwrap_or_default()/>
            <input type="hidden" name="to" value=q.to.clone().unwrap_or_default()/>
            <input type="hidden" name="by" value=q.by.clone().unwrap_or_default()/>
            <label>"API key" <select name="key">{options(&data.keys, q.key.as_deref(), "Any key")}</select></label>
            <label>"Provider" <select name="provider">{options(&data.providers, q.provider.as_deref(), "Any provider")}</select></label>
            <label>"Model" <select name="model">{options(&models, q.model.as_deref(), "Any model")}</select></label>
            <label>"Route"
                <select name="route">
                    <option value="">"Any route"</option>
                    {perpetuo_types::ROUTES.into_iter().map(|r| {
                        let is = q.route.as_deref() == Some(r);
                        view! { <option value=r selected=is>{r}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Status"
                <select name="status">
                    {[("", "Any status"), ("ok", "Succeeded"), ("error", "Failed"), ("429", "429"), ("502", "502")].into_iter().map(|(v, l)| {
                        let is = v == status_value;
                        view! { <option value=v selected=is>{l}</option> }
                    }).collect_view()}
                </select>
            </label>
            <button type="submit">"Filter"</button>
        </form>
        <p class="muted" data-testid="request-count">{format!("{total} matching requests, showing {shown}.")} " " <a href=csv download="perpetuo-requests.csv">"Export CSV"</a></p>
        {empty}
        <table class="list" aria-label="Request log">
            <thead><tr><th>"Time (UTC)"</th><th>"Key"</th><th>"Provider"</th><th>"Model"</th><th>"Route"</th><th>"Status"</th><th>"Tokens in/out"</th><th>"Cached / reasoning"</th><th>"Cost"</th><th>"Latency"</th><th>"Attempts"</th></tr></thead>
            <tbody>{data.log.data.into_iter().map(|r| view! { <LogRow row=r/> }).collect_view()}</tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            {newer.map(|href| view! { <a href=href>"← Newest"</a> })}
            {older.map(|href| view! { <a href=href>"Older →"</a> })}
        </nav>

        <h2>"Prices"</h2>
        <p class="muted">{format!("Costs are estimates from the price table (as of {}), or from your own prices below, which apply to new requests.", data.prices_as_of)}</p>
        <table class="list" aria-label="Your prices">
            <thead><tr><th>"Provider kind"</th><th>"Model"</th><th>"Input $/1M"</th><th>"Output $/1M"</th><th></th></tr></thead>
            <tbody>
                {data.overrides.into_iter().map(|o| {
                    let (kind, model) = (o.kind.clone(), o.model.clone());
                    let label = format!("Remove price for {}", o.model);
                    view! {
                        <tr>
                            <td>{o.kind.clone()}</td><td>{o.model.clone()}</td><td>{o.input_per_million}</td><td>{o.output_per_million}</td>
                            <td>
                                <ActionForm action=delete_price attr:class="inline">
                                    <input type="hidden" name="kind" value=kind/>
                                    <input type="hidden" name="model" value=model/>
                                    <button type="submit" class="danger" aria-label=label>"Remove"</button>
                                </ActionForm>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <ActionForm action=set_price attr:class="filters">
            <label>"Provider kind"
                <select name="kind">{ProviderKind::ALL.into_iter().map(|k| view! { <option value=k.as_str()>{k.label()}</option> }).collect_view()}</select>
            </label>
            <label>"Model" <input name="model" required/></label>
            <label>"Input $/1M tokens" <input name="input_per_million" type="number" step="any" min="0" required/></label>
            <label>"Output $/1M tokens" <input name="output_per_million" type="number" step="any" min="0" required/></label>
            <button type="submit">"Set price"</button>
        </ActionForm>
    }
}

#[component]
fn Card(label: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="card"><div class="value">{value}</div><div class="label">{label}</div></div>
    }
}

#[component]
fn LogRow(row: RequestRow) -> impl IntoView {
    let status = if row.ok {
        view! { <span class="badge">{row.status}</span> }.into_any()
    } else {
        let class = row.error_class.clone().unwrap_or_default();
        view! { <span class="badge bad" title=class>{row.status}</span> }.into_any()
    };
    view! {
        <tr>
            <td>{format_ts(row.ts)}</td>
            <td>{row.key_name}</td>
            <td>{row.provider_label.unwrap_or_else(|| "–".into())}</td>
            <td>
                <code>{row.model}</code>{row.served_model.map(|m| view! { " → " <code>{m}</code> })}{row.stream.then_some(" (stream)")}
                {row.dropped_tools.map(|tools| view! { <br/><span class="muted" title="Hosted tools the client offered that this provider cannot run: the call went on without them">{format!("without {tools}")}</span> })}
            </td>
            <td>{row.route}</td>
            <td>{status}</td>
            <td>{format!("{} / {}", row.tokens.prompt, row.tokens.completion)}</td>
            <td>{format!("{} / {}", row.tokens.cache_read + row.tokens.cache_write, row.tokens.reasoning)}</td>
            <td>{format_cost(row.cost_nanos)}</td>
            <td>{format!("{} ms", row.latency_ms)}</td>
            <td>{row.attempts}{steps(&row.request_id, &row.timeline)}</td>
        </tr>
    }
}

/// The call's steps, opened from its row (a native `<details>`: no script needed).
fn steps(request_id: &str, timeline: &[AttemptStep]) -> Option<AnyView> {
    if timeline.is_empty() {
        return None;
    }
    let items: Vec<String> = timeline
        .iter()
        .map(|s| {
            let what = if s.attempt == 0 { "passed over".to_owned() } else { format!("attempt {}", s.attempt) };
            format!(
                "{what}: {} ({}, {}) at +{} ms, {} ms: {}",
                s.provider_label, s.provider_kind, s.model, s.started_ms, s.duration_ms, s.outcome
            )
        })
        .collect();
    let label = format!("Steps of {request_id}");
    let (href, call) = (format!("/usage/requests/{request_id}"), format!("Call {request_id}"));
    Some(
        view! {
            <details class="steps">
                <summary aria-label=label>"steps"</summary>
                <ol>{items.into_iter().map(|item| view! { <li>{item}</li> }).collect_view()}</ol>
                <a href=href aria-label=call>"the whole call"</a>
            </details>
        }
        .into_any(),
    )
}
