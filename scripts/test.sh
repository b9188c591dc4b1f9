#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (server and browser builds), all cargo tests, then
# the Playwright suite in headless chromium against a freshly built Perpetuo, then a short fault
# soak (bench/soak.sh). Installs missing
# tools first (scripts/setup.sh). Set CARGO_TARGET_DIR to reuse a build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
step() { printf '\n\033[1m==> %s\033[0m (%s)\n' "$*" "$(date +%T)" >&2; }

step "setup"
scripts/setup.sh

step "the vendored SurrealDB crate is the one in use"
scripts/check-vendor.sh

step "imports only point down a floor; no source file over 500 lines of code"
python3 scripts/floors.py
python3 scripts/file-sizes.py

step "rustfmt"
cargo fmt --all --check

step "clippy (server: ssr, all targets)"
cargo clippy --all-targets -- -D warnings

step "clippy (browser: hydrate, wasm32)"
cargo clippy -p frontend -p app --target wasm32-unknown-unknown --features app/hydrate -- -D warnings

step "cargo test"
export PERPETUO_PYTHON=${PERPETUO_PYTHON:-${PERPETUO_VENV:-$HOME/.cache/perpetuo-venv}/bin/python}
# The ws:// tests' SurrealDB server is built by this same `cargo test` (tests/surreal-server's
# example), sharing the engine's compile with the client library.
# Here every test group must run: a missing SurrealDB server or SDK fails rather than skips (a bare
# `cargo test` skips those groups, one line each saying what to install). The full-disk test mounts
# a tmpfs, which needs root: as another user it says so and is skipped.
export PERPETUO_REQUIRE_ALL=1
cargo test --no-fail-fast

step "build the site for the browser tests"
# `cargo test` already built target/debug/perpetuo for the integration tests, with the same
# features; a separate `cargo build` would resolve features without dev-dependencies and rebuild
# much of the dependency tree.
test -x "$CARGO_TARGET_DIR/debug/perpetuo"
scripts/build-site.sh

step "playwright (headless chromium)"
(cd end2end && PERPETUO_BIN="$CARGO_TARGET_DIR/debug/perpetuo" LEPTOS_SITE_ROOT="$CARGO_TARGET_DIR/site" npx playwright test)

step "fault soak, short form (2000 requests on the debug build; bench/soak.sh runs 10,000 on release)"
SOAK_PROFILE=debug bench/soak.sh 2000 16

step "all tests passed"
