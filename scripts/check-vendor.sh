#!/usr/bin/env bash
# Fails unless the vendored, patched SurrealDB crate (vendor/surrealdb-kvs-surrealkv) is the one the
# build uses: `[patch.crates-io]` only applies while the version matches, and a `cargo update` past
# it would silently drop the patch (and the embedded engine's memory bound with it).
set -euo pipefail
cd "$(dirname "$0")/.."
crate=surrealdb-kvs-surrealkv
vendored=$(awk -F'"' '/^version = /{print $2; exit}' "vendor/$crate/Cargo.toml")
# The lock file's entry for the crate: a path dependency has no `source` line.
entry=$(awk -v name="$crate" '$0 == "name = \"" name "\"" {found=1} found {print} found && /^$/ {exit}' Cargo.lock)
locked=$(printf '%s\n' "$entry" | awk -F'"' '/^version = /{print $2}')
if [ -z "$entry" ]; then echo "check-vendor: $crate is not in Cargo.lock" >&2; exit 1; fi
if printf '%s\n' "$entry" | grep -q '^source = '; then
  echo "check-vendor: $crate $locked comes from the registry, not vendor/$crate ($vendored): the patch is not applied" >&2
  exit 1
fi
if [ "$locked" != "$vendored" ]; then
  echo "check-vendor: Cargo.lock has $crate $locked, vendor/ has $vendored" >&2
  exit 1
fi
if [ "$(grep -c "^name = \"$crate\"$" Cargo.lock)" != 1 ]; then
  echo "check-vendor: more than one $crate in Cargo.lock (the registry's beside the vendored one)" >&2
  exit 1
fi
echo "check-vendor: $crate $vendored from vendor/ is the one in use" >&2
