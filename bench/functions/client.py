#!/usr/bin/env python3
"""Clients and probes for bench/functions (run.sh calls them; README.md has the method).

  client.py nimbus-cold  --router H:P --host NAME --count N --pause-ms MS --out F
  client.py peer-cold    --node BIN --server server.js --dir D --count N --pause-ms MS
                         --budget-s S --min N --cpu C --out F
  client.py burst        --router H:P --host NAME --path /p --n N --out F
  client.py peer-burst   --node BIN --server server.js --dir D --n N --cpu C --out F
  client.py snapshot     --api H:P --token-file F --out F
  client.py wait-pool    --api H:P --token-file F --want N --timeout-s S
  client.py settle       --api H:P --token-file F --timeout-s S

Every sample is a latency in milliseconds measured with time.perf_counter() in this
process. Output files are JSON. Standard library only.
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

now = time.perf_counter


def ms(t0, t1):
    return (t1 - t0) * 1000.0


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


# ------------------------------------------------------------------ nimbus cold starts

def nimbus_cold(a):
    """One deployment with functions f0..f<count-1>, none requested yet: request each once,
    in order, on one keep-alive connection (TCP connect not timed), pausing between samples
    so the stem-cell pool can refill in the background."""
    host, port = a.router.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Host": a.host}
    token = read_token(a.token_file) if a.pool_want > 0 else ""

    def get(path):
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        return r, body

    # Connect and warm the router's path with a request that runs no function (404).
    for _ in range(3):
        get("/__bench_no_such_path")
    samples = []
    for i in range(a.count):
        path = "/f%d" % i
        t0 = now()
        try:
            r, body = get(path)
            t1 = now()
            s = {"i": i, "ms": ms(t0, t1), "status": r.status,
                 "id": r.getheader("x-nimbus-id") or ""}
            if r.status != 200 or body != b"hello":
                s["error"] = "status %d body %r" % (r.status, body[:200])
            if (r.getheader("connection") or "").lower() == "close":
                conn.close()  # reconnects on the next request; the connect is then timed
                s["reconnect"] = True
        except Exception as e:  # noqa: BLE001 - any failure is a sample error
            s = {"i": i, "ms": ms(t0, now()), "status": 0, "id": "", "error": repr(e)}
            conn.close()
        samples.append(s)
        time.sleep(a.pause_ms / 1000.0)
        if a.pool_want > 0:
            t = now()
            s["poolFull"] = wait_node_pool(a.api, token, a.pool_want, 10.0)
            s["poolWaitMs"] = ms(t, now())
    conn.close()
    write_json(a.out, {"samples": samples, "pauseMs": a.pause_ms, "poolWant": a.pool_want})


# ------------------------------------------------------------------ peer cold starts

def spawn_on(cpu, argv, **kw):
    """Popen pinned to `cpu`: this process moves there for the fork (the child inherits the
    affinity) and back afterwards. Cheaper than preexec_fn, which forces a slow fork path
    and makes Popen wait until the child has run on the other core."""
    if cpu < 0:
        return subprocess.Popen(argv, **kw)
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return subprocess.Popen(argv, **kw)
    finally:
        os.sched_setaffinity(0, mine)


def read_http_response(sock):
    """Reads one HTTP/1.1 response with a content-length or chunked body; returns
    (status, body). Enough for the peer's and the router's small answers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    if b"content-length" in hdrs:
        n = int(hdrs[b"content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the body")
            rest += chunk
        return status, rest[:n]
    if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the chunked body")
            rest += chunk
        body, pos = b"", 0
        while True:
            eol = rest.index(b"\r\n", pos)
            size = int(rest[pos:eol].split(b";")[0], 16)
            if size == 0:
                return status, body
            body += rest[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    raise ConnectionError("response without content-length or chunked body")


def peer_cold(a):
    """Spawns `node server.js <sock>` (pinned to --cpu) and times spawn -> first complete
    'hello' response, polling connect() on the Unix socket every 0.2 ms meanwhile."""
    samples = []
    started = now()
    stopped_early = False
    request = b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n"
    for i in range(a.count):
        if i >= a.min and now() - started > a.budget_s:
            stopped_early = True
            break
        path = os.path.join(a.dir, "cold-%d.sock" % i)
        t0 = now()
        p = spawn_on(a.cpu, [a.node, a.server, path], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        s = {"i": i}
        try:
            deadline = t0 + 30
            while True:
                if now() > deadline:
                    raise TimeoutError("no answer within 30 s")
                if p.poll() is not None:
                    raise RuntimeError("node exited (%s): %s" % (p.returncode, p.stderr.read()[:300]))
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    c.connect(path)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    c.close()
                    time.sleep(0.0002)
            try:
                c.sendall(request)
                status, body = read_http_response(c)
            finally:
                c.close()
            t1 = now()
            s.update(ms=ms(t0, t1), status=status)
            if status != 200 or body != b"hello":
                s["error"] = "status %d body %r" % (status, body[:200])
        except Exception as e:  # noqa: BLE001
            s.update(ms=ms(t0, now()), status=0, error=repr(e))
        p.kill()
        p.wait()
        p.stderr.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        samples.append(s)
        time.sleep(a.pause_ms / 1000.0)
    write_json(a.out, {"samples": samples, "pauseMs": a.pause_ms, "requested": a.count,
                       "stoppedEarly": stopped_early, "budgetS": a.budget_s})


# ------------------------------------------------------------------ bursts

async def read_response_async(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    if b"content-length" in hdrs:
        body = await reader.readexactly(int(hdrs[b"content-length"]))
    elif hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.read()
    return status, body, hdrs


async def one_request(reader, writer, request, t_send, timeout):
    """Sends `request` (already stamped t_send by the caller) and reads the answer."""
    try:
        status, body, hdrs = await asyncio.wait_for(read_response_async(reader), timeout)
        t1 = now()
        s = {"ms": ms(t_send, t1), "status": status,
             "id": hdrs.get(b"x-nimbus-id", b"").decode()}
        if status != 200 or body != b"hello":
            s["error"] = "status %d body %r" % (status, body[:200])
        return s
    except Exception as e:  # noqa: BLE001
        return {"ms": ms(t_send, now()), "status": 0, "error": repr(e)}
    finally:
        writer.close()


async def burst_async(a):
    host, port = a.router.rsplit(":", 1)
    conns = await asyncio.gather(*[asyncio.open_connection(host, int(port)) for _ in range(a.n)])
    for _, w in conns:
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a.path, a.host)).encode()
    tasks = []
    for r, w in conns:  # fire all at once: each write goes out immediately
        t = now()
        w.write(request)
        tasks.append(asyncio.ensure_future(one_request(r, w, request, t, 60)))
    return await asyncio.gather(*tasks)


def burst(a):
    """N connections to the router opened first (not timed), then N requests for a function
    with no instance written back to back; latency = request written -> response read."""
    samples = asyncio.run(burst_async(a))
    write_json(a.out, {"samples": samples, "path": a.path})


async def peer_burst_async(a, path):
    request = b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n"
    t0 = now()
    p = spawn_on(a.cpu, [a.node, a.server, path], stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:  # until it listens
            try:
                r, w = await asyncio.open_unix_connection(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if now() - t0 > 30 or p.poll() is not None:
                    raise RuntimeError("the peer did not start")
                await asyncio.sleep(0.0002)
        conns = [(r, w)] + list(await asyncio.gather(
            *[asyncio.open_unix_connection(path) for _ in range(a.n - 1)]))
        tasks = []
        for r, w in conns:
            w.write(request)
            tasks.append(asyncio.ensure_future(one_request(r, w, request, t0, 60)))
        return await asyncio.gather(*tasks)
    finally:
        p.kill()
        p.wait()


def peer_burst(a):
    """Spawns `node server.js` at t0 and, as soon as it accepts, sends it N requests on N
    connections; latency = t0 (spawn) -> response read, i.e. the same 'from zero' burst."""
    path = os.path.join(a.dir, "burst-%d.sock" % os.getpid())
    try:
        samples = asyncio.run(peer_burst_async(a, path))
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    write_json(a.out, {"samples": samples})


# ------------------------------------------------------------------ nimbus state

def api_get(api, token, path):
    req = urllib.request.Request("http://%s%s" % (api, path),
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def read_token(path):
    with open(path) as f:
        return f.read().strip()


PROM = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)$')


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = PROM.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        lab = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        out.setdefault(name, []).append((lab, float(value)))
    return out


def snapshot(a):
    token = read_token(a.token_file)
    metrics = parse_metrics(api_get(a.api, token, "/metrics"))
    status = json.loads(api_get(a.api, token, "/v1/instances"))
    snap = {
        "stemMisses": {l["pool"]: v for l, v in metrics.get("nimbus_stem_cell_misses_total", [])},
        "stemReady": {l["pool"]: v for l, v in metrics.get("nimbus_stem_cells", [])},
        "coldStarts": {l["function"]: v for l, v in metrics.get("nimbus_function_cold_starts_total", [])},
        "throttled": {l["function"]: v for l, v in metrics.get("nimbus_function_throttled_total", [])},
        "instances": {},
        "stemCells": status.get("stemCells", {}),
    }
    for f in status.get("functions", []):
        snap["instances"][f["function"]] = f.get("instances", 0)
    write_json(a.out, snap)


def wait_node_pool(api, token, want, timeout_s):
    """Polls /v1/instances every 5 ms until every Node.js pool has `want` ready stem cells;
    returns whether it got there within timeout_s."""
    deadline = now() + timeout_s
    while True:
        pools = json.loads(api_get(api, token, "/v1/instances")).get("stemCells", {})
        node = [p for k, p in pools.items() if k.startswith("nodejs:")]
        if node and all(p.get("ready", 0) >= want for p in node):
            return True
        if now() > deadline:
            return False
        time.sleep(0.005)


def settle(a):
    """Waits until no function has an instance starting (bounded): cold starts a burst set
    off may finish after its last response."""
    token = read_token(a.token_file)
    deadline = now() + a.timeout_s
    while now() < deadline:
        fns = json.loads(api_get(a.api, token, "/v1/instances")).get("functions", [])
        if all(f.get("starting", 0) == 0 for f in fns):
            return
        time.sleep(0.05)
    print("instances still starting after %.0f s" % a.timeout_s, file=sys.stderr)
    sys.exit(1)


def wait_pool(a):
    """Waits until every stem-cell pool has `want` ready cells (bounded)."""
    token = read_token(a.token_file)
    deadline = now() + a.timeout_s
    last = {}
    while now() < deadline:
        last = json.loads(api_get(a.api, token, "/v1/instances")).get("stemCells", {})
        if last and all(p.get("ready", 0) >= a.want for p in last.values()):
            return
        time.sleep(0.05)
    print("stem-cell pools not full after %.0f s: %s" % (a.timeout_s, json.dumps(last)),
          file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("nimbus-cold")
    p.add_argument("--router", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pause-ms", type=float, default=30)
    p.add_argument("--api", default="")
    p.add_argument("--token-file", default="")
    p.add_argument("--pool-want", type=int, default=0,
                   help="after each pause, wait until the Node.js stem-cell pool has this many")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=nimbus_cold)
    p = sub.add_parser("peer-cold")
    p.add_argument("--node", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pause-ms", type=float, default=30)
    p.add_argument("--budget-s", type=float, default=60)
    p.add_argument("--min", type=int, default=50)
    p.add_argument("--cpu", type=int, default=-1)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=peer_cold)
    p = sub.add_parser("burst")
    p.add_argument("--router", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=burst)
    p = sub.add_parser("peer-burst")
    p.add_argument("--node", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--cpu", type=int, default=-1)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=peer_burst)
    p = sub.add_parser("snapshot")
    p.add_argument("--api", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=snapshot)
    p = sub.add_parser("settle")
    p.add_argument("--api", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--timeout-s", type=float, default=30)
    p.set_defaults(fn=settle)
    p = sub.add_parser("wait-pool")
    p.add_argument("--api", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--want", type=int, required=True)
    p.add_argument("--timeout-s", type=float, default=20)
    p.set_defaults(fn=wait_pool)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.fn(a)


if __name__ == "__main__":
    main()
