//! Perpetuo's dashboard: pages and components (built for the browser and the server) and its
//! server functions, thin adapters from the session to the core's services (`ssr`).

pub mod components;
pub mod error;
pub mod pages;
pub mod server_fns;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::components::layout::DashboardLayout;
use crate::pages::{
    keys::KeysPage, not_found::NotFound, providers::ProvidersPage, request::RequestPage, signin::SignInPage,
    signup::SignUpPage, usage::UsagePage, workspaces::WorkspacesPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="referrer" content="same-origin"/>
                <link rel="icon" href="/favicon.ico" sizes="32x32"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The dashboard: sign-in and sign-up, then four tabs behind the session. Every route renders
/// completely on the server before the response is sent (`SsrMode::Async`), so pages work
/// without JavaScript (no out-of-order streaming that needs a script to place its chunks).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Marks the page once the browser side has taken over (effects run only there): tests wait
    // for it before acting as a hydrated page.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/perpetuo.css"/>
        <Title text="Perpetuo"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/signin") view=SignInPage ssr=SsrMode::Async/>
                <Route path=path!("/signup") view=SignUpPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=DashboardLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=ProvidersPage ssr=SsrMode::Async/>
                    <Route path=path!("/providers") view=ProvidersPage ssr=SsrMode::Async/>
                    <Route path=path!("/keys") view=KeysPage ssr=SsrMode::Async/>
                    <Route path=path!("/usage") view=UsagePage ssr=SsrMode::Async/>
                    <Route path=path!("/usage/requests/:id") view=RequestPage ssr=SsrMode::Async/>
                    <Route path=path!("/workspaces") view=WorkspacesPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
