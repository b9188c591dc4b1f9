#!/usr/bin/env bash
# Gateway overhead benchmark: a mock provider and Perpetuo (release build) on loopback; wrk measures
# the mock directly and through Perpetuo, side by side:
#   latency p50/p99 at concurrency 1, and requests/s at concurrency 64 and 256, plain and streaming,
#   for chat, then Anthropic Messages and OpenAI Responses passed through (direct and Perpetuo),
#   then plain chat with a key under token and in-flight limits (what the limiter costs a call) and
#   with a key under a token budget (what a budget's reservation costs),
#   then Perpetuo saturated for a minute; and at the end, every answered request against the usage
#   records written, and Perpetuo's peak memory.
# Two relays run in the same table as references for what any proxy costs on this machine:
#   floor  - examples/floor_proxy: axum in, reqwest out, bytes relayed untouched (no auth, no JSON,
#            no records): the ceiling for anything built on Perpetuo's stack;
#   nginx  - nginx with upstream keep-alive (installed from apt when missing; skipped if it can't be).
# Perpetuo uses the embedded file database it runs with by default (BENCH_DB=mem:// to change), and
# the run ends with how many usage records were written and dropped.
# Usage: bench/run.sh [--quick] [seconds per run, default 10]   (BENCH_SATURATION=60: the saturation row's seconds;
#   BENCH_ROUNDS=3 and BENCH_LATENCY_SECS=5: the c=1 runs whose median each latency is; BENCH_LOG: a log filter)
# BENCH_THREADS (default: the cores): Perpetuo's serving threads, and as many nginx workers.
# Pinning, for a machine with cores to spare (each a `taskset -c` list, unset = not pinned):
#   BENCH_CPUS_RELAY   Perpetuo, nginx and the floor relay (give it BENCH_THREADS cores)
#   BENCH_CPUS_MOCK    the mock provider
#   BENCH_CPUS_LOAD    wrk
set -euo pipefail
cd "$(dirname "$0")/.."
# --quick: the rows that matter for the guarded path, in about two minutes on a warm build: plain
# and streamed chat against nginx, and the same key with none, with limits, with a budget, and
# with both budgets and both limits (3 s runs, one c=1 round, no floor relay, other protocols,
# saturation or in-process limiter figures).
QUICK=0
if [ "${1:-}" = --quick ]; then
  QUICK=1
  shift
  : "${BENCH_ROUNDS:=1}" "${BENCH_LATENCY_SECS:=3}"
  set -- "${1:-3}"
fi
DURATION=${1:-10}
SATURATION=${BENCH_SATURATION:-60}
export PATH="$HOME/.cargo/bin:$PATH"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
THREADS=${BENCH_THREADS:-$(nproc)}
pin() {  # $1 a taskset cpu list or "", then the command
  local cpus=$1; shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
spawn() {  # as pin, for `spawn ... &`: the background job becomes the command (so $! is its pid)
  local cpus=$1; shift
  if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
# apt-get as root, or through sudo; otherwise say what to install.
apt_install() {
  if [ "$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null; then sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else echo "install $* (apt) first: this needs root" >&2; return 1; fi
}
command -v wrk >/dev/null || { echo "installing wrk (apt)" >&2; apt_install wrk; }
if [ -n "${BENCH_CPUS_RELAY:-}${BENCH_CPUS_MOCK:-}${BENCH_CPUS_LOAD:-}" ]; then
  command -v taskset >/dev/null || { echo "installing util-linux (apt) for taskset" >&2; apt_install util-linux; }
fi
command -v jq >/dev/null || { echo "installing jq (apt)" >&2; apt_install jq; }
NGINX=$(command -v nginx || true)
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
if [ -z "$NGINX" ]; then
  echo "installing nginx-light (apt) for the reference row" >&2
  apt_install nginx-light 2>/dev/null || apt_install nginx 2>/dev/null || true
  NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
fi

cargo build --release --bin perpetuo --example mock_upstream --example floor_proxy --example limiter_bench >&2
# The release binary is stripped (Cargo.toml): past 150 MB something grew or lost its strip. (It was
# 139 MB with three dialects, 140.3 MB with the cloud dialects and jsonwebtoken's PEM parsing.)
size=$(stat -c %s "$TARGET_DIR/release/perpetuo")
printf 'release binary: %d MB (limit 150)\n' "$((size / 1000000))"
if [ "$size" -gt 150000000 ]; then echo "the release binary is over 150 MB" >&2; exit 1; fi
work=$(mktemp -d)
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
pids=()
trap cleanup EXIT
wait_for() {  # $1 file, $2 pattern, $3 what: up to 60 s, then the file and exit
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$3 did not start:" >&2; cat "$1" >&2; exit 1
}

spawn "${BENCH_CPUS_MOCK:-}" "$TARGET_DIR/release/examples/mock_upstream" 127.0.0.1:0 > "$work/mock.out" &
pids+=($!)
wait_for "$work/mock.out" listening "the mock provider"
MOCK=$(awk '/listening on/{print $3}' "$work/mock.out")

spawn "${BENCH_CPUS_RELAY:-}" "$TARGET_DIR/release/examples/floor_proxy" 127.0.0.1:0 "http://$MOCK/v1" > "$work/floor.out" &
FLOOR_PID=$!
pids+=($FLOOR_PID)
wait_for "$work/floor.out" listening "the floor relay"
FLOOR=$(awk '/listening on/{print $3}' "$work/floor.out")

NGINX_ADDR=
port=
if [ -n "$NGINX" ]; then
  # A free port from the kernel; without python3 the nginx row is left out.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null) || port=
fi
if [ -n "$port" ]; then
  cat > "$work/nginx.conf" <<NGINXCONF
worker_processes $THREADS;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  upstream mock { server $MOCK; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGINXCONF
  if pin "${BENCH_CPUS_RELAY:-}" "$NGINX" -c "$work/nginx.conf" -e "$work/nginx.err" 2>/dev/null; then NGINX_ADDR=127.0.0.1:$port; fi
fi

# Perpetuo's own default log filter, as it ships (the per-call access line off); BENCH_LOG sets
# another (`info,perpetuo::access=info` measures it with the access line).
if [ -n "${BENCH_LOG:-}" ]; then export RUST_LOG=$BENCH_LOG; else unset RUST_LOG; fi
ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) JWT_SECRET=$(head -c 48 /dev/urandom | base64) \
DATABASE_URL=${BENCH_DB:-surrealkv://$work/perpetuo.db} LEPTOS_SITE_ADDR=127.0.0.1:0 ALLOW_PRIVATE_UPSTREAMS=true \
RATE_LIMIT_IP_PER_MIN=1000000000 MAX_CONNECTIONS_PER_IP=1000000 RATE_LIMIT_KEY_PER_MIN=1000000000 METRICS_PUBLIC=true SERVE_THREADS=$THREADS \
  spawn "${BENCH_CPUS_RELAY:-}" "$TARGET_DIR/release/perpetuo" 2> "$work/perpetuo.log" &
GW_PID=$!
pids+=($GW_PID)
wait_for "$work/perpetuo.log" "listening on" "Perpetuo"
GW=$(grep -o 'http://[0-9.:]*' "$work/perpetuo.log" | head -1)
# The first account gives the setup code Perpetuo logs while no account exists.
wait_for "$work/perpetuo.log" "setup code" "the setup code"
SETUP_CODE=$(grep -o 'setup code [0-9A-Z-]*' "$work/perpetuo.log" | head -1 | cut -d" " -f3)

signup=$(curl -s -X POST "$GW/api/v1/auth/signup" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.com\",\"password\":\"benchmark-password\",\"setup_code\":\"$SETUP_CODE\"}")
TOKEN=$(echo "$signup" | jq -r .token)
provider() {  # $1 label, $2 kind, $3 base URL, $4 priority
  curl -s -X POST "$GW/api/v1/providers" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"label\":\"$1\",\"kind\":\"$2\",\"base_url\":\"$3\",\"api_key\":\"sk-bench-key-0000\",\"priority\":$4}" >/dev/null
}
# The same mock plays each vendor: chat goes to the compatible provider, `claude-*` on
# /v1/messages to the Anthropic one and `gpt-*` on /v1/responses to the OpenAI one (both passed
# through, as they are for real vendors).
provider mock openai_compatible "http://$MOCK/v1" 10
provider anthropic-mock anthropic "http://$MOCK" 1
provider openai-mock openai "http://$MOCK/v1" 1
KEY=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench"}' | jq -r .token)

body_plain='{"model":"bench-model","messages":[{"role":"user","content":"Say hello in five words."}]}'
body_stream='{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say hello in five words."}]}'
body_messages='{"model":"claude-bench","max_tokens":64,"messages":[{"role":"user","content":"Say hello in five words."}]}'
body_messages_stream='{"model":"claude-bench","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hello in five words."}]}'
body_responses='{"model":"gpt-bench","input":"Say hello in five words."}'
body_responses_stream='{"model":"gpt-bench","stream":true,"input":"Say hello in five words."}'
lua() {  # $1 body, $2 authorization value
  cat > "$work/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "$2"
LUA
}

# Sanity: both paths answer 200 before measuring.
answers() {  # $1 url -> the HTTP status of one plain request
  curl -s -o /dev/null -w '%{http_code}' -X POST "$1" -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d "$body_plain"
}
for url in "http://$MOCK/v1/chat/completions" "http://$FLOOR/v1/chat/completions" "$GW/v1/chat/completions"; do
  code=$(answers "$url")
  [ "$code" = 200 ] || { echo "sanity check failed: $url answered $code (Perpetuo's log follows)" >&2; cat "$work/perpetuo.log" >&2; exit 1; }
done
for route in "/v1/messages $body_messages" "/v1/responses $body_responses"; do
  code=$(curl -s -o "$work/sanity" -w '%{http_code}' -X POST "$GW${route%% *}" -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d "${route#* }")
  [ "$code" = 200 ] || { echo "sanity check failed: ${route%% *} answered $code: $(cat "$work/sanity")" >&2; exit 1; }
done
if [ -n "$NGINX_ADDR" ] && [ "$(answers "http://$NGINX_ADDR/v1/chat/completions")" != 200 ]; then
  echo "nginx did not relay (left out of the table):" >&2; cat "$work/nginx.err" >&2 || true
  NGINX_ADDR=
fi

answered_file="$work/answered"
echo 0 > "$answered_file"
run() {  # $1 url, $2 connections, $3 threads, [$4 seconds] -> "p50_us p99_us rps requests"; counts Perpetuo's answers
  pin "${BENCH_CPUS_LOAD:-}" wrk -t"$3" -c"$2" -d"${4:-$DURATION}s" --latency -s "$work/req.lua" "$1" > "$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "non-2xx answers during the run:" >&2; cat "$work/wrk.out" >&2; exit 1; fi
  if [[ "$1" == "$GW"* ]]; then
    echo $(( $(cat "$answered_file") + $(awk '/requests in/ {print $1}' "$work/wrk.out") )) > "$answered_file"
  fi
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} /^Requests\/sec/ {rps=$2} / requests in / {n=$1}
    END {printf "%d %d %d %d\n", p50, p99, rps, n}' "$work/wrk.out"
}

# Latency at c=1: the median of BENCH_ROUNDS runs of BENCH_LATENCY_SECS each (3 of 5 s): on shared
# cores one hiccup moves one run's p99 by a factor of two or three, and then no longer the row.
ROUNDS=${BENCH_ROUNDS:-3}
LATENCY_SECS=${BENCH_LATENCY_SECS:-5}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
latency() {  # $1 url, $2 label -> "p50_us p99_us" (medians); each round is kept in $work/rounds
  local p50s=() p99s=() a b
  for _ in $(seq "$ROUNDS"); do
    read -r a b _ < <(run "$1" 1 1 "$LATENCY_SECS")
    p50s+=("$a") p99s+=("$b")
  done
  printf '%-19s p50 %s us   p99 %s us\n' "$2" "${p50s[*]}" "${p99s[*]}" >> "$work/rounds"
  echo "$(median "${p50s[@]}") $(median "${p99s[@]}")"
}

# The relay's own CPU per call at c=64 (user + system, all its threads; nginx: its workers), read
# from /proc around the run: steadier than req/s on shared cores, where a neighbour moves the clock.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
relay_pids() {  # $1 relay name -> its pids
  case $1 in
    perpetuo|no-limit|limited|budgeted|guarded) echo "$GW_PID" ;;
    floor) echo "$FLOOR_PID" ;;
    nginx) pgrep -P "$(cat "$work/nginx.pid" 2>/dev/null || echo 0)" 2>/dev/null || true ;;
  esac
}
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }

printf '\n%-8s %-9s %9s %9s %10s %11s %12s %9s %12s\n' mode target "p50 c=1" "p99 c=1" "added p50" "req/s c=64" "req/s c=256" "Perpetuo RSS" "CPU/call c=64"
row() {  # $1 mode, $2 name, $3 base url, $4 direct p50, [$5 path] -> prints the row; sets R_P99 R_RPS R_ADDED R_CPU
  local path=${5:-/v1/chat/completions} relay t0 t1 n
  relay=$(relay_pids "$2")
  read -r p50 p99 < <(latency "$3$path" "$1 $2")
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $relay)
  read -r _ _ rps n < <(run "$3$path" 64 2)
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $relay)
  read -r _ _ rps256 _ < <(run "$3$path" 256 2)
  R_CPU=$(( n > 0 ? (t1 - t0) * TICK_US / n : 0 ))
  printf '%-8s %-9s %7sus %7sus %8sus %11s %12s %9s %10sus\n' "$1" "$2" "$p50" "$p99" "$((p50 - $4))" "$rps" "$rps256" "$(rss_now)" "$R_CPU"
  R_P99=$p99 R_RPS=$rps R_ADDED=$((p50 - $4))
}
direct_row() {  # $1 mode, $2 path -> prints the direct row; sets D50
  read -r D50 d99 < <(latency "http://$MOCK$2" "$1 direct")
  read -r _ _ drps _ < <(run "http://$MOCK$2" 64 2)
  read -r _ _ drps256 _ < <(run "http://$MOCK$2" 256 2)
  printf '%-8s %-9s %7sus %7sus %10s %11s %12s\n' "$1" direct "$D50" "$d99" "" "$drps" "$drps256"
}
metric() { curl -s "$GW/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# Waits until Perpetuo's usage writer has written what earlier runs spooled: a writer still busy
# would change the next run's latencies (busy cores wake faster than idle ones, and share less).
settle() {
  for _ in $(seq 1 600); do
    [ "$(metric perpetuo_usage_spool_bytes)" = 0 ] && return 0
    sleep 0.5
  done
}
rss_now() { awk '/VmRSS/ {printf "%d MB", $2/1024}' "/proc/$GW_PID/status"; }
peak_rss() { awk '/VmHWM/ {printf "%d MB", $2/1024}' "/proc/$GW_PID/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) b = 1; printf "%.2f", a / b }'; }
verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
checks=()
for mode in plain stream; do
  settle
  body=$([ $mode = plain ] && echo "$body_plain" || echo "$body_stream")
  lua "$body" "Bearer $KEY"
  direct_row $mode /v1/chat/completions
  d50=$D50
  if [ -n "$NGINX_ADDR" ]; then row $mode nginx "http://$NGINX_ADDR" "$d50"; N_P99=$R_P99 N_RPS=$R_RPS N_ADDED=$R_ADDED; fi
  if [ $QUICK = 0 ]; then row $mode floor "http://$FLOOR" "$d50"; F_P99=$R_P99 F_RPS=$R_RPS F_CPU=$R_CPU; fi
  settle
  row $mode perpetuo "$GW" "$d50"; P_P99=$R_P99 P_RPS=$R_RPS P_CPU=$R_CPU
  if [ $mode = plain ]; then CHAT_ADDED_plain=$R_ADDED; else CHAT_ADDED_stream=$R_ADDED; fi
  if [ -n "$NGINX_ADDR" ]; then
    # Issue 26's targets, against nginx with as many workers as Perpetuo has serving threads.
    checks+=("$mode: req/s c=64 $P_RPS vs nginx $N_RPS = $(ratio "$P_RPS" "$N_RPS")x (target >= 0.80x): $(verdict $((10 * P_RPS >= 8 * N_RPS)))")
    checks+=("$mode: added p50 c=1 ${R_ADDED}us vs nginx ${N_ADDED}us = $(ratio "$R_ADDED" "$N_ADDED")x (target <= 2x): $(verdict $((R_ADDED <= 2 * N_ADDED)))")
    checks+=("$mode: p99 c=1 ${P_P99}us vs nginx ${N_P99}us = $(ratio "$P_P99" "$N_P99")x (target <= 2x): $(verdict $((P_P99 <= 2 * N_P99)))")
  fi
  if [ $QUICK = 0 ]; then
    checks+=("$mode: req/s c=64 $P_RPS vs floor $F_RPS = $(ratio "$P_RPS" "$F_RPS")x; p99 c=1 vs floor $(ratio "$P_P99" "$F_P99")x; CPU per call at c=64 ${P_CPU}us vs floor ${F_CPU}us = $(ratio "$P_CPU" "$F_CPU")x")
  fi
done
if [ $QUICK = 0 ]; then
# The other client protocols, passed through to providers that speak them: what they add should
# be what chat adds.
for spec in "messages|/v1/messages|$body_messages|plain" "msg-strm|/v1/messages|$body_messages_stream|stream" \
            "response|/v1/responses|$body_responses|plain" "resp-strm|/v1/responses|$body_responses_stream|stream"; do
  IFS='|' read -r mode path body kind <<< "$spec"
  settle
  lua "$body" "Bearer $KEY"
  direct_row "$mode" "$path"
  row "$mode" perpetuo "$GW" "$D50" "$path"
  chat_added=$([ "$kind" = plain ] && echo "$CHAT_ADDED_plain" || echo "$CHAT_ADDED_stream")
  checks+=("$mode ($path, passed through): added p50 ${R_ADDED}us vs chat's ${chat_added}us (target <= chat's + 10%): $(verdict $((10 * R_ADDED <= 11 * chat_added)))")
done
fi
# What token and in-flight limits cost a call: the same plain chat with a key under an input
# token limit and a concurrency limit (both far above what the run sends), against the bench key.
limited=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench-limited"}')
LKEY=$(echo "$limited" | jq -r .token)
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$GW/api/v1/keys/$(echo "$limited" | jq -r .key.id)/limits" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"input_tokens_per_min":1000000000,"max_in_flight":100000}')
[ "$code" = 200 ] || { echo "setting the bench key's limits answered $code" >&2; exit 1; }
settle
lua "$body_plain" "Bearer $KEY"
direct_row limits /v1/chat/completions
row limits no-limit "$GW" "$D50"; U_ADDED=$R_ADDED U_RPS=$R_RPS U_CPU=$R_CPU
settle
lua "$body_plain" "Bearer $LKEY"
row limits limited "$GW" "$D50"
checks+=("token and in-flight limits: added p50 ${R_ADDED}us vs ${U_ADDED}us without ($((R_ADDED - U_ADDED))us a call), req/s c=64 $R_RPS vs $U_RPS ($((100 * R_RPS / (U_RPS > 0 ? U_RPS : 1)))%)")
# What a budget costs a call: the same plain chat with a key under a token budget far above what
# the run uses (each call reserves in the database before it is sent and settles after).
budgeted=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench-budgeted"}')
BKEY=$(echo "$budgeted" | jq -r .token)
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$GW/api/v1/keys/$(echo "$budgeted" | jq -r .key.id)/budget" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"token_limit":1000000000000}')
[ "$code" = 200 ] || { echo "setting the bench key's budget answered $code" >&2; exit 1; }
settle
lua "$body_plain" "Bearer $BKEY"
row limits budgeted "$GW" "$D50"
checks+=("a token budget on the key: added p50 ${R_ADDED}us vs ${U_ADDED}us without, req/s c=64 $R_RPS vs $U_RPS ($((100 * R_RPS / (U_RPS > 0 ? U_RPS : 1)))%), CPU per call ${R_CPU}us vs ${U_CPU}us")
# Issue 43's row: a key under everything at once, in a second workspace (so the first one's keys
# stay unguarded): a budget on the workspace and on the key (dollars and tokens), a token limit and
# an in-flight limit on both, all far above what the run uses.
workspace=$(curl -s -X POST "$GW/api/v1/workspaces" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"guarded"}')
GTOKEN=$(curl -s -X POST "$GW/api/v1/auth/token" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.com\",\"password\":\"benchmark-password\",\"workspace_id\":\"$(echo "$workspace" | jq -r .id)\"}" | jq -r .token)
TOKEN_MAIN=$TOKEN TOKEN=$GTOKEN
provider mock openai_compatible "http://$MOCK/v1" 10
guarded=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench-guarded"}')
GKEY=$(echo "$guarded" | jq -r .token) GKEY_ID=$(echo "$guarded" | jq -r .key.id)
TOKEN=$TOKEN_MAIN
guard() {  # $1 path, $2 body: a PUT in the guarded workspace that must answer 200
  local code
  code=$(curl -s -o "$work/guard" -w '%{http_code}' -X PUT "$GW/api/v1$1" -H "authorization: Bearer $GTOKEN" -H 'content-type: application/json' -d "$2")
  [ "$code" = 200 ] || { echo "PUT $1 answered $code: $(cat "$work/guard")" >&2; exit 1; }
}
guard /budgets/workspace '{"usd_limit":1000000,"token_limit":1000000000000,"allow_unpriced":true}'
guard "/keys/$GKEY_ID/budget" '{"usd_limit":1000000,"token_limit":1000000000000,"allow_unpriced":true}'
guard /limits/workspace '{"tokens_per_min":1000000000,"max_in_flight":100000}'
guard "/keys/$GKEY_ID/limits" '{"input_tokens_per_min":1000000000,"max_in_flight":100000}'
settle
lua "$body_plain" "Bearer $GKEY"
row limits guarded "$GW" "$D50"
checks+=("workspace and key budgets, token and in-flight limits: added p50 ${R_ADDED}us vs ${U_ADDED}us without ($((R_ADDED - U_ADDED))us a call, target <= 15us: $(verdict $((R_ADDED - U_ADDED <= 15)))), req/s c=64 $R_RPS vs $U_RPS = $(ratio "$R_RPS" "$U_RPS")x (target >= 0.80x: $(verdict $((10 * R_RPS >= 8 * U_RPS)))), CPU per call ${R_CPU}us vs ${U_CPU}us")
if [ $QUICK = 0 ]; then
  settle
  lua "$body_plain" "Bearer $KEY"
  read -r _ s99 srps _ < <(run "$GW/v1/chat/completions" 64 2 "$SATURATION")
  printf '%-8s %-9s %9s %7sus %10s %11s %12s   (%s s at c=64)\n' saturate perpetuo "" "$s99" "" "$srps" "" "$SATURATION"
fi
echo
printf '%s\n' "${checks[@]}"
echo "nginx ($THREADS workers) and floor are references: what a relay doing nothing else reaches on the same cores"
echo
echo "c=1 rounds ($ROUNDS of $LATENCY_SECS s each; the table has their medians):"
cat "$work/rounds"

# Every answered request has one usage record: wait for the writer to catch up, then count.
settle
answered=$(cat "$answered_file")
written=$(metric perpetuo_usage_records_written_total)
echo "usage records: $answered answered through Perpetuo in the runs (plus 1 check), $written written, $(metric perpetuo_usage_spool_bytes) bytes still spooled, $(metric perpetuo_usage_records_dropped_total) dropped"
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
echo "Perpetuo peak RSS: $(peak_rss) (target < 100 MB: $(verdict $((peak_kb < 100 * 1024))))"
if [ $QUICK = 0 ]; then
  echo
  echo "rate limiter cost (in-process, one core):"
  "$TARGET_DIR/release/examples/limiter_bench"
fi
