"""Checks a fault soak: every answered request has exactly one usage record with the right status,
and the provider key appears in no answer and no log line. Reads the client's lines (from
soak_client.py) and Perpetuo's request log through the management API. Prints table rows and exits
non-zero when a check fails. Run by bench/soak.sh."""

import json
import sys
import time
import urllib.parse
import urllib.request

base, token, log_path, provider_key, *client_files = sys.argv[1:]
answered = []
for path in client_files:
    with open(path) as f:
        answered += [json.loads(line) for line in f if line.strip()]
answered = [a for a in answered if "status" in a]

records = {}
duplicates = 0
deadline = time.time() + 120
while True:
    records.clear()
    duplicates = 0
    cursor = None
    while True:
        params = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        request = urllib.request.Request(
            base + "/api/v1/requests?" + urllib.parse.urlencode(params), headers={"authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            page = json.loads(response.read())
        for row in page["data"]:
            if row["request_id"] in records:
                duplicates += 1
            records[row["request_id"]] = row
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if all(a["id"] in records for a in answered) or time.time() > deadline:
        break
    time.sleep(1)

missing = [a for a in answered if a["id"] not in records]
wrong = []
for a in answered:
    row = records.get(a["id"])
    if row is None:
        continue
    if a["stream"] and a["status"] == 200:
        expected = {502} if a["stream_error"] else {200}
    else:
        expected = {a["status"]}
    if row["status"] not in expected:
        wrong.append((a, row["status"]))
leaks = sum(1 for a in answered if a["leak"])
with open(log_path, errors="replace") as f:
    log = f.read()
log_leaks = log.count(provider_key)
panics = log.count("panicked")

rows = [
    ("requests answered", len(answered), True),
    ("usage records for them", sum(1 for a in answered if a["id"] in records), not missing),
    ("records missing", len(missing), not missing),
    ("records written twice", duplicates, duplicates == 0),
    ("records with the wrong status", len(wrong), not wrong),
    ("answers holding the provider key", leaks, leaks == 0),
    ("log lines holding the provider key", log_leaks, log_leaks == 0),
    ("panics in the log", panics, panics == 0),
]
for name, value, ok in rows:
    print(f"| {name} | {value} | {'ok' if ok else 'FAILED'} |")
for a, status in wrong[:5]:
    print(f"  wrong status: {a} recorded {status}", file=sys.stderr)
for a in missing[:5]:
    print(f"  missing: {a}", file=sys.stderr)
sys.exit(0 if all(ok for _, _, ok in rows) else 1)
