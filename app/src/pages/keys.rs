//! Tab: keys.

use leptos::prelude::*;

#[component]
pub fn KeysPage() -> impl IntoView {
    view! { <h1>"Keys"</h1> }
}
