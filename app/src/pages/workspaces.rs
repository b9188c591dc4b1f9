//! Workspaces: the ones you belong to, a form to create another, and your account (change the
//! password, sign out everywhere).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use crate::components::budget::{BudgetBar, BudgetForm};
use crate::components::form::{FormError, action_error, reset_on_success};
use crate::components::limit::{LimitActions, LimitForm};
use crate::server_fns::auth::{
    ChangePassword, CreateInvite, CreateWorkspace, RevokeInvite, SignOutEverywhere, SwitchWorkspace, current_session,
    list_invites, take_notice,
};
use crate::server_fns::budgets::{RemoveBudget, SetBudget, list_budgets};
use crate::server_fns::captures::{SetCapturePolicy, get_capture_policy};
use crate::server_fns::limits::list_limits;
use perpetuo_types::BudgetScope;

#[component]
pub fn WorkspacesPage() -> impl IntoView {
    let create = ServerAction::<CreateWorkspace>::new();
    let error = action_error(create);
    let create_form = reset_on_success(create);
    let session = Resource::new(move || create.version().get(), |_| current_session());
    let invite = ServerAction::<CreateInvite>::new();
    let invite_error = action_error(invite);
    let change = ServerAction::<ChangePassword>::new();
    let change_error = action_error(change);
    let change_form = reset_on_success(change);
    let set_budget = ServerAction::<SetBudget>::new();
    let remove_budget = ServerAction::<RemoveBudget>::new();
    let budget_errors = [action_error(set_budget), action_error(remove_budget)];
    let budget_error = Signal::derive(move || budget_errors.iter().find_map(|e| e.get()));
    let budgets =
        Resource::new(move || (set_budget.version().get(), remove_budget.version().get()), |_| list_budgets());
    let limit_actions = LimitActions::new();
    let limit_errors = [action_error(limit_actions.set), action_error(limit_actions.remove)];
    let limit_error = Signal::derive(move || limit_errors.iter().find_map(|e| e.get()));
    let limits = Resource::new(move || limit_actions.version(), |_| list_limits());
    let revoke = ServerAction::<RevokeInvite>::new();
    let revoke_error = action_error(revoke);
    let invites = Resource::new(move || (invite.version().get(), revoke.version().get()), |_| list_invites());
    let set_capture = ServerAction::<SetCapturePolicy>::new();
    let capture_error = action_error(set_capture);
    let capture = Resource::new(move || set_capture.version().get(), |_| get_capture_policy());
    // After a form post without JavaScript the confirmation comes back through the session.
    let notice = OnceResource::new(take_notice());
    view! {
        <Title text="Workspaces · Perpetuo"/>
        <h1>"Workspaces"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match session.await {
                    Ok(Some(s)) => {
                        let current = s.workspace.id.clone();
                        view! {
                            <table class="list">
                                <thead><tr><th>"Name"</th><th>"Id"</th><th></th></tr></thead>
                                <tbody>
                                    {s.workspaces.into_iter().map(|w| {
                                        let is_current = w.id == current;
                                        view! {
                                            <tr>
                                                <td>{w.name.clone()}</td>
                                                <td><code>{w.id.clone()}</code></td>
                                                <td>
                                                    {if is_current {
                                                        view! { <span class="badge">"Current"</span> }.into_any()
                                                    } else {
                                                        view! {
                                                            <form method="post" action=SwitchWorkspace::url()>
                                                                <input type="hidden" name="workspace_id" value=w.id.clone()/>
                                                                <button type="submit">{format!("Switch to {}", w.name)}</button>
                                                            </form>
                                                        }.into_any()
                                                    }}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <h2>"New workspace"</h2>
        <ActionForm action=create node_ref=create_form>
            <label for="workspace-name">"Name"</label>
            <input id="workspace-name" name="name" required maxlength="80"/>
            <button type="submit">"Create workspace"</button>
        </ActionForm>
        <FormError message=error/>

        <h2>"Workspace budget"</h2>
        <p class="muted">"A spend limit (and optionally a token limit) for every call of the current workspace, whatever its key. A call that could take the period past it is refused before it is made; calls in flight hold their worst case until they end. Owners set it; each key can have its own budget too (API keys tab)."</p>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match budgets.await {
                    Ok(list) => {
                        let current = list.into_iter().find(|b| b.scope == BudgetScope::Workspace);
                        let bar = current.clone().map(|view| view! { <BudgetBar view=view/> });
                        view! {
                            {bar}
                            <BudgetForm scope="workspace".to_owned() current=current set=set_budget remove=remove_budget id="workspace".to_owned()/>
                        }.into_any()
                    }
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <FormError message=budget_error/>

        <h2>"Workspace limits"</h2>
        <p class="muted">"Input and output tokens a minute, and calls in flight at once, for every call of the current workspace, whatever its key: a slice of your provider accounts' quotas. Shared by every instance on a database server. A call over a limit waits briefly for room, then gets 429 with Retry-After. Owners set them; each key and each provider can have its own too (API keys and Providers tabs)."</p>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match limits.await {
                    Ok(list) => {
                        let current = list.into_iter().find(|l| l.scope == perpetuo_types::LimitScope::Workspace);
                        let text = crate::components::limit::describe(current.as_ref());
                        let here = current.as_ref().filter(|c| c.limits.max_in_flight.is_some()).map(|c| format!(" · {} in flight on this instance now", c.in_flight_here));
                        view! {
                            <p data-testid="workspace-limits">{format!("Now: {text}")}{here}</p>
                            <LimitForm scope="workspace".to_owned() current=current actions=limit_actions id="workspace".to_owned()/>
                        }.into_any()
                    }
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <FormError message=limit_error/>

        <h2>"Body capture"</h2>
        <p class="muted">"Off by default. When on, the request and response bodies of a share of this workspace's calls are kept for the call's page (Usage → a call): cut at the server's size cap, with anything that looks like a key or password replaced by [REDACTED], encrypted at rest, and deleted after the days you choose. Only owners see them. Each key can also capture every call or none (API keys tab)."</p>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match capture.await {
                    Ok(policy) => {
                        let state = if policy.enabled {
                            format!("On: {}% of calls, kept {} days.", policy.sample_percent, policy.retention_days)
                        } else {
                            "Off: no bodies are kept (unless a key captures every call).".to_owned()
                        };
                        view! {
                            <p data-testid="capture-state">{state}</p>
                            <ActionForm action=set_capture>
                                <label class="check" for="capture-enabled">
                                    <input id="capture-enabled" name="enabled" type="checkbox" value="on" checked=policy.enabled/>
                                    " Capture request and response bodies"
                                </label>
                                <label for="capture-percent">"Share of calls captured (%)"</label>
                                <input id="capture-percent" name="sample_percent" type="number" min="1" max="100" required value=policy.sample_percent.to_string()/>
                                <label for="capture-days">"Keep bodies for (days)"</label>
                                <input id="capture-days" name="retention_days" type="number" min="1" max="90" required value=policy.retention_days.to_string()/>
                                <button type="submit" disabled=move || set_capture.pending().get()>"Save capture"</button>
                            </ActionForm>
                        }.into_any()
                    }
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <FormError message=capture_error/>

        <h2>"Invite someone"</h2>
        <p class="muted">"An invite link lets one person create an account that joins the current workspace as a member (members use its providers, keys and usage; owners also manage providers and invites). Single use, good for 7 days."</p>
        <ActionForm action=invite>
            <button type="submit">"Create an invite link"</button>
        </ActionForm>
        {move || invite.value().get().and_then(Result::ok).map(|path| view! {
            <p role="status" class="form-ok">"Invite link: " <code data-testid="invite-link">{path}</code></p>
        })}
        <FormError message=invite_error/>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match invites.await {
                    Ok(Some(list)) if !list.is_empty() => view! {
                        <h3>"Open invites"</h3>
                        <table class="list">
                            <thead><tr><th>"Created"</th><th>"By"</th><th>"Expires"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|i| view! {
                                    <tr>
                                        <td>{perpetuo_types::time::rfc3339_utc(i.created_at)}</td>
                                        <td>{i.created_by.unwrap_or_else(|| "–".into())}</td>
                                        <td>{perpetuo_types::time::rfc3339_utc(i.expires_at)}</td>
                                        <td>
                                            <ActionForm action=revoke>
                                                <input type="hidden" name="id" value=i.id/>
                                                <button type="submit" class="danger">"Revoke"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Ok(_) => ().into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <FormError message=revoke_error/>

        <h2>"Your account"</h2>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let text = if matches!(change.value().get(), Some(Ok(()))) {
                    Some("Password changed. Every other session and API token is signed out.".to_owned())
                } else {
                    notice.await.ok().flatten()
                };
                text.map(|text| view! { <p role="status" class="form-ok" data-testid="account-notice">{text}</p> })
            })}
        </Suspense>
        <ActionForm action=change node_ref=change_form>
            <label for="current-password">"Current password"</label>
            <input id="current-password" name="current_password" type="password" autocomplete="current-password" required/>
            <label for="new-password">"New password"</label>
            <input id="new-password" name="new_password" type="password" autocomplete="new-password" required/>
            <button type="submit">"Change password"</button>
        </ActionForm>
        <FormError message=change_error/>
        <p class="muted">"Signing out everywhere ends every session of yours, on every device, and every management API token; API keys (pk_) are not affected."</p>
        <form method="post" action=SignOutEverywhere::url()>
            <button type="submit" class="danger">"Sign out everywhere"</button>
        </form>
    }
}
