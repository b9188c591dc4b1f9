//! The dashboard's surface: the Leptos pages and their server functions (`/fn/...`), the CSV
//! export, and the guards around them (same-origin posts, signed-in pages, the session layer).

mod export;
pub mod guards;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_sessions::SessionManagerLayer;

use app::{App, shell};
use perpetuo_core::AppState;
use perpetuo_core::accounts::sessions::SurrealSessionStore;

/// The dashboard's own router state: the services and Leptos's options (the core knows nothing of
/// Leptos). Every server function finds the services as context.
#[derive(Clone, FromRef)]
pub struct DashboardState {
    pub app: AppState,
    pub leptos: LeptosOptions,
}

pub fn router(
    state: &AppState,
    leptos: LeptosOptions,
    sessions: SessionManagerLayer<SurrealSessionStore>,
) -> Router<AppState> {
    let routes = generate_route_list(App);
    let options = leptos.clone();
    let context = state.clone();
    let dashboard = DashboardState { app: state.clone(), leptos };
    let pages = Router::new()
        .route("/usage/export.csv", get(export::usage_csv))
        .leptos_routes_with_context(
            &dashboard,
            routes,
            move || provide_context(context.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<DashboardState, _>(shell))
        .with_state(dashboard);
    Router::new()
        .merge(pages)
        .layer(from_fn(guards::server_fn_status))
        .layer(from_fn_with_state(state.clone(), guards::page_guard))
        .layer(sessions)
        .layer(from_fn(guards::same_origin))
}
