//! What some tests need besides `cargo`: a SurrealDB server binary (the `ws://` tests), the official
//! Python SDKs (the SDK tests), root (the full-disk test mounts a tmpfs). A bare `cargo test` on a
//! fresh clone skips those groups, each with one line saying what to install; `scripts/test.sh`
//! sets everything up and sets `PERPETUO_REQUIRE_ALL=1`, under which a missing part fails instead.

use std::io::Write as _;
use std::sync::Mutex;

/// Says once per group (past the test harness's capture) that it was skipped, and why; panics
/// instead when everything is required.
pub fn skip(group: &'static str, what: &str) {
    assert!(
        std::env::var_os("PERPETUO_REQUIRE_ALL").is_none(),
        "{group} cannot run here: {what} (PERPETUO_REQUIRE_ALL is set)"
    );
    say_skipped(group, what);
}

/// Says once per group that it was skipped, whatever is required (for what only root can do).
pub fn say_skipped(group: &'static str, what: &str) {
    static SAID: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.contains(&group) {
        said.push(group);
        let _ = writeln!(std::io::stderr(), "skipped: {group}: {what}");
    }
}

fn home_cache(path: &str) -> Option<String> {
    let candidate = std::path::Path::new(&std::env::var_os("HOME")?).join(".cache").join(path);
    candidate.exists().then(|| candidate.display().to_string())
}

/// The SurrealDB server binary: `PERPETUO_SURREAL_BIN`, else the `surreal` example that
/// `cargo test` builds beside this test binary (`tests/surreal-server`).
pub fn surreal_bin() -> Option<String> {
    let beside = || {
        let exe = std::env::current_exe().ok()?;
        // target/<profile>/deps/api-<hash> -> target/<profile>/examples/surreal
        let candidate = exe.parent()?.parent()?.join("examples").join("surreal");
        candidate.exists().then(|| candidate.display().to_string())
    };
    let found = std::env::var("PERPETUO_SURREAL_BIN").ok().or_else(beside);
    if found.is_none() {
        skip(
            "the ws:// tests (a SurrealDB server)",
            "build it with `cargo build -p perpetuo-test-surreal --example surreal`, or set PERPETUO_SURREAL_BIN",
        );
    }
    found
}

/// A Python with the `openai` and `anthropic` SDKs: `PERPETUO_PYTHON`, else the virtualenv
/// `scripts/setup.sh` makes in `~/.cache`, else `python3` if it has them.
pub fn python() -> Option<String> {
    let candidates =
        [std::env::var("PERPETUO_PYTHON").ok(), home_cache("perpetuo-venv/bin/python"), Some("python3".to_owned())];
    let found = candidates.into_iter().flatten().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import openai, anthropic"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        skip(
            "the Python SDK tests",
            "run scripts/setup.sh (installs the openai and anthropic SDKs), or set PERPETUO_PYTHON",
        );
    }
    found
}
