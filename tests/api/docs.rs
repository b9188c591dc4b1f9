//! The README against the code: its variable list is the settings table, its route tables name
//! exactly the routes the router serves (each answered by the real router, not its "no such
//! route"), and its metrics table names exactly what `/metrics` serves.

use std::collections::BTreeSet;

use crate::helpers::*;

const README: &str = include_str!("../../README.md");
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The README's text under `## heading`, to the next `## `.
fn section(heading: &str) -> &'static str {
    let start = README.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("README has no `## {heading}`"));
    let rest = &README[start + heading.len() + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn the_readme_lists_exactly_the_settings_table() {
    use perpetuo_core::platform::config::variables::SECTIONS;
    let expected: String = SECTIONS
        .iter()
        .map(|(title, vars)| {
            let names: Vec<String> = vars.iter().map(|v| format!("`{}`", v.name)).collect();
            format!("- {title}: {}\n", names.join(", "))
        })
        .collect();
    assert!(
        section("Configuration").contains(&expected),
        "README's Configuration section must hold exactly this list (from core/src/platform/config/variables.rs):\n{expected}"
    );
}

/// `(method, path)` for every route a router file declares with `.route("path", get(..).post(..))`.
fn declared(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = &line[".route(\"".len()..];
        let path = &path[..path.find('"').unwrap_or(path.len())];
        for method in METHODS {
            // `get(`, `.post(`, `routing::delete(`: the method's name as a whole word, called.
            let call = format!("{}(", method.to_lowercase());
            let called = line
                .match_indices(&call)
                .any(|(at, _)| !line[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
            if called {
                routes.insert((method.to_owned(), format!("{prefix}{path}")));
            }
        }
    }
    routes
}

fn router_routes() -> BTreeSet<(String, String)> {
    let mut all = declared(include_str!("../../src/rest/mod.rs"), "/api/v1");
    all.extend(declared(include_str!("../../src/gateway/mod.rs"), "/v1"));
    all.extend(declared(include_str!("../../src/ops.rs"), ""));
    all
}

/// Routes the README names in code spans: `(method, path)` where a method precedes the path
/// (`GET/PATCH/DELETE /api/v1/providers/{id}`), and paths it names without one.
fn readme_routes() -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let (mut with_method, mut bare) = (BTreeSet::new(), BTreeSet::new());
    for span in README.split('`').skip(1).step_by(2) {
        for part in span.split(", ") {
            let (methods, path) = match part.split_once(' ') {
                Some((m, p)) if m.split('/').all(|m| METHODS.contains(&m)) => (Some(m), p),
                _ => (None, part),
            };
            let path = path.split('?').next().unwrap_or_default();
            let api = path.starts_with("/api/v1/") || path.starts_with("/v1/");
            if !(api || ["/healthz", "/readyz", "/metrics"].contains(&path)) || path.contains(' ') {
                continue;
            }
            match methods {
                Some(methods) => {
                    with_method.extend(methods.split('/').map(|m| (m.to_owned(), path.to_owned())));
                }
                None => {
                    bare.insert(path.to_owned());
                }
            }
        }
    }
    (with_method, bare)
}

#[test]
fn the_readme_names_exactly_the_routes_the_router_declares() {
    let declared = router_routes();
    assert!(declared.len() > 30, "the route scan found too little: {declared:?}");
    let (named, bare) = readme_routes();
    let missing: Vec<_> = declared.difference(&named).collect();
    assert!(missing.is_empty(), "routes the README's tables do not name (method and path): {missing:?}");
    let stale: Vec<_> = named.difference(&declared).collect();
    assert!(stale.is_empty(), "routes the README names that the router does not have: {stale:?}");
    let paths: BTreeSet<&String> = declared.iter().map(|(_, p)| p).collect();
    let stale: Vec<_> = bare.iter().filter(|p| !paths.contains(p)).collect();
    assert!(stale.is_empty(), "paths the README mentions that the router does not have: {stale:?}");
}

/// Each route the README names, asked of the real router: answered by its handler (most with a
/// 401, having no credentials), never by the router's "no such route" or "method not allowed".
#[tokio::test]
async fn every_route_the_readme_names_is_served() {
    let app = spawn_app().await;
    let ask = |method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client.request(method, app.url(path)).header("content-type", "application/json").body("{}").send()
    };
    let unknown_rest = ask("GET", "/api/v1/no-such-route").await.unwrap().text().await.unwrap();
    let unknown_gateway = ask("POST", "/v1/no-such-route").await.unwrap().text().await.unwrap();
    let (named, _) = readme_routes();
    for (method, path) in &named {
        let concrete = path.replace("{id}", "doc-check-id");
        let response = ask(method, &concrete).await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: method not allowed");
        let unknown = if path.starts_with("/api/") {
            unknown_rest.clone()
        } else {
            unknown_gateway.replace("/v1/no-such-route", &concrete)
        };
        assert!(!(status == 404 && body == unknown), "{method} {path}: the router has no such route ({body})");
    }
}

#[tokio::test]
async fn the_readme_names_exactly_the_metrics_served() {
    let mut options = Options::default();
    options.settings.metrics_public = true;
    let app = spawn_app_with(options).await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let served: BTreeSet<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert!(served.len() > 10, "{text}");
    let table = section("Usage, cost and metrics");
    let named: BTreeSet<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .filter(|name| name.starts_with("perpetuo_"))
        .collect();
    assert_eq!(named, served, "README's metrics table (left) against what /metrics serves (right)");
}

/// Every test the compatibility matrix in `docs/protocols.md` names exists.
#[test]
fn the_compatibility_matrix_names_only_tests_that_exist() {
    let doc = include_str!("../../docs/protocols.md");
    let matrix = &doc[doc.find("## Compatibility matrix").expect("the matrix")..];
    let named: BTreeSet<&str> = matrix
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && n.contains('_'))
        .filter(|n| n.len() >= 20)
        .collect();
    assert!(named.len() > 15, "{named:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    let mut stack = vec![root.join("tests/api"), root.join("core/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let missing: Vec<_> = named.iter().filter(|n| !sources.contains(&format!("fn {n}()"))).collect();
    assert!(missing.is_empty(), "the matrix names tests that do not exist: {missing:?}");
}
