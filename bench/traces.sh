#!/usr/bin/env bash
# What OpenTelemetry trace export costs: two Perpetuo instances (release build) in front of the
# same mock provider, one without an OTLP endpoint and one exporting every call's spans (a call
# span and an attempt span, sampled always) to an OTLP/HTTP receiver that decodes them
# (examples/otlp_sink). wrk measures both side by side: p50/p99 at concurrency 1 and requests/s
# at 64, plain and streamed; then the spans the receiver decoded and the spans Perpetuo dropped.
# Usage: bench/traces.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
export PATH="$HOME/.cargo/bin:$PATH"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
for tool in wrk jq; do
  command -v "$tool" >/dev/null || { echo "install $tool first (apt-get install $tool)" >&2; exit 1; }
done
cargo build --release --bin perpetuo --example mock_upstream --example otlp_sink >&2
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_for() {  # $1 file, $2 pattern, $3 what
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$3 did not start:" >&2; cat "$1" >&2; exit 1
}

"$TARGET_DIR/release/examples/mock_upstream" 127.0.0.1:0 > "$work/mock.out" &
pids+=($!)
wait_for "$work/mock.out" listening "the mock provider"
MOCK=$(awk '/listening on/{print $3}' "$work/mock.out")
"$TARGET_DIR/release/examples/otlp_sink" 127.0.0.1:0 2> "$work/sink.out" &
pids+=($!)
wait_for "$work/sink.out" listening "the OTLP receiver"
SINK=$(awk '/listening on/{print $3}' "$work/sink.out")

start() {  # $1 name, then VAR=value... -> sets GW_<name> and KEY_<name>
  local name=$1; shift
  env ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" JWT_SECRET="$(head -c 48 /dev/urandom | base64)" \
    DATABASE_URL="surrealkv://$work/$name.db" USAGE_SPOOL_DIR="$work/$name-spool" LEPTOS_SITE_ADDR=127.0.0.1:0 \
    ALLOW_PRIVATE_UPSTREAMS=true RUST_LOG=warn,perpetuo=info RATE_LIMIT_IP_PER_MIN=1000000000 MAX_CONNECTIONS_PER_IP=1000000 \
    RATE_LIMIT_KEY_PER_MIN=1000000000 METRICS_PUBLIC=true SERVE_THREADS=1 "$@" \
    "$TARGET_DIR/release/perpetuo" 2> "$work/$name.log" &
  pids+=($!)
  wait_for "$work/$name.log" "listening on" "Perpetuo ($name)"
  wait_for "$work/$name.log" "setup code" "Perpetuo's setup code ($name)"
  local gw code token
  gw=$(grep -o 'http://[0-9.:]*' "$work/$name.log" | head -1)
  code=$(grep -o 'setup code [0-9A-Z-]*' "$work/$name.log" | head -1 | cut -d" " -f3)
  token=$(curl -s -X POST "$gw/api/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$name@example.com\",\"password\":\"benchmark-password\",\"setup_code\":\"$code\"}" | jq -r .token)
  curl -s -X POST "$gw/api/v1/providers" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"label\":\"mock\",\"kind\":\"openai_compatible\",\"base_url\":\"http://$MOCK/v1\",\"api_key\":\"sk-bench-key-0000\"}" >/dev/null
  printf -v "GW_$name" '%s' "$gw"
  printf -v "KEY_$name" '%s' "$(curl -s -X POST "$gw/api/v1/keys" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"name":"bench"}' | jq -r .token)"
}
# Both serve on one thread, so the two compare one core's work each.
start off
start on OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK" OTEL_TRACES_SAMPLER=always_on OTEL_BSP_SCHEDULE_DELAY=200

run() {  # $1 url, $2 key, $3 body, $4 connections -> "p50_us p99_us rps"
  cat > "$work/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '$3'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $2"
LUA
  wrk -t1 -c"$4" -d"${DURATION}s" --latency -s "$work/req.lua" "$1" > "$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "non-2xx answers:" >&2; cat "$work/wrk.out" >&2; exit 1; fi
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} /^Requests\/sec/ {rps=$2}
    END {printf "%d %d %d\n", p50, p99, rps}' "$work/wrk.out"
}
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

plain='{"model":"bench-model","messages":[{"role":"user","content":"Say hello in five words."}]}'
stream='{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say hello in five words."}]}'
printf '\n%-7s %-12s %9s %9s %11s\n' mode perpetuo "p50 c=1" "p99 c=1" "req/s c=64"
for mode in plain stream; do
  body=$([ $mode = plain ] && echo "$plain" || echo "$stream")
  for name in off on; do
    gw_var="GW_$name" key_var="KEY_$name"
    read -r p50 p99 _ < <(run "${!gw_var}/v1/chat/completions" "${!key_var}" "$body" 1)
    read -r _ _ rps < <(run "${!gw_var}/v1/chat/completions" "${!key_var}" "$body" 64)
    label=$([ $name = off ] && echo "no export" || echo "exporting")
    printf '%-7s %-12s %7sus %7sus %11s\n' "$mode" "$label" "$p50" "$p99" "$rps"
  done
done
sleep 1
answered=$(metric "$GW_on" perpetuo_trace_spans_exported_total)
dropped=$(metric "$GW_on" perpetuo_trace_spans_dropped_total)
failed=$(metric "$GW_on" perpetuo_trace_export_failures_total)
printf '\nspans decoded by the receiver: %s; exported by Perpetuo: %s; dropped (queue full): %s; failed batches: %s\n' \
  "$(curl -s "http://$SINK/count")" "$answered" "$dropped" "$failed"
