"""Bad input is refused with a clear message and leaves nothing behind: invalid output
directories (client-side validation in `nimbus deploy`), abusive manifests and blob uploads
sent straight to the control API, and CLI usage errors."""
import os
import socket
import time
import unittest

from nimbus_harness import (ServerTestCase, as_list, error_message, error_of, make_output,
                            parse_raw_response, sha256)

VC_CONFIG = '{"runtime": "nodejs20.x", "handler": "index.js", "launcherType": "Nodejs"}'


class BadOutputDirs(ServerTestCase, unittest.TestCase):
    def deploy_fails(self, directory, project, *paths):
        rc, out, err = self.n.cli("deploy", directory, "--project", project, check=False)
        self.assertEqual(rc, 1, "deploy should fail\nstdout: %s\nstderr: %s" % (out, err))
        message = error_message(err)
        for p in paths:
            self.assertIn(p, message, "the error should name %s:\n%s" % (p, err))
        self.assert_nothing_created(project)
        return err

    def assert_nothing_created(self, project):
        self.assertEqual(as_list(self.n.cli("ls", json=True), "deployments"), [])
        names = [p["name"] for p in as_list(self.n.cli("projects", json=True), "projects")]
        self.assertNotIn(project, names)

    def out(self, name, files=None, config=None, symlinks=None, dirs=()):
        return make_output(os.path.join(self.n.work, name), files or {"static/a.txt": "a"},
                           config, symlinks, dirs)

    def test_no_config_json(self):
        d = self.out("noconfig-dir", config=False)
        err = self.deploy_fails(d, "nocfg", "config.json")
        self.assertIn(d.rstrip("/").split("/")[-1], err)  # says which directory was looked at

    def test_version_2(self):
        d = self.out("v2", config={"version": 2})
        err = self.deploy_fails(d, "v2", "config.json")
        self.assertIn("version", err)
        self.assertIn("3", err)

    def test_malformed_json(self):
        d = self.out("malformed", config='{"version": 3,,}')
        err = self.deploy_fails(d, "malformed", "config.json")
        self.assertRegex(err.lower(), r"json|pars|syntax")

    def test_func_without_vc_config(self):
        d = self.out("novc", files={"static/a.txt": "a", "functions/api.func/index.js": "x"})
        err = self.deploy_fails(d, "novc", "functions/api.func")
        self.assertIn(".vc-config.json", err)

    def test_symlink_outside_output_dir(self):
        outside = os.path.join(self.n.work, "outside.txt")
        with open(outside, "w") as f:
            f.write("secret")
        d = self.out("escape", symlinks={"static/rel-escape.txt": "../../outside.txt",
                                         "static/abs-escape.txt": outside})
        self.deploy_fails(d, "escape", "static/rel-escape.txt", "static/abs-escape.txt")

    def test_func_symlink_flattened_into_file(self):
        d = self.out("flat", files={"static/a.txt": "a",
                                    "functions/real.func/.vc-config.json": VC_CONFIG,
                                    "functions/real.func/index.js": "module.exports = () => {}",
                                    "functions/alias.func": "real.func"})
        self.deploy_fails(d, "flat", "functions/alias.func")

    def test_all_problems_reported_together(self):
        outside = os.path.join(self.n.work, "outside2.txt")
        with open(outside, "w") as f:
            f.write("secret")
        d = self.out("many", config={"version": 2},
                     files={"static/a.txt": "a", "functions/one.func/index.js": "x",
                            "functions/ok.func/.vc-config.json": VC_CONFIG,
                            "functions/ok.func/index.js": "module.exports = () => {}"},
                     symlinks={"static/escape.txt": "../../outside2.txt"})
        err = self.deploy_fails(d, "many", "config.json", "functions/one.func", "static/escape.txt")
        self.assertNotIn("functions/ok.func", err)

    def test_missing_dir(self):
        rc, out, err = self.n.cli("deploy", os.path.join(self.n.work, "does-not-exist"),
                                  "--project", "ghost", check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        self.assertIn("does-not-exist", err)
        self.assert_nothing_created("ghost")

    def test_invalid_project_name(self):
        d = self.out("okdir")
        rc, out, err = self.n.cli("deploy", d, "--project", "Bad_Name!", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("project", error_message(err))
        self.assertEqual(as_list(self.n.cli("ls", json=True), "deployments"), [])

    def test_invalid_project_name_validated_before_upload(self):
        """docs/cli.md: deploy "validates first and lists every problem": a bad project
        name is reported together with the directory's problems, before any upload."""
        content = "validate-first-%s" % os.getpid()
        d = self.out("okdir2", files={"static/a.txt": content})
        rc, out, err = self.n.cli("deploy", d, "--project", "Bad_Name!", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("project", error_message(err))
        self.assertEqual(self.n.missing([sha256(content)]), [sha256(content)],
                         "blobs were uploaded before the project name was checked")
        d = self.out("v2dir", files={"static/a.txt": "a"}, config={"version": 2})
        rc, out, err = self.n.cli("deploy", d, "--project", "Bad_Name!", check=False)
        self.assertEqual(rc, 1, out + err)
        message = error_message(err)
        self.assertIn("config.json", message)
        self.assertIn("project", message.replace("Nothing was uploaded", ""))

    def test_valid_dir_still_deploys(self):
        """Control: the same kind of directory without the problems deploys."""
        d = self.out("good", files={"static/a.txt": "a",
                                    "functions/ok.func/.vc-config.json": VC_CONFIG,
                                    "functions/ok.func/index.js": "module.exports = () => {}"},
                     symlinks={"static/link.txt": "a.txt"})
        self.n.deploy(d, "good")
        self.assertEqual(len(as_list(self.n.cli("ls", json=True), "deployments")), 1)


class UsageErrors(ServerTestCase, unittest.TestCase):
    def test_usage_errors_exit_2(self):
        for args in (["promote"], ["no-such-command"], ["deploy", "--no-such-option"],
                     ["alias", "set", "only-host"]):
            with self.subTest(args=args):
                rc, out, err = self.n.cli(*args, check=False)
                self.assertEqual(rc, 2, "%s: rc %d\n%s%s" % (args, rc, out, err))

    def test_help(self):
        rc, out, err = self.n.cli("--help", check=False)
        self.assertEqual(rc, 0, err)
        for cmd in ("serve", "deploy", "ls", "inspect", "promote", "rollback", "rm",
                    "projects", "alias", "token"):
            self.assertIn(cmd, out)

    def test_api_unreachable(self):
        # a port nothing listens on: reserve one and close it
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        rc, out, err = self.n.cli("ls", api="http://127.0.0.1:%d" % port, check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        self.assertIn(str(port), err)


class ApiAbuse(ServerTestCase, unittest.TestCase):
    CONFIG = b'{"version":3}'
    DATA = b"hello blob\n"

    def setUp(self):
        super().setUp()
        for blob in (self.CONFIG, self.DATA):
            status, body, _ = self.n.put_blob(blob)
            self.assertIn(status, (200, 201), body)

    def entry(self, path, data=None):
        data = self.DATA if data is None else data
        return {"path": path, "hash": sha256(data), "size": len(data), "mode": 0o644}

    def manifest(self, *entries):
        return [self.entry("config.json", self.CONFIG)] + list(entries)

    def create(self, files, project="abuse", target="preview"):
        return self.n.api("POST", "/v1/deployments", {"project": project, "target": target,
                                                      "files": files})

    def assert_nothing_created(self, project="abuse"):
        self.assertEqual(self.n.api_deployments(), [])
        self.assertNotIn(project, [p["name"] for p in self.n.api_projects()])

    def assert_invalid_manifest(self, files, *needles):
        status, body, _ = self.create(files)
        self.assertEqual(status, 400, body)
        code, message = error_of(body)
        self.assertEqual(code, "invalid_manifest", body)
        for needle in needles:
            self.assertIn(needle, message)
        self.assert_nothing_created()
        return message

    def test_control_valid_manifest(self):
        status, body, _ = self.create(self.manifest(self.entry("static/ok.txt")))
        self.assertEqual(status, 201, body)
        self.assertEqual(body["project"], "abuse")
        status, h, data = self.n.get("abuse-%s.localhost" % body["id"], "/ok.txt")
        self.assertEqual((status, data), (200, self.DATA))

    def test_dotdot(self):
        self.assert_invalid_manifest(self.manifest(self.entry("static/../x")), "static/../x")

    def test_dotdot_leading(self):
        self.assert_invalid_manifest(self.manifest(self.entry("../x")), "../x")

    def test_absolute(self):
        self.assert_invalid_manifest(self.manifest(self.entry("/abs")), "/abs")

    def test_nul(self):
        msg = self.assert_invalid_manifest(self.manifest(self.entry("static/nul\u0000byte.txt")),
                                           "static/nul")
        self.assertIn("byte.txt", msg)

    def test_long_component(self):
        path = "static/" + "c" * 300
        self.assert_invalid_manifest(self.manifest(self.entry(path)), path)

    def test_duplicates(self):
        self.assert_invalid_manifest(self.manifest(self.entry("static/dup.txt"),
                                                   self.entry("static/dup.txt")),
                                     "static/dup.txt")

    def test_several_problems_listed(self):
        msg = self.assert_invalid_manifest(self.manifest(self.entry("/abs"),
                                                         self.entry("static/../y")),
                                           "/abs", "static/../y")
        self.assertGreaterEqual(len(msg.strip().splitlines()), 1)

    def test_symlink_escaping(self):
        self.assert_invalid_manifest(
            self.manifest(self.entry("static/a.txt"),
                          {"path": "static/evil", "symlink": "../../etc/passwd", "mode": 0o777}),
            "static/evil")

    def test_invalid_project(self):
        status, body, _ = self.create(self.manifest(self.entry("static/ok.txt")), project="Bad_Name")
        self.assertEqual(status, 400, body)
        self.assertEqual(error_of(body)[0], "invalid_project")
        self.assert_nothing_created("Bad_Name")

    def test_invalid_target(self):
        status, body, _ = self.create(self.manifest(self.entry("static/ok.txt")), target="staging")
        self.assertEqual(status, 400, body)
        self.assert_nothing_created()

    def test_no_config_json(self):
        status, body, _ = self.create([self.entry("static/ok.txt")])
        self.assertEqual(status, 400, body)
        self.assertIn("config.json", error_of(body)[1])
        self.assert_nothing_created()

    def test_config_version_2(self):
        cfg = b'{"version":2}'
        self.assertIn(self.n.put_blob(cfg)[0], (200, 201))
        status, body, _ = self.create([self.entry("config.json", cfg), self.entry("static/ok.txt")])
        self.assertEqual(status, 400, body)
        code, message = error_of(body)
        self.assertEqual(code, "invalid_output", body)
        self.assertIn("config.json", message)
        self.assert_nothing_created()

    def test_not_json(self):
        status, body, _ = self.n.api("POST", "/v1/deployments", b"{not json",
                                     headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400, body)
        error_of(body)
        self.assert_nothing_created()

    def test_missing_blobs(self):
        absent = b"never uploaded\n"
        status, body, _ = self.create(self.manifest(self.entry("static/ok.txt"),
                                                    self.entry("static/absent.txt", absent)))
        self.assertEqual(status, 409, body)
        self.assertEqual(error_of(body)[0], "missing_blobs")
        missing = body.get("missing", body["error"].get("missing"))
        self.assertEqual(missing, [sha256(absent)])
        self.assert_nothing_created()

    # ------------------------------------------------------------------ blobs
    def test_hash_mismatch(self):
        data = b"the real bytes"
        claimed = sha256(b"other bytes")
        status, body, _ = self.n.put_blob(data, name=claimed)
        self.assertEqual(status, 400, body)
        self.assertEqual(error_of(body)[0], "hash_mismatch")
        self.assertEqual(self.n.missing([claimed, sha256(data)]), [claimed, sha256(data)])

    def test_put_twice(self):
        data = b"put me twice"
        status, body, _ = self.n.put_blob(data)
        self.assertEqual(status, 201, body)
        self.assertEqual((body["hash"], body["size"]), (sha256(data), len(data)))
        status, body, _ = self.n.put_blob(data)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.n.missing([sha256(data)]), [])

    def test_missing_dedups_and_keeps_order(self):
        a, b = sha256(b"x1"), sha256(b"x2")
        self.assertEqual(self.n.missing([b, sha256(self.DATA), a, b]), [b, a])

    def test_non_hex_name(self):
        for name in ("z" * 64, "abc", sha256(b"q")[:-1] + "g", "..%2F..%2Fetc%2Fpasswd"):
            with self.subTest(name=name):
                status, body, _ = self.n.put_blob(b"q", name=name)
                self.assertEqual(status, 400, body)

    def test_blob_too_large(self):
        """The blob limit is not documented; announce 64 GiB (far over any sensible limit)
        without sending it: the server must refuse at once instead of reading."""
        declared = 64 << 30
        name = sha256(b"huge")
        sock = socket.create_connection(("127.0.0.1", self.n.api_port), timeout=20)
        try:
            sock.sendall(("PUT /v1/blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Authorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %d\r\n\r\n" % (name, self.n.token, declared)).encode())
            sock.sendall(b"\0" * 65536)
            data = b""
            deadline = time.monotonic() + 20
            while b"\r\n\r\n" not in data and time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
            # read the rest of a short error body if any
            try:
                sock.settimeout(2)
                while len(data) < 65536:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ConnectionResetError):
                pass
        finally:
            sock.close()
        status, headers, body = parse_raw_response(data)
        self.assertEqual(status, 413, data[:500])
        self.assertIn(b"blob_too_large", body)
        self.assertEqual(self.n.missing([name]), [name])

    def test_put_without_content_length(self):
        name = sha256(b"chunked")
        sock = socket.create_connection(("127.0.0.1", self.n.api_port), timeout=20)
        try:
            sock.sendall(("PUT /v1/blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n7\r\nchunked\r\n0\r\n\r\n"
                          % (name, self.n.token)).encode())
            data = b""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        status, _, _ = parse_raw_response(data)
        self.assertIn(status, (400, 411), data[:300])


class BlobLimit(ServerTestCase, unittest.TestCase):
    """`nimbus serve --max-file-mb N` (see `nimbus serve --help`) caps one blob."""
    server_args = ("--max-file-mb", "1")
    LIMIT = 1 << 20

    def test_at_limit_accepted(self):
        data = os.urandom(self.LIMIT)
        status, body, _ = self.n.put_blob(data)
        self.assertEqual(status, 201, body)
        self.assertEqual(self.n.missing([sha256(data)]), [])

    def test_over_limit_refused(self):
        data = os.urandom(self.LIMIT + 1)
        status, body, _ = self.n.put_blob(data)
        self.assertEqual(status, 413, body)
        code, message = error_of(body)
        self.assertEqual(code, "blob_too_large")
        self.assertIn(str(self.LIMIT), message)
        self.assertEqual(self.n.missing([sha256(data)]), [sha256(data)])

    def test_deploy_with_too_large_file(self):
        d = make_output(os.path.join(self.n.work, "big"),
                        {"static/small.txt": "small", "static/huge.bin": os.urandom(2 * self.LIMIT)})
        rc, out, err = self.n.cli("deploy", d, "--project", "big", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("static/huge.bin", error_message(err))
        self.assertEqual(self.n.api_deployments(), [])


if __name__ == "__main__":
    unittest.main()
