//! Tab 2: the workspace's provider accounts: add, edit, test, enable/disable, delete.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::form::{FormError, action_error, reset_on_success};
use crate::components::limit::{LimitActions, LimitForm, pressure_text};
use crate::server_fns::limits::list_limits;
use crate::server_fns::providers::{
    CreateProvider, DeleteProvider, TestProvider, UpdateProvider, list_providers, take_test_result,
};
use perpetuo_types::{
    BreakerState, KeyStatus, LimitScope, LimitView, ProviderHealth, ProviderKind, ProviderView, format_ts,
};

#[component]
pub fn ProvidersPage() -> impl IntoView {
    let create = ServerAction::<CreateProvider>::new();
    let update = ServerAction::<UpdateProvider>::new();
    let delete = ServerAction::<DeleteProvider>::new();
    let test = ServerAction::<TestProvider>::new();
    let providers = Resource::new(
        move || (create.version().get(), update.version().get(), delete.version().get(), test.version().get()),
        |_| list_providers(),
    );
    let limit_actions = LimitActions::new();
    let limits = Resource::new(move || limit_actions.version(), |_| list_limits());
    let create_form = reset_on_success(create);
    let errors = [
        action_error(create),
        action_error(update),
        action_error(delete),
        action_error(test),
        action_error(limit_actions.set),
        action_error(limit_actions.remove),
    ];
    let error = Signal::derive(move || errors.iter().find_map(|e| e.get()));

    // A test result comes from the action (hydrated page) or, posted without JavaScript, through
    // the session (never from the address: a link must not put words in the page).
    // Only after a test posted without JavaScript (`?tested=1`) is the session asked for its result:
    // other page loads leave the session alone.
    let tested = leptos_router::hooks::use_query_map().with_untracked(|q| q.get("tested").is_some());
    let stashed = OnceResource::new(async move { if tested { take_test_result().await } else { Ok(None) } });

    view! {
        <Title text="Providers · Perpetuo"/>
        <h1>"Providers"</h1>
        <p class="muted">"Your own accounts at LLM providers. Requests try enabled providers in priority order (lower first) and fall back to the next on failure."</p>
        <FormError message=error/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let result = match test.value().get() {
                    Some(Ok(result)) => Some((result.ok, result.message)),
                    _ => stashed.await.ok().flatten(),
                };
                result.map(|(ok, message)| view! {
                    <p role="status" class=if ok { "form-ok" } else { "form-error" } data-testid="test-result">{message}</p>
                })
            })}
        </Suspense>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                // Limits only add to the rows: without them (an error), the providers still show.
                let limits = limits.await.unwrap_or_default();
                match providers.await {
                    Ok(list) if list.is_empty() => view! {
                        <div class="empty" data-testid="no-providers">
                            <p>"No providers yet: Perpetuo has nowhere to send a call. Add one below with its API key: OpenAI, Anthropic, Gemini, Groq, Mistral, DeepSeek, OpenRouter, Together and xAI need nothing else; for any other host that speaks OpenAI's API (Ollama, vLLM, LM Studio, a company proxy) pick “OpenAI-compatible” and give its base URL, such as " <code>"http://localhost:11434/v1"</code> " (and any text as the key when the host needs none)."</p>
                            <p>"Hosts on this machine or a private network are refused unless the server runs with " <code>"ALLOW_PRIVATE_UPSTREAMS=true"</code> ". Then " <a href="/keys">"create an API key"</a> " to call it."</p>
                        </div>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="list" aria-label="Providers">
                            <thead><tr><th>"Label"</th><th>"Kind"</th><th>"Base URL"</th><th>"Key"</th><th>"Priority"</th><th>"Status"</th><th>"Actions"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|p| {
                                    let limit = limits.iter().find(|l| l.scope == LimitScope::Provider(p.id.clone())).cloned();
                                    view! { <ProviderRow provider=p limit=limit limits=limit_actions update=update delete=delete test=test/> }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>

        <h2>"Add a provider"</h2>
        <ActionForm action=create node_ref=create_form>
            <label for="provider-label">"Label"</label>
            <input id="provider-label" name="label" required maxlength="80" placeholder="OpenAI (production)"/>
            <label for="provider-kind">"Kind"</label>
            <select id="provider-kind" name="kind">
                {ProviderKind::ALL.into_iter().map(|k| view! { <option value=k.as_str()>{k.label()}</option> }).collect_view()}
            </select>
            <label for="provider-base-url">"Base URL"</label>
            <input id="provider-base-url" name="base_url" type="url" placeholder="Leave empty for the provider's default"/>
            <p class="hint">"Needed for OpenAI-compatible hosts (Ollama, vLLM, LM Studio…), such as http://localhost:11434/v1, and for Azure OpenAI: the resource's endpoint, such as https://RESOURCE.openai.azure.com (its deployments go in the allow-list, or aliases map model names to them)."</p>
            <label for="provider-api-version">"API version (Azure OpenAI)"</label>
            <input id="provider-api-version" name="api_version" placeholder="2024-10-21"/>
            <label for="provider-region">"Region (Google Vertex AI, Amazon Bedrock)"</label>
            <input id="provider-region" name="region" placeholder="global (Vertex AI), us-east-1 (Bedrock)"/>
            <label for="provider-key">"API key"</label>
            <input id="provider-key" name="api_key" type="password" autocomplete="off" required/>
            <p class="hint">"For Google Vertex AI (Claude or Gemini), paste the service account's JSON key (its project is the key's project_id). For Azure OpenAI, the resource's key, or Microsoft Entra ID client credentials as {\"tenant_id\": …, \"client_id\": …, \"client_secret\": …}. For Amazon Bedrock, a Bedrock API key, or IAM credentials as {\"access_key_id\": …, \"secret_access_key\": …} (and \"session_token\" for temporary ones); the region (default us-east-1) picks the endpoint."</p>
            <label for="provider-priority">"Priority"</label>
            <input id="provider-priority" name="priority" type="number" min="0" value="100"/>
            <label for="provider-models">"Model allow-list"</label>
            <textarea id="provider-models" name="models" rows="2" placeholder="Optional: model names separated by commas; empty means the provider's usual models"></textarea>
            <label for="provider-aliases">"Model aliases"</label>
            <textarea id="provider-aliases" name="aliases" rows="2" placeholder="Optional, one per line: claude-sonnet-* = gpt-4o"></textarea>
            <p class="hint">"A name clients send (exact, or a prefix ending in *) and the model this provider serves for it: an agent that only knows Anthropic names can be served here, and the other way round."</p>
            <TranslationChoices auto_cache=true refuse_hosted_tools=false prefix="new".into()/>
            <button type="submit" disabled=move || create.pending().get()>"Add provider"</button>
        </ActionForm>
    }
}

#[component]
fn ProviderRow(
    provider: ProviderView,
    limit: Option<LimitView>,
    limits: LimitActions,
    update: ServerAction<UpdateProvider>,
    delete: ServerAction<DeleteProvider>,
    test: ServerAction<TestProvider>,
) -> impl IntoView {
    let p = provider;
    let models = p.models.clone().unwrap_or_default().join(", ");
    let aliases: String = p.aliases.iter().map(|(name, model)| format!("{name} = {model}\n")).collect();
    let alias_summary = (!p.aliases.is_empty()).then(|| {
        let list: Vec<String> = p.aliases.iter().map(|(name, model)| format!("{name} → {model}")).collect();
        view! { <br/><span class="muted" data-testid="aliases">{format!("aliases: {}", list.join(", "))}</span> }
    });
    let breaker = p.health.as_ref().map_or(BreakerState::Closed, |h| h.breaker);
    let status = match (p.enabled, p.key_status, breaker) {
        (false, _, _) => view! { <span class="badge off">"Disabled"</span> }.into_any(),
        (true, KeyStatus::Rejected, _) => {
            view! { <span class="badge bad" title="The provider answered 401/403 with this key">"Key rejected"</span> }
                .into_any()
        }
        (true, KeyStatus::Ok, BreakerState::Open { .. }) => view! {
            <span class="badge bad" title="Its last calls failed in a row: calls skip it until its breaker's cool-down ends">"Failing"</span>
        }
        .into_any(),
        (true, KeyStatus::Ok, BreakerState::Probing) => {
            view! { <span class="badge" title="One call is trying it again">"Probing"</span> }.into_any()
        }
        (true, KeyStatus::Ok, BreakerState::Closed) => view! { <span class="badge">"Enabled"</span> }.into_any(),
    };
    let health = p.health.as_ref().map(|h| {
        let text = health_text(h);
        view! { <br/><span class="muted" data-testid="provider-health">{text}</span> }
    });
    let pressure = p.pressure.as_ref().map(|pressure| {
        let text = pressure_text(pressure);
        view! { <br/><span class="muted" data-testid="provider-pressure">{text}</span> }
    });
    let limit_text = (limit.is_some()).then(|| {
        let text = format!("Perpetuo's limits: {}", crate::components::limit::describe(limit.as_ref()));
        view! { <br/><span class="muted" data-testid="provider-limits">{text}</span> }
    });
    let (limit_scope, limit_summary) = (LimitScope::Provider(p.id.clone()).field(), format!("Limits for {}", p.label));
    let edit_id = format!("edit-{}", p.id);
    let (id_test, id_delete, id_update) = (p.id.clone(), p.id.clone(), p.id.clone());
    let (test_label, delete_label, edit_label) =
        (format!("Test {}", p.label), format!("Delete {}", p.label), format!("Edit {}", p.label));
    let (label_input, url_input, priority_input) = (p.label.clone(), p.base_url.clone(), p.priority.to_string());
    let ids = [
        format!("{edit_id}-label"),
        format!("{edit_id}-url"),
        format!("{edit_id}-key"),
        format!("{edit_id}-priority"),
        format!("{edit_id}-models"),
        format!("{edit_id}-aliases"),
        format!("{edit_id}-api-version"),
        format!("{edit_id}-region"),
    ];
    let enabled = p.enabled;
    let (auto_cache, refuse_hosted) = (p.auto_cache, p.refuse_hosted_tools);
    let api_version = p.api_version.clone().unwrap_or_default();
    let region = p.region.clone().unwrap_or_default();
    view! {
        <tr data-provider=p.label.clone()>
            <td>{p.label.clone()}</td>
            <td>{p.kind.label()}</td>
            <td><code>{p.base_url.clone()}</code></td>
            <td><code>{p.key_preview.clone()}</code></td>
            <td>{p.priority}</td>
            <td>{status}<br/><span class="muted">{format!("updated {}", format_ts(p.updated_at))}</span>{health}{pressure}{limit_text}{alias_summary}</td>
            <td>
                <ActionForm action=test attr:class="inline">
                    <input type="hidden" name="id" value=id_test/>
                    <button type="submit" class="secondary" aria-label=test_label>"Test"</button>
                </ActionForm>
                <ActionForm action=delete attr:class="inline">
                    <input type="hidden" name="id" value=id_delete/>
                    <button type="submit" class="danger" aria-label=delete_label>"Delete"</button>
                </ActionForm>
                <details class="edit">
                    <summary aria-label=limit_summary>"Limits"</summary>
                    <p class="hint">"This provider's share of its account's quota: calls beyond it go to the next provider."</p>
                    <LimitForm scope=limit_scope current=limit actions=limits id=p.id.clone()/>
                </details>
                <details class="edit">
                    <summary>{edit_label}</summary>
                    <ActionForm action=update>
                        <input type="hidden" name="id" value=id_update/>
                        <label for=ids[0].clone()>"Label"</label>
                        <input id=ids[0].clone() name="label" value=label_input required/>
                        <label for=ids[1].clone()>"Base URL"</label>
                        <input id=ids[1].clone() name="base_url" value=url_input/>
                        <label for=ids[2].clone()>"New API key"</label>
                        <input id=ids[2].clone() name="api_key" type="password" autocomplete="off" placeholder="Leave empty to keep the current key"/>
                        <label for=ids[6].clone()>"API version (Azure OpenAI)"</label>
                        <input id=ids[6].clone() name="api_version" value=api_version placeholder="2024-10-21"/>
                        <label for=ids[7].clone()>"Region (Google Vertex AI, Amazon Bedrock)"</label>
                        <input id=ids[7].clone() name="region" value=region placeholder="global (Vertex AI), us-east-1 (Bedrock)"/>
                        <label for=ids[3].clone()>"Priority"</label>
                        <input id=ids[3].clone() name="priority" type="number" min="0" value=priority_input/>
                        <label for=ids[4].clone()>"Model allow-list"</label>
                        <textarea id=ids[4].clone() name="models" rows="2">{models}</textarea>
                        <label for=ids[5].clone()>"Model aliases"</label>
                        <textarea id=ids[5].clone() name="aliases" rows="2" placeholder="One per line: claude-sonnet-* = gpt-4o">{aliases}</textarea>
                        <label><input type="checkbox" name="enabled" checked=enabled/>" Enabled"</label>
                        <TranslationChoices auto_cache=auto_cache refuse_hosted_tools=refuse_hosted prefix=edit_id.clone()/>
                        <button type="submit">"Save"</button>
                    </ActionForm>
                </details>
            </td>
        </tr>
    }
}

/// How calls translated for the provider are shaped: prompt-cache breakpoints (Anthropic) and
/// hosted tools it cannot run (dropped or refused).
#[component]
fn TranslationChoices(auto_cache: bool, refuse_hosted_tools: bool, prefix: String) -> impl IntoView {
    let (cache_id, hosted_id) = (format!("{prefix}-auto-cache"), format!("{prefix}-refuse-hosted"));
    view! {
        <label><input id=cache_id type="checkbox" name="auto_cache" checked=auto_cache/>" Place prompt-cache breakpoints on translated calls (Anthropic: long system prompts and conversations are read from the cache at a tenth of the price)"</label>
        <label><input id=hosted_id type="checkbox" name="refuse_hosted_tools" checked=refuse_hosted_tools/>" Refuse calls that offer hosted tools this provider cannot run (web search, …) instead of leaving the tools out"</label>
    }
}

/// A provider's last hour on this instance, in one line.
fn health_text(h: &ProviderHealth) -> String {
    let mut parts = vec![format!("This instance, last hour: {} calls, {} failed", h.calls, h.errors)];
    if let Some(rate) = (h.errors * 100).checked_div(h.calls) {
        parts[0].push_str(&format!(" ({rate}%)"));
    }
    if let (Some(p50), Some(p95)) = (h.p50_ms, h.p95_ms) {
        let ms = |v: u64| if v == u64::MAX { "over 300000".to_owned() } else { v.to_string() };
        parts.push(format!("p50 ≤ {} ms, p95 ≤ {} ms", ms(p50), ms(p95)));
    }
    parts.push(match h.last_success_at {
        Some(at) => format!("last success {}", format_ts(at)),
        None => "no success seen".to_owned(),
    });
    if let Some(error) = &h.last_error {
        parts.push(format!("last error {}: {} ({})", format_ts(error.at), error.class, error.message));
    }
    match h.breaker {
        BreakerState::Open { until } => parts.push(format!("breaker open until {}", format_ts(until))),
        BreakerState::Probing => parts.push("breaker probing".to_owned()),
        BreakerState::Closed => {}
    }
    parts.join(" · ")
}
