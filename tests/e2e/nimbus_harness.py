"""Test harness for the Nimbus end-to-end suite (stdlib only).

`Nimbus` starts a real `nimbus serve` on loopback with port 0 for both listeners, a
private data directory and an access log, waits for the `nimbus ready {json}` line and
then offers small helpers to drive the CLI, the control API and the router.

Environment:
  NIMBUS_BIN       the binary (default: <repo>/build/nimbus)
  NIMBUS_FIXTURES  the shared fixtures dir (default: /work/shared/fixtures)
  NIMBUS_SOURCE    the repository root (default: two levels above this file)
"""
import hashlib
import http.client
import json as _json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("NIMBUS_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("NIMBUS_BIN") or os.path.join(SOURCE, "build", "nimbus")
FIXTURES = os.environ.get("NIMBUS_FIXTURES") or "/work/shared/fixtures"

READY_TIMEOUT = 20.0      # seconds to wait for `nimbus ready`
STOP_TIMEOUT = 15.0       # seconds between SIGTERM and SIGKILL
CLI_TIMEOUT = 180.0       # seconds for one CLI invocation
HTTP_TIMEOUT = 30.0       # seconds for one HTTP exchange

DEFAULT = object()        # "use the harness default" marker


def sha256(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def wait_for(predicate, timeout=5.0, interval=0.05):
    """Bounded poll: calls predicate() until it returns a truthy value or `timeout`
    seconds passed; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def clean_env(root):
    """The environment for processes we start: no NIMBUS_* leaking in from the caller,
    and HOME / XDG dirs inside the test's temp dir so nothing touches the real user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}
    env["HOME"] = os.path.join(root, "home")
    env["XDG_DATA_HOME"] = os.path.join(root, "xdg-data")
    env["XDG_CONFIG_HOME"] = os.path.join(root, "xdg-config")
    env["XDG_CACHE_HOME"] = os.path.join(root, "xdg-cache")
    for d in ("home", "xdg-data", "xdg-config", "xdg-cache"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return env


def _join_headers(pairs):
    out = {}
    for k, v in pairs:
        k = k.lower()
        out[k] = out[k] + ", " + v if k in out else v
    return out


def parse_raw_response(data):
    """Parses the first HTTP response in `data` (bytes). Returns (status, headers, body)
    or raises AssertionError showing the bytes."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        raise AssertionError("no HTTP response; got %d bytes: %r" % (len(data), data[:300]))
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = _join_headers(
        (l.split(":", 1)[0].strip(), l.split(":", 1)[1].strip()) for l in lines[1:] if ":" in l)
    if "content-length" in headers:
        body = body[:int(headers["content-length"].split(",")[0])]
    return status, headers, body


def raw_exchange(port, request_bytes, timeout=HTTP_TIMEOUT, read_limit=1 << 20):
    """Sends `request_bytes` on a fresh loopback connection and reads until the server
    closes, a complete response (by content-length) arrived, or `timeout`. A server that
    answers early and resets the connection while we are still sending is tolerated.
    Returns the bytes received."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    received = b""
    try:
        try:
            sock.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while len(received) < read_limit and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                try:
                    _, hdrs, _ = parse_raw_response(received)
                except (AssertionError, ValueError, IndexError):
                    continue
                if "content-length" in hdrs and len(body) >= int(hdrs["content-length"].split(",")[0]):
                    break
    finally:
        sock.close()
    return received


# ----------------------------------------------------------------------------- outputs

def make_output(root, files, config=None, symlinks=None, dirs=()):
    """Creates a Build Output API v3 directory at `root`.
    files: {relative path: str|bytes}; config: dict for config.json ({"version": 3} by
    default; pass False to omit config.json); symlinks: {relative path: link text}."""
    os.makedirs(root, exist_ok=True)
    if config is not False:
        cfg = {"version": 3} if config is None else config
        with open(os.path.join(root, "config.json"), "w") as f:
            f.write(cfg if isinstance(cfg, str) else _json.dumps(cfg))
    for rel, content in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for rel, target in (symlinks or {}).items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)
    return root


def flattened_func_symlinks(output_dir):
    """`*.func` entries that are regular files holding a relative link text to an existing
    `.func` directory: symlinks flattened by a checkout without symlink support."""
    found = []
    for root, dirs, files in os.walk(os.path.join(output_dir, "functions")):
        for name in files:
            if not name.endswith(".func"):
                continue
            p = os.path.join(root, name)
            if os.path.islink(p) or os.path.getsize(p) > 512:
                continue
            try:
                with open(p, "rb") as f:
                    text = f.read().decode()
            except UnicodeDecodeError:
                continue
            if "\n" in text or not text.endswith(".func"):
                continue
            if os.path.isdir(os.path.join(root, text)):
                found.append((os.path.relpath(p, output_dir), text))
    return found


def fixture_output(name, workdir):
    """The `output/` dir of fixture `name`, deployable. Deployed in place unless the
    checkout flattened its `.func` symlinks into text files; then it is copied (symlinks
    preserved) into `workdir` and those files are turned back into symlinks."""
    src = os.path.join(FIXTURES, name, "output")
    flat = flattened_func_symlinks(src)
    if not flat:
        return src
    dst = os.path.join(workdir, "fixture-" + name)
    if not os.path.exists(dst):
        shutil.copytree(src, dst, symlinks=True)
        for rel, text in flat:
            p = os.path.join(dst, rel)
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o644)
            os.unlink(p)
            os.symlink(text, p)
        sys.stderr.write("note: fixture %s: %d .func symlinks were flattened to text files "
                         "in %s; restored them in a copy\n" % (name, len(flat), src))
    return dst


def static_files(output_dir):
    """{url path: bytes} of every regular file under static/ (no overrides applied)."""
    out = {}
    base = os.path.join(output_dir, "static")
    for root, dirs, files in os.walk(base):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out["/" + os.path.relpath(p, base)] = f.read()
    return out


def as_list(obj, key):
    """`obj` when it is a list, else obj[key] (CLI --json outputs may wrap lists)."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get(key), list):
        return obj[key]
    raise AssertionError("expected a list or {%r: [...]}, got %r" % (key, obj))


def deployment_of(obj):
    """The deployment object of a `deploy --json` answer (flat or under "deployment")."""
    if isinstance(obj, dict) and "id" not in obj and isinstance(obj.get("deployment"), dict):
        merged = dict(obj["deployment"])
        merged.update({k: v for k, v in obj.items() if k != "deployment"})
        return merged
    return obj


def prod_host(project):
    return "%s.localhost" % project


def preview_host(project, deployment_id):
    return "%s-%s.localhost" % (project, deployment_id)


# ----------------------------------------------------------------------------- server

class Nimbus:
    """One `nimbus serve` process with its own temp dir (data dir inside it)."""

    def __init__(self, threads=2, extra_args=(), start=True, root=None, access_log=None):
        if not os.path.exists(BIN):
            raise AssertionError("nimbus binary not found at %s (set NIMBUS_BIN)" % BIN)
        self.owns_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="nimbus-e2e-")
        self.data = os.path.join(self.root, "data")
        self.work = os.path.join(self.root, "work")
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self.access_log = access_log or os.path.join(self.data, "access.log")
        self.env = clean_env(self.root)
        self.threads = threads
        self.extra_args = list(extra_args)
        self.proc = None
        self.lines = []            # (stream, line) of the current process
        self.all_output = []       # every line of every process, for failure messages
        self._readers = []
        self._ready = None
        self.ready_info = None
        self.router = None         # (host, port)
        self.api_addr = None       # (host, port)
        self.token = None
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    # -- process lifecycle
    def _reader(self, stream, name, ready_event):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append((name, line))
            self.all_output.append((name, line))
            if name == "stdout" and line.startswith("nimbus ready ") and self.ready_info is None:
                try:
                    self.ready_info = _json.loads(line[len("nimbus ready "):])
                except ValueError:
                    self.ready_info = {"_unparseable": line}
                ready_event.set()
        stream.close()

    def output_text(self, limit=80):
        lines = self.all_output[-limit:]
        return "\n".join("[%s] %s" % l for l in lines) or "(nothing)"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
               "--data", self.data, "--access-log", self.access_log,
               "--threads", str(self.threads)] + self.extra_args
        self.lines = []
        self.ready_info = None
        ready = threading.Event()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd=self.work,
                                     start_new_session=True)
        self._readers = [threading.Thread(target=self._reader, args=(s, n, ready), daemon=True)
                         for s, n in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for t in self._readers:
            t.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        if not ready.is_set():
            exited = self.proc.poll()
            self._terminate()
            raise AssertionError(
                "nimbus serve did not print `nimbus ready {json}` within %.0f s (%s).\n"
                "command: %s\noutput:\n%s" % (
                    READY_TIMEOUT, "exited with %s" % exited if exited is not None else "still running",
                    " ".join(cmd), self.output_text()))
        info = self.ready_info
        try:
            self.router = self._addr(info["router"])
            self.api_addr = self._addr(info["api"])
        except (KeyError, TypeError, ValueError):
            self._terminate()
            raise AssertionError("bad ready line %r; output:\n%s" % (info, self.output_text()))
        token_file = os.path.join(self.data, "admin-token")
        if wait_for(lambda: os.path.exists(token_file), timeout=5):
            with open(token_file) as f:
                self.token = f.read().strip()
        return self

    @staticmethod
    def _addr(text):
        host, port = text.rsplit(":", 1)
        return host.strip("[]"), int(port)

    @property
    def router_port(self):
        return self.router[1]

    @property
    def api_port(self):
        return self.api_addr[1]

    @property
    def api_url(self):
        return "http://%s:%d" % self.api_addr

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _join_readers(self):
        for t in self._readers:
            t.join(5)

    def _terminate(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self._kill_group()
        self._join_readers()

    def _kill_group(self):
        # The server was started in its own session: anything it spawned is in the
        # process group whose id is the server's pid.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        """SIGTERM (then SIGKILL after a bound); returns the exit status."""
        self._terminate()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._kill_group()
        self._join_readers()
        return self.proc.returncode

    def restart(self):
        """Stops (if running) and starts again on the same data dir, with new ports."""
        if self.running():
            self.stop()
        return self.start()

    def close(self):
        """Terminates the process and removes the temp dir."""
        try:
            self._terminate()
        finally:
            if self.owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    # -- CLI
    def cli(self, *args, json=False, check=True, input=None, env_extra=None,
            token=DEFAULT, api=DEFAULT, timeout=CLI_TIMEOUT, cwd=None):
        """Runs `nimbus --api <api> ARGS [--json]` with NIMBUS_TOKEN set to the admin
        token (token=None leaves it unset). Returns (rc, stdout, stderr); with json=True
        returns the parsed stdout (and (rc, parsed-or-None, stderr) when check=False)."""
        env = dict(self.env)
        tok = self.token if token is DEFAULT else token
        if tok is not None:
            env["NIMBUS_TOKEN"] = tok
        for k, v in (env_extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        cmd = [BIN]
        if api is not None:
            cmd += ["--api", self.api_url if api is DEFAULT else api]
        cmd += list(args)
        if json:
            cmd.append("--json")
        try:
            p = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               capture_output=True, env=env, cwd=cwd or self.work,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s timed out after %.0f s\nstdout: %s\nstderr: %s" % (
                " ".join(cmd), timeout, e.stdout, e.stderr))
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise AssertionError("`%s` exited %d\nstdout:\n%s\nstderr:\n%s\nserver output:\n%s" % (
                " ".join(cmd), p.returncode, out, err, self.output_text(30)))
        if json:
            try:
                parsed = _json.loads(out)
            except ValueError:
                if check:
                    raise AssertionError("`%s` printed no JSON:\nstdout:\n%s\nstderr:\n%s" % (
                        " ".join(cmd), out, err))
                parsed = None
            return (p.returncode, parsed, err) if not check else parsed
        return p.returncode, out, err

    def deploy(self, directory, project, prod=False, extra=()):
        """`nimbus deploy DIR --project P [--prod] --json`; returns the deployment dict."""
        args = ["deploy", directory, "--project", project] + (["--prod"] if prod else []) + list(extra)
        return deployment_of(self.cli(*args, json=True))

    # -- router
    def get(self, host, path, headers=None, method="GET", body=None, timeout=HTTP_TIMEOUT):
        """One HTTP request to the router with `Host: host`. Returns
        (status, headers with lower-case keys (repeated ones joined by ', '), body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.router_port, timeout=timeout)
        try:
            hdrs = {"Host": host}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, _join_headers(resp.getheaders()), data
        finally:
            conn.close()

    # -- control API
    def api(self, method, path, body=None, token=DEFAULT, headers=None, timeout=HTTP_TIMEOUT):
        """One control API call. body: dict/list (sent as JSON) or bytes. token=None sends
        no Authorization header. Returns (status, parsed JSON or raw bytes, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout)
        try:
            hdrs = {}
            tok = self.token if token is DEFAULT else token
            if tok is not None:
                hdrs["Authorization"] = "Bearer " + tok
            if isinstance(body, (dict, list)):
                body = _json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            try:
                parsed = _json.loads(data) if data else None
            except ValueError:
                parsed = data
            return resp.status, parsed, _join_headers(resp.getheaders())
        finally:
            conn.close()

    def put_blob(self, data, name=None, token=DEFAULT):
        return self.api("PUT", "/v1/blobs/" + (name or sha256(data)), body=data, token=token,
                        headers={"Content-Type": "application/octet-stream"})

    def missing(self, hashes):
        status, body, _ = self.api("POST", "/v1/blobs/missing", {"hashes": list(hashes)})
        if status != 200:
            raise AssertionError("POST /v1/blobs/missing -> %s %r" % (status, body))
        return body["missing"]

    def api_deployments(self, project=None):
        status, body, _ = self.api("GET", "/v1/deployments" + ("?project=" + project if project else ""))
        if status != 200:
            raise AssertionError("GET /v1/deployments -> %s %r" % (status, body))
        return body["deployments"]

    def api_projects(self):
        status, body, _ = self.api("GET", "/v1/projects")
        if status != 200:
            raise AssertionError("GET /v1/projects -> %s %r" % (status, body))
        return body["projects"]

    def read_access_log(self):
        try:
            with open(self.access_log, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []


class Upstream:
    """An HTTP (or, with `ssl_context`, HTTPS) server on 127.0.0.1:0 in a thread, for routes
    whose `dest` is an external URL. `handler` is a http.server.BaseHTTPRequestHandler
    subclass; it reaches this object as `self.server.upstream` (`record(...)` keeps what it
    saw, `release` is an Event tests use to let a handler go on). With TLS the handshake
    runs in the connection's thread; a failed one is kept in `tls_errors`.
    `close()` (idempotent, bounded) sets `release`, stops accepting, shuts the open
    connections down and joins every thread it started."""

    HANDSHAKE_TIMEOUT = 10.0

    def __init__(self, handler, ssl_context=None):
        import http.server
        import socketserver
        upstream = self
        self.requests = []         # whatever handlers passed to record()
        self.tls_errors = []       # str of each failed server-side TLS handshake
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._conns = []
        self._closed = False

        class Server(http.server.HTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                t = threading.Thread(target=self._run, args=(request, client_address), daemon=True)
                with upstream._lock:
                    upstream._threads.append(t)
                    upstream._conns.append(request)
                t.start()

            def _run(self, request, client_address):
                conn = request
                try:
                    if ssl_context is not None:
                        import ssl
                        request.settimeout(upstream.HANDSHAKE_TIMEOUT)
                        try:
                            conn = ssl_context.wrap_socket(request, server_side=True)
                        except (ssl.SSLError, OSError) as e:
                            with upstream._lock:
                                upstream.tls_errors.append(str(e))
                            return
                        with upstream._lock:
                            upstream._conns.append(conn)
                    handler(conn, client_address, self)
                except (OSError, ValueError):
                    pass  # the client (nimbus) went away, or close() cut the connection
                finally:
                    for s in (conn, request):
                        try:
                            s.close()
                        except OSError:
                            pass

        self.server = Server(("127.0.0.1", 0), handler)
        self.server.upstream = self
        self.port = self.server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self._serve = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self._serve.start()

    def url(self, path=""):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def record(self, **item):
        with self._lock:
            self.requests.append(item)

    def recorded(self):
        with self._lock:
            return list(self.requests)

    def handshake_errors(self):
        with self._lock:
            return list(self.tls_errors)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._serve.join(5)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        for t in threads:
            t.join(5)


def refused_port():
    """(socket, port): a loopback TCP port that is bound but not listening, so connections
    to it are refused while the socket is open (nothing else can take the port). Close the
    socket when done."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def decode_chunked(data):
    """Decodes a chunked body (bytes after the head). Returns (body, complete) where
    complete tells whether the terminating zero-size chunk was seen."""
    out, pos = b"", 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return out, False
        size = int(data[pos:end].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return out, True
        start = end + 2
        if len(data) < start + size + 2:
            return out + data[start:start + size], False
        out += data[start:start + size]
        pos = start + size + 2


class ServerTestCase:
    """Mixin for unittest.TestCase: a fresh server per test (self.n), always closed.
    `server_args` are extra `nimbus serve` options."""
    server_args = ()
    access_log = None

    def setUp(self):
        super().setUp()
        self.n = Nimbus(extra_args=self.server_args, access_log=self.access_log)
        self.addCleanup(self.n.close)

    def workdir(self, name):
        p = os.path.join(self.n.work, name)
        os.makedirs(p, exist_ok=True)
        return p


def error_of(body):
    """(code, message) of a JSON error answer, or raises showing the body."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        raise AssertionError("expected {\"error\": {...}}, got %r" % (body,))
    return body["error"].get("code"), body["error"].get("message", "")


def error_message(stderr):
    """The CLI's error message: stderr from the first line starting with `error:` (lines
    before it are progress output). Raises AssertionError when there is none."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            return "\n".join(lines[i:])
    raise AssertionError("no line of stderr starts with `error:`:\n" + stderr)
