#!/usr/bin/python3
# A plain Python script on Debian's python3-httpx, the way a person would write
# one against a local Ollama: stream /api/chat (NDJSON), then list the models.
#   /usr/bin/python3 httpx-chat.py [--url http://127.0.0.1:11434] [--model llama3.2]
#                                   [--prompt TEXT] [--token-stdin]
# With --token-stdin the first line of standard input is sent as
# "Authorization: Bearer ..." (a peer-bound token; never on argv). TLS trust is
# httpx's default: the SSL_CERT_FILE environment variable names the CA bundle.
# Prints one JSON line: {ok, status, chunks, content, done, evalCount, models}
# or {ok: false, status, error}.
import argparse
import json
import sys

import httpx

p = argparse.ArgumentParser()
p.add_argument("--url", default="http://127.0.0.1:11434")
p.add_argument("--model", default="llama3.2")
p.add_argument("--prompt", default="Why is the sky blue?")
p.add_argument("--token-stdin", action="store_true")
a = p.parse_args()

headers = {}
if a.token_stdin:
    headers["authorization"] = "Bearer " + sys.stdin.readline().strip()


def out(obj):
    print(json.dumps(obj), flush=True)


try:
    with httpx.Client(base_url=a.url, headers=headers, timeout=30.0) as c:
        body = {"model": a.model, "messages": [{"role": "user", "content": a.prompt}]}
        chunks, content, last = 0, "", None
        with c.stream("POST", "/api/chat", json=body) as r:
            if r.status_code != 200:
                r.read()
                out({"ok": False, "status": r.status_code, "error": r.text})
                sys.exit(0)
            for line in r.iter_lines():
                if not line.strip():
                    continue
                part = json.loads(line)
                chunks += 1
                content += (part.get("message") or {}).get("content", "")
                last = part
        tags = c.get("/api/tags")
        models = [m["name"] for m in tags.json().get("models", [])]
        out({
            "ok": True, "status": 200, "chunks": chunks, "content": content,
            "done": (last or {}).get("done"), "evalCount": (last or {}).get("eval_count"), "models": models,
        })
except httpx.HTTPError as e:
    out({"ok": False, "status": 0, "error": f"{type(e).__name__}: {e}"})
