#!/usr/bin/env bash
# bench/routing: nanoseconds per route evaluation (src/routing, PCRE2 JIT) for the largest
# real fixture config and for synthetic configs of 100-1000 routes, next to plain Node.js
# matching the same routes with V8's RegExp (peer.mjs: sequential first-match, no phase
# logic — a lower bound on a router's work), printed as ratios. CPU-only, no network.
#
# Env: ROUTING_BENCH (default build/src/routing/routing_bench), FIXTURES (default
# ../shared/fixtures), NODE (default node).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
bench="${ROUTING_BENCH:-$root/build/src/routing/routing_bench}"
fixtures="${FIXTURES:-$root/../shared/fixtures}"
node="${NODE:-node}"
if [[ ! -x "$bench" ]]; then
  "$root/scripts/build.sh" routing_bench
fi
command -v "$node" >/dev/null || { echo "bench/routing: node is needed for the peer (apt-get install nodejs)" >&2; exit 1; }
tmp="$(mktemp -d -t nimbus-bench-routing.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# Synthetic deployments: N routes cycling through the shapes real outputs use (named-group
# rewrite with check, redirect, header rule with continue, method-limited rewrite), then
# filesystem and a catch-all; outputs for the rewrite targets.
python3 - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
for n in (100, 250, 500, 1000):
    d = os.path.join(tmp, "synthetic-%d" % n)
    routes = []
    for i in range(n):
        k = i % 4
        if k == 0:
            routes.append({"src": "^/r%d/(?<slug>[^/]+)/?$" % i, "dest": "/api/r%d?slug=$slug" % i, "check": True})
        elif k == 1:
            routes.append({"src": "^/old%d/(.*)$" % i, "status": 308, "headers": {"Location": "/new%d/$1" % i}})
        elif k == 2:
            routes.append({"src": "^/h%d(?:/.*)?$" % i, "headers": {"x-rule": str(i)}, "continue": True})
        else:
            routes.append({"src": "^/m%d/(\\d+)$" % i, "methods": ["GET", "HEAD"], "dest": "/api/m%d?id=$1" % i})
    routes += [{"handle": "filesystem"}, {"src": "^/(.*)$", "dest": "/api/fallback?path=$1"}]
    os.makedirs(os.path.join(d, "static"), exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"version": 3, "routes": routes}, f)
    with open(os.path.join(d, "static", "index.html"), "w") as f:
        f.write("hi")
    for fn in ["api/fallback"] + ["api/r%d" % i for i in range(0, n, 4)] + ["api/m%d" % i for i in range(3, n, 4)]:
        p = os.path.join(d, "functions", fn + ".func")
        os.makedirs(p, exist_ok=True)
        with open(os.path.join(p, ".vc-config.json"), "w") as f:
            json.dump({"runtime": "nodejs20.x", "handler": "index.js", "launcherType": "Nodejs"}, f)
    last = n - 4 + (n % 4 == 0 and 0)
    paths = ["/r0/first", "/old1/x", "/r%d/middle" % (n // 2 - (n // 2) % 4), "/m%d/42" % (n - 1 - (n - 1 - 3) % 4),
             "/index.html", "/nothing/matches/here"]
    with open(os.path.join(d, "paths.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
PY

# The largest real config (most routes) among the fixtures, with its EXPECT.md paths.
largest=""
most=-1
for cfg in "$fixtures"/*/output/config.json; do
  [[ -f "$cfg" ]] || continue
  count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("routes") or []))' "$cfg")
  if (( count > most )); then most=$count; largest=$cfg; fi
done
real_paths=()
if [[ -n "$largest" ]]; then
  name="$(basename "$(dirname "$(dirname "$largest")")")"
  mapfile -t real_paths < <(python3 - "$fixtures/$name/EXPECT.md" <<'PY'
import sys
for line in open(sys.argv[1], encoding="utf-8"):
    cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
    if len(cells) > 2 and cells[1].startswith("/"):
        print(cells[1])
PY
)
fi

median() { awk '/^median_ns/ {print $2}'; }
printf '%-28s %7s %12s %12s %10s\n' "config" "routes" "nimbus_ns" "node_ns" "ratio"
run_case() {  # label config routes paths...
  local label=$1 cfg=$2 routes=$3; shift 3
  local ours peer
  ours=$("$bench" "$cfg" "$@" | median)
  peer=$("$node" "$here/peer.mjs" "$cfg" "$@" | median)
  printf '%-28s %7s %12s %12s %10s\n' "$label" "$routes" "$ours" "$peer" \
    "$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$ours" "$peer")"
}
if [[ -n "$largest" ]]; then
  run_case "fixture $name" "$largest" "$most" "${real_paths[@]}"
fi
for n in 100 250 500 1000; do
  mapfile -t p < "$tmp/synthetic-$n/paths.txt"
  run_case "synthetic-$n" "$tmp/synthetic-$n/config.json" "$((n + 2))" "${p[@]}"
done
echo "ratio = nimbus_ns / node_ns (lower is better for nimbus); median over the paths of each config"
echo "growth: compare synthetic rows; cost per evaluation should grow at most linearly with routes"
