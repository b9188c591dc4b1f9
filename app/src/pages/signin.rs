//! Sign-in.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::form::{FormError, action_error};
use crate::server_fns::auth::SignIn;

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let error = action_error(action);
    view! {
        <Title text="Sign in · Perpetuo"/>
        <div class="auth-card">
            <h1>"Sign in to Perpetuo"</h1>
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
