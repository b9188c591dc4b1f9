#!/usr/bin/env bash
# Prints the path of a SurrealDB server binary (`surreal`) for the tests of several instances on
# one database, building it first when missing: SurrealDB's own `surrealdb-server` crate, the same
# version as the client library, built once per machine into a cache outside the clone (later runs
# reuse it). The tests need a server, not a fast one: it is built lightly optimised (opt-level 1,
# many codegen units, no LTO), which takes a fraction of a release build. PERPETUO_SURREAL_BIN
# overrides it.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
VERSION=3.3.5
if [ -n "${PERPETUO_SURREAL_BIN:-}" ]; then echo "$PERPETUO_SURREAL_BIN"; exit 0; fi
CACHE=${PERPETUO_SURREAL_CACHE:-$HOME/.cache/perpetuo-surreal}
BIN="$CACHE/bin/surreal-$VERSION"
if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then echo "$BIN"; exit 0; fi

echo "building the SurrealDB $VERSION server into $CACHE (lightly optimised, once per machine)" >&2
mkdir -p "$CACHE/src/src" "$CACHE/bin"
cat > "$CACHE/src/Cargo.toml" <<TOML
[package]
name = "surreal"
version = "$VERSION"
edition = "2024"
publish = false

[dependencies]
surrealdb-server = { version = "=$VERSION", default-features = false, features = ["storage-mem", "storage-surrealkv", "cli", "http"] }
surrealdb-core = { version = "=$VERSION" }

[profile.release]
opt-level = 1
codegen-units = 256
lto = false
debug = false
incremental = false
strip = "symbols"
TOML
cat > "$CACHE/src/src/main.rs" <<'RUST'
//! The SurrealDB server, from SurrealDB's own crate, for Perpetuo's tests.
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
RUST
(cd "$CACHE/src" && CARGO_TARGET_DIR="$CACHE/target" cargo build --release >&2)
cp "$CACHE/target/release/surreal" "$BIN"
rm -rf "$CACHE/target"
echo "$BIN"
