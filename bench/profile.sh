#!/usr/bin/env bash
# CPU and off-CPU profile of Perpetuo (release, symbols kept) under wrk at concurrency 64, plain chat
# through the compatible provider, as bench/run.sh sets it up.
#   bench/profile.sh [seconds] [route: chat|guarded|floor]   (guarded: the key under workspace and key
#   budgets and token and in-flight limits, far above what the run uses)   -> $OUT/{cpu,offcpu}.txt (OUT defaults to /tmp/perpetuo-profile)
#   PROFILE_CONNECTIONS=1: the profile at that concurrency instead of 64 (c=1 shows what a lone call pays).
# CPU: perf samples on cpu-clock with call graphs (frame pointers are not kept: --call-graph dwarf).
# Off-CPU: sched_switch events of the process's threads (where they block), by call chain.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
TARGET=${2:-chat}
OUT=${OUT:-/tmp/perpetuo-profile}
CONNS=${PROFILE_CONNECTIONS:-64}
WRK_THREADS=$((CONNS < 2 ? 1 : 2))
TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
# The release profile strips the binary; profiles need its symbols (only the binary is relinked).
cargo build --release --bin perpetuo --example mock_upstream --example floor_proxy \
  --config 'profile.release.package.perpetuo.strip="none"' >&2
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; cat "$1" >&2; exit 1; }

"$TARGET_DIR/release/examples/mock_upstream" 127.0.0.1:0 > "$work/mock.out" & pids+=($!)
wait_for "$work/mock.out" listening
MOCK=$(awk '/listening on/{print $3}' "$work/mock.out")
body='{"model":"bench-model","messages":[{"role":"user","content":"Say hello in five words."}]}'
if [ "$TARGET" = floor ]; then
  "$TARGET_DIR/release/examples/floor_proxy" 127.0.0.1:0 "http://$MOCK/v1" > "$work/floor.out" & PID=$!; pids+=($PID)
  wait_for "$work/floor.out" listening
  URL="http://$(awk '/listening on/{print $3}' "$work/floor.out")/v1/chat/completions"
  AUTH="Bearer none"
else
  # Perpetuo's default log filter (no per-call access line), as bench/run.sh measures it.
  if [ -n "${BENCH_LOG:-}" ]; then export RUST_LOG=$BENCH_LOG; else unset RUST_LOG; fi
  ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) JWT_SECRET=$(head -c 48 /dev/urandom | base64) \
  DATABASE_URL=${BENCH_DB:-surrealkv://$work/perpetuo.db} LEPTOS_SITE_ADDR=127.0.0.1:0 ALLOW_PRIVATE_UPSTREAMS=true \
  RATE_LIMIT_IP_PER_MIN=1000000000 MAX_CONNECTIONS_PER_IP=1000000 RATE_LIMIT_KEY_PER_MIN=1000000000 SIGNUP=open \
    "$TARGET_DIR/release/perpetuo" 2> "$work/perpetuo.log" & PID=$!; pids+=($PID)
  wait_for "$work/perpetuo.log" "listening on"
  GW=$(grep -o 'http://[0-9.:]*' "$work/perpetuo.log" | head -1)
  TOKEN=$(curl -s -X POST "$GW/api/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"benchmark-password"}' | jq -r .token)
  curl -s -X POST "$GW/api/v1/providers" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"label\":\"mock\",\"kind\":\"openai_compatible\",\"base_url\":\"http://$MOCK/v1\",\"api_key\":\"sk-bench-key-0000\"}" >/dev/null
  KEY=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"p"}' | jq -r .token)
  URL="$GW/v1/chat/completions"
  AUTH="Bearer $KEY"
  if [ "$TARGET" = guarded ]; then
    KEY_ID=$(curl -s "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" | jq -r '.data[0].id')
    put() { curl -s -o /dev/null -X PUT "$GW/api/v1$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$2"; }
    put /budgets/workspace '{"usd_limit":1000000,"token_limit":1000000000000,"allow_unpriced":true}'
    put "/keys/$KEY_ID/budget" '{"usd_limit":1000000,"token_limit":1000000000000,"allow_unpriced":true}'
    put /limits/workspace '{"tokens_per_min":1000000000,"max_in_flight":100000}'
    put "/keys/$KEY_ID/limits" '{"input_tokens_per_min":1000000000,"max_in_flight":100000}'
  fi
fi
cat > "$work/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "$AUTH"
LUA
wrk -t"$WRK_THREADS" -c"$CONNS" -d2s -s "$work/req.lua" "$URL" > /dev/null   # warm up
wrk -t"$WRK_THREADS" -c"$CONNS" -d"$((SECONDS_RUN + 2))s" -s "$work/req.lua" "$URL" > "$OUT/wrk.txt" &
WRK=$!
sleep 1
perf record -q -e cpu-clock -F "${PERF_FREQ:-1999}" --call-graph dwarf,16384 -p "$PID" -o "$OUT/cpu.data" -- sleep "$SECONDS_RUN" 2>/dev/null
wait $WRK
wrk -t"$WRK_THREADS" -c"$CONNS" -d"$((SECONDS_RUN + 2))s" -s "$work/req.lua" "$URL" > /dev/null &
WRK=$!
sleep 1
perf record -q -e sched:sched_switch --call-graph dwarf,8192 -p "$PID" -o "$OUT/off.data" -- sleep "$SECONDS_RUN" 2>/dev/null || true
wait $WRK
perf report --no-inline -i "$OUT/cpu.data" --no-children --stdio --percent-limit 0.7 -g none --sort symbol 2>/dev/null > "$OUT/cpu.txt"
perf report --no-inline -i "$OUT/cpu.data" --children --stdio --percent-limit 3 -g none --sort symbol 2>/dev/null > "$OUT/cpu-children.txt"
perf report --no-inline -i "$OUT/off.data" --no-children --stdio --percent-limit 2 -g caller,0.5,callee --sort symbol 2>/dev/null > "$OUT/offcpu.txt" || true
# Where the CPU goes, by crate (the symbol's first path segment; [k] is the kernel).
perf report --no-inline -i "$OUT/cpu.data" --no-children --stdio -g none --sort dso,symbol --percent-limit 0 2>/dev/null | python3 bench/by_crate.py > "$OUT/by-crate.txt"
grep -E "Requests/sec|Latency" "$OUT/wrk.txt"
head -25 "$OUT/by-crate.txt"
echo "profiles in $OUT" >&2
