"""Static serving semantics of the router: validators, ranges, HEAD, compression, index
files, overrides, hosts, methods, keep-alive, limits, request ids and the access log."""
import gzip
import http.client
import json
import os
import socket
import struct
import unittest

from nimbus_harness import (Nimbus, ServerTestCase, make_output, parse_raw_response, preview_host, prod_host,
                            raw_exchange, wait_for)

PROJECT = "web"
RANGE_BODY = b"abcdefghijklmnopqrstuvwxyz0123456789"
BIG_TEXT = "".join("line %04d: the quick brown fox jumps over the lazy dog\n" % i
                   for i in range(120)).encode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 6000
OVERRIDE_TYPE = "text/x-nimbus-test; charset=utf-8"

SITE_V1 = {
    "static/index.html": "<h1>root index</h1>",
    "static/dir/index.html": "<h1>dir index</h1>",
    "static/range.txt": RANGE_BODY,
    "static/hello.txt": "hello nimbus\n",
    "static/big.txt": BIG_TEXT,
    "static/pixel.png": PNG,
    "static/a.html": "<p>override a</p>",
}
CONFIG_V1 = {"version": 3, "overrides": {"a.html": {"path": "a", "contentType": OVERRIDE_TYPE}}}
SITE_V2 = {"static/hello.txt": "hello preview v2\n"}


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus()
        try:
            v1 = make_output(os.path.join(cls.n.work, "v1"), SITE_V1, CONFIG_V1)
            v2 = make_output(os.path.join(cls.n.work, "v2"), SITE_V2)
            cls.prod = cls.n.deploy(v1, PROJECT, prod=True)
            cls.preview = cls.n.deploy(v2, PROJECT)
        except BaseException:
            cls.n.close()
            raise
        cls.host = prod_host(PROJECT)

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    def get(self, path, headers=None, method="GET", host=None, body=None):
        return self.n.get(host or self.host, path, headers=headers, method=method, body=body)

    # ------------------------------------------------------------------ basics
    def test_static_file_and_headers(self):
        status, h, body = self.get("/hello.txt")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello nimbus\n")
        self.assertEqual(h.get("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(h.get("content-length"), str(len(body)))
        self.assertTrue(h.get("etag"))
        self.assertEqual(h.get("cache-control"), "public, max-age=0, must-revalidate")
        self.assertTrue(h.get("x-nimbus-id"))

    def test_host_with_port(self):
        status, _, body = self.get("/hello.txt", host="%s:%d" % (self.host, self.n.router_port))
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello nimbus\n")

    def test_missing_file_404(self):
        status, h, _ = self.get("/no/such/file.txt")
        self.assertEqual(status, 404)
        self.assertTrue(h.get("x-nimbus-id"))

    # ------------------------------------------------------------------ conditional requests
    def etag(self, path="/range.txt"):
        status, h, _ = self.get(path)
        self.assertEqual(status, 200)
        self.assertTrue(h.get("etag"), h)
        return h["etag"]

    def test_etag_stable(self):
        self.assertEqual(self.etag(), self.etag())
        self.assertNotEqual(self.etag("/range.txt"), self.etag("/hello.txt"))

    def assert_not_modified(self, inm):
        status, h, body = self.get("/range.txt", {"If-None-Match": inm})
        self.assertEqual(status, 304, "If-None-Match: %s" % inm)
        self.assertEqual(body, b"")
        self.assertEqual(h.get("etag"), self.etag())
        self.assertTrue(h.get("x-nimbus-id"))

    def test_if_none_match_exact(self):
        self.assert_not_modified(self.etag())

    def test_if_none_match_star(self):
        self.assert_not_modified("*")

    def test_if_none_match_list(self):
        self.assert_not_modified('"nope-1", %s, "nope-2"' % self.etag())

    def test_if_none_match_weak(self):
        tag = self.etag()
        weak = tag if tag.startswith("W/") else "W/" + tag
        self.assert_not_modified(weak)

    def test_if_none_match_other(self):
        status, _, body = self.get("/range.txt", {"If-None-Match": '"something-else"'})
        self.assertEqual(status, 200)
        self.assertEqual(body, RANGE_BODY)

    # ------------------------------------------------------------------ ranges
    def assert_partial(self, rng, start, end, headers=None):
        hdrs = {"Range": rng}
        hdrs.update(headers or {})
        status, h, body = self.get("/range.txt", hdrs)
        self.assertEqual(status, 206, "Range: %s" % rng)
        self.assertEqual(h.get("content-range"), "bytes %d-%d/%d" % (start, end, len(RANGE_BODY)))
        self.assertEqual(body, RANGE_BODY[start:end + 1])
        self.assertEqual(h.get("content-length"), str(end - start + 1))

    def test_range_first_bytes(self):
        self.assert_partial("bytes=0-4", 0, 4)

    def test_range_suffix(self):
        n = len(RANGE_BODY)
        self.assert_partial("bytes=-3", n - 3, n - 1)

    def test_range_open_ended(self):
        self.assert_partial("bytes=5-", 5, len(RANGE_BODY) - 1)

    def test_range_unsatisfiable(self):
        status, h, _ = self.get("/range.txt", {"Range": "bytes=999999-"})
        self.assertEqual(status, 416)
        self.assertEqual(h.get("content-range"), "bytes */%d" % len(RANGE_BODY))
        self.assertTrue(h.get("x-nimbus-id"))

    def test_if_range_matching_etag(self):
        self.assert_partial("bytes=0-4", 0, 4, {"If-Range": self.etag()})

    def test_if_range_other_etag(self):
        status, h, body = self.get("/range.txt", {"Range": "bytes=0-4", "If-Range": '"other"'})
        self.assertEqual(status, 200)
        self.assertEqual(body, RANGE_BODY)
        self.assertNotIn("content-range", h)

    # ------------------------------------------------------------------ HEAD
    def test_head(self):
        _, g, gbody = self.get("/big.txt")
        status, h, body = self.get("/big.txt", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(h.get("content-length"), str(len(BIG_TEXT)))
        for name in ("content-type", "etag", "cache-control"):
            self.assertEqual(h.get(name), g.get(name), name)
        self.assertTrue(h.get("x-nimbus-id"))

    def test_head_raw_has_no_body(self):
        """http.client never reads a HEAD body; check the bytes on the wire."""
        req = ("HEAD /hello.txt HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % self.host).encode()
        data = raw_exchange(self.n.router_port, req)
        head, _, rest = data.partition(b"\r\n\r\n")
        status, h, _ = parse_raw_response(data)
        self.assertEqual(status, 200)
        self.assertEqual(h.get("content-length"), str(len(b"hello nimbus\n")))
        self.assertEqual(rest, b"")

    # ------------------------------------------------------------------ compression
    def test_gzip(self):
        status, h, body = self.get("/big.txt", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(h.get("content-encoding"), "gzip")
        self.assertIn("accept-encoding", [v.strip().lower() for v in h.get("vary", "").split(",")])
        self.assertEqual(gzip.decompress(body), BIG_TEXT)
        self.assertLess(len(body), len(BIG_TEXT))

    def test_brotli(self):
        status, h, body = self.get("/big.txt", {"Accept-Encoding": "br"})
        self.assertEqual(status, 200)
        self.assertEqual(h.get("content-encoding"), "br")
        self.assertIn("accept-encoding", [v.strip().lower() for v in h.get("vary", "").split(",")])
        self.assertNotEqual(body, BIG_TEXT)
        self.assertLess(len(body), len(BIG_TEXT))

    def test_identity_without_accept_encoding(self):
        status, h, body = self.get("/big.txt")
        self.assertEqual(status, 200)
        self.assertIn(h.get("content-encoding", "identity"), ("identity",))
        self.assertEqual(body, BIG_TEXT)

    def test_image_not_compressed(self):
        status, h, body = self.get("/pixel.png", {"Accept-Encoding": "gzip, br"})
        self.assertEqual(status, 200)
        self.assertEqual(h.get("content-type"), "image/png")
        self.assertIn(h.get("content-encoding", "identity"), ("identity",))
        self.assertEqual(body, PNG)

    # ------------------------------------------------------------------ index files, overrides
    def test_root_index(self):
        status, h, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"<h1>root index</h1>")
        self.assertEqual(h.get("content-type"), "text/html; charset=utf-8")

    def test_dir_index(self):
        for path in ("/dir", "/dir/", "/dir/index.html"):
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 200)
                self.assertEqual(body, b"<h1>dir index</h1>")
                self.assertEqual(h.get("content-type"), "text/html; charset=utf-8")

    def test_override_path_and_type(self):
        status, h, body = self.get("/a")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"<p>override a</p>")
        self.assertEqual(h.get("content-type"), OVERRIDE_TYPE)
        status, _, _ = self.get("/a.html")
        self.assertEqual(status, 404)

    # ------------------------------------------------------------------ hosts
    def test_unknown_host(self):
        status, h, body = self.n.get("nosuchproject.localhost", "/hello.txt")
        self.assertEqual(status, 404)
        self.assertIn(b"nosuchproject.localhost", body)
        self.assertTrue(h.get("x-nimbus-id"))

    def test_unknown_preview_host(self):
        host = preview_host(PROJECT, "zzzzzzzzzzzz")
        status, _, body = self.n.get(host, "/hello.txt")
        self.assertEqual(status, 404)
        self.assertIn(host.encode(), body)

    def test_preview_host(self):
        host = preview_host(PROJECT, self.preview["id"])
        status, h, body = self.n.get(host, "/hello.txt")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello preview v2\n")
        self.assertEqual(h.get("x-robots-tag"), "noindex")
        # the preview does not change production
        status, h, body = self.get("/hello.txt")
        self.assertEqual(body, b"hello nimbus\n")
        self.assertNotIn("noindex", h.get("x-robots-tag", ""))

    def test_production_deployment_preview_host(self):
        host = preview_host(PROJECT, self.prod["id"])
        status, h, body = self.n.get(host, "/hello.txt")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello nimbus\n")
        self.assertEqual(h.get("x-robots-tag"), "noindex")

    # ------------------------------------------------------------------ methods
    def test_post_to_static_file(self):
        status, h, _ = self.get("/hello.txt", method="POST", body=b"x=1",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertGreaterEqual(status, 400)
        self.assertLess(status, 500)
        self.assertTrue(h.get("x-nimbus-id"))

    # ------------------------------------------------------------------ connections and limits
    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.n.router_port, timeout=30)
        try:
            conn.request("GET", "/hello.txt", headers={"Host": self.host})
            r1 = conn.getresponse()
            b1 = r1.read()
            sock1 = conn.sock
            self.assertIsNotNone(sock1, "server closed the connection after the first response")
            conn.request("GET", "/range.txt", headers={"Host": self.host})
            r2 = conn.getresponse()
            b2 = r2.read()
            self.assertIs(conn.sock, sock1, "second request used a new connection")
        finally:
            conn.close()
        self.assertEqual((r1.status, b1), (200, b"hello nimbus\n"))
        self.assertEqual((r2.status, b2), (200, RANGE_BODY))

    def test_header_too_large(self):
        req = ("GET /hello.txt HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
               % (self.host, "a" * 40960)).encode()
        status, h, _ = parse_raw_response(raw_exchange(self.n.router_port, req))
        self.assertEqual(status, 431)
        self.assertTrue(h.get("x-nimbus-id"))

    def test_url_too_long(self):
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % ("a" * 17000, self.host)).encode()
        status, h, _ = parse_raw_response(raw_exchange(self.n.router_port, req))
        self.assertEqual(status, 414)
        self.assertTrue(h.get("x-nimbus-id"))

    def test_server_survives_limits(self):
        for _ in range(2):
            raw_exchange(self.n.router_port, ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("b" * 20000)).encode())
        status, _, body = self.get("/hello.txt")
        self.assertEqual((status, body), (200, b"hello nimbus\n"))

    # ------------------------------------------------------------------ request ids, access log
    def test_every_response_has_unique_request_id(self):
        tag = self.etag()
        cases = [
            ("/hello.txt", {}, "GET"),
            ("/range.txt", {"If-None-Match": tag}, "GET"),
            ("/range.txt", {"Range": "bytes=0-1"}, "GET"),
            ("/range.txt", {"Range": "bytes=999999-"}, "GET"),
            ("/nope", {}, "GET"),
            ("/hello.txt", {}, "HEAD"),
            ("/hello.txt", {}, "POST"),
            ("/big.txt", {"Accept-Encoding": "gzip"}, "GET"),
        ]
        ids = []
        for path, hdrs, method in cases:
            with self.subTest(path=path, headers=hdrs, method=method):
                status, h, _ = self.get(path, hdrs, method=method)
                self.assertTrue(h.get("x-nimbus-id"), "status %d headers %r" % (status, h))
                ids.append(h.get("x-nimbus-id"))
        status, h, _ = self.n.get("unknown-host.localhost", "/")
        self.assertTrue(h.get("x-nimbus-id"))
        ids.append(h["x-nimbus-id"])
        self.assertEqual(len(set(ids)), len(ids), ids)

    def test_access_log(self):
        ids = []
        requests = [("/hello.txt?probe=1", {}), ("/nope-for-log", {}),
                    ("/range.txt", {"Range": "bytes=0-2"})]
        for path, hdrs in requests:
            _, h, _ = self.get(path, hdrs)
            ids.append(h["x-nimbus-id"])

        def all_logged():
            lines = self.n.read_access_log()
            return lines if all(any(i in l for l in lines) for i in ids) else None
        lines = wait_for(all_logged, timeout=10)
        self.assertTrue(lines, "request ids %r not all in %s:\n%s" % (
            ids, self.n.access_log, "\n".join(self.n.read_access_log()[-10:])))
        for rid in ids:
            matching = [l for l in lines if rid in l]
            self.assertEqual(len(matching), 1, "lines for %s: %r" % (rid, matching))
            record = json.loads(matching[0])
            self.assertIsInstance(record, dict)
            self.assertIn(rid, json.dumps(record))
        for line in lines:
            if line.strip():
                json.loads(line)  # every line is one JSON document


class ClientsThatLeaveEarly(ServerTestCase, unittest.TestCase):
    def test_server_survives_clients_closing_mid_body(self):
        # Large bodies go out with sendfile(2); a peer that closes must not take the server
        # down (SIGPIPE) and must not disturb the next client.
        big = bytes(range(256)) * (16 * 1024 * 4)  # 16 MiB
        out = make_output(os.path.join(self.n.work, "big"), {"static/big.bin": big})
        self.n.deploy(out, "early", prod=True)
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.n.router_port), timeout=10)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: early.localhost\r\n\r\n")
            s.recv(4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST while the server is still sending
        self.assertTrue(self.n.running(), "nimbus serve died:\n" + self.n.output_text())
        status, _, body = self.n.get("early.localhost", "/big.bin")
        self.assertEqual(status, 200)
        self.assertTrue(body == big)


class AccessLogToStdout(ServerTestCase, unittest.TestCase):
    access_log = "-"

    def test_lines_on_stdout(self):
        out = make_output(os.path.join(self.n.work, "s"), {"static/x.txt": "x"})
        self.n.deploy(out, "logs", prod=True)
        _, h, _ = self.n.get(prod_host("logs"), "/x.txt")
        rid = h["x-nimbus-id"]
        line = wait_for(lambda: next((l for s, l in list(self.n.lines)
                                      if s == "stdout" and rid in l), None), timeout=10)
        self.assertTrue(line, "request id %s not on stdout:\n%s" % (rid, self.n.output_text()))
        self.assertIsInstance(json.loads(line), dict)


class AccessLogOff(ServerTestCase, unittest.TestCase):
    access_log = "off"

    def test_no_log_written(self):
        out = make_output(os.path.join(self.n.work, "s"), {"static/x.txt": "x"})
        self.n.deploy(out, "logs", prod=True)
        _, h, _ = self.n.get(prod_host("logs"), "/x.txt")
        rid = h["x-nimbus-id"]
        self.n.stop()  # flushes whatever would have been written
        for root, _, names in os.walk(self.n.root):
            for name in names:
                p = os.path.join(root, name)
                if p.endswith(".log") or "access" in name:
                    with open(p, "rb") as f:
                        self.assertNotIn(rid.encode(), f.read(), p)
        self.assertFalse(any(rid in l for _, l in self.n.all_output))


if __name__ == "__main__":
    unittest.main()
