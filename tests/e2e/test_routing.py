"""Routing through the real server: every row of every fixture's EXPECT.md, route
behaviours on small hand-made outputs, the external proxy (plain HTTP upstream in the
test) and HTTPS upstreams with a per-project CA and mTLS client certificate
(`nimbus upstream-tls`).

Rows served by functions and middleware run them for real (the worker with the Node.js and
edge launchers) and are checked like every other row: status, body, headers. Rows that
need a platform feature not built yet are listed in KNOWN_GAPS with the reason and
reported, not failed."""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler

from nimbus_harness import (FIXTURES, HTTP_TIMEOUT, Nimbus, Upstream, decode_chunked,
                            error_message, error_of, fixture_output, make_output,
                            parse_raw_response, prod_host, refused_port, sha256, wait_for)
from test_static_fixtures import parse_expect, parse_header_cell, route_header_names

# (fixture, method, path) -> why the row cannot pass yet.
KNOWN_GAPS = {}


def row_known_gap(fixture, row):
    return KNOWN_GAPS.get((fixture, (row.get("method") or "GET").upper(), row.get("path", "")))
SETTLE = 5.0        # seconds a control-API change may take to reach the router (bounded poll)


def short(data, limit=200):
    return data[:limit] + (b"..." if len(data) > limit else b"")


# ----------------------------------------------------------------------------- part 1

def parse_request_extras(cell):
    """(headers dict, body bytes or None, leftover text) of a "request extras" cell such as
    `body {"a":1} content-type: application/json` or `user-agent: probe/1`."""
    headers, body = {}, None
    rest = (cell or "").strip()
    m = re.match(r"body\s+", rest)
    if m:
        text = rest[m.end():]
        try:
            _, end = json.JSONDecoder().raw_decode(text)
            body, rest = text[:end].encode(), text[end:]   # sent as written
        except ValueError:
            token = text.split()[0] if text.split() else ""
            body, rest = token.encode(), text[len(token):]
    leftover = rest
    for hm in re.finditer(r"([A-Za-z0-9-]+):\s*(\S+)", rest):
        headers[hm.group(1).lower()] = hm.group(2)
        leftover = leftover.replace(hm.group(0), "", 1)
    if body is not None and "content-type" not in headers:
        headers["content-type"] = "application/json"  # EXPECT.md: bodies are sent as JSON
    return headers, body, leftover.strip()


def function_key(served_by):
    """`function api/users/[id].func` -> `api/users/[id]`; `function middleware.func` ->
    `middleware`; None when the cell does not name a .func."""
    m = re.match(r"function\s+(\S+)\.func\b", served_by.strip())
    return m.group(1) if m else None


def load_rows():
    """[(fixture, config, rows)] for every fixture with EXPECT.md and output/."""
    found = []
    if not os.path.isdir(FIXTURES):
        return found
    for name in sorted(os.listdir(FIXTURES)):
        expect = os.path.join(FIXTURES, name, "EXPECT.md")
        output = os.path.join(FIXTURES, name, "output")
        if not (os.path.isfile(expect) and os.path.isdir(output)):
            continue
        with open(os.path.join(output, "config.json")) as f:
            config = json.load(f)
        found.append((name, config, parse_expect(expect)))
    return found


FIXTURE_ROWS = load_rows()


class FixtureRows(unittest.TestCase):
    """Every fixture deployed with --prod; every EXPECT.md row checked. All mismatches of
    a fixture are reported together in one assertion."""

    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus()

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    def check_fixture(self, name, config, rows):
        dep = self.n.deploy(fixture_output(name, self.n.work), name, prod=True)
        self.assertTrue(dep.get("id"), dep)
        self.assertTrue(rows, "%s: EXPECT.md has no request rows" % name)
        host = prod_host(name)
        problems, counts = [], {"static/route": 0, "function": 0, "known gap": 0}
        for row in rows:
            method = (row.get("method") or "GET").upper()
            path = row.get("path", "")
            served_by = row.get("served by", "").strip()
            where = "%s %s (served by %r)" % (method, path, served_by)
            headers, body, leftover = parse_request_extras(row.get("request extras", ""))
            if leftover:
                problems.append("%s: cannot read request extras %r (left over: %r)" % (
                    where, row.get("request extras"), leftover))
                continue
            try:
                status, got_headers, got_body = self.n.get(host, path, method=method,
                                                           headers=headers, body=body)
            except (OSError, http.client.HTTPException) as e:
                problems.append("%s: request failed: %r" % (where, e))
                continue
            got = "%s%s; body %r; headers %r" % (
                status, " " + got_headers["x-nimbus-error"] if "x-nimbus-error" in got_headers else "",
                short(got_body), got_headers)
            listed = parse_header_cell(row.get("response headers", ""))
            key = function_key(served_by)
            kind = "function" if key is not None else "static/route"
            if key is None and not (served_by.startswith("static") or served_by == "route"):
                problems.append("%s: unknown 'served by' value; the test knows static ..., "
                                "route and function X.func" % where)
                continue
            if key is not None and row_known_gap(name, row):
                counts["known gap"] += 1
                sys.stderr.write("note: %s %s %s: %s\n" % (name, method, path,
                                                           row_known_gap(name, row)))
                continue
            counts[kind] += 1
            try:
                want_status = int(row.get("status", ""))
            except ValueError:
                problems.append("%s: unreadable status %r" % (where, row.get("status")))
                continue
            want_body = row.get("body contains", "")
            wrong = []
            if status != want_status:
                wrong.append("status %s" % want_status)
            if want_body and want_body.encode() not in got_body:
                wrong.append("body containing %r" % want_body)
            for k, v in listed:
                if got_headers.get(k) != v:
                    wrong.append("header %s: %s (got %r)" % (k, v, got_headers.get(k)))
            if wrong:
                problems.append("%s: expected %s; got %s" % (where, ", ".join(wrong), got))
        sys.stderr.write("\n%s: %d rows: %d static/route, %d function, %d known gaps\n" % (
            name, len(rows), counts["static/route"], counts["function"], counts["known gap"]))
        if problems:
            self.fail("fixture %s: %d of %d rows do not match EXPECT.md:\n  %s" % (
                name, len(problems), len(rows), "\n  ".join(problems)))


def _make_fixture_tests():
    if not FIXTURE_ROWS:
        def test_fixtures_present(self):
            self.fail("no fixtures with EXPECT.md and output/ under %s (set NIMBUS_FIXTURES)"
                      % FIXTURES)
        FixtureRows.test_fixtures_present = test_fixtures_present
        return
    for name, config, rows in FIXTURE_ROWS:
        def test(self, name=name, config=config, rows=rows):
            self.check_fixture(name, config, rows)
        test.__doc__ = "%s: every EXPECT.md row" % name
        setattr(FixtureRows, "test_%s_every_row" % re.sub(r"\W", "_", name), test)


_make_fixture_tests()


# ----------------------------------------------------------------------------- part 2

ROUTES_CONFIG = {"version": 3, "routes": [
    {"src": "^/old/(.*)$", "status": 301, "headers": {"Location": "/new/$1"}},
    {"src": "/moved", "dest": "/target.html", "status": 302},
    {"src": "/keep", "status": 308, "headers": {"Location": "/kept?q=route"}},
    {"src": "/away", "status": 307, "headers": {"Location": "https://example.com/x?y=1"}},
    {"src": "/(.*)", "headers": {"x-all": "first"}, "continue": True},
    {"src": "/page", "headers": {"x-page": "p", "x-all": "second"}, "continue": True},
    {"src": "/alias", "dest": "/target.html"},
    {"src": "/gated", "has": [{"type": "header", "key": "x-key", "value": "open"}],
     "dest": "/target.html"},
    {"src": "/gated", "dest": "/other.html"},
    {"src": "/cookie", "has": [{"type": "cookie", "key": "session", "value": "s-(?<sid>[0-9]+)"}],
     "dest": "/target.html", "headers": {"x-sid": "$sid"}},
    {"src": "/cookie", "dest": "/other.html"},
    {"src": "^/(a+)+$", "dest": "/x.html"},
    {"handle": "filesystem"},
    {"handle": "error"},
    {"src": "/.*", "dest": "/404.html", "status": 404},
]}

ROUTES_FILES = {
    "static/target.html": "<p>TARGET page</p>",
    "static/other.html": "<p>OTHER page</p>",
    "static/404.html": "<h1>custom not found page</h1>",
    "static/x.html": "<p>X page</p>",
    "static/page": "PAGE body",
}


class RouteBehaviours(unittest.TestCase):
    """Small hand-made outputs through the real router (one server for the class)."""

    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus()
        try:
            out = make_output(os.path.join(cls.n.work, "routes"), ROUTES_FILES, ROUTES_CONFIG)
            cls.n.deploy(out, "routes", prod=True)
            plain = make_output(os.path.join(cls.n.work, "plain"), {"static/a.txt": "A"})
            cls.n.deploy(plain, "plain", prod=True)
        except BaseException:
            cls.n.close()
            raise
        cls.host = prod_host("routes")

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    def get(self, path, **kw):
        return self.n.get(self.host, path, **kw)

    def test_redirect_status_location_and_query(self):
        cases = [
            # path, status, Location
            ("/old/a/b?q=1", 301, "/new/a/b?q=1"),        # captured group, query appended
            ("/moved?x=2", 302, "/target.html?x=2"),     # dest + 3xx status redirects
            ("/keep?q=client&z=2", 308, "/kept?q=route&z=2"),  # names it has are kept
            ("/away?z=1", 307, "https://example.com/x?y=1"),    # absolute: verbatim
        ]
        for path, status, location in cases:
            with self.subTest(path=path):
                s, h, b = self.get(path)
                self.assertEqual((s, h.get("location")), (status, location),
                                 "headers %r body %r" % (h, b))
                self.assertNotIn("x-nimbus-error", h)

    def test_rewrite_to_static_file(self):
        for path in ("/alias", "/alias?x=1"):
            with self.subTest(path=path):
                s, h, b = self.get(path)
                self.assertEqual(s, 200, b)
                self.assertEqual(b, b"<p>TARGET page</p>")
                self.assertEqual(h.get("content-type"), "text/html; charset=utf-8")
                self.assertNotIn("location", h)
        s, _, b = self.get("/target.html")
        self.assertEqual((s, b), (200, b"<p>TARGET page</p>"))

    def test_header_routes_with_continue(self):
        s, h, b = self.get("/page")
        self.assertEqual((s, b), (200, b"PAGE body"))
        self.assertEqual(h.get("x-page"), "p", h)
        self.assertEqual(h.get("x-all"), "second", "the later continue route wins: %r" % h)
        s, h, b = self.get("/alias")
        self.assertEqual((s, b), (200, b"<p>TARGET page</p>"))
        self.assertEqual(h.get("x-all"), "first", h)
        self.assertNotIn("x-page", h)

    def test_has_header(self):
        cases = [({}, b"<p>OTHER page</p>"),
                 ({"X-Key": "open"}, b"<p>TARGET page</p>"),
                 ({"x-key": "open"}, b"<p>TARGET page</p>"),
                 ({"X-Key": "opened"}, b"<p>OTHER page</p>"),   # whole-value match
                 ({"X-Key": "Open"}, b"<p>OTHER page</p>")]     # case-sensitive value
        for headers, body in cases:
            with self.subTest(headers=headers):
                s, h, b = self.get("/gated", headers=headers)
                self.assertEqual((s, b), (200, body), h)

    def test_has_cookie(self):
        s, h, b = self.get("/cookie", headers={"Cookie": "a=b; session=s-42; z=1"})
        self.assertEqual((s, b), (200, b"<p>TARGET page</p>"), h)
        self.assertEqual(h.get("x-sid"), "42", "named group of the has value: %r" % h)
        for cookie in (None, "session=x-42", "other=s-42", "session=s-42x"):
            with self.subTest(cookie=cookie):
                s, h, b = self.get("/cookie", headers={"Cookie": cookie} if cookie else {})
                self.assertEqual((s, b), (200, b"<p>OTHER page</p>"), h)
                self.assertNotIn("x-sid", h)

    def test_custom_error_page(self):
        for path in ("/missing", "/no/such/page.html"):
            with self.subTest(path=path):
                s, h, b = self.get(path)
                self.assertEqual(s, 404, b)
                self.assertEqual(b, b"<h1>custom not found page</h1>")
                self.assertEqual(h.get("content-type"), "text/html; charset=utf-8")

    def test_platform_404_json(self):
        host = prod_host("plain")
        s, h, b = self.n.get(host, "/missing", headers={"Accept": "application/json"})
        self.assertEqual(s, 404, b)
        self.assertEqual(h.get("content-type"), "application/json; charset=utf-8")
        self.assertEqual(h.get("x-nimbus-error"), "NOT_FOUND")
        code, message = error_of(json.loads(b))
        self.assertEqual(code, "NOT_FOUND")
        self.assertTrue(message)
        s, h, b = self.n.get(host, "/missing")
        self.assertEqual(s, 404)
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h)
        self.assertIn(b"NOT_FOUND", b)

    def _deployments_and_projects(self):
        rc, ls, err = self.n.cli("ls", json=True, check=False)
        self.assertEqual(rc, 0, err)
        projects = sorted(p["name"] for p in self.n.api_projects())
        return ls, projects

    def test_invalid_routes_refused(self):
        cases = {
            "bad-regex": ({"version": 3, "routes": [
                {"src": "/ok", "dest": "/a"}, {"handle": "filesystem"},
                {"src": "/(a", "dest": "/b"}]}, "routes[2]"),
            "bad-handle": ({"version": 3, "routes": [
                {"src": "/ok", "dest": "/a"}, {"handle": "bogus"}]}, "routes[1]"),
        }
        for project, (config, where) in cases.items():
            with self.subTest(project=project):
                before = self._deployments_and_projects()
                out = make_output(os.path.join(self.n.work, project), {"static/a": "A"}, config)
                rc, stdout, stderr = self.n.cli("deploy", out, "--project", project, "--prod",
                                                check=False)
                self.assertEqual(rc, 1, "stdout %r stderr %r" % (stdout, stderr))
                message = error_message(stderr)
                self.assertIn(where, message)
                self.assertEqual(self._deployments_and_projects(), before)
                self.assertNotIn(project, before[1])

    def test_invalid_routes_refused_by_the_api(self):
        """The server refuses them too (a client that skips the CLI's check)."""
        config = json.dumps({"version": 3, "routes": [{"src": "/(a", "dest": "/b"}]}).encode()
        status, body, _ = self.n.put_blob(config)
        self.assertIn(status, (200, 201), body)
        before = self._deployments_and_projects()
        status, body, _ = self.n.api("POST", "/v1/deployments", {
            "project": "api-bad-regex", "target": "production",
            "files": [{"path": "config.json", "hash": sha256(config), "size": len(config),
                       "mode": 0o644}]})
        self.assertEqual(status, 400, body)
        code, message = error_of(body)
        self.assertIn("routes[0]", message)
        self.assertEqual(self._deployments_and_projects(), before)

    def test_catastrophic_backtracking_route(self):
        s, _, b = self.get("/aaaa")
        self.assertEqual((s, b), (200, b"<p>X page</p>"))
        path = "/" + "a" * 5000 + "b"
        s, h, b = self.get(path)
        self.assertTrue(100 <= s <= 599, s)   # answered, whatever the status
        self.assertIn("x-nimbus-id", h)
        self.assertTrue(self.n.running(), self.n.output_text())
        for p, want in (("/alias", b"<p>TARGET page</p>"), ("/aaaa", b"<p>X page</p>")):
            s, _, b = self.get(p)
            self.assertEqual((s, b), (200, want), p)
        s, _, b = self.n.get(prod_host("plain"), "/a.txt")
        self.assertEqual((s, b), (200, b"A"))


# ----------------------------------------------------------------------------- part 3

class EchoUpstream(BaseHTTPRequestHandler):
    """/up/stream*: a chunked body in three pieces, the first sent at once, the rest only
    once the test sets `release` (bounded wait). Anything else: GET_STATUS with the request
    seen (and the TLS client certificate's subject) as JSON, and headers x-upstream, x-both,
    x-imp. POST/PUT echo the raw body with 201."""
    protocol_version = "HTTP/1.1"
    timeout = 30
    STREAM_WAIT = 30.0      # longer than the client's wait for the first piece
    GET_STATUS = 203        # not 200, so a passed-through status is visible

    def log_message(self, *args):
        pass

    def _peer_subject(self):
        getpeercert = getattr(self.connection, "getpeercert", None)
        cert = getpeercert() if getpeercert else None
        if not cert:
            return None
        return [list(pair) for rdn in cert.get("subject", ()) for pair in rdn]

    def _body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        body = self._body() if self.command in ("POST", "PUT") else b""
        seen = {"method": self.command, "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body_sha256": sha256(body), "body_len": len(body),
                "peer_subject": self._peer_subject()}
        self.server.upstream.record(**seen)
        if self.path.startswith("/up/stream"):
            return self._stream()
        if self.command in ("POST", "PUT"):
            self.send_response(201)
            self.send_header("content-type", self.headers.get("content-type") or "application/octet-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = json.dumps(seen).encode()
        self.send_response(self.GET_STATUS)
        self.send_header("content-type", "application/json")
        self.send_header("x-upstream", "yes")
        self.send_header("x-both", "from-upstream")
        self.send_header("x-imp", "from-upstream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self):
        self.send_response(200)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        chunk(b"first-piece;")
        released = self.server.upstream.release.wait(self.STREAM_WAIT)
        self.server.upstream.record(stream_released=released)
        chunk(b"second-piece;")
        chunk(b"third-piece.")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class ExternalProxy(unittest.TestCase):
    """Routes whose dest is an http:// URL, to an upstream run by the test."""

    def setUp(self):
        self.up = Upstream(EchoUpstream)
        self.addCleanup(self.up.close)          # cleanups run last-in first-out: nimbus
        self.refused, refused_port_number = refused_port()   # stops before the upstream
        self.addCleanup(self.refused.close)
        self.n = Nimbus()
        self.addCleanup(self.n.close)
        base = self.up.url()
        config = {"version": 3, "routes": [
            {"src": "/ext/(.*)", "dest": base + "/up/$1?from=dest&k=d",
             "headers": {"x-both": "from-route", "x-route": "r"}},
            {"src": "/imp/(.*)", "dest": base + "/up/$1",
             "headers": {"x-imp": "from-route"}, "important": True},
            {"src": "/dead/(.*)", "dest": "http://127.0.0.1:%d/$1" % refused_port_number},
        ]}
        out = make_output(os.path.join(self.n.work, "proxy"), {"static/a.txt": "A"}, config)
        self.n.deploy(out, "px", prod=True)
        self.host = prod_host("px")

    def get(self, path, **kw):
        return self.n.get(self.host, path, **kw)

    def test_get_path_query_status_headers_body(self):
        s, h, b = self.get("/ext/a/b?q=1&k=c", headers={"X-Client": "c1"})
        self.assertEqual(s, 203, b)
        self.assertEqual(h.get("x-upstream"), "yes", h)
        self.assertEqual(h.get("content-type"), "application/json", h)
        seen = json.loads(b)
        self.assertEqual(self.up.recorded(), [seen])
        path, _, query = seen["path"].partition("?")
        self.assertEqual(path, "/up/a/b")
        # dest query merged with the incoming one; a name in both: the incoming value wins
        self.assertEqual(sorted(urllib.parse.parse_qsl(query)),
                         sorted([("from", "dest"), ("q", "1"), ("k", "c")]), seen["path"])
        headers = dict(seen["headers"])
        self.assertEqual(headers.get("x-client"), "c1")
        self.assertEqual(headers.get("host"), "127.0.0.1:%d" % self.up.port)
        self.assertEqual(headers.get("x-forwarded-host"), self.host)
        self.assertEqual(headers.get("x-forwarded-for"), "127.0.0.1")

    def test_post_body_round_trip(self):
        payload = bytes(range(256)) * 400 + b"end"
        s, h, b = self.get("/ext/post?x=1", method="POST", body=payload,
                           headers={"Content-Type": "application/x-test"})
        self.assertEqual(s, 201, short(b))
        self.assertEqual(len(b), len(payload))
        self.assertEqual(b, payload)
        self.assertEqual(h.get("content-type"), "application/x-test")
        seen = self.up.recorded()
        self.assertEqual(len(seen), 1, seen)
        self.assertEqual(seen[0]["method"], "POST")
        self.assertEqual(seen[0]["path"].partition("?")[0], "/up/post")
        self.assertEqual((seen[0]["body_len"], seen[0]["body_sha256"]),
                         (len(payload), sha256(payload)))

    def test_route_headers_precedence(self):
        s, h, _ = self.get("/ext/h")
        self.assertEqual(s, 203)
        self.assertEqual(h.get("x-both"), "from-upstream", "the upstream's header wins: %r" % h)
        self.assertEqual(h.get("x-route"), "r", "a route header the upstream lacks stays: %r" % h)
        s, h, _ = self.get("/imp/h")
        self.assertEqual(s, 203)
        self.assertEqual(h.get("x-imp"), "from-route", "an important route header wins: %r" % h)
        self.assertEqual(h.get("x-both"), "from-upstream")

    def test_streamed_chunked_body(self):
        sock = socket.create_connection(("127.0.0.1", self.n.router_port), timeout=HTTP_TIMEOUT)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /ext/stream HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                     % self.host.encode())
        received = b""
        deadline = time.monotonic() + 15
        while b"first-piece;" not in received.partition(b"\r\n\r\n")[2] \
                and time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        self.assertIn(b"first-piece;", body,
                      "the first piece did not reach the client while the upstream held the "
                      "rest; got %r" % received)
        self.assertNotIn(b"second-piece", body)
        self.assertFalse(self.up.release.is_set())
        status, headers, _ = parse_raw_response(received)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("transfer-encoding"), "chunked", headers)
        self.up.release.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if decode_chunked(received.partition(b"\r\n\r\n")[2])[1]:
                break
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            received += data
        decoded, complete = decode_chunked(received.partition(b"\r\n\r\n")[2])
        self.assertTrue(complete, "no terminating chunk; got %r" % received)
        self.assertEqual(decoded, b"first-piece;second-piece;third-piece.")
        self.assertIn({"stream_released": True}, self.up.recorded())

    def test_upstream_refused(self):
        s, h, b = self.get("/dead/x")
        self.assertEqual(s, 502, b)
        self.assertEqual(h.get("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_CONNECTION_ERROR", h)
        s, _, b = self.n.get(self.host, "/a.txt")
        self.assertEqual((s, b), (200, b"A"))


# ----------------------------------------------------------------------------- part 4

class TlsEchoUpstream(EchoUpstream):
    GET_STATUS = 200


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 (SAN IP:127.0.0.1) and a client certificate
    signed by it, a second unrelated CA, and a stray key. Returns {name: path}."""
    def openssl(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=directory, capture_output=True,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), p.stderr.decode()))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name, cn in (("ca", "Nimbus E2E CA"), ("other-ca", "Unrelated E2E CA")):
        openssl("req", "-x509", *ec, "-keyout", name + ".key", "-out", name + ".pem",
                "-days", "2", "-subj", "/CN=" + cn,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    exts = {"server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                      "keyUsage=critical,digitalSignature\n",
            "client": "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"}
    subjects = {"server": "/CN=127.0.0.1", "client": "/O=Nimbus E2E/CN=nimbus-e2e-client"}
    for i, name in enumerate(("server", "client")):
        with open(os.path.join(directory, name + ".ext"), "w") as f:
            f.write(exts[name])
        openssl("req", "-new", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", subjects[name])
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", str(1000 + i), "-days", "2", "-out", name + ".pem",
                "-extfile", name + ".ext")
    openssl("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", "stray.key")
    return {n: os.path.join(directory, n) for n in os.listdir(directory)}


class HttpsUpstreamTls(unittest.TestCase):
    """HTTPS upstreams signed by a private CA, one requiring a client certificate (mTLS),
    and `nimbus upstream-tls set/show/rm`."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("the openssl command is not installed")
        cls.pki_dir = tempfile.mkdtemp(prefix="nimbus-e2e-pki-")
        try:
            cls.pki = make_pki(cls.pki_dir)
        except BaseException:
            shutil.rmtree(cls.pki_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def server_context(self, require_client_cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki["server.pem"], self.pki["server.key"])
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.pki["ca.pem"])
        return ctx

    def setUp(self):
        self.mtls = Upstream(TlsEchoUpstream, ssl_context=self.server_context(True))
        self.addCleanup(self.mtls.close)
        self.open = Upstream(TlsEchoUpstream, ssl_context=self.server_context(False))
        self.addCleanup(self.open.close)
        self.n = Nimbus()
        self.addCleanup(self.n.close)
        config = {"version": 3, "routes": [
            {"src": "/mtls/(.*)", "dest": self.mtls.url("/secure/$1")},
            {"src": "/tls/(.*)", "dest": self.open.url("/plain-tls/$1")},
        ]}
        out = make_output(os.path.join(self.n.work, "tls"), {"static/a.txt": "A"}, config)
        self.n.deploy(out, "tlsp", prod=True)
        self.host = prod_host("tlsp")

    def get(self, path):
        return self.n.get(self.host, path)

    def set_tls(self, *files, check=True):
        args = []
        for opt, name in zip(("--ca", "--cert", "--key"), files):
            if name:
                args += [opt, self.pki[name]]
        return self.n.cli("upstream-tls", "set", "tlsp", *args, check=check)

    def wait_answer(self, path, want_status, want_error=None):
        """Bounded poll until `path` answers `want_status` (and x-nimbus-error); returns the
        last answer."""
        last = [None]

        def attempt():
            last[0] = self.get(path)
            s, h, _ = last[0]
            return s == want_status and (want_error is None or h.get("x-nimbus-error") == want_error)
        wait_for(attempt, timeout=SETTLE, interval=0.1)
        return last[0]

    def assert_handshake_error(self, path):
        s, h, b = self.wait_answer(path, 502, "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR")
        self.assertEqual((s, h.get("x-nimbus-error")),
                         (502, "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR"), b)

    def assert_mtls_ok(self):
        s, h, b = self.wait_answer("/mtls/x?y=1", 200)
        self.assertEqual(s, 200, "%r %r" % (h, b))
        seen = json.loads(b)
        self.assertEqual(seen["path"], "/secure/x?y=1")
        self.assertIn(["commonName", "nimbus-e2e-client"], seen["peer_subject"] or [], seen)
        self.assertIn(["organizationName", "Nimbus E2E"], seen["peer_subject"] or [], seen)

    def test_no_settings_unknown_ca(self):
        self.assert_handshake_error("/mtls/x")
        self.assert_handshake_error("/tls/x")
        self.assertEqual(self.mtls.recorded() + self.open.recorded(), [])
        rc, out, err = self.n.cli("upstream-tls", "show", "tlsp", check=False)
        self.assertEqual(rc, 1, out)

    def test_ca_only_but_client_certificate_required(self):
        self.set_tls("ca.pem")
        # the CA is in use: the upstream that needs no client certificate answers
        s, h, b = self.wait_answer("/tls/x", 200)
        self.assertEqual(s, 200, "%r %r" % (h, b))
        self.assertIsNone(json.loads(b)["peer_subject"])
        self.assert_handshake_error("/mtls/x")
        self.assertEqual(self.mtls.recorded(), [])
        # the upstream refused the handshake for want of a client certificate (it records
        # that in its own thread, possibly just after nimbus answered)
        errors = wait_for(lambda: [e for e in self.mtls.handshake_errors()
                                   if "certificate" in e.lower()], timeout=SETTLE)
        self.assertTrue(errors, "the mTLS upstream saw no handshake without a client "
                        "certificate; its handshake errors: %r" % self.mtls.handshake_errors())

    def test_ca_and_client_certificate(self):
        rc, out, err = self.set_tls("ca.pem", "client.pem", "client.key")
        self.assertEqual(rc, 0, err)
        self.assert_mtls_ok()
        s, _, _ = self.get("/tls/x")
        self.assertEqual(s, 200)

    def test_show_never_prints_the_key(self):
        rc, set_out, set_err = self.set_tls("ca.pem", "client.pem", "client.key")
        self.assertEqual(rc, 0, set_err)
        with open(self.pki["client.key"]) as f:
            key_lines = [l for l in f.read().splitlines() if l and not l.startswith("-----")]
        rc, show_out, show_err = self.n.cli("upstream-tls", "show", "tlsp")
        rc2, show_json, show_json_err = self.n.cli("upstream-tls", "show", "tlsp", json=True,
                                                   check=False)
        self.assertEqual(rc2, 0, show_json_err)
        status, api_body, _ = self.n.api("GET", "/v1/projects/tlsp/upstream-tls")
        self.assertEqual(status, 200, api_body)
        outputs = {"set": set_out + set_err, "show": show_out + show_err,
                   "show --json": json.dumps(show_json) + show_json_err,
                   "GET /v1/projects/tlsp/upstream-tls": json.dumps(api_body)}
        for what, text in outputs.items():
            with self.subTest(output=what):
                self.assertNotIn("PRIVATE KEY", text)
                for line in key_lines:
                    self.assertNotIn(line, text)
        self.assertIn("client", show_out.lower())
        self.assertIs(show_json.get("clientCertificate"), True, show_json)
        self.assertIs(show_json.get("customCa"), True, show_json)

    def test_unrelated_ca(self):
        rc, _, err = self.set_tls("other-ca.pem", "client.pem", "client.key")
        self.assertEqual(rc, 0, err)
        self.assert_handshake_error("/mtls/x")
        self.assert_handshake_error("/tls/x")
        self.assertEqual(self.mtls.recorded() + self.open.recorded(), [])

    def test_rm_goes_back_to_failing(self):
        self.set_tls("ca.pem", "client.pem", "client.key")
        self.assert_mtls_ok()
        rc, out, err = self.n.cli("upstream-tls", "rm", "tlsp", check=False)
        self.assertEqual(rc, 0, err)
        self.assert_handshake_error("/mtls/x")
        self.assert_handshake_error("/tls/x")
        rc, out, err = self.n.cli("upstream-tls", "show", "tlsp", check=False)
        self.assertEqual(rc, 1, out)

    def test_key_not_matching_the_certificate(self):
        self.set_tls("ca.pem", "client.pem", "client.key")
        self.assert_mtls_ok()
        rc, out, err = self.set_tls("ca.pem", "client.pem", "stray.key", check=False)
        self.assertEqual(rc, 1, "stdout %r stderr %r" % (out, err))
        message = error_message(err).lower()
        self.assertIn("key", message)
        self.assertTrue(re.search(r"does not (belong|match)|mismatch|not match", message), message)
        # the settings in place are unchanged
        self.assert_mtls_ok()


if __name__ == "__main__":
    unittest.main()
