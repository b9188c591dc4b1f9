#!/usr/bin/env bash
# Runs Perpetuo for development: dashboard and gateway on one port (LEPTOS_SITE_ADDR, default
# 127.0.0.1:3000), embedded SurrealDB in ./data.
#
#   scripts/dev.sh            build the browser side and the server (one feature set for the
#                             workspace, and the same build cache as scripts/test.sh), then run
#   scripts/dev.sh --watch    `cargo leptos watch` instead: rebuilds and reloads on every change
#                             (installs cargo-leptos first, 15-40 minutes once on two cores)
#
# A .env with fresh secrets is written when there is none (no build needed for that).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

watch=0
[ "${1:-}" = "--watch" ] && watch=1

# Only what building and running needs: the test suite's browser and Python SDKs are test.sh's.
if [ "$watch" = 1 ]; then scripts/setup.sh --dev; else scripts/setup.sh --run; fi

if [ ! -f .env ]; then
  echo "writing .env with fresh secrets" >&2
  umask 077
  {
    echo "# Written by scripts/dev.sh. Keep these private; losing ENCRYPTION_KEY makes stored provider keys unreadable."
    echo "ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 -w0)"
    echo "JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
    echo "DATABASE_URL=surrealkv://data/perpetuo.db"
  } > .env
fi
mkdir -p data

if [ "$watch" = 1 ]; then
  exec cargo leptos watch
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
scripts/build-site.sh
export LEPTOS_SITE_ROOT=${LEPTOS_SITE_ROOT:-$CARGO_TARGET_DIR/site}
exec cargo run --bin perpetuo
