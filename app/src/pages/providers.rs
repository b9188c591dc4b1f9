//! Tab: providers.

use leptos::prelude::*;

#[component]
pub fn ProvidersPage() -> impl IntoView {
    view! { <h1>"Providers"</h1> }
}
