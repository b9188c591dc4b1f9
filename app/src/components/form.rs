//! Form helpers: the error line under a form, driven by a server action's result.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::error::AppError;

/// The message of a failed action, or nothing. Works on the server too: an action created under
/// `<Routes>` starts with the error the no-JS redirect carried in the URL.
pub fn action_error<S>(action: ServerAction<S>) -> Signal<Option<String>>
where
    S: ServerFn<Error = AppError> + Send + Sync + Clone + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|r| r.err()).map(|e| e.to_string()))
}

/// A `role="alert"` line with the message, if any.
#[component]
pub fn FormError(#[prop(into)] message: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || message.get().is_some()>
            <p class="form-error" role="alert">{move || message.get().unwrap_or_default()}</p>
        </Show>
    }
}

/// A form reference that clears its form once `action` succeeds, so a submitted secret (an API
/// key) does not linger in the page and the form is ready for the next entry. Browser only.
pub fn reset_on_success<S>(action: ServerAction<S>) -> NodeRef<leptos::html::Form>
where
    S: ServerFn<Error = AppError> + Send + Sync + Clone + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(_)))
            && let Some(form) = form.get_untracked()
        {
            form.reset();
        }
    });
    form
}
