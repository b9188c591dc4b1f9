//! Sign-in.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::form::{FormError, action_error};
use crate::server_fns::auth::{SignIn, wants_setup_code};

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let error = action_error(action);
    let fresh = OnceResource::new(wants_setup_code());
    view! {
        <Title text="Sign in · Perpetuo"/>
        <div class="auth-card">
            <h1>"Sign in to Perpetuo"</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    fresh.await.unwrap_or(false).then(|| view! {
                        <p class="hint" data-testid="no-account-yet">"This server has no account yet. " <a href="/signup">"Create the first one"</a> " with the setup code from Perpetuo's log."</p>
                    })
                })}
            </Suspense>
            <ActionForm action=action>
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" autocomplete="email" required/>
                <label for="password">"Password"</label>
                <input id="password" type="password" name="password" autocomplete="current-password" required/>
                <button type="submit" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            <FormError message=error/>
            <p class="muted">"No account yet? " <a href="/signup">"Create one"</a></p>
        </div>
    }
}
