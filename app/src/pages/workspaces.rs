//! Workspaces: the ones you belong to, and a form to create another.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use crate::components::form::{FormError, action_error, reset_on_success};
use crate::server_fns::auth::{CreateWorkspace, SwitchWorkspace, current_session};

#[component]
pub fn WorkspacesPage() -> impl IntoView {
    let create = ServerAction::<CreateWorkspace>::new();
    let error = action_error(create);
    let create_form = reset_on_success(create);
    let session = Resource::new(move || create.version().get(), |_| current_session());
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
    }
}
