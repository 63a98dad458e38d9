"""Environment variables: `nimbus env add|ls|rm`, per environment, encrypted at rest, and
snapshotted into each deployment when it is created."""
import os
import stat
import unittest

from nimbus_harness import ServerTestCase, error_message, make_output


class EnvVars(ServerTestCase, unittest.TestCase):
    def site(self, name):
        return make_output(os.path.join(self.n.work, name), {"static/index.html": "hi"})

    def env_list(self, *extra):
        return self.n.cli("env", "ls", "--project", "shop", *extra, json=True)["env"]

    def test_add_list_remove_and_snapshot(self):
        self.n.cli("env", "add", "API_URL", "https://api.example.com", "--project", "shop")
        self.n.cli("env", "add", "DEBUG", "1", "--project", "shop", "--environment", "preview")
        # A value from standard input stays out of the shell history.
        self.n.cli("env", "add", "DB_PASSWORD", "--project", "shop", "--environment",
                   "production", input="s3cr3t-value\n")
        listed = {(v["key"], v["environment"]) for v in self.env_list()}
        self.assertEqual(listed, {("API_URL", "production"), ("API_URL", "preview"),
                                  ("DEBUG", "preview"), ("DB_PASSWORD", "production")})
        self.assertTrue(all("value" not in v for v in self.env_list()))
        values = {(v["key"], v["environment"]): v["value"] for v in self.env_list("--values")}
        self.assertEqual(values[("DB_PASSWORD", "production")], "s3cr3t-value")

        prod = self.n.cli("deploy", self.site("a"), "--project", "shop", "--prod", json=True)
        self.assertEqual(sorted(prod["env"]), ["API_URL", "DB_PASSWORD"])
        preview = self.n.cli("deploy", self.site("b"), "--project", "shop", json=True)
        self.assertEqual(sorted(preview["env"]), ["API_URL", "DEBUG"])

        self.n.cli("env", "rm", "DEBUG", "--project", "shop")
        self.assertNotIn("DEBUG", {v["key"] for v in self.env_list()})
        rc, _, err = self.n.cli("env", "rm", "DEBUG", "--project", "shop", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("DEBUG", error_message(err))

    def test_values_are_encrypted_at_rest(self):
        secret = "plaintext-should-never-hit-the-disk-42"
        self.n.cli("env", "add", "TOKEN", secret, "--project", "shop")
        self.n.cli("deploy", self.site("c"), "--project", "shop", "--prod", json=True)
        key = os.path.join(self.n.data, "secret.key")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        for name in os.listdir(self.n.data):
            path = os.path.join(self.n.data, name)
            if os.path.isfile(path) and name.startswith("nimbus.db"):
                with open(path, "rb") as f:
                    self.assertNotIn(secret.encode(), f.read(), name)

    def test_bad_names_and_environments_are_refused(self):
        rc, _, err = self.n.cli("env", "add", "1BAD", "x", "--project", "shop", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("not a valid variable name", error_message(err))
        rc, _, _ = self.n.cli("env", "add", "OK", "x", "--project", "shop", "--environment",
                              "staging", check=False)
        self.assertEqual(rc, 2)

    def test_variables_survive_restart(self):
        self.n.cli("env", "add", "KEEP", "me", "--project", "shop")
        self.n.restart()
        values = {v["key"]: v["value"] for v in self.env_list("--values")}
        self.assertEqual(values.get("KEEP"), "me")


if __name__ == "__main__":
    unittest.main()
