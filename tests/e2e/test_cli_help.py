"""Every command and subcommand of `nimbus` explains itself: `--help` exits 0 and describes
each option; a wrong invocation exits 2 and says what was wrong."""
import os
import subprocess
import tempfile
import unittest

from nimbus_harness import clean_env

BIN = os.environ.get("NIMBUS_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "nimbus"))

COMMANDS = [
    [], ["serve"], ["deploy"], ["ls"], ["inspect"], ["promote"], ["rollback"], ["rm"],
    ["projects"], ["alias"], ["alias", "set"], ["alias", "ls"], ["alias", "rm"],
    ["env"], ["env", "add"], ["env", "ls"], ["env", "rm"],
    ["upstream-tls"], ["upstream-tls", "set"], ["upstream-tls", "show"], ["upstream-tls", "rm"],
    ["token"], ["token", "create"], ["token", "ls"], ["token", "revoke"],
]


_HOME = tempfile.TemporaryDirectory(prefix="nimbus-help-")


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30,
                       env=clean_env(_HOME.name))
    return p.returncode, p.stdout, p.stderr


class Help(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        _HOME.cleanup()

    def test_every_command_has_help(self):
        for cmd in COMMANDS:
            with self.subTest(cmd=" ".join(cmd) or "(top level)"):
                rc, out, err = run(*cmd, "--help")
                self.assertEqual(rc, 0, err)
                self.assertIn("Usage:", out)
                # Every option line carries a description after its name.
                for line in out.splitlines():
                    stripped = line.strip()
                    if stripped.startswith("--") and "  " not in stripped and "=" not in stripped:
                        self.fail("option without a description in `%s --help`: %r" % (" ".join(cmd), line))

    def test_top_level_help_lists_every_command(self):
        _, out, _ = run("--help")
        for name in ["serve", "deploy", "ls", "inspect", "promote", "rollback", "rm", "projects",
                     "alias", "env", "upstream-tls", "token"]:
            self.assertRegex(out, r"\n  %s\s" % name)

    def test_wrong_usage_exits_2_with_a_reason(self):
        rc, out, err = run("deploy", "--no-such-flag")
        self.assertEqual(rc, 2)
        self.assertIn("--no-such-flag", out + err)
        rc, out, err = run("promote")
        self.assertEqual(rc, 2)
        self.assertIn("deployment", (out + err).lower())


if __name__ == "__main__":
    unittest.main()
