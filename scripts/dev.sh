#!/usr/bin/env bash
# Runs Perpetuo for development: installs what is missing (first run: cargo-leptos takes a while),
# writes a .env with fresh secrets if there is none, then `cargo leptos watch`: dashboard and
# gateway on one port (LEPTOS_SITE_ADDR, default 127.0.0.1:3000), embedded SurrealDB in ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --dev
if [ ! -f .env ]; then
  echo "writing .env with fresh secrets" >&2
  {
    cargo run --quiet --bin perpetuo -- gen-secrets
    echo "DATABASE_URL=surrealkv://data/perpetuo.db"
  } > .env
  chmod 600 .env
fi
mkdir -p data
exec cargo leptos watch
