//! Sign-up.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::form::{FormError, action_error};
use crate::server_fns::auth::{SignUp, wants_setup_code};
use perpetuo_types::PASSWORD_MIN_CHARS;

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let error = action_error(action);
    // An invite link carries its token: the new account joins that workspace.
    let query = leptos_router::hooks::use_query_map();
    let invite = move || query.with(|q| q.get("invite")).unwrap_or_default();
    // The first account on a server whose sign-up is not open needs the setup code from the log.
    let setup = OnceResource::new(wants_setup_code());
    view! {
        <Title text="Create an account · Perpetuo"/>
        <div class="auth-card">
            <h1>"Create your Perpetuo account"</h1>
            <ActionForm action=action>
                {move || (!invite().is_empty()).then(|| view! { <p class="hint" data-testid="invited">"You were invited to a workspace: your account joins it."</p> })}
                <input type="hidden" name="invite" value=invite/>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        (setup.await.unwrap_or(false) && invite().is_empty()).then(|| view! {
                            <p class="hint" data-testid="first-account">
                                "No account exists yet: this one will own the server. To prove it is yours, enter the setup code Perpetuo printed in its log when it started (the line that says \"setup code\"); "
                                <code>"perpetuo setup-code"</code>
                                " prints it again."
                            </p>
                            <label for="setup-code">"Setup code"</label>
                            <input id="setup-code" name="setup_code" autocomplete="off" spellcheck="false" placeholder="XXXX-XXXX-XXXX-XXXX" required/>
                        })
                    })}
                </Suspense>
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" autocomplete="email" required/>
                <label for="password">"Password"</label>
                <input id="password" type="password" name="password" autocomplete="new-password" minlength=PASSWORD_MIN_CHARS required/>
                <p class="hint">{format!("At least {PASSWORD_MIN_CHARS} characters.")}</p>
                <button type="submit" disabled=move || action.pending().get()>"Create account"</button>
            </ActionForm>
            <FormError message=error/>
            <p class="muted">"Already have an account? " <a href="/signin">"Sign in"</a></p>
        </div>
    }
}
