//! The dashboard's surface: the Leptos pages and their server functions (`/fn/...`), the CSV
//! export, and the guards around them (same-origin posts, signed-in pages, the session layer).

mod export;
pub mod guards;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_sessions::SessionManagerLayer;

use app::server::AppState;
use app::server::accounts::sessions::SurrealSessionStore;
use app::{App, shell};

pub fn router(state: &AppState, sessions: SessionManagerLayer<SurrealSessionStore>) -> Router<AppState> {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/usage/export.csv", get(export::usage_csv))
        .leptos_routes_with_context(state, routes, || {}, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn(guards::server_fn_status))
        .layer(from_fn_with_state(state.clone(), guards::page_guard))
        .layer(sessions)
        .layer(from_fn(guards::same_origin))
}
