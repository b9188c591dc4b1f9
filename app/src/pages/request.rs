//! One call's page, opened from the request log: what was asked, how it ended, its tokens and
//! cost (reported or estimated) against what a budget reserved, the headers Perpetuo added, and
//! each step: the attempts in order (provider, model, when, how long, how it ended) and the
//! candidates passed over. Server-rendered, so it reads the same without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::server_fns::usage::request_story;
use perpetuo_types::{RequestRow, format_cost, rfc3339_utc};

#[component]
pub fn RequestPage() -> impl IntoView {
    let params = use_params_map();
    let story = Resource::new(move || params.get().get("id").unwrap_or_default(), request_story);
    view! {
        <Title text="Call · Perpetuo"/>
        <p><a href="/usage">"← Usage"</a></p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match story.await {
                    Ok(row) => view! { <Story row=row/> }.into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Story(row: RequestRow) -> impl IntoView {
    let outcome = match &row.error_class {
        None => format!("{} (answered)", row.status),
        Some(class) => format!("{} ({class})", row.status),
    };
    let tokens = format!(
        "{} in ({} read from cache, {} written to it), {} out ({} reasoning): {}",
        row.tokens.prompt,
        row.tokens.cache_read,
        row.tokens.cache_write,
        row.tokens.completion,
        row.tokens.reasoning,
        if row.estimated {
            "partly Perpetuo's estimate (the provider did not report them all)"
        } else {
            "as the provider reported them"
        }
    );
    let reserved = match row.reserved_nanos {
        Some(nanos) => format!(
            "{} reserved ({} tokens), {} settled",
            format_cost(Some(nanos)),
            row.reserved_tokens.unwrap_or(0),
            format_cost(row.cost_nanos)
        ),
        None => "no budget applied".to_owned(),
    };
    let served = row.served_model.clone().map(|m| format!(" → {m}")).unwrap_or_default();
    let provider = row.provider_label.clone().unwrap_or_else(|| "–".into());
    let headers = format!(
        "x-request-id: {} · x-perpetuo-provider: {provider} · x-perpetuo-attempts: {}",
        row.request_id, row.attempts
    );
    let steps = row.timeline.clone();
    let none = steps
        .is_empty()
        .then(|| view! { <p class="muted">"This record was made before Perpetuo kept each call's steps."</p> });
    view! {
        <h1>{format!("Call {}", row.request_id)}</h1>
        <dl class="story" aria-label="Call">
            <dt>"Arrived"</dt><dd>{rfc3339_utc(row.ts)}</dd>
            <dt>"Key"</dt><dd>{row.key_name.clone()}</dd>
            <dt>"Route"</dt><dd>{format!("{}{}", row.route, if row.stream { " (stream)" } else { "" })}</dd>
            <dt>"Model"</dt><dd><code>{format!("{}{served}", row.model)}</code></dd>
            <dt>"Provider"</dt><dd>{provider}</dd>
            <dt>"Status"</dt><dd>{outcome}</dd>
            <dt>"Tokens"</dt><dd>{tokens}</dd>
            <dt>"Cost"</dt><dd>{format!("{} (from the price table or the workspace's own prices)", format_cost(row.cost_nanos))}</dd>
            <dt>"Budget"</dt><dd>{reserved}</dd>
            <dt>"Time"</dt><dd>{format!("{} ms in all{}", row.latency_ms, row.ttft_ms.map(|t| format!(", first token after {t} ms")).unwrap_or_default())}</dd>
            <dt>"Headers added"</dt><dd><code>{headers}</code></dd>
        </dl>
        <h2>"Steps"</h2>
        {none}
        <table class="list" aria-label="Steps">
            <thead><tr><th>"Attempt"</th><th>"Provider"</th><th>"Kind"</th><th>"Model"</th><th>"Started"</th><th>"Took"</th><th>"Outcome"</th></tr></thead>
            <tbody>
                {steps.into_iter().map(|s| view! {
                    <tr>
                        <td>{if s.attempt == 0 { "passed over".to_owned() } else { s.attempt.to_string() }}</td>
                        <td>{s.provider_label}</td>
                        <td>{s.provider_kind}</td>
                        <td><code>{s.model}</code></td>
                        <td>{format!("+{} ms", s.started_ms)}</td>
                        <td>{format!("{} ms", s.duration_ms)}</td>
                        <td>{s.outcome}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
