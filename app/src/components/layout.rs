//! The signed-in frame: tabs, the workspace switcher, sign-out. Pages render in its `<Outlet/>`.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::{A, Outlet, Redirect};

use crate::components::form::{FormError, action_error};
use crate::server_fns::auth::{SignOut, SwitchWorkspace, current_session};
use perpetuo_types::SessionView;

#[component]
pub fn DashboardLayout() -> impl IntoView {
    // Signed-out visitors are redirected by the server before rendering; this catches client-side
    // navigation after the session ended.
    let session = Resource::new(|| (), |_| current_session());
    // The switcher is a plain form; a refused switch comes back in the URL and shows here.
    let switch = ServerAction::<SwitchWorkspace>::new();
    let switch_error = action_error(switch);
    view! {
        <div class="frame">
            <header class="topbar">
                <a class="brand" href="/providers">"Perpetuo"</a>
                <nav class="tabs" aria-label="Dashboard">
                    <A href="/providers">"Providers"</A>
                    <A href="/keys">"API keys"</A>
                    <A href="/usage">"Usage"</A>
                    <A href="/workspaces">"Workspaces"</A>
                </nav>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match session.await {
                            Ok(Some(s)) => view! { <AccountBar session=s/> }.into_any(),
                            Ok(None) => view! { <Redirect path="/signin"/> }.into_any(),
                            Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </header>
            <main class="content">
                <FormError message=switch_error/>
                <Outlet/>
            </main>
        </div>
    }
}

/// Workspace switcher and sign-out: plain forms, so they work without JavaScript and a switch
/// reloads every tab's data.
#[component]
fn AccountBar(session: SessionView) -> impl IntoView {
    let current = session.workspace.id.clone();
    view! {
        <div class="account">
            <form method="post" action=SwitchWorkspace::url() class="switcher">
                <label for="workspace-switch">"Workspace"</label>
                <select id="workspace-switch" name="workspace_id">
                    {session
                        .workspaces
                        .into_iter()
                        .map(|w| {
                            let selected = w.id == current;
                            view! { <option value=w.id selected=selected>{w.name}</option> }
                        })
                        .collect_view()}
                </select>
                <button type="submit">"Switch"</button>
            </form>
            <span class="user" data-testid="signed-in-as">{session.user.email}</span>
            <form method="post" action=SignOut::url()>
                <button type="submit">"Sign out"</button>
            </form>
        </div>
    }
}
