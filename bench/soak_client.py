"""Drives the fault soak: N requests, mixed plain and streaming, over every gateway route, at a
Perpetuo whose providers misbehave at random. Writes one JSON line per answered request (request
id, route, stream, HTTP status, whether a stream ended in an error event, whether the provider
key appeared) to the output file, and prints a one-line summary. Run by bench/soak.sh."""

import http.client
import json
import sys
import threading
import urllib.parse

base, key, provider_key, total, concurrency, out_path = sys.argv[1:7]
total, concurrency = int(total), int(concurrency)

ROUTES = [
    ("chat", "/v1/chat/completions", lambda model, stream: {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
    ("messages", "/v1/messages", lambda model, stream: {"model": model, "stream": stream, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
    ("responses", "/v1/responses", lambda model, stream: {"model": model, "stream": stream, "input": "hi"}),
    ("embeddings", "/v1/embeddings", lambda model, stream: {"model": model, "input": "hi"}),
]
# `m` goes to the OpenAI-compatible provider; `claude-soak` to Anthropic first, then across
# protocols to the compatible one.
MODELS = ["m", "claude-soak"]


def plan(i):
    name, path, body = ROUTES[i % len(ROUTES)]
    stream = name != "embeddings" and (i // len(ROUTES)) % 2 == 1
    model = MODELS[(i // 8) % 2] if name != "embeddings" else "m"
    return name, path, body(model, stream), stream


def one(conn, i, out):
    name, path, body, stream = plan(i)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    if name == "messages":
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        response_headers = dict(response.getheaders())
    except (OSError, http.client.HTTPException) as e:
        out.append({"i": i, "route": name, "stream": stream, "transport_error": type(e).__name__})
        conn.close()
        return
    tail = text[-2000:]
    # The error event of each protocol (a `"error":null` inside a response object is not one).
    stream_error = stream and response.status == 200 and (
        "event: error" in tail or 'data: {"error"' in tail or '"type":"response.failed"' in tail
    )
    out.append({
        "i": i,
        "id": response_headers.get("x-request-id"),
        "route": name,
        "stream": stream,
        "status": response.status,
        "stream_error": stream_error,
        "leak": provider_key in text or any(provider_key in v for v in response_headers.values()),
    })


def main():
    out = []
    lock = threading.Lock()
    next_i = iter(range(total))
    address = urllib.parse.urlparse(base)

    def worker():
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        mine = []
        while True:
            with lock:
                i = next(next_i, None)
            if i is None:
                break
            one(conn, i, mine)
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out_path, "w") as f:
        for line in out:
            f.write(json.dumps(line) + "\n")
    statuses = {}
    for line in out:
        statuses[line.get("status", "transport")] = statuses.get(line.get("status", "transport"), 0) + 1
    print(json.dumps({"sent": total, "answered": sum(1 for l in out if "status" in l), "statuses": statuses}))


main()
