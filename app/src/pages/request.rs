//! One call's page, opened from the request log: what was asked, how it ended, its tokens and
//! cost (reported or estimated) against what a budget reserved, the headers Perpetuo added, and
//! each step: the attempts in order (provider, model, when, how long, how it ended) and the
//! candidates passed over; and, when the call was captured, its bodies (a stream also put back
//! together). Server-rendered, so it reads the same without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::server_fns::usage::request_story;
use perpetuo_types::{Bodies, CapturedBodies, CapturedBody, RequestRow, RequestStory, format_cost, rfc3339_utc};

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
                    Ok(RequestStory { row, bodies }) => view! { <Story row=row/> <BodiesView bodies=bodies/> }.into_any(),
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
    let cost = match row.price {
        Some(p) => format!(
            "{} at ${} in, ${} out per million tokens (cache reads ${}, writes ${}), {}",
            format_cost(row.cost_nanos),
            p.input_per_million,
            p.output_per_million,
            p.cache_read_per_million,
            p.cache_write_per_million,
            if p.workspace_price { "the workspace's own price" } else { "from the price table" }
        ),
        None if row.cost_nanos.is_some() => {
            format!("{} (from the price table or the workspace's own prices)", format_cost(row.cost_nanos))
        }
        None => "unknown: no price is known for this model (set one in Usage → Prices)".to_owned(),
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
            <dt>"Cost"</dt><dd>{cost}</dd>
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

/// The call's captured bodies, or why there are none to show.
#[component]
fn BodiesView(bodies: Bodies) -> impl IntoView {
    let inner = match bodies {
        Bodies::NotCaptured => view! {
            <p class="muted" data-testid="no-bodies">"No bodies were captured for this call (body capture is off for its workspace or key, the call was not in the sampled share, or they have been deleted)."</p>
        }
        .into_any(),
        Bodies::OwnersOnly => {
            view! { <p class="muted" data-testid="no-bodies">"This call's bodies were captured; only the workspace's owners can see them."</p> }
                .into_any()
        }
        Bodies::Captured(captured) => view! { <Captured captured=captured/> }.into_any(),
    };
    view! {
        <h2>"Bodies"</h2>
        {inner}
    }
}

#[component]
fn Captured(captured: CapturedBodies) -> impl IntoView {
    let CapturedBodies { request, response, reassembled, stream, expires_at } = captured;
    let response = match response {
        Some(body) => view! { <Body label="Response" body=body/> }.into_any(),
        None => view! { <p class="muted">"No response was captured."</p> }.into_any(),
    };
    let reassembled = reassembled.map(|text| {
        view! {
            <h3>"Stream, reassembled"</h3>
            <pre class="body" aria-label="Reassembled answer"><code>{text}</code></pre>
        }
    });
    view! {
        <p class="muted">{format!("Captured{}; deleted after {}.", if stream { " (the stream as the client got it)" } else { "" }, rfc3339_utc(expires_at))}</p>
        <Body label="Request" body=request/>
        {reassembled}
        {response}
    }
}

/// One body, pretty-printed when it is whole JSON, with what was cut or redacted.
#[component]
fn Body(label: &'static str, body: CapturedBody) -> impl IntoView {
    let text = serde_json::from_str::<serde_json::Value>(&body.text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body.text);
    let mut notes = vec![format!("{} bytes", body.bytes)];
    if body.truncated {
        notes.push("truncated at the size cap".to_owned());
    }
    if body.redacted > 0 {
        notes.push(format!("{} credential-like value(s) redacted", body.redacted));
    }
    view! {
        <h3>{format!("{label} ({})", notes.join(", "))}</h3>
        <pre class="body" aria-label=label><code>{text}</code></pre>
    }
}
