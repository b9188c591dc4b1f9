#!/usr/bin/env bash
# Installs what building, running and testing Perpetuo needs, skipping whatever is already there.
#   scripts/setup.sh            everything the test suite needs: what running needs (below), plus
#                               Debian's chromium, Playwright's runner and the official Python SDKs
#   scripts/setup.sh --run      what building and running needs: the wasm32 target, wasm-bindgen-cli,
#                               sass (and Node.js with npm from apt when missing)
#   scripts/setup.sh --dev      --run plus cargo-leptos, for `cargo leptos watch` (slow the first time)
# Rust itself comes from rustup (https://rustup.rs): without cargo this says so and stops. apt
# installs run as root or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=test
case "${1:-}" in
  --run) mode=run ;;
  --dev) mode=dev ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--run|--dev]" >&2; exit 2 ;;
esac
want_cargo_leptos=0
[ "$mode" = dev ] && want_cargo_leptos=1

# Exactly the wasm-bindgen in Cargo.lock: the CLI and the crate must match or the page fails at run time.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
CARGO_LEPTOS_VERSION=0.3.11
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
  log "Rust is missing: install it with rustup (https://rustup.rs), then run this again"
  exit 1
fi

apt_missing=()
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
if [ "$mode" = test ]; then
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || apt_missing+=(chromium)
  command -v python3 >/dev/null || apt_missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
fi
if [ "$want_cargo_leptos" = 1 ]; then command -v wasm-opt >/dev/null || apt_missing+=(binaryen); fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "installing ${apt_missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WB_VERSION"; then
  log "installing wasm-bindgen-cli $WB_VERSION (a few minutes, once)"
  # No --locked: its lock file pins a webpki-roots the registry mirror lacks.
  cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi

if [ "$want_cargo_leptos" = 1 ] && ! cargo leptos --version 2>/dev/null | grep -q "cargo-leptos $CARGO_LEPTOS_VERSION"; then
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION (15-40 minutes on 2 cores, once)"
  # 0.3.11 needs rustc >= 1.96: use nightly when stable is older. Thin LTO keeps the build shorter.
  toolchain=""
  if ! rustc --version | awk '{split($2,v,"."); exit !(v[1]>1 || v[2]>=96)}'; then
    rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
    toolchain="+nightly"
  fi
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo $toolchain install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if [ ! -x node_modules/.bin/sass ]; then
  log "installing sass (npm)"
  npm install --no-audit --no-fund --loglevel=error
fi
if [ "$mode" != test ]; then
  log "ready"
  exit 0
fi
if [ ! -d end2end/node_modules/@playwright/test ]; then
  log "installing Playwright's test runner (npm; the browser is Debian's chromium)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
fi
# The official openai and anthropic SDKs, for the gateway's SDK tests, in their own virtualenv.
VENV=${PERPETUO_VENV:-$HOME/.cache/perpetuo-venv}
if ! "$VENV/bin/python" -c 'import openai, anthropic' 2>/dev/null; then
  log "installing the openai and anthropic Python SDKs into $VENV (pip)"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check openai anthropic
fi
log "ready"
