#!/usr/bin/env python3
"""serve_load.py: a bounded load test of `hyperlora serve` (tests/test_serve_load*.sh).

  serve_load.py PORT PID SECONDS CLIENTS [RSS_CHECK]

CLIENTS threads send requests for SECONDS: completions (plain and streamed,
chat and text) and scene decodes with mixed adapters, scales and seeds, and
now and then a client that leaves mid-stream. Every answer must be a 200
(except the deliberate disconnects), every repeat of the same request must
give the same bytes (batch invariance under load), the server must answer
/health at the end, and its resident memory must stay flat after warm-up:
the largest RSS of the last third of the run at most 10% (+16 MiB) above the
largest of the first third (RSS_CHECK 0 turns this off: under AddressSanitizer
freed memory sits in a quarantine by design, and LeakSanitizer checks leaks
at exit instead). Prints one summary line; exits non-zero on any
failure.
"""
import http.client, json, random, sys, threading, time

port, pid, seconds, clients = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
check_rss = len(sys.argv) < 6 or sys.argv[5] != "0"
prompts = ["Once upon a time", "The little dog", "Lily and Tom", "One day"]
scenes = ["Δ21", "Δ22", "Δ02", "Δ35"]
lock = threading.Lock()
seen, failures, counts = {}, [], {"requests": 0, "tokens": 0, "left": 0}


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(rng):
    """A random request: (path, body, key for the repeat check, streamed)."""
    kind = rng.random()
    seed = rng.randrange(4)
    if kind < 0.25:
        body = {"scene": rng.choice(scenes), "form": rng.choice(["text", "symbols"]), "max_tokens": rng.choice([8, 24]),
                "adapters": [{"name": "dec", "scale": rng.choice([0.5, 1.0])}], "stream": rng.random() < 0.5}
        return "/v1/scenes/decode", body
    body = {"max_tokens": rng.choice([8, 16, 32]), "temperature": rng.choice([0, 0.8]), "seed": seed,
            "stream": rng.random() < 0.4}
    ad = rng.choice([None, "a0", "a1", "r4"])
    if ad:
        body["lora"] = [{"name": ad, "scale": rng.choice([0.5, 1.0])}]
    if kind < 0.5:
        body["messages"] = [{"role": "user", "content": rng.choice(prompts)}]
        return "/v1/chat/completions", body
    body["prompt"] = rng.choice(prompts)
    return "/v1/completions", body


def text_of(path, body, raw):
    if body.get("stream"):
        out, last = "", None
        for line in raw.decode().split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                e = json.loads(line[6:])
                if "error" in e:
                    raise ValueError(e["error"]["message"])
                if path == "/v1/scenes/decode":
                    out += e["text"]
                elif path == "/v1/chat/completions":
                    out += e["choices"][0]["delta"].get("content", "")
                else:
                    out += e["choices"][0]["text"]
                last = e
        if not raw.decode().rstrip().endswith("data: [DONE]"):
            raise ValueError("stream without [DONE]")
        return out
    j = json.loads(raw)
    if path == "/v1/scenes/decode":
        return j["text"]
    if path == "/v1/chat/completions":
        return j["choices"][0]["message"]["content"]
    return j["choices"][0]["text"]


def client(k, stop_at):
    rng = random.Random(1000 + k)
    while time.time() < stop_at:
        path, body = request(rng)
        leave = body.get("stream") and rng.random() < 0.1
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            c.request("POST", path, json.dumps(body))
            r = c.getresponse()
            if leave:
                r.read(1)  # a client that walks away mid-stream
                c.close()
                with lock:
                    counts["left"] += 1
                continue
            raw = r.read()
            if r.status != 200:
                raise ValueError("status %d: %s" % (r.status, raw[:200]))
            text = text_of(path, body, raw)
            key = json.dumps([path, {k2: v for k2, v in body.items() if k2 != "stream"}], sort_keys=True)
            with lock:
                counts["requests"] += 1
                counts["tokens"] += len(text)
                if key in seen and seen[key] != text:
                    failures.append("%s gave %r, before %r" % (key, text, seen[key]))
                seen.setdefault(key, text)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                failures.append("%s %s: %s" % (path, json.dumps(body)[:120], e))
        finally:
            c.close()


start = time.time()
stop_at = start + seconds
threads = [threading.Thread(target=client, args=(k, stop_at)) for k in range(clients)]
for t in threads:
    t.start()
samples = []
while any(t.is_alive() for t in threads):
    samples.append((time.time() - start, rss_kib()))
    time.sleep(0.5)
for t in threads:
    t.join()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/health")
healthy = c.getresponse().status == 200
third = [s for s in samples if s[0] <= seconds / 3], [s for s in samples if s[0] >= 2 * seconds / 3]
early = max(r for _, r in third[0]) if third[0] else 0
late = max(r for _, r in third[1]) if third[1] else 0
flat = late <= early * 1.10 + 16 * 1024 or not check_rss
print("load: %d clients, %.0f s: %d answers (%d distinct requests), %d clients left mid-stream, %d failures; "
      "RSS max %d MiB in the first third, %d MiB in the last; healthy %s"
      % (clients, seconds, counts["requests"], len(seen), counts["left"], len(failures), early // 1024,
         late // 1024, healthy))
for f in failures[:10]:
    print("FAIL:", f)
if not flat:
    print("FAIL: RSS grew from %d to %d KiB after warm-up" % (early, late))
if not healthy:
    print("FAIL: the server does not answer /health")
sys.exit(0 if (not failures and flat and healthy and counts["requests"] > clients) else 1)
