"""Deploys every shared fixture (`<fixture>/output`) with --prod and checks the rows of
its EXPECT.md that are served by a static file. Function and route rows are checked by
test_routing.py (the count is printed here). Header expectations on static rows that come
from a `config.json` route (not from the static file itself) are a separate test per
fixture."""
import os
import re
import sys
import unittest

from nimbus_harness import FIXTURES, Nimbus, fixture_output, prod_host


def parse_expect(path):
    """Rows of the request tables of an EXPECT.md as dicts keyed by lower-case column
    names, cell text stripped of backticks and surrounding spaces."""
    rows, columns = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("|"):
                columns = None
                continue
            cells = [c.strip().replace("`", "").strip() for c in line.strip("|").split("|")]
            if columns is None:
                columns = [c.lower() for c in cells]
                continue
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if "method" not in columns or "path" not in columns:
                continue
            row = dict(zip(columns, cells))
            rows.append(row)
    return rows


def parse_header_cell(cell):
    """`name: value` pairs of a "response headers" cell (several separated by <br>)."""
    out = []
    for part in re.split(r"<br\s*/?>", cell or ""):
        part = part.strip()
        if ":" in part:
            name, value = part.split(":", 1)
            out.append((name.strip().lower(), value.strip()))
    return out


def route_header_names(config, path):
    """Lower-case header names that some route of config.json with a `headers` object
    sets for `path` (src matched with Python's re; JS named groups converted)."""
    names = set()
    for route in config.get("routes") or []:
        if not isinstance(route, dict) or not isinstance(route.get("headers"), dict):
            continue
        src = route.get("src", "")
        pattern = src.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
        try:
            rx = re.compile("^(?:%s)$" % pattern.lstrip("^").rstrip("$"), re.IGNORECASE)
        except re.error:
            continue
        if rx.match(path) or rx.match(path[1:]):
            names.update(k.lower() for k in route["headers"])
    return names


def load_fixtures():
    """[(name, static rows, skipped count, route-header checks)] for every fixture."""
    import json
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
        rows = parse_expect(expect)
        static, skipped, route_checks = [], 0, []
        for row in rows:
            if not row.get("served by", "").startswith("static"):
                skipped += 1
                continue
            headers = parse_header_cell(row.get("response headers", ""))
            by_route = route_header_names(config, row["path"].split("?")[0])
            row = dict(row)
            row["_headers"] = [(k, v) for k, v in headers if k not in by_route]
            static.append(row)
            route_checks += [(row["path"], k, v) for k, v in headers if k in by_route]
        found.append((name, static, skipped, route_checks))
    return found


FIXTURE_TABLE = load_fixtures()


class StaticFixtures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus()
        cls.deployed = {}

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    def deploy_fixture(self, name):
        if name not in self.deployed:
            out = fixture_output(name, self.n.work)
            self.deployed[name] = self.n.deploy(out, name, prod=True)
        return self.deployed[name]

    def check_static_rows(self, name, rows, skipped):
        sys.stderr.write("\n%s: %d static rows checked, %d function/route rows left to test_routing\n"
                         % (name, len(rows), skipped))
        dep = self.deploy_fixture(name)
        self.assertTrue(dep.get("id"), dep)
        self.assertGreater(len(rows), 0, "%s: EXPECT.md has no static rows" % name)
        for row in rows:
            method = row.get("method", "GET")
            with self.subTest(fixture=name, method=method, path=row["path"]):
                status, headers, body = self.n.get(prod_host(name), row["path"], method=method)
                self.assertEqual(status, int(row["status"]),
                                 "%s %s -> %s; body %r" % (method, row["path"], status, body[:200]))
                want = row.get("body contains", "")
                if want:
                    self.assertIn(want.encode(), body)
                for hname, hvalue in row["_headers"]:
                    self.assertEqual(headers.get(hname), hvalue,
                                     "header %s of %s; all headers: %r" % (hname, row["path"], headers))
                self.assertIn("x-nimbus-id", headers)


def _make_tests():
    if not FIXTURE_TABLE:
        def test_fixtures_present(self):
            self.fail("no fixtures with EXPECT.md and output/ under %s (set NIMBUS_FIXTURES)" % FIXTURES)
        StaticFixtures.test_fixtures_present = test_fixtures_present
        return
    for name, rows, skipped, route_checks in FIXTURE_TABLE:
        ident = re.sub(r"\W", "_", name)

        def test(self, name=name, rows=rows, skipped=skipped):
            self.check_static_rows(name, rows, skipped)
        test.__doc__ = "%s: static rows of EXPECT.md" % name
        setattr(StaticFixtures, "test_%s_static_rows" % ident, test)

        if route_checks:
            def test_route(self, name=name, checks=route_checks):
                self.deploy_fixture(name)
                for path, hname, hvalue in checks:
                    with self.subTest(path=path, header=hname):
                        status, headers, _ = self.n.get(prod_host(name), path)
                        self.assertEqual(status, 200)
                        self.assertEqual(headers.get(hname), hvalue)
            test_route.__doc__ = "%s: header expectations of static rows set by routes" % name
            setattr(StaticFixtures, "test_%s_static_route_headers" % ident, test_route)


_make_tests()


class BeyondExpect(unittest.TestCase):
    """Checks of platform behaviour on the fixtures that EXPECT.md does not spell out."""

    @classmethod
    def setUpClass(cls):
        cls.n = Nimbus()

    @classmethod
    def tearDownClass(cls):
        cls.n.close()

    def _fixtures_with(self, rel):
        return [name for name, _, _, _ in FIXTURE_TABLE
                if os.path.isfile(os.path.join(FIXTURES, name, "output", "static", rel))]

    def test_hello_txt_platform_headers(self):
        names = self._fixtures_with("hello.txt")
        self.assertTrue(names, "no fixture has static/hello.txt")
        for name in names:
            with self.subTest(fixture=name):
                self.n.deploy(fixture_output(name, self.n.work), name, prod=True)
                with open(os.path.join(FIXTURES, name, "output", "static", "hello.txt"), "rb") as f:
                    expected = f.read()
                status, headers, body = self.n.get(prod_host(name), "/hello.txt")
                self.assertEqual(status, 200)
                self.assertEqual(body, expected)
                self.assertEqual(headers.get("content-type"), "text/plain; charset=utf-8")
                self.assertTrue(headers.get("etag"), headers)
                self.assertEqual(headers.get("cache-control"), "public, max-age=0, must-revalidate")
                self.assertTrue(headers.get("x-nimbus-id"), headers)
                self.assertEqual(headers.get("content-length"), str(len(expected)))

    def test_sveltekit_immutable_asset_served(self):
        rel = "_app/immutable/entry/app.DbMDb-al.js"
        if not os.path.isfile(os.path.join(FIXTURES, "sveltekit", "output", "static", rel)):
            self.skipTest("sveltekit fixture not present")
        self.n.deploy(fixture_output("sveltekit", self.n.work), "sveltekit", prod=True)
        with open(os.path.join(FIXTURES, "sveltekit", "output", "static", rel), "rb") as f:
            expected = f.read()
        status, headers, body = self.n.get(prod_host("sveltekit"), "/" + rel)
        self.assertEqual(status, 200)
        self.assertEqual(body, expected)
        self.assertIn("javascript", headers.get("content-type", ""))

    def test_every_static_file_of_every_fixture(self):
        """Every file under static/ is served at its path unless an override re-keys it."""
        import json
        for name, _, _, _ in FIXTURE_TABLE:
            out = fixture_output(name, self.n.work)
            self.n.deploy(out, name, prod=True)
            with open(os.path.join(out, "config.json")) as f:
                overrides = json.load(f).get("overrides") or {}
            base = os.path.join(out, "static")
            for root, _, files in os.walk(base):
                for fn in files:
                    rel = os.path.relpath(os.path.join(root, fn), base)
                    with open(os.path.join(root, fn), "rb") as f:
                        expected = f.read()
                    key = (overrides.get(rel) or {}).get("path", rel)
                    if key == "index" or key.endswith("/index"):
                        key = key[:-len("index")]  # an extensionless index answers its dir
                    path = "/" + key
                    with self.subTest(fixture=name, path=path):
                        status, headers, body = self.n.get(prod_host(name), path)
                        self.assertEqual(status, 200)
                        self.assertEqual(body, expected)


if __name__ == "__main__":
    unittest.main()
