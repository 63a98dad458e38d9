#!/usr/bin/env bash
# Static-file throughput/latency: nimbus's router vs. nginx, serving the same files.
#
# Both servers run on one core (SERVER_CPU), wrk on another (CLIENT_CPU). For each file
# size, each server gets a warm-up run and then a measured `wrk --latency` run; the table
# shows req/s, p50 and p99 latency, and nimbus/nginx ratios.
#
# Environment (all optional):
#   NIMBUS_BIN   nimbus binary                  (default: <repo>/build/nimbus)
#   DURATION     measured wrk run per case      (default: 10s)
#   WARMUP       warm-up wrk run per case       (default: 2s)
#   CONNECTIONS  wrk connections                (default: 50)
#   SERVER_CPU   core for the server            (default: 0)
#   CLIENT_CPU   core for wrk                   (default: 1)
#   SERVERS      which servers to run           (default: "nginx nimbus")
#   KEEP_TMP=1   keep the temp dir (logs, raw wrk output) instead of deleting it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

NIMBUS_BIN="${NIMBUS_BIN:-$repo/build/nimbus}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-50}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
SERVERS="${SERVERS:-nginx nimbus}"
KEEP_TMP="${KEEP_TMP:-0}"
HOST_HEADER="bench.localhost"   # production host of project "bench" (--domain localhost)
SIZES="1k 100k"

log() { printf '[bench/static %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[bench/static] FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

want() { [[ " $SERVERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in wrk nginx curl taskset python3 cmp; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/static: missing tools: ${missing[*]}" >&2
  echo "install them, e.g. on Debian/Ubuntu:  apt-get install -y wrk nginx-light curl util-linux python3" >&2
  exit 1
fi
for s in $SERVERS; do
  [[ "$s" == nginx || "$s" == nimbus ]] || die "SERVERS may only contain 'nginx' and 'nimbus' (got '$s')"
done
if want nimbus && [[ ! -x "$NIMBUS_BIN" ]]; then
  die "nimbus binary not found or not executable: $NIMBUS_BIN (build it, or set NIMBUS_BIN)"
fi
ncpu="$(nproc)"
((SERVER_CPU < ncpu && CLIENT_CPU < ncpu)) ||
  die "need CPUs $SERVER_CPU and $CLIENT_CPU but only $ncpu available (set SERVER_CPU/CLIENT_CPU)"
[[ "$SERVER_CPU" != "$CLIENT_CPU" ]] || die "SERVER_CPU and CLIENT_CPU must differ"
[[ "$CONNECTIONS" =~ ^[0-9]+$ ]] || die "CONNECTIONS must be a number (got '$CONNECTIONS')"

# wrk duration ("10s", "1m", "10") -> seconds
to_seconds() {
  local d="$1"
  case "$d" in
    *s) echo "${d%s}" ;;
    *m) echo $(( ${d%m} * 60 )) ;;
    *h) echo $(( ${d%h} * 3600 )) ;;
    *)  echo "$d" ;;
  esac
}
dur_s="$(to_seconds "$DURATION")"; warm_s="$(to_seconds "$WARMUP")"
[[ "$dur_s" =~ ^[0-9]+$ && "$warm_s" =~ ^[0-9]+$ ]] ||
  die "DURATION/WARMUP must look like 10s, 1m or 10 (got '$DURATION', '$WARMUP')"
nserv=0; for _ in $SERVERS; do nserv=$((nserv + 1)); done
estimate=$(( (dur_s + warm_s) * nserv * 2 ))
log "estimated measuring time: ${estimate}s (+ a few seconds of setup)"
((estimate <= 170)) || log "warning: DURATION/WARMUP make this run longer than 3 minutes"
wrk_timeout=$((dur_s + warm_s + 30))   # hard bound on each wrk invocation

# ---------------------------------------------------------------- temp dir + cleanup
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench-static.XXXXXX")"
chmod 755 "$tmp"   # nginx workers may run as an unprivileged user and must read static/
nginx_pid=""
nimbus_pid=""
wrk_pid=""


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$wrk_pid" wrk
  stop_pid "$nginx_pid" nginx
  stop_pid "$nimbus_pid" nimbus
  if [[ "$KEEP_TMP" == 1 || $rc -ne 0 ]]; then
    log "temp dir kept for inspection: $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------- the deployment
# A Build Output API v3 directory. `.dat` is served as application/octet-stream by both
# servers; wrk and curl send no Accept-Encoding, so neither compresses.
out="$tmp/output"
mkdir -p "$out/static"
echo '{"version":3}' >"$out/config.json"
head -c 1024   /dev/urandom >"$out/static/1k.dat"
head -c 102400 /dev/urandom >"$out/static/100k.dat"
chmod -R a+rX "$out"

# ---------------------------------------------------------------- nginx
start_nginx() {
  local port i
  port="$(free_port)"
  local temp_paths
  temp_paths="$(nginx_temp_paths)"
  cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
error_log $tmp/nginx-error.log warn;
pid $tmp/nginx.pid;
events {
    worker_connections 4096;
}
http {
    types { }
    default_type application/octet-stream;
    # nimbus buffers its access log (64 KiB, flushed every 500 ms): do the same here.
    access_log $tmp/nginx-access.log combined buffer=64k flush=500ms;
    # nimbus keeps small files in memory; let nginx at least keep descriptors open.
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server_tokens off;
    gzip off;
$temp_paths
    server {
        listen 127.0.0.1:$port;
        server_name _;
        root $out/static;
    }
}
EOF
  launch_nginx
  for i in $(seq 100); do
    kill -0 "$nginx_pid" 2>/dev/null ||
      die "nginx exited during startup; stderr: $(cat "$tmp/nginx.stderr") error log: $(cat "$tmp/nginx-error.log" 2>/dev/null)"
    if curl -s -o /dev/null "http://127.0.0.1:$port/1k.dat"; then
      nginx_addr="127.0.0.1:$port"
      log "nginx up at $nginx_addr (pid $nginx_pid, cpu $SERVER_CPU)"
      return 0
    fi
    sleep 0.1
  done
  die "nginx did not answer on 127.0.0.1:$port within 10 s"
}

# ---------------------------------------------------------------- nimbus
start_nimbus() {
  local i line="" json
  # --stem-cells 0: the site has no functions, and launchers booting at start would share
  # the server's core with the measurement.
  taskset -c "$SERVER_CPU" "$NIMBUS_BIN" serve \
    --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --stem-cells 0 \
    --data "$tmp/data" --threads 1 --access-log "$tmp/nimbus-access.log" \
    >"$tmp/nimbus.stdout" 2>"$tmp/nimbus.stderr" &
  nimbus_pid=$!
  for i in $(seq 200); do   # 20 s
    line="$(grep -m1 '^nimbus ready ' "$tmp/nimbus.stdout" || true)"
    [[ -n "$line" ]] && break
    if ! kill -0 "$nimbus_pid" 2>/dev/null; then
      local rc=0; wait "$nimbus_pid" || rc=$?; nimbus_pid=""
      die "nimbus serve exited (status $rc) before printing 'nimbus ready'.
--- stdout ---
$(cat "$tmp/nimbus.stdout")
--- stderr ---
$(cat "$tmp/nimbus.stderr")"
    fi
    sleep 0.1
  done
  [[ -n "$line" ]] || die "nimbus serve printed no 'nimbus ready' line within 20 s.
--- stdout ---
$(cat "$tmp/nimbus.stdout")
--- stderr ---
$(cat "$tmp/nimbus.stderr")"
  json="${line#nimbus ready }"
  nimbus_router="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["router"])' "$json")" ||
    die "cannot parse the ready line: $line"
  nimbus_api="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api"])' "$json")" ||
    die "cannot parse the ready line: $line"
  log "nimbus up: router $nimbus_router, api $nimbus_api (pid $nimbus_pid, cpu $SERVER_CPU)"

  [[ -s "$tmp/data/admin-token" ]] || die "nimbus wrote no admin token at $tmp/data/admin-token"
  local token
  token="$(tr -d '\r\n' <"$tmp/data/admin-token")"
  if ! NIMBUS_TOKEN="$token" "$NIMBUS_BIN" deploy "$out" --project bench --prod \
      --api "http://$nimbus_api" >"$tmp/deploy.out" 2>&1; then
    die "nimbus deploy failed:
$(cat "$tmp/deploy.out")"
  fi
  log "deployed: $(tr '\n' ' ' <"$tmp/deploy.out")"

  # The router may pick the deployment up asynchronously: wait (bounded) for a 200.
  local code=""
  for i in $(seq 50); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST_HEADER" \
      "http://$nimbus_router/1k.dat" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  die "nimbus router answered $code (not 200) for Host: $HOST_HEADER /1k.dat 5 s after deploying"
}

# ---------------------------------------------------------------- correctness check
check_bodies() {
  local size f name code
  for size in $SIZES; do
    f="$size.dat"
    for name in $SERVERS; do
      local args=(-sS -o "$tmp/check-$name-$f" -w '%{http_code} %{content_type}')
      if [[ $name == nimbus ]]; then
        args+=(-H "Host: $HOST_HEADER" "http://$nimbus_router/$f")
      else
        args+=("http://$nginx_addr/$f")
      fi
      code="$(curl "${args[@]}")" || die "$name: curl failed for /$f"
      [[ "${code%% *}" == 200 ]] || die "$name answered '$code' for /$f (expected 200)"
      cmp -s "$tmp/check-$name-$f" "$out/static/$f" ||
        die "$name returned a different body for /$f ($(stat -c %s "$tmp/check-$name-$f") bytes vs $(stat -c %s "$out/static/$f") on disk)"
      log "$name /$f: ${code%% *}, ${code#* }, body identical to the file ($(stat -c %s "$out/static/$f") bytes)"
    done
  done
}

# ---------------------------------------------------------------- wrk
# wrk latency ("812.00us", "1.23ms", "2.00s", "1.00m") -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) } else { print "NaN"; exit }
    if (u == "us") f = 0.001; else if (u == "ms") f = 1; else if (u == "s") f = 1000;
    else if (u == "m") f = 60000; else if (u == "h") f = 3600000; else { print "NaN"; exit }
    printf "%.3f", n * f }'
}

# Fails loudly when the server under test has exited (e.g. killed by a signal).
check_alive() {  # check_alive NAME
  local name="$1" pid rc=0 how
  if [[ $name == nimbus ]]; then pid="$nimbus_pid"; else pid="$nginx_pid"; fi
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null && return 0
  wait "$pid" 2>/dev/null || rc=$?
  if [[ $name == nimbus ]]; then nimbus_pid=""; else nginx_pid=""; fi
  how="exit status $rc"
  ((rc > 128)) && how+=" = killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo "?")"
  die "$name (pid $pid) is gone ($how) during the $current_case run.
--- last lines of its stdout ---
$(tail -n 10 "$tmp/$name.stdout" 2>/dev/null)
--- last lines of its stderr ---
$(tail -n 10 "$tmp/$name.stderr" 2>/dev/null)"
}

current_case=""
run_wrk() {  # run_wrk OUTFILE DURATION URL [wrk args...]
  local outf="$1" d="$2" url="$3"; shift 3
  local rc=0
  # In the background + `wait`, so that a TERM/INT to this script is handled at once.
  timeout "$wrk_timeout" taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"$d" --latency "$@" "$url" >"$outf" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || rc=$?
  wrk_pid=""
  check_alive "${current_case%% *}"
  ((rc == 0)) || die "wrk failed (status $rc) for $url:
$(cat "$outf")"
}

declare -A RPS P50 P99
measure() {  # measure SERVER SIZE
  local name="$1" size="$2" url extra=() outf
  if [[ $name == nimbus ]]; then
    url="http://$nimbus_router/$size.dat"; extra=(-H "Host: $HOST_HEADER")
  else
    url="http://$nginx_addr/$size.dat"
  fi
  log "$name $size: warm-up $WARMUP, then $DURATION with $CONNECTIONS connections"
  current_case="$name $size warm-up"
  run_wrk "$tmp/wrk-$name-$size-warmup.txt" "$WARMUP" "$url" "${extra[@]}"
  outf="$tmp/wrk-$name-$size.txt"
  current_case="$name $size measured"
  run_wrk "$outf" "$DURATION" "$url" "${extra[@]}"

  if grep -q 'Non-2xx or 3xx responses' "$outf"; then
    die "$name $size: wrk saw error responses:
$(cat "$outf")"
  fi
  if grep -q 'Socket errors' "$outf"; then
    log "warning: $name $size: $(grep 'Socket errors' "$outf" | sed 's/^ *//')"
  fi
  local rps p50 p99
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$outf")"
  p50="$(awk '/Latency Distribution/ {d=1} d && $1 == "50%" {print $2; exit}' "$outf")"
  p99="$(awk '/Latency Distribution/ {d=1} d && $1 == "99%" {print $2; exit}' "$outf")"
  [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "cannot parse wrk output for $name $size:
$(cat "$outf")"
  RPS[$name,$size]="$rps"
  P50[$name,$size]="$(to_ms "$p50")"
  P99[$name,$size]="$(to_ms "$p99")"
}

# ---------------------------------------------------------------- main
want nginx && start_nginx
want nimbus && start_nimbus
check_bodies

for size in $SIZES; do
  for name in $SERVERS; do
    measure "$name" "$size"
  done
done

echo
echo "static files: 1 wrk thread, $CONNECTIONS connections, ${DURATION} per case after ${WARMUP} warm-up;"
echo "server on cpu $SERVER_CPU (nginx: 1 worker; nimbus: --threads 1), wrk on cpu $CLIENT_CPU"
printf '%-5s %-7s %12s %9s %9s\n' size server req/s p50_ms p99_ms
for size in $SIZES; do
  for name in nginx nimbus; do
    want "$name" || continue
    printf '%-5s %-7s %12.0f %9.3f %9.3f\n' "$size" "$name" \
      "${RPS[$name,$size]}" "${P50[$name,$size]}" "${P99[$name,$size]}"
  done
  if want nginx && want nimbus; then
    awk -v s="$size" -v a="${RPS[nimbus,$size]}" -v b="${RPS[nginx,$size]}" \
        -v c="${P99[nimbus,$size]}" -v d="${P99[nginx,$size]}" 'BEGIN {
      printf "%-5s %-7s nimbus/nginx req/s = %.2f  p99 nimbus/nginx = %.2f\n", s, "ratio",
        (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
  fi
done
