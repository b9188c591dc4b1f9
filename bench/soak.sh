#!/usr/bin/env bash
# The fault soak: Perpetuo against providers that misbehave at random (examples/fault_upstream:
# 5xx, 429 with Retry-After, resets, hangs past every timeout, streams cut midway, garbage JSON,
# endless bodies and endless SSE lines, slow drips, the key echoed back), driven over every gateway
# route, plain and streaming; then every provider failing at once until the breakers open, and
# healed until they let calls through again. Prints a table:
#   the process still up and its peak RSS, no panic in the log, every answered request with exactly
#   one usage record of the right status, the provider key in no answer and no log line, breakers
#   opening and recovering.
# Usage: bench/soak.sh [requests, default 10000] [concurrency, default 32]
#   SOAK_PROFILE=debug uses the test suite's debug build (the short form scripts/test.sh runs).
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-10000}
CONCURRENCY=${2:-32}
PROFILE=${SOAK_PROFILE:-release}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PYTHON=${PERPETUO_PYTHON:-python3}
export PATH="$HOME/.cargo/bin:$PATH"
# apt-get as root, or through sudo; otherwise say what to install.
apt_install() {
  if [ "$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null; then sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else echo "install $* (apt) first: this needs root" >&2; return 1; fi
}
command -v jq >/dev/null || { echo "installing jq (apt)" >&2; apt_install jq; }
if [ "$PROFILE" = release ]; then
  cargo build --release --bin perpetuo --example fault_upstream >&2
else
  cargo build --bin perpetuo --example fault_upstream >&2
fi
BIN="$TARGET_DIR/$PROFILE"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_for() {
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$3 did not start:" >&2; cat "$1" >&2; exit 1
}

PROVIDER_KEY="sk-soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$BIN/examples/fault_upstream" 127.0.0.1:0 "$PROVIDER_KEY" > "$work/mock.out" &
pids+=($!)
wait_for "$work/mock.out" listening "the fault mock"
MOCK=$(awk '/listening on/{print $3}' "$work/mock.out")

ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) JWT_SECRET=$(head -c 48 /dev/urandom | base64) \
DATABASE_URL=${SOAK_DB:-surrealkv://$work/perpetuo.db} LEPTOS_SITE_ADDR=127.0.0.1:0 ALLOW_PRIVATE_UPSTREAMS=true \
RUST_LOG=info RATE_LIMIT_IP_PER_MIN=1000000000 MAX_CONNECTIONS_PER_IP=1000000 RATE_LIMIT_KEY_PER_MIN=1000000000 METRICS_PUBLIC=true \
UPSTREAM_FIRST_BYTE_TIMEOUT_MS=800 UPSTREAM_IDLE_TIMEOUT_MS=800 UPSTREAM_TOTAL_TIMEOUT_MS=4000 UPSTREAM_MAX_ATTEMPTS=3 \
UPSTREAM_MAX_ANSWER_BYTES=1048576 BREAKER_FAILURE_THRESHOLD=5 BREAKER_COOLDOWN_MS=1500 \
  "$BIN/perpetuo" > "$work/perpetuo.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
wait_for "$work/perpetuo.log" "listening on" "Perpetuo"
GW=$(grep -o 'http://[0-9.:]*' "$work/perpetuo.log" | head -1)
# The first account gives the setup code Perpetuo logs while no account exists.
wait_for "$work/perpetuo.log" "setup code" "the setup code"
SETUP_CODE=$(grep -o 'setup code [0-9A-Z-]*' "$work/perpetuo.log" | head -1 | cut -d" " -f3)

TOKEN=$(curl -s -X POST "$GW/api/v1/auth/signup" -H 'content-type: application/json' \
  -d "{\"email\":\"soak@example.com\",\"password\":\"soak-password-123\",\"setup_code\":\"$SETUP_CODE\"}" | jq -r .token)
if [ -z "$TOKEN" ] || [ "$TOKEN" = null ]; then echo "soak: the first sign-up failed" >&2; exit 1; fi
provider() {  # $1 label, $2 kind, $3 base URL, $4 priority
  curl -s -X POST "$GW/api/v1/providers" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"label\":\"$1\",\"kind\":\"$2\",\"base_url\":\"$3\",\"api_key\":\"$PROVIDER_KEY\",\"priority\":$4}" >/dev/null
}
provider faulty-openai openai_compatible "http://$MOCK/v1" 2
provider faulty-anthropic anthropic "http://$MOCK" 1
KEY=$(curl -s -X POST "$GW/api/v1/keys" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"soak"}' | jq -r .token)

started=$(date +%s)
echo "soak: $TOTAL requests at concurrency $CONCURRENCY against random faults ($PROFILE build)" >&2
"$PYTHON" bench/soak_client.py "$GW" "$KEY" "$PROVIDER_KEY" "$TOTAL" "$CONCURRENCY" "$work/answers.jsonl" >&2

# Breakers: every provider fails; calls are refused fast once the breakers open; healed, the
# breakers let a probe through after the cooldown and calls succeed again.
curl -s "http://$MOCK/control/fail-all?on=1" >/dev/null
chat() { curl -s -o /dev/null -w '%{http_code}' -X POST "$GW/v1/chat/completions" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'; }
opened=0
for _ in $(seq 1 40); do [ "$(chat)" = 503 ] && opened=$((opened + 1)); done
curl -s "http://$MOCK/control/fail-all?on=0" >/dev/null
healed_at=$(date +%s%N)
recovered_ms=
for _ in $(seq 1 300); do
  if [ "$(chat)" = 200 ]; then recovered_ms=$(( ($(date +%s%N) - healed_at) / 1000000 )); break; fi
  sleep 0.1
done
elapsed=$(( $(date +%s) - started ))

up=no; kill -0 "$GW_PID" 2>/dev/null && curl -sf "$GW/healthz" >/dev/null && up=yes
rss=$(awk '/VmHWM/ {printf "%d MB", $2/1024}' "/proc/$GW_PID/status")
echo
echo "| check | figure | verdict |"
echo "|---|---|---|"
echo "| process up after the soak | $up | $([ $up = yes ] && echo ok || echo FAILED) |"
echo "| peak RSS | $rss | - |"
echo "| duration | ${elapsed} s | - |"
set +e
"$PYTHON" bench/soak_check.py "$GW" "$TOKEN" "$work/perpetuo.log" "$PROVIDER_KEY" "$work/answers.jsonl"
checked=$?
set -e
echo "| calls refused fast by open breakers (of 40, all providers failing) | $opened | $([ "$opened" -gt 0 ] && echo ok || echo FAILED) |"
echo "| healed: first success after | ${recovered_ms:-never} ms | $([ -n "$recovered_ms" ] && echo ok || echo FAILED) |"
errors=$(curl -s "$GW/metrics" | awk '/^perpetuo_upstream_errors_total/ {split($1, a, "class=\""); split(a[2], b, "\""); sum[b[1]] += $2} END {for (c in sum) printf "%s=%d ", c, sum[c]}')
echo
echo "upstream failures seen by class: $errors"
[ $up = yes ] && [ $checked = 0 ] && [ "$opened" -gt 0 ] && [ -n "$recovered_ms" ]
