//! Tab: usage.

use leptos::prelude::*;

#[component]
pub fn UsagePage() -> impl IntoView {
    view! { <h1>"Usage"</h1> }
}
