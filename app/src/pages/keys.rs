//! Tab 3: the workspace's Perpetuo API keys: create (token shown once), revoke, delete.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::budget::{BudgetForm, describe, scope_field};
use crate::components::form::{FormError, action_error, reset_on_success};
use crate::components::limit::{LimitActions, LimitForm};
use crate::server_fns::budgets::{RemoveBudget, SetBudget, list_budgets};
use crate::server_fns::captures::SetKeyCapture;
use crate::server_fns::keys::{CreateKey, DeleteKey, RevokeKey, first_call, list_keys, take_created_key};
use crate::server_fns::limits::list_limits;
use perpetuo_types::{
    ApiKeyView, BudgetScope, BudgetView, CreatedApiKey, KeyCapture, KeyState, LimitScope, LimitView, format_ts,
};

/// The actions a key row offers.
#[derive(Clone, Copy)]
struct RowActions {
    revoke: ServerAction<RevokeKey>,
    delete: ServerAction<DeleteKey>,
    set_budget: ServerAction<SetBudget>,
    remove_budget: ServerAction<RemoveBudget>,
    set_capture: ServerAction<SetKeyCapture>,
    limits: LimitActions,
}

#[component]
pub fn KeysPage() -> impl IntoView {
    let create = ServerAction::<CreateKey>::new();
    let revoke = ServerAction::<RevokeKey>::new();
    let delete = ServerAction::<DeleteKey>::new();
    let set_budget = ServerAction::<SetBudget>::new();
    let remove_budget = ServerAction::<RemoveBudget>::new();
    let set_capture = ServerAction::<SetKeyCapture>::new();
    let limit_actions = LimitActions::new();
    let actions = RowActions { revoke, delete, set_budget, remove_budget, set_capture, limits: limit_actions };
    // A key created gets the defaults for new keys: its row reads them afresh.
    let limits = Resource::new(move || (limit_actions.version(), create.version().get()), |_| list_limits());
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get(), delete.version().get(), set_capture.version().get()),
        |_| list_keys(),
    );
    let budgets = Resource::new(
        move || (set_budget.version().get(), remove_budget.version().get(), create.version().get()),
        |_| list_budgets(),
    );
    // A key created by a form post without JavaScript comes back once through the session.
    let stashed = OnceResource::new(take_created_key());
    // The address and a model for the curl line that tries a key.
    let try_it = OnceResource::new(first_call());
    let create_form = reset_on_success(create);
    let errors = [
        action_error(create),
        action_error(revoke),
        action_error(delete),
        action_error(set_budget),
        action_error(remove_budget),
        action_error(set_capture),
        action_error(limit_actions.set),
        action_error(limit_actions.remove),
    ];
    let error = Signal::derive(move || errors.iter().find_map(|e| e.get()));

    view! {
        <Title text="API keys · Perpetuo"/>
        <h1>"API keys"</h1>
        <p class="muted">"Apps call " <code>"/v1/chat/completions"</code> " with " <code>"Authorization: Bearer pk_…"</code> ". Keys are stored only as hashes: a new key is shown once."</p>
        <FormError message=error/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let fresh = match create.value().get() {
                    Some(Ok(created)) => Some(created),
                    _ => stashed.await.ok().flatten(),
                };
                let fresh = fresh?;
                let (base, model) = try_it.await.unwrap_or_default();
                Some(view! { <NewKey created=fresh base=base model=model/> })
            })}
        </Suspense>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                // Budgets only add to the rows: without them (an error), the keys still show.
                let budgets = budgets.await.unwrap_or_default();
                let limits = limits.await.unwrap_or_default();
                match keys.await {
                    Ok(list) if list.is_empty() => {
                        let (base, model) = try_it.await.unwrap_or_default();
                        view! {
                            <div class="empty" data-testid="no-keys">
                                <p>"No keys yet. Create one below: an app sends it as " <code>"Authorization: Bearer pk_…"</code> " (or " <code>"x-api-key"</code> " for Anthropic's SDKs) and Perpetuo calls this workspace's providers for it. The new key is shown once, with a line like this one to try it:"</p>
                                <pre><code>{perpetuo_types::curl_chat(&base, "pk_…", model.as_deref().unwrap_or("MODEL"))}</code></pre>
                                {model.is_none().then(|| view! { <p>"There is no enabled provider yet: " <a href="/providers">"add one in Providers"</a> " first, or every call answers that no provider serves the model."</p> })}
                            </div>
                        }.into_any()
                    }
                    Ok(list) => view! {
                        <table class="list" aria-label="API keys">
                            <thead><tr><th>"Name"</th><th>"Key"</th><th>"Created"</th><th>"By"</th><th>"Expires"</th><th>"Last used"</th><th>"Limit"</th><th>"Budget"</th><th>"Token and in-flight limits"</th><th>"Capture"</th><th>"Status"</th><th>"Actions"</th></tr></thead>
                            <tbody>{list.into_iter().map(|k| {
                                let budget = budgets.iter().find(|b| b.scope == BudgetScope::Key(k.id.clone())).cloned();
                                let limit = limits.iter().find(|l| l.scope == LimitScope::Key(k.id.clone())).cloned();
                                view! { <KeyRow key=k budget=budget limit=limit actions=actions/> }
                            }).collect_view()}</tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>

        <h2>"Create a key"</h2>
        <ActionForm action=create node_ref=create_form>
            <label for="key-name">"Name"</label>
            <input id="key-name" name="name" required maxlength="80" placeholder="backend-production"/>
            <label for="key-expiry">"Expires in (days)"</label>
            <input id="key-expiry" name="expires_in_days" type="number" min="1" max="3650" placeholder="Never"/>
            <label for="key-limit">"Requests per minute"</label>
            <input id="key-limit" name="rate_limit_per_min" type="number" min="1" placeholder="Workspace default"/>
            <button type="submit" disabled=move || create.pending().get()>"Create key"</button>
        </ActionForm>

        <h2>"Defaults for new keys"</h2>
        <p class="muted">"The budget and limits every key created from now on gets as its own, a member's key too (members cannot create keys free of them). Existing keys keep theirs. Owners set them."</p>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let budget = budgets.await.unwrap_or_default().into_iter().find(|b| b.scope == BudgetScope::NewKeys);
                let limit = limits.await.unwrap_or_default().into_iter().find(|l| l.scope == LimitScope::NewKeys);
                let budget_text = budget.as_ref().map_or_else(|| "no budget".to_owned(), describe);
                let limit_text = limit.as_ref().map_or_else(|| "none".to_owned(), |l| l.limits.describe());
                view! {
                    <p data-testid="new-key-defaults">{format!("New keys get: {budget_text}; limits: {limit_text}.")}</p>
                    <details>
                        <summary aria-label="Budget for new keys">"Budget for new keys"</summary>
                        <BudgetForm scope="new_keys".to_owned() current=budget set=set_budget remove=remove_budget id="new-keys".to_owned()/>
                    </details>
                    <details>
                        <summary aria-label="Limits for new keys">"Limits for new keys"</summary>
                        <LimitForm scope="new_keys".to_owned() current=limit actions=limit_actions id="new-keys".to_owned()/>
                    </details>
                }
            })}
        </Transition>
    }
}

/// A key just created: the token (shown this once) and the curl line that tries it.
#[component]
fn NewKey(created: CreatedApiKey, base: String, model: Option<String>) -> impl IntoView {
    let curl = perpetuo_types::curl_chat(&base, &created.token, model.as_deref().unwrap_or("MODEL"));
    view! {
        <div class="secret-once" role="status">
            <strong>{format!("Key “{}” created.", created.key.name)}</strong>
            " Copy it now: it will not be shown again."
            <code data-testid="new-key">{created.token}</code>
            <button type="button" class="secondary" onclick="navigator.clipboard.writeText(this.previousElementSibling.textContent).then(() => { this.textContent = 'Copied'; })">"Copy"</button>
            <p>"Try it:"</p>
            <pre><code data-testid="try-key">{curl}</code></pre>
            {model.is_none().then(|| view! { <p>"Replace MODEL with a model one of your providers serves (" <a href="/providers">"add a provider"</a> " first if there is none)."</p> })}
            <p class="muted">"The call then shows in " <a href="/usage">"Usage"</a> "."</p>
        </div>
    }
}

#[component]
fn KeyRow(key: ApiKeyView, budget: Option<BudgetView>, limit: Option<LimitView>, actions: RowActions) -> impl IntoView {
    let RowActions { revoke, delete, set_budget, remove_budget, set_capture, limits } = actions;
    let limit_text = crate::components::limit::describe(limit.as_ref());
    let limit_scope = LimitScope::Key(key.id.clone()).field();
    let limit_summary = format!("Limits for {}", key.name);
    let k = key;
    let budget_text = budget.as_ref().map_or_else(|| "None".to_owned(), describe);
    let scope = scope_field(&BudgetScope::Key(k.id.clone()));
    let summary = format!("Budget for {}", k.name);
    let status = match k.state {
        KeyState::Active => view! { <span class="badge">"Active"</span> }.into_any(),
        KeyState::Revoked => view! { <span class="badge bad">"Revoked"</span> }.into_any(),
        KeyState::Expired => view! { <span class="badge off">"Expired"</span> }.into_any(),
    };
    // Members manage only the keys they created; owners every key.
    let yours = k.yours;
    let revoke_form = (yours && k.state == KeyState::Active).then(|| {
        let (id, label) = (k.id.clone(), format!("Revoke {}", k.name));
        view! {
            <ActionForm action=revoke attr:class="inline">
                <input type="hidden" name="id" value=id/>
                <button type="submit" class="secondary" aria-label=label>"Revoke"</button>
            </ActionForm>
        }
    });
    let (delete_id, delete_label) = (k.id.clone(), format!("Delete {}", k.name));
    let delete_form = yours.then(|| {
        view! {
            <ActionForm action=delete attr:class="inline">
                <input type="hidden" name="id" value=delete_id/>
                <button type="submit" class="danger" aria-label=delete_label>"Delete"</button>
            </ActionForm>
        }
    });
    let capture_text = match k.capture {
        KeyCapture::Inherit => "As the workspace",
        KeyCapture::Always => "Every call",
        KeyCapture::Never => "Never",
    };
    let capture_form = yours.then(|| {
        let (id, summary, select_id) = (k.id.clone(), format!("Capture for {}", k.name), format!("capture-{}", k.id));
        let choice = k.capture;
        view! {
            <details class="inline-details">
                <summary aria-label=summary>"Capture"</summary>
                <ActionForm action=set_capture>
                    <input type="hidden" name="id" value=id/>
                    <label for=select_id.clone()>"Capture this key's bodies"</label>
                    <select id=select_id name="capture">
                        <option value="inherit" selected=choice == KeyCapture::Inherit>"As the workspace says"</option>
                        <option value="always" selected=choice == KeyCapture::Always>"Every call"</option>
                        <option value="never" selected=choice == KeyCapture::Never>"Never"</option>
                    </select>
                    <button type="submit">"Save capture"</button>
                </ActionForm>
            </details>
        }
    });
    view! {
        <tr data-key=k.name.clone()>
            <td>{k.name.clone()}</td>
            <td><code>{k.preview.clone()}</code></td>
            <td>{format_ts(k.created_at)}</td>
            <td>{k.created_by.clone().unwrap_or_else(|| "–".to_owned())}</td>
            <td>{k.expires_at.map_or_else(|| "Never".to_owned(), format_ts)}</td>
            <td>{k.last_used_at.map_or_else(|| "Never".to_owned(), format_ts)}</td>
            <td>{k.rate_limit_per_min.map_or_else(|| "Default".to_owned(), |n| format!("{n}/min"))}</td>
            <td>{budget_text}</td>
            <td>{limit_text}</td>
            <td>{capture_text}</td>
            <td>{status}</td>
            <td>
                <details class="inline-details">
                    <summary aria-label=summary>"Budget"</summary>
                    <BudgetForm scope=scope current=budget set=set_budget remove=remove_budget id=k.id.clone()/>
                </details>
                <details class="inline-details">
                    <summary aria-label=limit_summary>"Limits"</summary>
                    <LimitForm scope=limit_scope current=limit actions=limits id=k.id.clone()/>
                </details>
                {capture_form}
                {revoke_form}
                {delete_form}
            </td>
        </tr>
    }
}
