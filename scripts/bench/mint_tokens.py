#!/usr/bin/env python3
"""Mints distinct access tokens for the HTTP benchmark (scripts/bench-http.sh).

Each worker thread keeps one keep-alive connection to the node and asks for
client_credentials grants until the total is reached; tokens are written one a line.
Standard library only, so the benchmark needs nothing beyond python3, curl and wrk.

usage: mint_tokens.py BASE_URL CLIENT_ID CLIENT_SECRET COUNT OUT_FILE [THREADS]
"""

import base64
import http.client
import json
import sys
import threading
import time
import urllib.parse


def mint(base_url, authorization, count, out, lock, failures):
    """Requests `count` tokens over one connection and appends them to `out`."""
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {
        "Authorization": authorization,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    minted = []
    for _ in range(count):
        conn.request("POST", "/oauth/token", body="grant_type=client_credentials",
                     headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            with lock:
                failures.append(f"HTTP {response.status}: {body[:200]!r}")
            return
        minted.append(json.loads(body)["access_token"])
    conn.close()
    with lock:
        out.extend(minted)


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__.strip().splitlines()[-1])
    base_url, client_id, secret, count, out_file = sys.argv[1:6]
    threads = int(sys.argv[6]) if len(sys.argv) == 7 else 4
    count = int(count)
    credentials = f"{client_id}:{secret}".encode()
    authorization = "Basic " + base64.b64encode(credentials).decode()

    tokens, failures, lock = [], [], threading.Lock()
    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    started = time.monotonic()
    workers = [
        threading.Thread(target=mint, args=(base_url, authorization, n, tokens, lock, failures))
        for n in shares
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started

    if failures or len(tokens) != count or len(set(tokens)) != count:
        sys.exit(f"minting failed: {len(tokens)}/{count} tokens; {failures[:1]}")
    with open(out_file, "w", encoding="ascii") as f:
        f.write("\n".join(tokens) + "\n")
    print(f"minted {count} distinct tokens in {elapsed:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
