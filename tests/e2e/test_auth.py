"""API authentication: the admin token file, missing and wrong tokens, API tokens created,
listed and revoked through the CLI, and how the CLI picks its token."""
import os
import stat
import unittest

from nimbus_harness import ServerTestCase, as_list, error_message, error_of, sha256


class Auth(ServerTestCase, unittest.TestCase):
    def test_health_needs_no_token(self):
        status, body, _ = self.n.api("GET", "/v1/health", token=None)
        self.assertEqual(status, 200)
        self.assertEqual(body, {"ok": True})

    def test_no_token(self):
        for method, path in (("GET", "/v1/deployments"), ("GET", "/v1/projects"),
                             ("POST", "/v1/blobs/missing"), ("GET", "/v1/tokens")):
            with self.subTest(path=path):
                status, body, _ = self.n.api(method, path, token=None,
                                             body={"hashes": []} if method == "POST" else None)
                self.assertEqual(status, 401, body)
                code, message = error_of(body)
                self.assertTrue(code)
                self.assertTrue("admin-token" in message or "NIMBUS_TOKEN" in message, message)

    def test_no_token_message_says_where_the_token_is(self):
        status, body, _ = self.n.api("GET", "/v1/deployments", token=None)
        self.assertEqual(status, 401)
        self.assertIn(os.path.join(self.n.data, "admin-token"), error_of(body)[1])

    def test_wrong_token(self):
        for tok in ("wrong", self.n.token + "x", self.n.token[:-1]):
            with self.subTest(token=tok):
                status, body, _ = self.n.api("GET", "/v1/deployments", token=tok)
                self.assertEqual(status, 401, body)
                error_of(body)
        status, body, _ = self.n.api("GET", "/v1/deployments",
                                     headers={"Authorization": "Basic " + self.n.token}, token=None)
        self.assertEqual(status, 401, body)

    def test_blob_upload_needs_token(self):
        status, body, _ = self.n.put_blob(b"sneaky", token=None)
        self.assertEqual(status, 401, body)
        self.assertEqual(self.n.missing([sha256(b"sneaky")]), [sha256(b"sneaky")])

    def test_admin_token_works(self):
        status, body, _ = self.n.api("GET", "/v1/deployments")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"deployments": []})

    def test_token_create_ls_revoke(self):
        created = self.n.cli("token", "create", "--name", "ci", json=True)
        self.assertEqual(created["name"], "ci")
        secret, tok_id = created["token"], created["id"]
        self.assertTrue(secret)
        self.assertNotEqual(secret, self.n.token)

        status, body, _ = self.n.api("GET", "/v1/deployments", token=secret)
        self.assertEqual(status, 200, body)
        # the CLI works with it too
        rc, out, err = self.n.cli("ls", token=secret)
        self.assertEqual(rc, 0, err)

        tokens = as_list(self.n.cli("token", "ls", json=True), "tokens")
        mine = [t for t in tokens if t["id"] == tok_id]
        self.assertEqual(len(mine), 1, tokens)
        self.assertEqual(mine[0]["name"], "ci")
        self.assertIn("createdAt", mine[0])
        self.assertIn("lastUsedAt", mine[0])
        self.assertIsNotNone(mine[0]["lastUsedAt"])  # it was used above
        for t in tokens:
            self.assertNotIn(secret, str(t.values()))
        rc, out, err = self.n.cli("token", "ls")
        self.assertEqual(rc, 0, err)
        self.assertIn(tok_id, out)
        self.assertNotIn(secret, out)

        rc, out, err = self.n.cli("token", "revoke", tok_id)
        self.assertEqual(rc, 0, err)
        status, body, _ = self.n.api("GET", "/v1/deployments", token=secret)
        self.assertEqual(status, 401, body)
        tokens = as_list(self.n.cli("token", "ls", json=True), "tokens")
        self.assertNotIn(tok_id, [t["id"] for t in tokens])
        # the admin token is unaffected
        self.assertEqual(self.n.api("GET", "/v1/deployments")[0], 200)

        rc, out, err = self.n.cli("token", "revoke", tok_id, check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        status, body, _ = self.n.api("DELETE", "/v1/tokens/" + tok_id)
        self.assertEqual(status, 404, body)

    def test_token_create_human_prints_secret(self):
        rc, out, err = self.n.cli("token", "create", "--name", "human")
        self.assertEqual(rc, 0, err)
        secrets = [w for w in out.split() if len(w) >= 20]
        working = [s for s in secrets if self.n.api("GET", "/v1/projects", token=s.strip("'\"`"))[0] == 200]
        self.assertTrue(working, "no working token in output:\n" + out)

    def test_token_created_via_api(self):
        status, body, _ = self.n.api("POST", "/v1/tokens", {"name": "api-made"})
        self.assertEqual(status, 201, body)
        self.assertTrue({"id", "name", "token"} <= set(body), body)
        self.assertEqual(body["name"], "api-made")
        self.assertEqual(self.n.api("GET", "/v1/tokens", token=body["token"])[0], 200)

    def test_admin_token_file(self):
        path = os.path.join(self.n.data, "admin-token")
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(path) as f:
            before = f.read()
        self.assertTrue(before.strip())
        self.n.restart()
        st2 = os.stat(path)
        with open(path) as f:
            after = f.read()
        self.assertEqual(after, before)
        self.assertEqual(st2.st_mtime_ns, st.st_mtime_ns, "admin-token was rewritten on restart")
        self.assertEqual(stat.S_IMODE(st2.st_mode), 0o600)
        self.assertEqual(self.n.api("GET", "/v1/deployments", token=before.strip())[0], 200)

    def test_cli_reads_token_file_from_data_dir(self):
        rc, out, err = self.n.cli("ls", "--data", self.n.data, token=None)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.n.cli("ls", token=None, env_extra={"NIMBUS_DATA": self.n.data})
        self.assertEqual(rc, 0, err)

    def test_cli_without_any_token(self):
        # HOME/XDG point into the test's temp dir, which has no admin-token
        rc, out, err = self.n.cli("ls", token=None, check=False)
        self.assertEqual(rc, 1, out + err)
        error_message(err)
        self.assertTrue("admin-token" in err or "NIMBUS_TOKEN" in err or "--token" in err, err)

    def test_env_token_overrides_file(self):
        rc, out, err = self.n.cli("ls", "--data", self.n.data, token="not-a-valid-token", check=False)
        self.assertEqual(rc, 1, "NIMBUS_TOKEN should win over the admin-token file:\n" + out + err)
        error_message(err)
        created = self.n.cli("token", "create", "--name", "env", json=True)
        rc, out, err = self.n.cli("ls", "--data", self.n.data, token=created["token"])
        self.assertEqual(rc, 0, err)

    def test_flag_token_overrides_env(self):
        rc, out, err = self.n.cli("ls", "--token", self.n.token, token="not-a-valid-token")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.n.cli("ls", "--token", "not-a-valid-token", check=False)
        self.assertEqual(rc, 1, out + err)

    def test_global_options_after_command(self):
        rc, out, err = self.n.cli("ls", "--api", self.n.api_url, "--token", self.n.token,
                                  api=None, token=None)
        self.assertEqual(rc, 0, err)

    def test_api_from_env(self):
        rc, out, err = self.n.cli("ls", api=None, env_extra={"NIMBUS_API": self.n.api_url})
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
