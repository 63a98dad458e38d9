"""Crash safety: kill -9 the server in the middle of a blob upload and in the middle of a
`nimbus deploy`, restart on the same data dir, and check that nothing half-written became
visible and that completed work survived."""
import hashlib
import os
import random
import socket
import subprocess
import sys
import time
import unittest

from nimbus_harness import (BIN, ServerTestCase, as_list, error_message, make_output,
                            preview_host, prod_host, sha256, wait_for)


def deployment_serves_all(testcase, n, dep, files):
    """Every static file of `files` ({url path: bytes}) is served by dep's preview host."""
    host = preview_host(dep["project"], dep["id"])
    bad = []
    for path, data in files.items():
        status, _, body = n.get(host, path)
        if status != 200 or body != data:
            bad.append((path, status, len(body)))
            if len(bad) > 5:
                break
    testcase.assertEqual(bad, [], "deployment %s does not serve all its files" % dep["id"])


class Crash(ServerTestCase, unittest.TestCase):
    def test_kill_during_blob_upload(self):
        # a completed deployment first
        site = make_output(os.path.join(self.n.work, "site"), {"static/a.txt": "before crash\n"})
        before = self.n.deploy(site, "stable", prod=True)

        size = 50 * 1024 * 1024
        rng = random.Random(1234)
        data = rng.randbytes(size)
        digest = sha256(data)
        sock = socket.create_connection(("127.0.0.1", self.n.api_port), timeout=30)
        try:
            sock.sendall(("PUT /v1/blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Authorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %d\r\n\r\n" % (digest, self.n.token, size)).encode())
            sock.sendall(data[:size // 2])
            self.n.kill9()
        finally:
            sock.close()

        self.n.start()
        self.assertEqual(self.n.missing([digest]), [digest])
        status, _, body = self.n.get(prod_host("stable"), "/a.txt")
        self.assertEqual((status, body), (200, b"before crash\n"))
        status, _, body = self.n.get(preview_host("stable", before["id"]), "/a.txt")
        self.assertEqual((status, body), (200, b"before crash\n"))
        # no file in the data dir holds the half blob under its final name
        for root, _, names in os.walk(self.n.data):
            for name in names:
                if name in (digest, digest[2:]):
                    p = os.path.join(root, name)
                    self.fail("a file named after the interrupted blob exists: %s (%d bytes)"
                              % (p, os.path.getsize(p)))

        # the same blob uploads completely afterwards
        status, body, _ = self.n.put_blob(data)
        self.assertEqual(status, 201, body)
        self.assertEqual(self.n.missing([digest]), [])

    def test_kill_during_deploy(self):
        rng = random.Random(99)
        count = 1500
        files = {"static/f%04d.bin" % i: rng.randbytes(rng.randint(2000, 12000)) for i in range(count)}
        out = make_output(os.path.join(self.n.work, "many"), files)
        hashes = [hashlib.sha256(d).hexdigest() for d in files.values()]
        url_files = {"/" + k[len("static/"):]: v for k, v in files.items()}

        # a completed deployment first
        small = make_output(os.path.join(self.n.work, "small"), {"static/s.txt": "small\n"})
        done = self.n.deploy(small, "many", prod=True)

        env = dict(self.n.env, NIMBUS_TOKEN=self.n.token)
        proc = subprocess.Popen([BIN, "--api", self.n.api_url, "deploy", out, "--project", "many"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                stdin=subprocess.DEVNULL, cwd=self.n.work)
        try:
            def some_uploaded():
                if proc.poll() is not None:
                    return "exited"
                try:
                    return len(self.n.missing(hashes)) < count and "uploading"
                except (OSError, AssertionError):
                    return None
            state = wait_for(some_uploaded, timeout=60, interval=0.01)
            self.n.kill9()
            try:
                dep_out, dep_err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                dep_out, dep_err = proc.communicate(timeout=10)
                self.fail("nimbus deploy hung after the server died")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sys.stderr.write("\nkill during deploy: state when killed=%r, deploy rc=%s\n" % (state, proc.returncode))
        if proc.returncode != 0:
            self.assertEqual(proc.returncode, 1, dep_err)
            error_message(dep_err.decode())

        self.n.start()
        deployments = as_list(self.n.cli("ls", "many", json=True), "deployments")
        ids = [d["id"] for d in deployments]
        self.assertIn(done["id"], ids)
        self.assertLessEqual(len(ids), 2, deployments)
        if proc.returncode != 0:
            self.assertEqual(ids, [done["id"]], "a deployment appeared although deploy failed")
        for d in deployments:
            d.setdefault("project", "many")
            if d["id"] == done["id"]:
                deployment_serves_all(self, self.n, d, {"/s.txt": b"small\n"})
            else:
                deployment_serves_all(self, self.n, d, url_files)
        status, _, body = self.n.get(prod_host("many"), "/s.txt")
        self.assertEqual((status, body), (200, b"small\n"))

        # deploying again succeeds and uploads only what is still missing
        still_missing = set(self.n.missing(hashes))
        missing_bytes = sum(len(d) for d in files.values() if hashlib.sha256(d).hexdigest() in still_missing)
        again = self.n.deploy(out, "many")
        self.assertGreaterEqual(again["uploadedBytes"], missing_bytes)
        if len(still_missing) < count:
            self.assertLess(again["uploadedBytes"], sum(len(d) for d in files.values()))
        deployment_serves_all(self, self.n, dict(again, project="many"), url_files)
        self.assertEqual(self.n.missing(hashes), [])


if __name__ == "__main__":
    unittest.main()
