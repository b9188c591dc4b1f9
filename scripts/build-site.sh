#!/usr/bin/env bash
# Builds the browser side without cargo-leptos: the hydrate wasm, its JS glue, the stylesheet and
# the public assets, into $SITE_ROOT (default $CARGO_TARGET_DIR/site). Same output as
# `cargo leptos build` (both wasm names are written so either server build finds its file).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SITE_ROOT=${SITE_ROOT:-$TARGET_DIR/site}
PROFILE=${SITE_PROFILE:-dev}
export PATH="$HOME/.cargo/bin:$PATH"

cargo build -p frontend --lib --target wasm32-unknown-unknown --profile "$PROFILE"
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
mkdir -p "$SITE_ROOT/pkg"
wasm-bindgen "$TARGET_DIR/wasm32-unknown-unknown/$dir/frontend.wasm" \
  --target web --no-typescript --out-dir "$SITE_ROOT/pkg" --out-name perpetuo
cp "$SITE_ROOT/pkg/perpetuo_bg.wasm" "$SITE_ROOT/pkg/perpetuo.wasm"
node_modules/.bin/sass --no-source-map style/main.scss "$SITE_ROOT/pkg/perpetuo.css"
cp -R public/. "$SITE_ROOT/"
echo "site built in $SITE_ROOT" >&2
