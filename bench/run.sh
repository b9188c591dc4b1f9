#!/usr/bin/env bash
# Gateway overhead benchmark: a mock provider and Perpetuo (release build, in-memory database) on
# loopback; wrk measures the mock directly and through Perpetuo, side by side:
#   latency p50/p99 at concurrency 1, and requests/s at concurrency 64, plain and streaming.
# Usage: bench/run.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
export PATH="$HOME/.cargo/bin:$PATH"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "installing wrk (apt)" >&2; apt-get install -y -qq wrk >/dev/null; }
command -v jq >/dev/null || { echo "installing jq (apt)" >&2; apt-get install -y -qq jq >/dev/null; }

cargo build --release --bin perpetuo --example mock_upstream --example limiter_bench >&2
work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

"$TARGET_DIR/release/examples/mock_upstream" 127.0.0.1:0 > "$work/mock.out" &
pids+=($!)
until grep -q listening "$work/mock.out" 2>/dev/null; do sleep 0.1; done
MOCK=$(awk '/listening on/{print $3}' "$work/mock.out")

ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) JWT_SECRET=$(head -c 48 /dev/urandom | base64) \
DATABASE_URL=mem:// LEPTOS_SITE_ADDR=127.0.0.1:0 ALLOW_PRIVATE_UPSTREAMS=true RUST_LOG=warn,perpetuo=info \
RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_KEY_PER_MIN=1000000000 LEPTOS_OUTPUT_NAME=perpetuo \
  "$TARGET_DIR/release/perpetuo" 2> "$work/perpetuo.log" &
pids+=($!)
until grep -q "listening on" "$work/perpetuo.log" 2>/dev/null; do sleep 0.1; done
GW=$(grep -o 'http://[0-9.:]*' "$work/perpetuo.log" | head -1)

signup=$(curl -s -X POST "$GW/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark-password"}')
TOKEN=$(echo "$signup" | jq -r .token)
curl -s -X POST "$GW/api/v1/providers" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"label\":\"mock\",\"kind\":\"openai_compatible\",\"base_url\":\"http://$MOCK/v1\",\"api_key\":\"sk-bench-key-0000\"}" >/dev/null
KEY=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench"}' | jq -r .token)

body_plain='{"model":"bench-model","messages":[{"role":"user","content":"Say hello in five words."}]}'
body_stream='{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say hello in five words."}]}'
lua() {  # $1 body, $2 authorization value
  cat > "$work/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "$2"
LUA
}

# Sanity: both paths answer 200 before measuring.
for url in "http://$MOCK/v1/chat/completions" "$GW/v1/chat/completions"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d "$body_plain")
  [ "$code" = 200 ] || { echo "sanity check failed: $url answered $code" >&2; cat "$work/perpetuo.log" >&2; exit 1; }
done

run() {  # $1 url, $2 connections, $3 threads -> "p50_us p99_us rps"
  wrk -t"$3" -c"$2" -d"${DURATION}s" --latency -s "$work/req.lua" "$1" > "$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "non-2xx answers during the run:" >&2; cat "$work/wrk.out" >&2; exit 1; fi
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} /^Requests\/sec/ {rps=$2}
    END {printf "%d %d %d\n", p50, p99, rps}' "$work/wrk.out"
}

printf '\n%-10s %-11s %12s %12s %12s %12s %12s %12s\n' mode target "p50 c=1" "p99 c=1" "added p50" "req/s c=64" "ratio" ""
for mode in plain stream; do
  body=$([ $mode = plain ] && echo "$body_plain" || echo "$body_stream")
  lua "$body" "Bearer $KEY"
  read -r d50 d99 _ < <(run "http://$MOCK/v1/chat/completions" 1 1)
  read -r _ _ drps < <(run "http://$MOCK/v1/chat/completions" 64 2)
  read -r g50 g99 _ < <(run "$GW/v1/chat/completions" 1 1)
  read -r _ _ grps < <(run "$GW/v1/chat/completions" 64 2)
  printf '%-10s %-11s %10sus %10sus %12s %12s %12s\n' $mode direct "$d50" "$d99" "" "$drps" ""
  printf '%-10s %-11s %10sus %10sus %10sus %12s %11s%%\n' $mode perpetuo "$g50" "$g99" "$((g50 - d50))" "$grps" "$((100 * grps / (drps > 0 ? drps : 1)))"
done
echo
echo "targets: added p50 < 150us; gateway req/s >= 50% of direct (2 cores shared by wrk, mock and gateway)"
written=$(curl -s "$GW/metrics" | awk '/^perpetuo_usage_records_written_total/{print $2}')
echo "usage records written during the run: ${written:-?}"
echo
echo "rate limiter cost (in-process, one core):"
"$TARGET_DIR/release/examples/limiter_bench"
