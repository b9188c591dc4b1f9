#!/usr/bin/env bash
# Prints the path of the SurrealDB server binary the ws:// tests start (`surreal`, SurrealDB's own
# server crate, the same version as the client library), building it when missing. `cargo test`
# builds it anyway (tests/surreal-server's example, in the same build as the rest, so the engine is
# compiled once); this is for running it by hand. PERPETUO_SURREAL_BIN overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ -n "${PERPETUO_SURREAL_BIN:-}" ]; then echo "$PERPETUO_SURREAL_BIN"; exit 0; fi
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
BIN="$TARGET_DIR/debug/examples/surreal"
if [ ! -x "$BIN" ]; then
  cargo build --example surreal -p perpetuo-test-surreal >&2
fi
echo "$BIN"
