"""Functions through the real server: `nimbus serve` runs Node.js and edge functions of
the synthetic Build Output API outputs in `functions/` (see functions/README.md).

Every handler shape of spec 3.3 and the edge shapes; streamed responses arriving in
pieces (raw socket, relative timestamps); the request headers of spec 6.1 and the path /
query after a rewrite; the environment (project variables, spec 3.11, config
`environment`, nothing leaking from the server); limits (maxDuration, process exit,
throws, import failures, request body size) with a neighbour function that keeps
answering; scale to zero, a burst of 100 on a function with no instance, an in-flight
stream outliving the keep-alive time, the queue deadline; `nimbus logs` (JSON, human,
follow), `nimbus ps`, /metrics; waitUntil; the CLI help of the function options.

Each TestCase class shares one `nimbus serve` (options per class); tests that need fresh
function state deploy their own copy of an output (a new deployment is a new function).
Every wait is a bounded poll; every load loop is bounded in count and time.
"""
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
import unittest

from nimbus_harness import (SOURCE, BIN, HTTP_TIMEOUT, Nimbus, clean_env, decode_chunked,
                            parse_raw_response, preview_host, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTIONS = os.path.join(HERE, "functions")
LOG_WAIT = 10.0          # function logs are flushed every 200 ms; bound for a record to show
BODY_LIMIT = 4_500_000   # spec 6.5: request bodies over 4.5 MB get 413


def output(name):
    return os.path.join(FUNCTIONS, name)


def as_json(body):
    try:
        return json.loads(body)
    except ValueError:
        raise AssertionError("expected JSON, got %r" % body[:500])


# ----------------------------------------------------------------------------- raw HTTP

def raw_request(host, path, method="GET", headers=(), body=b""):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + host, "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class TimedResponse:
    """What a raw `Connection: close` exchange received: the bytes of each recv() with its
    monotonic time, whether the server closed the connection, and the parsed head."""

    def __init__(self, pieces, closed):
        self.pieces = pieces          # [(monotonic time, bytes)]
        self.closed = closed
        self.data = b"".join(p for _, p in pieces)
        self.status, self.headers, _ = parse_raw_response(self.data)
        self.raw_body = self.data.partition(b"\r\n\r\n")[2]

    def body(self):
        """(body, complete): de-chunked when chunked; complete per the framing."""
        if "chunked" in self.headers.get("transfer-encoding", ""):
            return decode_chunked(self.raw_body)
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            return self.raw_body[:n], len(self.raw_body) >= n
        return self.raw_body, self.closed

    def first_time(self, marker):
        """Monotonic time of the recv() after which `marker` had arrived, else None."""
        seen = b""
        for t, piece in self.pieces:
            seen += piece
            if marker in seen:
                return t
        return None


def timed_exchange(port, request_bytes, timeout=HTTP_TIMEOUT):
    """Sends the request on a fresh loopback connection and records every piece received
    until the server closes the connection or `timeout` passes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    pieces, closed = [], False
    try:
        sock.sendall(request_bytes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            pieces.append((time.monotonic(), data))
    finally:
        sock.close()
    return TimedResponse(pieces, closed)


def concurrent(calls, timeout):
    """Runs each zero-argument callable in its own thread, all released at once; returns
    their results (an exception instance where one raised). Bounded by `timeout`."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        try:
            barrier.wait(timeout)
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(t.is_alive() for t in threads)
    if alive:
        raise AssertionError("%d of %d requests still running after %.0f s" % (
            alive, len(calls), timeout))
    return results


# ----------------------------------------------------------------------------- server state

def log_records(n, deployment_id, tail=2000):
    status, body, _ = n.api("GET", "/v1/deployments/%s/logs?tail=%d" % (deployment_id, tail))
    if status != 200:
        raise AssertionError("GET logs -> %s %r" % (status, body))
    return body["records"]


def wait_record(n, deployment_id, predicate, what, timeout=LOG_WAIT):
    """The first log record of the deployment matching `predicate`, polled (bounded)."""
    found = wait_for(lambda: next((r for r in log_records(n, deployment_id) if predicate(r)), None),
                     timeout=timeout, interval=0.1)
    if not found:
        raise AssertionError("no log record %s within %.0f s; records:\n%s" % (
            what, timeout, "\n".join(json.dumps(r) for r in log_records(n, deployment_id)[-30:])))
    return found


def invocation_of(n, deployment_id, request_id):
    return wait_record(n, deployment_id, lambda r: r.get("type") == "invocation"
                       and r.get("requestId") == request_id,
                       "of type invocation for request %s" % request_id)


def worker_status(n):
    status, body, _ = n.api("GET", "/v1/instances")
    if status != 200:
        raise AssertionError("GET /v1/instances -> %s %r" % (status, body))
    return body


def function_status(n, deployment_id, key):
    for f in worker_status(n)["functions"]:
        if f["deployment"] == deployment_id and f["function"] == key:
            return f
    return None


def instances_of(n, deployment_id, key):
    return [i for i in worker_status(n)["instances"]
            if i["deployment"] == deployment_id and i["function"] == key]


def metric_samples(text):
    """[(name, {label: value}, float value)] of a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if not m:
            raise AssertionError("unparseable metrics line %r" % line)
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class FunctionsServer(unittest.TestCase):
    """Base: one `nimbus serve` for the class with `server_args`; `outputs` (name ->
    project) deployed with --prod in setUpClass."""
    server_args = ()
    outputs = {}

    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus(extra_args=cls.server_args, start=False)
        try:
            cls.prepare_env(cls.n)
            cls.n.start()
            cls.before_deploy()
            cls.deps = {}
            for name, project in cls.outputs.items():
                cls.deps[name] = cls.n.deploy(output(name), project, prod=True)
        except BaseException:
            cls.n.close()
            raise

    @classmethod
    def prepare_env(cls, n):
        pass

    @classmethod
    def before_deploy(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    @property
    def port(self):
        return self.n.router_port

    def public(self, project):
        """The public host the client uses, with the port (as a browser sends it)."""
        return "%s.localhost:%d" % (project, self.port)

    def request(self, project_or_host, path, method="GET", headers=None, body=None,
                timeout=HTTP_TIMEOUT):
        host = project_or_host if "." in project_or_host else self.public(project_or_host)
        return self.n.get(host, path, method=method, headers=headers, body=body, timeout=timeout)

    def ok_json(self, project, path, status=200, **kw):
        st, headers, body = self.request(project, path, **kw)
        self.assertEqual(st, status, "%s %s: %s %r %r" % (kw.get("method", "GET"), path, st,
                                                          headers, body[:500]))
        return headers, as_json(body)

    def fresh_deploy(self, name, project):
        """A new preview deployment of an output: its functions have no state yet."""
        return self.n.deploy(output(name), project)


# ============================================================================= 1. shapes

class Shapes(FunctionsServer):
    """Every Node handler shape of spec 3.3 and the edge shapes, through the router."""
    outputs = {"shapes": "shapes"}

    def test_node_listener_with_helpers(self):
        headers, got = self.ok_json(
            "shapes", "/api/helpers?a=1&a=2&b=x", status=201, method="POST",
            body=json.dumps({"n": 42, "s": "hi"}),
            headers={"Content-Type": "application/json", "Cookie": "c=v; d=w"})
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        self.assertEqual(got["shape"], "node-listener")
        self.assertEqual(got["method"], "POST")
        self.assertEqual(got["query"], {"a": ["1", "2"], "b": "x"})
        self.assertEqual(got["body"], {"n": 42, "s": "hi"})
        self.assertEqual(got["cookies"], {"c": "v", "d": "w"})
        st, headers, _ = self.request("shapes", "/api/helpers?redirect=1")
        self.assertEqual(st, 307)
        self.assertEqual(headers.get("location"), "/elsewhere")

    def test_web_method_exports(self):
        _, got = self.ok_json("shapes", "/api/methods?q=1")
        self.assertEqual(got, {"shape": "web-methods", "method": "GET",
                               "url": "http://%s/api/methods?q=1" % self.public("shapes")})
        _, got = self.ok_json("shapes", "/api/methods", method="POST", body=b"ping",
                              headers={"Content-Type": "text/plain"})
        self.assertEqual(got["received"], "ping")
        for method in ("PUT", "DELETE"):
            st, headers, body = self.request("shapes", "/api/methods", method=method)
            self.assertEqual(st, 405, (method, headers, body))
            allow = {m.strip() for m in headers.get("allow", "").split(",")}
            self.assertTrue({"GET", "POST"} <= allow, headers)
            self.assertFalse({"PUT", "DELETE"} & allow, headers)

    def test_default_fetch_object(self):
        for method in ("GET", "DELETE", "POST"):
            _, got = self.ok_json("shapes", "/api/fetch-object", method=method)
            self.assertEqual(got, {"shape": "fetch-object", "method": method,
                                   "self": "fetch-object-instance"})

    def test_default_web_function_with_use_web_api(self):
        _, got = self.ok_json("shapes", "/api/web-function?x=1")
        self.assertEqual(got, {"shape": "web-function", "method": "GET", "isRequest": True,
                               "hasWaitUntil": True,
                               "url": "http://%s/api/web-function?x=1" % self.public("shapes")})

    def test_server_object_as_default_export(self):
        _, got = self.ok_json("shapes", "/api/server-object?y=2", method="PATCH")
        self.assertEqual(got, {"shape": "server-object", "url": "/api/server-object?y=2",
                               "method": "PATCH"})

    def test_module_that_listens_at_import(self):
        _, got = self.ok_json("shapes", "/api/listen-at-import?z=3")
        self.assertEqual(got, {"shape": "listen-at-import", "url": "/api/listen-at-import?z=3",
                               "listening": True})

    def test_esm_and_commonjs_modules(self):
        _, got = self.ok_json("shapes", "/api/esm-package?k=v")
        self.assertEqual(got, {"shape": "node-listener", "module": "esm", "query": {"k": "v"}})
        _, got = self.ok_json("shapes", "/api/cjs-methods")
        self.assertEqual(got, {"shape": "web-methods", "module": "cjs"})
        _, got = self.ok_json("shapes", "/api/helpers", status=201)
        self.assertEqual(got["module"], "cjs")

    def test_top_level_await(self):
        _, got = self.ok_json("shapes", "/api/tla")
        self.assertEqual(got, {"shape": "web-function", "answer": 42})

    def test_edge_default_export(self):
        public = self.public("shapes")
        _, got = self.ok_json("shapes", "/api/edge?q=1&q2=two")
        self.assertEqual(got, {"runtime": "edge-runtime", "method": "GET",
                               "url": "http://%s/api/edge?q=1&q2=two" % public, "host": public,
                               "query": {"q": "1", "q2": "two"}, "body": None,
                               "hasWaitUntil": True})
        _, got = self.ok_json("shapes", "/api/edge", method="POST", body=b"edge body",
                              headers={"Content-Type": "text/plain"})
        self.assertEqual(got["body"], "edge body")

    def test_edge_named_methods(self):
        _, got = self.ok_json("shapes", "/api/edge-methods")
        self.assertEqual(got, {"runtime": "edge-runtime", "method": "GET"})
        _, got = self.ok_json("shapes", "/api/edge-methods", method="POST", body=b"x=1",
                              headers={"Content-Type": "text/plain"})
        self.assertEqual(got, {"runtime": "edge-runtime", "method": "POST", "received": "x=1"})
        st, headers, body = self.request("shapes", "/api/edge-methods", method="PUT")
        self.assertEqual(st, 405, (headers, body))
        allow = {m.strip() for m in headers.get("allow", "").split(",")}
        self.assertTrue({"GET", "POST"} <= allow and "PUT" not in allow, headers)


# ============================================================================= 2-4, 8, 9

class Platform(FunctionsServer):
    """Streaming, request headers, environment, logs, ps, metrics and waitUntil, on the
    `platform` output (production) with project variables set before deploying."""
    outputs = {"platform": "platform"}
    SERVER_ONLY = "E2E_SERVER_ONLY_VARIABLE"

    @classmethod
    def prepare_env(cls, n):
        # Something only the server's own environment has: functions must not see it.
        n.env[cls.SERVER_ONLY] = "server-secret"

    @classmethod
    def before_deploy(cls):
        n = cls.n
        n.cli("env", "add", "PROJECT_KEY", "project-value", "--project", "platform")
        n.cli("env", "add", "OVERRIDE_ME", "from-project", "--project", "platform")
        n.cli("env", "add", "NOT_DECLARED", "hidden-from-edge", "--project", "platform")
        n.cli("env", "add", "ONLY_PREVIEW", "preview-value", "--project", "platform",
              "--environment", "preview")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.prod = cls.deps["platform"]
            cls.preview = cls.n.deploy(output("platform"), "platform")
        except BaseException:
            cls.n.close()
            raise

    # -- 2. streaming
    def test_stream_chunk_arrives_before_the_next_is_produced(self):
        r = timed_exchange(self.port, raw_request(self.public("platform"), "/api/stream"))
        self.assertEqual(r.status, 200, r.data[:500])
        body, complete = r.body()
        self.assertTrue(complete, "response not complete: %r" % r.data[-200:])
        self.assertEqual(body, b"chunk-1\nchunk-2\n")
        t1, t2 = r.first_time(b"chunk-1"), r.first_time(b"chunk-2")
        # The function produces chunk 2 ~300 ms after chunk 1; chunk 1 must have reached
        # the client well before chunk 2 did (not held back and sent together).
        self.assertGreater(t2 - t1, 0.1, "chunk 1 arrived only %.3f s before chunk 2: "
                           "the stream was buffered" % (t2 - t1))

    def test_server_sent_events_arrive_in_pieces(self):
        r = timed_exchange(self.port, raw_request(self.public("platform"), "/api/sse",
                                                  headers=[("Accept", "text/event-stream")]))
        self.assertEqual(r.status, 200, r.data[:500])
        self.assertTrue(r.headers.get("content-type", "").startswith("text/event-stream"),
                        r.headers)
        body, complete = r.body()
        self.assertTrue(complete)
        self.assertEqual(re.findall(rb"data: (event-\d)", body),
                         [b"event-1", b"event-2", b"event-3"])
        times = [r.first_time(b"event-%d" % i) for i in (1, 2, 3)]
        self.assertGreater(times[1] - times[0], 0.1, times)
        self.assertGreater(times[2] - times[1], 0.1, times)
        # The head itself is flushed before the first event is complete or at least with it.
        self.assertLessEqual(r.first_time(b"\r\n\r\n"), times[0])

    # -- 3. request headers and the path after a rewrite
    def test_platform_request_headers(self):
        public = self.public("platform")
        spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                   "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                   "X-Vercel-Id": "spoofed::id", "X-Vercel-Deployment-Url": "evil.example",
                   "X-Vercel-Forwarded-For": "6.6.6.6", "X-Custom": "kept"}
        headers, got = self.ok_json("platform", "/api/echo", headers=spoofed)
        seen = got["headers"]
        dep_host = "%s:%d" % (preview_host("platform", self.prod["id"]), self.port)
        self.assertEqual(seen["host"], public)
        self.assertEqual(seen["x-forwarded-host"], public)
        self.assertEqual(seen["x-forwarded-proto"], "http")
        self.assertEqual(seen["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(seen["x-real-ip"], "127.0.0.1")
        self.assertNotIn("6.6.6.6", json.dumps(seen))
        self.assertEqual(seen["x-vercel-deployment-url"], dep_host)
        nimbus_id = headers["x-nimbus-id"]
        self.assertIn(nimbus_id, seen["x-vercel-id"])
        self.assertNotIn("spoofed", seen["x-vercel-id"])
        self.assertEqual(seen["x-custom"], "kept")
        # The preview host: the function sees that host, and the same deployment URL.
        prev = "%s:%d" % (preview_host("platform", self.preview["id"]), self.port)
        _, got = self.ok_json(prev, "/api/echo")
        self.assertEqual(got["headers"]["host"], prev)
        self.assertEqual(got["headers"]["x-vercel-deployment-url"], prev)

    def test_path_and_query_after_a_rewrite(self):
        _, got = self.ok_json("platform", "/r/abc?y=2")
        path, _, query = got["url"].partition("?")
        self.assertEqual(path, "/r/abc")          # the original path (spec 2.7)
        self.assertEqual(got["query"], {"y": "2", "x": "abc"})
        self.assertEqual(sorted(query.split("&")), ["x=abc", "y=2"])

    # -- 4. environment
    def env_of(self, deployment, path="/api/env"):
        host = "%s:%d" % (preview_host("platform", deployment["id"]), self.port)
        headers, got = self.ok_json(host, path)
        return headers, got["env"]

    def test_environment_production(self):
        headers, env = self.env_of(self.prod)
        dep_host = "%s:%d" % (preview_host("platform", self.prod["id"]), self.port)
        self.assertEqual(env.get("PROJECT_KEY"), "project-value")
        self.assertEqual(env.get("NOT_DECLARED"), "hidden-from-edge")
        self.assertNotIn("ONLY_PREVIEW", env)
        self.assertEqual(env.get("OVERRIDE_ME"), "from-config")   # config environment wins
        self.assertEqual(env.get("FROM_CONFIG"), "config-value")
        self.assertEqual(env.get("VERCEL"), "1")
        self.assertEqual(env.get("VERCEL_ENV"), "production")
        self.assertEqual(env.get("VERCEL_URL"), dep_host)
        self.assertEqual(env.get("VERCEL_PROJECT_PRODUCTION_URL"), self.public("platform"))
        self.assertEqual(env.get("VERCEL_DEPLOYMENT_ID"), self.prod["id"])
        self.assertTrue(env.get("VERCEL_REGION"))
        # The region in x-vercel-id is the one the function is told it runs in.
        _, echo = self.ok_json("platform", "/api/echo")
        self.assertEqual(echo["headers"]["x-vercel-id"].split("::")[0], env["VERCEL_REGION"])
        self.assertEqual(env.get("NODE_ENV"), "production")
        self.assertNotIn(self.SERVER_ONLY, env)
        self.assertNotIn("server-secret", json.dumps(env))

    def test_environment_preview(self):
        _, env = self.env_of(self.preview)
        self.assertEqual(env.get("VERCEL_ENV"), "preview")
        self.assertEqual(env.get("ONLY_PREVIEW"), "preview-value")
        self.assertEqual(env.get("PROJECT_KEY"), "project-value")
        self.assertEqual(env.get("VERCEL_DEPLOYMENT_ID"), self.preview["id"])
        self.assertEqual(env.get("VERCEL_URL"),
                         "%s:%d" % (preview_host("platform", self.preview["id"]), self.port))
        self.assertEqual(env.get("OVERRIDE_ME"), "from-config")

    def test_environment_edge(self):
        _, env = self.env_of(self.prod, "/api/edge-env")
        self.assertEqual(env.get("PROJECT_KEY"), "project-value")    # in envVarsInUse
        self.assertNotIn("NOT_DECLARED", env)                        # not declared
        self.assertEqual(env.get("FROM_CONFIG"), "edge-config-value")
        self.assertEqual(env.get("VERCEL"), "1")
        self.assertEqual(env.get("VERCEL_ENV"), "production")
        self.assertEqual(env.get("VERCEL_DEPLOYMENT_ID"), self.prod["id"])
        self.assertEqual(env.get("NODE_ENV"), "production")
        self.assertNotIn(self.SERVER_ONLY, env)
        self.assertNotIn("PATH", env)     # the edge sees only the function's variables

    # -- 8. observability
    def test_logs_json_records_per_invocation(self):
        dep = self.fresh_deploy("platform", "platform")
        host = "%s:%d" % (preview_host("platform", dep["id"]), self.port)
        ids = []
        for tag in ("one", "two", "three"):
            headers, got = self.ok_json(host, "/api/logs?tag=" + tag)
            self.assertEqual(got, {"tag": tag})
            ids.append(headers["x-nimbus-id"])
        self.assertEqual(len(set(ids)), 3)
        for rid in ids:
            invocation_of(self.n, dep["id"], rid)
        wait_record(self.n, dep["id"], lambda r: r.get("type") == "stderr"
                    and "tag=three" in r.get("message", ""), "of stderr for the last request")
        lines = self.n.cli("logs", dep["url"], "-n", "50", "--json")[1].splitlines()
        records = [json.loads(l) for l in lines if l.strip()]
        invocations = {r["requestId"]: r for r in records if r.get("type") == "invocation"}
        self.assertEqual(set(invocations), set(ids), records)
        for rid, tag, cold in zip(ids, ("one", "two", "three"), (True, False, False)):
            rec = invocations[rid]
            self.assertEqual(rec["status"], 200, rec)
            self.assertIs(rec["cold"], cold, rec)
            self.assertEqual(rec["function"], "api/logs")
            self.assertEqual(rec["deployment"], dep["id"])
            self.assertEqual((rec["method"], rec["path"]), ("GET", "/api/logs"))
            for field in ("instance", "initMs", "queueMs", "durationMs", "peakMemoryMb",
                          "memoryMb"):
                self.assertIn(field, rec)
            self.assertNotIn("error", rec)
            out = [r for r in records if r.get("type") == "stdout" and r.get("requestId") == rid]
            err = [r for r in records if r.get("type") == "stderr" and r.get("requestId") == rid]
            self.assertEqual([r["message"] for r in out], ["hello from logs, tag=%s" % tag], records)
            self.assertEqual([r["message"] for r in err], ["warning from logs, tag=%s" % tag])
            self.assertEqual(out[0]["instance"], rec["instance"])
        self.assertGreater(invocations[ids[0]]["initMs"], 0)
        started = [r for r in records if r.get("type") == "instance" and r.get("event") == "started"]
        self.assertEqual(len(started), 1, records)

    def test_logs_human(self):
        headers, _ = self.ok_json("platform", "/api/logs?tag=human")
        rid = headers["x-nimbus-id"]
        invocation_of(self.n, self.prod["id"], rid)
        wait_record(self.n, self.prod["id"], lambda r: r.get("requestId") == rid
                    and r.get("type") == "stdout", "of stdout for %s" % rid)
        _, out, _ = self.n.cli("logs", self.prod["url"], "-n", "200")
        lines = [l for l in out.splitlines() if rid in l]
        self.assertTrue(any("hello from logs, tag=human" in l for l in lines), out)
        self.assertTrue(any("api/logs" in l and "200" in l and "GET" in l for l in lines), out)
        self.assertFalse(out.lstrip().startswith("{"), "human output looks like JSON:\n" + out)

    def test_logs_follow(self):
        dep = self.preview
        host = "%s:%d" % (preview_host("platform", dep["id"]), self.port)
        before = self.request(host, "/api/logs?tag=before-follow")[1]["x-nimbus-id"]
        invocation_of(self.n, dep["id"], before)
        env = dict(self.n.env, NIMBUS_TOKEN=self.n.token)
        proc = subprocess.Popen([BIN, "--api", self.n.api_url, "logs", dep["url"], "-f",
                                 "-n", "20"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=self.n.work)
        lines = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(l.decode("utf-8", "replace"))
                                                  for l in iter(proc.stdout.readline, b"")],
                                  daemon=True)
        reader.start()
        seen = []

        def wait_line(needle, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
                except queue.Empty:
                    break
                seen.append(line)
                if needle in line:
                    return True
            return False

        try:
            # The initial tail proves it is running; then a request made afterwards.
            self.assertTrue(wait_line(before, 15), "`logs -f` did not print the tail:\n" +
                            "".join(seen))
            after = self.request(host, "/api/logs?tag=after-follow")[1]["x-nimbus-id"]
            self.assertTrue(wait_line(after, 15), "`logs -f` did not print request %s made "
                            "after it started:\n%s" % (after, "".join(seen)))
            self.assertIsNone(proc.poll(), "`logs -f` exited")
        finally:
            proc.kill()
            proc.wait(10)
            reader.join(5)
            proc.stdout.close()
            proc.stderr.close()

    def test_metrics(self):
        headers, _ = self.ok_json("platform", "/api/echo")
        invocation_of(self.n, self.prod["id"], headers["x-nimbus-id"])
        status, text, resp_headers = self.n.api("GET", "/metrics", token=None)
        self.assertEqual(status, 200)
        text = text.decode() if isinstance(text, bytes) else json.dumps(text)
        samples = metric_samples(text)
        mine = [(name, labels, v) for name, labels, v in samples
                if labels.get("deployment") == self.prod["id"] and labels.get("function") == "api/echo"]
        names = {name for name, _, _ in mine}
        for want in ("nimbus_function_invocations_total", "nimbus_function_duration_seconds_bucket",
                     "nimbus_function_cold_starts_total", "nimbus_function_instances"):
            self.assertIn(want, names, "no %s for api/echo in /metrics:\n%s" % (want, text))
        ok = sum(v for name, labels, v in mine
                 if name == "nimbus_function_invocations_total" and labels.get("status") == "2xx")
        self.assertGreaterEqual(ok, 1)
        self.assertGreaterEqual(sum(v for name, _, v in mine
                                    if name == "nimbus_function_instances"), 1)
        buckets = [(labels["le"], v) for name, labels, v in mine
                   if name == "nimbus_function_duration_seconds_bucket"]
        self.assertIn("+Inf", [le for le, _ in buckets])
        stems = [labels for name, labels, _ in samples if name == "nimbus_stem_cells"]
        self.assertTrue(any(l.get("pool", "").startswith("nodejs") for l in stems), text)
        self.assertTrue(any(l.get("pool", "").startswith("edge") for l in stems), text)

    def test_ps(self):
        self.ok_json("platform", "/api/echo")
        st = self.n.cli("ps", json=True)
        self.assertIsInstance(st.get("instances"), list)
        self.assertIsInstance(st.get("functions"), list)
        self.assertIsInstance(st.get("stemCells"), dict)
        mine = [i for i in st["instances"]
                if i["deployment"] == self.prod["id"] and i["function"] == "api/echo"]
        self.assertEqual(len(mine), 1, st)
        self.assertEqual(mine[0]["state"], "ready")
        self.assertGreaterEqual(mine[0]["invocations"], 1)
        fn = [f for f in st["functions"]
              if f["deployment"] == self.prod["id"] and f["function"] == "api/echo"]
        self.assertEqual(len(fn), 1, st)
        self.assertGreaterEqual(fn[0]["invocations"], 1)
        _, out, _ = self.n.cli("ps")
        self.assertIn("api/echo", out)
        self.assertIn(mine[0]["id"], out)
        self.assertIn(self.prod["id"], out)
        self.assertIn("Stem cells", out)

    # -- known worker bugs: expected to fail until fixed (each notes what goes wrong)
    def module_logs_cold_start(self):
        """Cold-starts api/module-logs on a fresh deployment; returns (deployment, the
        record of the line its module-level timer writes outside any request)."""
        dep = self.fresh_deploy("platform", "platform")
        host = "%s:%d" % (preview_host("platform", dep["id"]), self.port)
        st, headers, body = self.request(host, "/api/module-logs")
        self.assertEqual((st, body), (200, b"ok"))
        invocation_of(self.n, dep["id"], headers["x-nimbus-id"])
        tick = wait_record(self.n, dep["id"], lambda r: r.get("type") == "stdout"
                           and "tick outside any request" in r.get("message", ""),
                           "of the module-level timer's line")
        return dep, tick

    def test_output_at_import_reaches_the_function_log(self):
        """What a module writes while it loads reaches the function log (regression: it
        went to the server's own log while the instance was being specialized)."""
        dep, _ = self.module_logs_cold_start()
        # The timer's line was written ~300 ms after the import line and is already here.
        messages = [r.get("message") for r in log_records(self.n, dep["id"])
                    if r.get("type") == "stdout"]
        self.assertIn("module loaded at import", messages)

    def test_unprefixed_line_keeps_its_brackets(self):
        """A line starting with `[x] ` written outside a request is the function's own
        text, not a request-id prefix (the launcher's prefix always carries `::`)."""
        _, tick = self.module_logs_cold_start()
        self.assertEqual(tick["message"], "[cron] tick outside any request", tick)
        self.assertNotIn("requestId", tick)

    # -- 9. waitUntil
    def test_wait_until_after_the_response(self):
        for via in ("argument", "global"):
            with self.subTest(via=via):
                st, headers, body = self.request("platform", "/api/wait-until?via=" + via)
                self.assertEqual((st, body), (200, b"responded before the waitUntil work\n"))
                rid = headers["x-nimbus-id"]
                line = wait_record(self.n, self.prod["id"], lambda r: r.get("type") == "stdout"
                                   and r.get("requestId") == rid, "of stdout for %s" % rid)
                self.assertEqual(line["message"], "waitUntil work done (%s)" % via)
                inv = invocation_of(self.n, self.prod["id"], rid)
                self.assertEqual(inv["status"], 200)
                # The response was finished (and recorded) before the waitUntil work ran.
                self.assertLessEqual(inv["ts"], line["ts"], (inv, line))


# ============================================================================= 5. limits

class Limits(FunctionsServer):
    """maxDuration, a process that exits, handlers and modules that throw, the request body
    limit; after each, the neighbour function (api/ok) still answers."""
    outputs = {"limits": "limits"}

    def assert_neighbour_ok(self):
        st, _, body = self.request("limits", "/api/ok")
        self.assertEqual((st, body), (200, b"ok"))

    def pid(self, path):
        return self.ok_json("limits", path)[1]["pid"]

    def test_max_duration_timeout_then_a_fresh_instance(self):
        pid1 = self.pid("/api/hang")
        t0 = time.monotonic()
        st, headers, body = self.request("limits", "/api/hang?hang=1")
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 504, body)
        self.assertEqual(headers.get("x-nimbus-error"), "FUNCTION_INVOCATION_TIMEOUT", headers)
        self.assertGreater(elapsed, 0.9)              # maxDuration: 1 s
        self.assertIn(b"maxDuration", body)
        pid2 = self.pid("/api/hang")
        self.assertNotEqual(pid1, pid2, "the timed-out instance was not replaced")
        rec = invocation_of(self.n, self.deps["limits"]["id"], headers["x-nimbus-id"])
        self.assertEqual((rec["status"], rec.get("error")), (504, "FUNCTION_INVOCATION_TIMEOUT"))
        self.assert_neighbour_ok()

    def test_process_exit_before_the_response(self):
        pid1 = self.pid("/api/exit")
        st, headers, body = self.request("limits", "/api/exit?exit=before")
        self.assertEqual(st, 502, body)
        self.assertEqual(headers.get("x-nimbus-error"), "NO_RESPONSE_FROM_FUNCTION", headers)
        pid2 = self.pid("/api/exit")
        self.assertNotEqual(pid1, pid2)
        self.assert_neighbour_ok()

    def test_process_exit_after_the_head_cuts_the_response(self):
        self.pid("/api/exit")
        r = timed_exchange(self.port, raw_request(self.public("limits"), "/api/exit?exit=after-head"),
                           timeout=15)
        self.assertEqual(r.status, 200, r.data[:300])
        self.assertTrue(r.closed, "the connection was not closed")
        body, complete = r.body()
        self.assertIn(b"partial body", body)
        self.assertFalse(complete, "a response cut by the function's exit was sent as "
                         "complete: %r" % r.data)
        self.assertEqual(self.ok_json("limits", "/api/exit")[0].get("x-nimbus-error"), None)
        self.assert_neighbour_ok()

    def test_handler_throws(self):
        for path in ("/api/throws?throw=1", "/api/web-throws"):
            with self.subTest(path=path):
                st, headers, body = self.request("limits", path)
                self.assertEqual(st, 500, body)
                self.assertEqual(headers.get("x-vercel-error"), "FUNCTION_INVOCATION_FAILED",
                                 headers)
                self.assertIn(b"FUNCTION_INVOCATION_FAILED", body)
                rid = headers["x-nimbus-id"]
                self.assertIn(rid.encode(), body)
                dep = self.deps["limits"]["id"]
                rec = invocation_of(self.n, dep, rid)
                self.assertEqual(rec["status"], 500)
                wait_record(self.n, dep, lambda r: r.get("type") == "stderr"
                            and r.get("requestId") == rid and "e2e: the" in r.get("message", ""),
                            "of stderr with the error for %s" % rid)
        self.pid("/api/throws")      # the same function keeps working
        self.assert_neighbour_ok()

    def test_module_throws_at_import(self):
        for attempt in range(2):
            st, headers, body = self.request("limits", "/api/import-throws")
            self.assertEqual(st, 500, body)
            self.assertEqual(headers.get("x-nimbus-error"), "FUNCTION_INVOCATION_FAILED", headers)
            self.assertIn(b"e2e-import-marker: the module threw at import", body)
            self.assertIn(b"api/import-throws", body)
            self.assert_neighbour_ok()
        wait_record(self.n, self.deps["limits"]["id"], lambda r: r.get("type") == "instance"
                    and r.get("event") == "init-failed" and r.get("function") == "api/import-throws"
                    and "e2e-import-marker" in r.get("message", ""), "init-failed")

    # -- known worker bugs: expected to fail until fixed (each notes what goes wrong)
    EXIT_TRIES = 5   # the bugs below are races lost ~90% of the time: every try must pass

    def exits(self):
        """EXIT_TRIES requests whose instance calls process.exit(1) before answering."""
        answers = []
        for _ in range(self.EXIT_TRIES):
            st, headers, body = self.request("limits", "/api/exit?exit=before")
            self.assertEqual((st, headers.get("x-nimbus-error")),
                             (502, "NO_RESPONSE_FROM_FUNCTION"), body)
            answers.append((headers, body))
        return answers

    def test_exit_during_a_request_counts_as_a_crash(self):
        """A process.exit(1) during a request is an instance `crashed` event and counts in
        nimbus_function_crashes_total (regression: the worker recycled the instance first
        and logged it as `stopped`). Several tries, since it was a race."""
        dep = self.deps["limits"]["id"]
        before = self.crashes(dep)
        events = []
        for headers, _ in self.exits():
            inst = invocation_of(self.n, dep, headers["x-nimbus-id"])["instance"]
            ended = wait_record(self.n, dep, lambda r: r.get("type") == "instance"
                                and r.get("instance") == inst
                                and r.get("event") in ("stopped", "crashed"),
                                "of instance %s ending" % inst)
            events.append(ended["event"])
        self.assertEqual(events, ["crashed"] * self.EXIT_TRIES)
        self.assertEqual(self.crashes(dep) - before, self.EXIT_TRIES)

    def crashes(self, dep):
        _, text, _ = self.n.api("GET", "/metrics", token=None)
        return sum(v for name, labels, v in metric_samples(text.decode())
                   if name == "nimbus_function_crashes_total"
                   and labels.get("deployment") == dep and labels.get("function") == "api/exit")

    def test_no_response_error_names_how_the_process_ended(self):
        """The 502 NO_RESPONSE_FROM_FUNCTION message says how the process ended
        (regression: it was read before the process was reaped). Several tries."""
        bodies = [body.decode() for _, body in self.exits()]
        self.assertEqual([b for b in bodies if not re.search(r"status 1\b", b)], [])

    def test_body_over_the_limit_by_content_length(self):
        head = raw_request(self.public("limits"), "/api/body", method="POST",
                           headers=[("Content-Type", "application/octet-stream"),
                                    ("Content-Length", str(BODY_LIMIT + 500_000))])
        # Only the start of the body: the answer must not wait for the rest.
        r = timed_exchange(self.port, head + b"x" * 65536, timeout=15)
        self.assertEqual(r.status, 413, r.data[:300])
        self.assertEqual(r.headers.get("x-nimbus-error"), "FUNCTION_PAYLOAD_TOO_LARGE")
        self.assert_neighbour_ok()

    def test_body_over_the_limit_chunked(self):
        head = raw_request(self.public("limits"), "/api/body", method="POST",
                           headers=[("Content-Type", "application/octet-stream"),
                                    ("Transfer-Encoding", "chunked")])
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        piece = b"y" * 65536
        chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
        total = BODY_LIMIT + 600_000

        def send():
            try:
                sock.sendall(head)
                sent = 0
                while sent < total:
                    sock.sendall(chunk)
                    sent += len(piece)
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass   # the server answered early and closed

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = b""
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and b"\r\n\r\n" not in received:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    data = sock.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not data:
                    break
                received += data
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            sender.join(10)
        status, headers, _ = parse_raw_response(received)
        self.assertEqual(status, 413, received[:300])
        self.assertEqual(headers.get("x-nimbus-error"), "FUNCTION_PAYLOAD_TOO_LARGE")
        self.assert_neighbour_ok()

    def test_body_under_the_limit_arrives_whole(self):
        size = BODY_LIMIT - 100_000
        _, got = self.ok_json("limits", "/api/body", method="POST", body=b"z" * size,
                              headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(got, {"bytes": size})


# ============================================================================= 6. scaling

class ScaleToZero(FunctionsServer):
    """--keep-alive 1: idle instances stop; a burst of 100 on a function with no instance
    is served by several instances, never more than --max-instances."""
    MAX_INSTANCES = 4
    server_args = ("--keep-alive", "1", "--concurrency", "8", "--max-instances",
                   str(MAX_INSTANCES))

    def test_idle_instance_stops_and_the_next_request_is_cold(self):
        dep = self.fresh_deploy("scaling", "scaling")
        host = "%s:%d" % (preview_host("scaling", dep["id"]), self.port)
        first = self.request(host, "/api/slow")
        self.assertEqual(first[0], 200)
        self.assertEqual(len(instances_of(self.n, dep["id"], "api/slow")), 1, worker_status(self.n))
        _, out, _ = self.n.cli("ps")
        self.assertIn("api/slow", out)
        gone = wait_for(lambda: function_status(self.n, dep["id"], "api/slow")["instances"] == 0
                        and not instances_of(self.n, dep["id"], "api/slow"),
                        timeout=10, interval=0.1)
        self.assertTrue(gone, "still running after 10 s with --keep-alive 1: %r" %
                        worker_status(self.n))
        wait_record(self.n, dep["id"], lambda r: r.get("type") == "instance"
                    and r.get("event") == "stopped", "of the instance stopping")
        second = self.request(host, "/api/slow")
        self.assertEqual(second[0], 200)
        rec1 = invocation_of(self.n, dep["id"], first[1]["x-nimbus-id"])
        rec2 = invocation_of(self.n, dep["id"], second[1]["x-nimbus-id"])
        self.assertIs(rec1["cold"], True)
        self.assertIs(rec2["cold"], True, "the request after scale-to-zero was not cold: %r" % rec2)
        self.assertNotEqual(rec1["instance"], rec2["instance"])
        self.assertEqual(function_status(self.n, dep["id"], "api/slow")["coldStarts"], 2)

    def test_burst_of_100_on_zero_instances(self):
        dep = self.fresh_deploy("scaling", "scaling")
        host = "%s:%d" % (preview_host("scaling", dep["id"]), self.port)
        self.assertIsNone(function_status(self.n, dep["id"], "api/slow"))
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], len(instances_of(self.n, dep["id"], "api/slow")))
                except (OSError, AssertionError):
                    pass
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        count = 100

        def one(i):
            return lambda: timed_exchange(
                self.port, raw_request(host, "/api/slow?ms=300&tag=%d" % i), timeout=40)

        try:
            results = concurrent([one(i) for i in range(count)], timeout=60)
        finally:
            stop.set()
            sampler.join(5)
        problems = []
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                problems.append("request %d: %r" % (i, r))
                continue
            try:
                body, complete = r.body()
                got = json.loads(body)
                if r.status != 200 or not complete or got.get("tag") != str(i):
                    problems.append("request %d: %s %r" % (i, r.status, body[:200]))
            except (AssertionError, ValueError) as e:
                problems.append("request %d: %r" % (i, e))
        self.assertFalse(problems, "%d of %d requests failed:\n%s" % (
            len(problems), count, "\n".join(problems[:20])))
        fn = function_status(self.n, dep["id"], "api/slow")
        self.assertEqual(fn["invocations"], count, fn)
        self.assertGreater(fn["coldStarts"], 1, "one instance served 100 concurrent requests "
                           "with --concurrency 8: %r" % fn)
        self.assertLessEqual(fn["coldStarts"], self.MAX_INSTANCES, fn)
        self.assertLessEqual(peak[0], self.MAX_INSTANCES)
        pids = {json.loads(r.body()[0])["pid"] for r in results}
        self.assertGreater(len(pids), 1)
        self.assertLessEqual(len(pids), self.MAX_INSTANCES)
        wait_for(lambda: sum(1 for r in log_records(self.n, dep["id"])
                             if r.get("type") == "invocation") >= count, timeout=LOG_WAIT)
        records = [r for r in log_records(self.n, dep["id"]) if r.get("type") == "invocation"]
        self.assertEqual(len(records), count)
        self.assertEqual(len({r["instance"] for r in records}), len(pids))
        # Each instance reports its first request as the cold one.
        cold = [r for r in records if r["cold"]]
        self.assertGreater(len(cold), 1)
        self.assertLessEqual(len(cold), fn["coldStarts"])
        self.assertEqual(len({r["instance"] for r in cold}), len(cold))


class InFlightNotEvicted(FunctionsServer):
    """--keep-alive 0.5: a streamed response lasting ~2 s is not cut by eviction."""
    server_args = ("--keep-alive", "0.5")
    outputs = {"scaling": "scaling"}

    def test_streaming_response_outlives_the_keep_alive(self):
        r = timed_exchange(self.port, raw_request(self.public("scaling"), "/api/stream-long"),
                           timeout=30)
        self.assertEqual(r.status, 200, r.data[:300])
        body, complete = r.body()
        self.assertTrue(complete, "the stream was cut: %r" % body)
        self.assertEqual(body, b"".join(b"part-%d\n" % i for i in range(1, 11)) + b"end\n")
        self.assertGreater(r.pieces[-1][0] - r.first_time(b"part-1"), 1.5)
        dep = self.deps["scaling"]["id"]
        rec = invocation_of(self.n, dep, r.headers["x-nimbus-id"])
        self.assertEqual(rec["status"], 200)
        # The keep-alive is short indeed: once idle, the instance goes.
        self.assertTrue(wait_for(lambda: not instances_of(self.n, dep, "api/stream-long"),
                                 timeout=10, interval=0.1), worker_status(self.n))


# ============================================================================= 7. queue

class QueueDeadline(FunctionsServer):
    """--max-instances 1 --concurrency 1 --queue-timeout 0.5: a second request waiting
    behind a 2 s one gets 503 FUNCTION_THROTTLED."""
    server_args = ("--max-instances", "1", "--concurrency", "1", "--queue-timeout", "0.5")
    outputs = {"scaling": "scaling"}

    def test_second_request_is_throttled(self):
        # The queue deadline also bounds a cold start; right after `nimbus ready` the stem
        # cells are still starting, so let the pool fill before the warm-up request.
        self.assertTrue(wait_for(lambda: any(
            k.startswith("nodejs") and p["ready"] >= 1
            for k, p in worker_status(self.n)["stemCells"].items()), timeout=20),
            worker_status(self.n))
        self.ok_json("scaling", "/api/slow")     # warm: the instance exists
        host = self.public("scaling")

        def call(tag):
            def go():
                t0 = time.monotonic()
                r = timed_exchange(self.port, raw_request(host, "/api/slow?ms=2000&tag=" + tag),
                                   timeout=20)
                return r, time.monotonic() - t0
            return go

        results = concurrent([call("a"), call("b")], timeout=30)
        for r in results:
            if isinstance(r, Exception):
                raise r
        by_status = {r.status: (r, elapsed) for r, elapsed in results}
        self.assertEqual(sorted(by_status), [200, 503], [r.data[:300] for r, _ in results])
        throttled, t_throttled = by_status[503]
        served, t_served = by_status[200]
        self.assertEqual(throttled.headers.get("x-nimbus-error"), "FUNCTION_THROTTLED")
        self.assertLess(t_throttled, t_served)     # answered at the deadline, not after
        dep = self.deps["scaling"]["id"]
        rec = invocation_of(self.n, dep, throttled.headers["x-nimbus-id"])
        self.assertEqual((rec["status"], rec.get("error")), (503, "FUNCTION_THROTTLED"))
        self.assertEqual(function_status(self.n, dep, "api/slow")["coldStarts"], 1)


# ============================================================================= 10. help

class Example(FunctionsServer):
    """examples/hello, which scripts/run.sh deploys: its page and its function."""

    @classmethod
    def before_deploy(cls):
        cls.dep = cls.n.deploy(os.path.join(SOURCE, "examples", "hello"), "hello", prod=True)

    def test_page_and_function(self):
        st, _, body = self.request("hello", "/")
        self.assertEqual(st, 200)
        self.assertIn(b"Hello from Nimbus", body)
        self.assertIn(b"/api/hello?name=Nimbus", body)
        _, answer = self.ok_json("hello", "/api/hello?name=Nimbus")
        self.assertEqual(answer, {"message": "Hello, Nimbus!", "region": "lcl1",
                                  "environment": "production"})


class Help(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.home = tempfile.TemporaryDirectory(prefix="nimbus-fn-help-")

    @classmethod
    def tearDownClass(cls):
        cls.home.cleanup()

    def help(self, *cmd):
        p = subprocess.run([BIN, *cmd, "--help"], capture_output=True, text=True, timeout=30,
                           env=clean_env(self.home.name))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_serve_help_lists_the_function_options(self):
        out = self.help("serve")
        self.assertIn("Functions", out)
        for opt in ("--runtimes", "--node", "--stem-cells", "--keep-alive", "--max-instances",
                    "--concurrency", "--queue-timeout", "--max-duration"):
            self.assertRegex(out, r"\n\s+%s\b[^\n]*\n?\s+\S" % re.escape(opt), opt)
        self.assertIn("nimbus logs", out)
        self.assertIn("/metrics", out)

    def test_ps_and_logs_help(self):
        out = self.help("ps")
        self.assertIn("Usage: nimbus ps", out)
        for word in ("instance", "function", "stem cells", "--json"):
            self.assertIn(word.lower(), out.lower(), word)
        out = self.help("logs")
        self.assertIn("Usage: nimbus logs", out)
        for opt in ("deployment", "-f,--follow", "-n,--lines", "--json"):
            self.assertIn(opt, out)
        self.assertRegex(out, r"--follow\s+\S")           # each option described
        self.assertRegex(out, r"--lines[^\n]*\n\s+\S")


if __name__ == "__main__":
    unittest.main()
