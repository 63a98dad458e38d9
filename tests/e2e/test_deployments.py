"""Deployment lifecycle through the CLI: deploy, ls, inspect, promote, rollback, rm,
projects, aliases, upload de-duplication, restart persistence; the router follows every
change without a restart."""
import http.client
import os
import re
import unittest

from nimbus_harness import (ServerTestCase, as_list, deployment_of, error_message, make_output,
                            preview_host, prod_host, wait_for)

# The router refreshes its routing snapshot when the store changes; give it a short,
# bounded time to see a change made through the API.
ROUTER_REFRESH = 5.0


def site(version, extra=None):
    files = {"static/index.html": "<h1>site %s</h1>" % version,
             "static/version.txt": "version %s\n" % version}
    files.update(extra or {})
    return files


def without_ports(value):
    """`value` with ':<port>' removed from every URL string."""
    if isinstance(value, dict):
        return {k: without_ports(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_ports(v) for v in value]
    if isinstance(value, str) and value.startswith("http"):
        return re.sub(r"^(https?://[^/:]+):\d+", r"\1", value)
    return value


class Deployments(ServerTestCase, unittest.TestCase):
    def build(self, name, version, extra=None, config=None):
        return make_output(os.path.join(self.n.work, name), site(version, extra), config)

    def body(self, host, path="/version.txt"):
        status, _, body = self.n.get(host, path)
        return status, body

    def assert_serves(self, host, version, path="/version.txt"):
        want = (200, ("version %s\n" % version).encode())
        got = wait_for(lambda: self.body(host, path) == want or None, timeout=ROUTER_REFRESH)
        self.assertTrue(got, "%s%s: expected %r, got %r" % (host, path, want, self.body(host, path)))

    def assert_404(self, host, path="/version.txt"):
        got = wait_for(lambda: self.body(host, path)[0] == 404 or None, timeout=ROUTER_REFRESH)
        self.assertTrue(got, "%s%s: expected 404, got %r" % (host, path, self.body(host, path)))

    def ls(self, *args):
        return as_list(self.n.cli("ls", *args, json=True), "deployments")

    def inspect(self, dep_id):
        info = self.n.cli("inspect", dep_id, json=True)
        return info.get("deployment", info) if "id" not in info else info

    def ids(self, *args):
        return [d["id"] for d in self.ls(*args)]

    # ------------------------------------------------------------------ deploy, ls, inspect
    def test_two_previews_ls_and_inspect(self):
        d1 = self.n.deploy(self.build("one", 1), "app")
        d2 = self.n.deploy(self.build("two", 2), "app")
        self.assertNotEqual(d1["id"], d2["id"])
        for d in (d1, d2):
            self.assertRegex(d["id"], r"^[a-z0-9]{12}$")
            self.assertEqual(d.get("project"), "app")
            self.assertEqual(d.get("target"), "preview")
            self.assertIs(d.get("isProduction"), False)
            self.assertIn(preview_host("app", d["id"]), d.get("url", ""))
        self.assertEqual(self.ids(), [d2["id"], d1["id"]])
        self.assertEqual(self.ids("app"), [d2["id"], d1["id"]])
        rc, listed, err = self.n.cli("ls", "other", json=True, check=False)
        if rc == 0:
            self.assertEqual(as_list(listed, "deployments"), [])
        else:  # an unknown project may be an error, but then a clear one
            self.assertEqual(rc, 1, err)
            self.assertIn("other", error_message(err))

        info = self.inspect(d1["id"])
        self.assertEqual(info["id"], d1["id"])
        self.assertEqual(info["project"], "app")
        self.assertEqual(info["target"], "preview")
        self.assertIs(info["isProduction"], False)
        self.assertEqual(info["url"], d1["url"])
        for field in ("createdAt", "files", "bytes", "productionUrl"):
            self.assertIn(field, info)

        rc, out, err = self.n.cli("inspect", d1["url"])
        self.assertEqual(rc, 0, err)
        self.assertIn(d1["id"], out)
        self.assertNotIn(d2["id"], out)

        self.assert_serves(preview_host("app", d1["id"]), 1)
        self.assert_serves(preview_host("app", d2["id"]), 2)
        # no production deployment yet
        self.assert_404(prod_host("app"))

    def test_inspect_unknown(self):
        rc, out, err = self.n.cli("inspect", "zzzzzzzzzzzz", check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        status, body, _ = self.n.api("GET", "/v1/deployments/zzzzzzzzzzzz")
        self.assertEqual(status, 404)
        self.assertEqual(body["error"]["code"], "not_found")

    def test_deploy_prod_prints_urls(self):
        rc, out, err = self.n.cli("deploy", self.build("one", 1), "--project", "site", "--prod")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"site-[a-z0-9]{12}\.localhost")
        self.assertRegex(out, r"(?<![-\w])site\.localhost")
        self.assert_serves(prod_host("site"), 1)
        d = self.ls("site")[0]
        self.assertIs(d["isProduction"], True)
        self.assertEqual(d["target"], "production")
        self.assertIn(prod_host("site"), d.get("productionUrl") or "")

    def test_deploy_preview_prints_preview_url_only(self):
        rc, out, err = self.n.cli("deploy", self.build("one", 1), "--project", "site")
        self.assertEqual(rc, 0, err)
        dep_id = self.ids("site")[0]
        self.assertIn(preview_host("site", dep_id), out)

    def test_project_name_defaults_to_folder_name(self):
        d = deployment_of(self.n.cli("deploy", self.build("myfolder", 1), json=True))
        self.assertEqual(d["project"], "myfolder")
        self.assertEqual(self.ids("myfolder"), [d["id"]])

    def test_deploy_defaults_to_current_dir(self):
        out = self.build("cwdsite", 3)
        rc, stdout, err = self.n.cli("deploy", json=True, check=False, cwd=out)
        self.assertEqual(rc, 0, err)
        d = deployment_of(stdout)
        self.assertEqual(d["project"], "cwdsite")
        self.assert_serves(preview_host("cwdsite", d["id"]), 3)

    def test_deploy_vercel_output_folder(self):
        proj = os.path.join(self.n.work, "proj")
        make_output(os.path.join(proj, ".vercel", "output"), site(7))
        d = self.n.deploy(proj, "nested")
        self.assert_serves(preview_host("nested", d["id"]), 7)

    # ------------------------------------------------------------------ promote / rollback
    def test_promote_and_rollback(self):
        d1 = self.n.deploy(self.build("one", 1), "app")
        d2 = self.n.deploy(self.build("two", 2), "app")
        host = prod_host("app")

        rc, out, err = self.n.cli("promote", d1["id"])
        self.assertEqual(rc, 0, err)
        self.assert_serves(host, 1)
        self.assertIs(self.inspect(d1["id"])["isProduction"], True)

        self.n.cli("promote", d2["id"])
        self.assert_serves(host, 2)
        info1 = self.inspect(d1["id"])
        info2 = self.inspect(d2["id"])
        self.assertIs(info1["isProduction"], False)
        self.assertIs(info2["isProduction"], True)

        rc, out, err = self.n.cli("rollback", "app")
        self.assertEqual(rc, 0, err)
        self.assertIn(d1["id"], out + err)
        self.assert_serves(host, 1)
        self.assertIs(self.inspect(d1["id"])["isProduction"], True)

        rc, out, err = self.n.cli("rollback", "app", check=False)
        self.assertEqual(rc, 1, "second rollback should fail: " + out + err)
        error_message(err)
        self.assertRegex(err.lower(), r"roll ?back|previous|nothing")
        self.assert_serves(host, 1)

        status, body, _ = self.n.api("POST", "/v1/projects/app/rollback")
        self.assertEqual(status, 409)
        self.assertEqual(body["error"]["code"], "nothing_to_roll_back")

    def test_rollback_without_production(self):
        self.n.deploy(self.build("one", 1), "app")
        rc, out, err = self.n.cli("rollback", "app", check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)

    def test_promote_unknown(self):
        rc, out, err = self.n.cli("promote", "zzzzzzzzzzzz", check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)

    def test_prod_deploys_then_rollback(self):
        self.n.deploy(self.build("one", 1), "app", prod=True)
        self.n.deploy(self.build("two", 2), "app", prod=True)
        self.assert_serves(prod_host("app"), 2)
        self.n.cli("rollback", "app")
        self.assert_serves(prod_host("app"), 1)

    # ------------------------------------------------------------------ rm
    def test_rm(self):
        d1 = self.n.deploy(self.build("one", 1), "app", prod=True)
        d2 = self.n.deploy(self.build("two", 2), "app")
        self.assert_serves(preview_host("app", d2["id"]), 2)

        rc, out, err = self.n.cli("rm", d1["id"], check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        self.assertIn("production", err.lower())
        self.assertIn(d1["id"], self.ids("app"))
        self.assert_serves(prod_host("app"), 1)
        status, body, _ = self.n.api("DELETE", "/v1/deployments/" + d1["id"])
        self.assertEqual(status, 409)
        self.assertEqual(body["error"]["code"], "is_production")

        rc, out, err = self.n.cli("rm", d2["id"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.ids("app"), [d1["id"]])
        self.assert_404(preview_host("app", d2["id"]))
        rc, _, err = self.n.cli("inspect", d2["id"], check=False)
        self.assertEqual(rc, 1, err)
        self.assert_serves(prod_host("app"), 1)

        rc, out, err = self.n.cli("rm", d2["id"], check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)

    def test_rm_removes_aliases_to_it(self):
        d1 = self.n.deploy(self.build("one", 1), "app", prod=True)
        d2 = self.n.deploy(self.build("two", 2), "app")
        self.n.cli("alias", "set", "www.example.test", d2["id"])
        self.assert_serves("www.example.test", 2)
        self.n.cli("rm", d2["id"])
        self.assert_404("www.example.test")
        hosts = [a["host"] for a in as_list(self.n.cli("alias", "ls", json=True), "aliases")]
        self.assertNotIn("www.example.test", hosts)

    # ------------------------------------------------------------------ projects
    def test_projects(self):
        d1 = self.n.deploy(self.build("one", 1), "alpha", prod=True)
        self.n.deploy(self.build("two", 2), "beta")
        projects = {p["name"]: p for p in as_list(self.n.cli("projects", json=True), "projects")}
        self.assertEqual(set(projects), {"alpha", "beta"})
        self.assertEqual(projects["alpha"]["production"], d1["id"])
        self.assertIsNone(projects["beta"]["production"])
        self.assertIn(prod_host("alpha"), projects["alpha"]["url"])
        for p in projects.values():
            self.assertTrue(p["id"])
            self.assertIn("createdAt", p)
        rc, out, err = self.n.cli("projects")
        self.assertEqual(rc, 0, err)
        self.assertIn("alpha", out)
        self.assertIn("beta", out)
        api = {p["name"]: p for p in self.n.api_projects()}
        self.assertEqual(api["alpha"]["production"], d1["id"])

    # ------------------------------------------------------------------ upload de-dup
    def test_redeploy_identical_uploads_nothing(self):
        big = {"static/data.bin": os.urandom(200_000)}
        out_dir = self.build("one", 1, big)
        first = self.n.deploy(out_dir, "app")
        self.assertIn("uploadedBytes", first)
        self.assertGreaterEqual(first["uploadedBytes"], 200_000)

        second = self.n.deploy(out_dir, "app")
        self.assertEqual(second["uploadedBytes"], 0)
        self.assertNotEqual(second["id"], first["id"])
        self.assertEqual(len(self.ids("app")), 2)

        # a copy elsewhere with identical content also uploads nothing
        copy = self.build("copy", 1, big)
        with open(os.path.join(out_dir, "static", "data.bin"), "rb") as f:
            data = f.read()
        with open(os.path.join(copy, "static", "data.bin"), "wb") as f:
            f.write(data)
        rc, out, err = self.n.cli("deploy", copy, "--project", "app")
        self.assertEqual(rc, 0, err)
        text = (out + err).lower()
        self.assertRegex(text, r"(\b0 ?(b|bytes)\b|nothing (new )?to upload|no (new )?(files|blobs|bytes)|"
                               r"uploaded 0\b|\b0 (new )?(files|blobs))", out + err)

    def test_changed_file_uploads_only_that_file(self):
        big = os.urandom(100_000)
        out1 = self.build("one", 1, {"static/data.bin": big})
        self.n.deploy(out1, "app")
        out2 = self.build("two", 1, {"static/data.bin": big, "static/new.txt": "n" * 1000})
        d2 = self.n.deploy(out2, "app")
        # only the new file's bytes (the 100 kB file is already there)
        self.assertGreaterEqual(d2["uploadedBytes"], 1000)
        self.assertLess(d2["uploadedBytes"], 100_000)
        status, _, body = self.n.get(preview_host("app", d2["id"]), "/data.bin")
        self.assertEqual((status, body), (200, big))

    # ------------------------------------------------------------------ aliases
    def test_alias_set_ls_rm(self):
        d1 = self.n.deploy(self.build("one", 1), "app")
        d2 = self.n.deploy(self.build("two", 2), "app")
        host = "www.custom.test"
        self.assert_404(host)

        rc, out, err = self.n.cli("alias", "set", host, d1["id"])
        self.assertEqual(rc, 0, err)
        self.assert_serves(host, 1)
        aliases = as_list(self.n.cli("alias", "ls", json=True), "aliases")
        self.assertEqual([(a["host"], a["deployment"]) for a in aliases], [(host, d1["id"])])
        self.assertIn("updatedAt", aliases[0])
        rc, out, err = self.n.cli("alias", "ls")
        self.assertEqual(rc, 0, err)
        self.assertIn(host, out)

        # re-pointing an alias takes effect without a restart
        self.n.cli("alias", "set", host, d2["id"])
        self.assert_serves(host, 2)
        aliases = as_list(self.n.cli("alias", "ls", json=True), "aliases")
        self.assertEqual([(a["host"], a["deployment"]) for a in aliases], [(host, d2["id"])])
        # the Host header is matched case-insensitively and with a port
        self.assert_serves("WWW.Custom.Test:%d" % self.n.router_port, 2)

        rc, out, err = self.n.cli("alias", "rm", host)
        self.assertEqual(rc, 0, err)
        self.assert_404(host)
        self.assertEqual(as_list(self.n.cli("alias", "ls", json=True), "aliases"), [])

        rc, out, err = self.n.cli("alias", "rm", host, check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)

    def test_alias_to_unknown_deployment(self):
        rc, out, err = self.n.cli("alias", "set", "x.custom.test", "zzzzzzzzzzzz", check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        self.assertEqual(as_list(self.n.cli("alias", "ls", json=True), "aliases"), [])

    def test_resolve(self):
        d1 = self.n.deploy(self.build("one", 1), "app", prod=True)
        status, body, _ = self.n.api("GET", "/v1/resolve?host=app.localhost")
        self.assertEqual(status, 200)
        self.assertEqual(body["id"], d1["id"])
        status, body, _ = self.n.api("GET", "/v1/resolve?host=" + preview_host("app", d1["id"]))
        self.assertEqual(status, 200)
        self.assertEqual(body["id"], d1["id"])
        status, body, _ = self.n.api("GET", "/v1/resolve?host=nothing.localhost")
        self.assertEqual(status, 404)

    # ------------------------------------------------------------------ persistence
    def test_request_under_way_finishes_on_its_deployment(self):
        # A download that started before a promote keeps the old deployment's bytes to the
        # end; the next request gets the new production.
        size = 8 * 1024 * 1024
        old = bytes((i * 7) % 251 for i in range(256)) * (size // 256)
        new = bytes((i * 13) % 251 for i in range(256)) * (size // 256)
        a = self.n.deploy(self.build("a", 1, {"static/big.bin": old}), "inflight", prod=True)
        b = self.n.deploy(self.build("b", 2, {"static/big.bin": new}), "inflight")
        self.assert_serves(prod_host("inflight"), 1)
        conn = http.client.HTTPConnection("127.0.0.1", self.n.router_port, timeout=30)
        try:
            conn.request("GET", "/big.bin", headers={"Host": prod_host("inflight")})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            first = resp.read(64 * 1024)  # the rest waits in socket buffers and the file
            self.n.cli("promote", b["id"])
            self.assert_serves(prod_host("inflight"), 2)
            rest = resp.read()
        finally:
            conn.close()
        self.assertEqual(len(first) + len(rest), size)
        self.assertTrue(first + rest == old, "the download switched deployments mid-way")
        status, _, body = self.n.get(prod_host("inflight"), "/big.bin")
        self.assertEqual(status, 200)
        self.assertTrue(body == new)
        self.assertNotEqual(a["id"], b["id"])

    def test_restart_persistence(self):
        d1 = self.n.deploy(self.build("one", 1), "app", prod=True)
        d2 = self.n.deploy(self.build("two", 2), "app")
        self.n.cli("alias", "set", "keep.custom.test", d2["id"])
        before_ls = self.ls()
        before_projects = as_list(self.n.cli("projects", json=True), "projects")
        before_aliases = as_list(self.n.cli("alias", "ls", json=True), "aliases")

        self.n.stop()
        self.n.start()

        # URLs carry the router port, which changes on restart
        self.assertEqual(without_ports(self.ls()), without_ports(before_ls))
        self.assertEqual(without_ports(as_list(self.n.cli("projects", json=True), "projects")),
                         without_ports(before_projects))
        self.assertEqual(without_ports(as_list(self.n.cli("alias", "ls", json=True), "aliases")),
                         without_ports(before_aliases))
        self.assert_serves(prod_host("app"), 1)
        self.assert_serves(preview_host("app", d1["id"]), 1)
        self.assert_serves(preview_host("app", d2["id"]), 2)
        self.assert_serves("keep.custom.test", 2)

        # history survives too: promote d2 then roll back to d1
        self.n.cli("promote", d2["id"])
        self.assert_serves(prod_host("app"), 2)
        self.n.cli("rollback", "app")
        self.assert_serves(prod_host("app"), 1)


class CustomDomain(ServerTestCase, unittest.TestCase):
    server_args = ("--domain", "nimbus.test")

    def test_domain(self):
        self.assertEqual(self.n.ready_info.get("domain"), "nimbus.test")
        out = make_output(os.path.join(self.n.work, "site"), site(1))
        d = self.n.deploy(out, "app", prod=True)
        self.assertIn("app-%s.nimbus.test" % d["id"], d["url"])
        self.assertIn("app.nimbus.test", d["productionUrl"])
        for host in ("app.nimbus.test", "app-%s.nimbus.test" % d["id"]):
            status, _, body = self.n.get(host, "/version.txt")
            self.assertEqual((status, body), (200, b"version 1\n"), host)
        status, _, _ = self.n.get("app.localhost", "/version.txt")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()
