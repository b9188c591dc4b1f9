//! The 404 page.

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <div class="auth-card">
            <h1>"Page not found"</h1>
            <p><a href="/providers">"Back to the dashboard"</a></p>
        </div>
    }
}
