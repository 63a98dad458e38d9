// Peer for bench/routing: the same route list evaluated by plain Node.js with V8's RegExp,
// the way JavaScript routers (vercel dev, build-output-router) match: every route's `src`
// anchored and compiled once, tried in order; a match substitutes `dest` and stops unless
// `continue`. No phases, has/missing or header logic: a lower bound on the work a router
// must do per request.
//
// usage: node peer.mjs CONFIG_JSON PATH...   prints "<ns per evaluation>\t<path>" per path
// and "median_ns <n>".
import { readFileSync } from "node:fs";

const [configPath, ...paths] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, "utf8"));
const routes = [];
for (const r of config.routes ?? []) {
  if (!r || typeof r.src !== "string") continue;
  let src = r.src;
  if (!src.startsWith("^")) src = "^" + src;
  if (!src.endsWith("$")) src = src + "$";
  routes.push({
    re: new RegExp(src, r.caseSensitive ? "" : "i"),
    dest: r.dest,
    cont: !!r.continue,
    headers: r.headers,
  });
}

function substitute(dest, m) {
  return dest.replace(/\$([A-Za-z0-9_]+)/g, (_, name) => {
    if (/^\d+$/.test(name)) return m[Number(name)] ?? "";
    return (m.groups && m.groups[name]) ?? "";
  });
}

function evaluate(path) {
  let current = path;
  const headers = {};
  for (const r of routes) {
    const m = r.re.exec(current) || r.re.exec(current.substring(1));
    if (!m) continue;
    if (r.headers) Object.assign(headers, r.headers);
    if (r.dest) current = substitute(r.dest, m).split("?")[0];
    if (!r.cont) break;
  }
  return current.length + Object.keys(headers).length;
}

const kLoops = 7;
const kMaxIterations = 200000;
const kMaxLoopNs = 100_000_000n;
let sink = 0;
const results = [];
for (const path of paths) {
  const loops = [];
  for (let loop = 0; loop < kLoops; loop++) {
    const start = process.hrtime.bigint();
    let n = 0;
    while (n < kMaxIterations) {
      sink += evaluate(path);
      n++;
      if ((n & 1023) === 0 && process.hrtime.bigint() - start > kMaxLoopNs) break;
    }
    loops.push(Number(process.hrtime.bigint() - start) / n);
  }
  loops.sort((a, b) => a - b);
  const ns = loops[Math.floor(loops.length / 2)];
  results.push(ns);
  console.log(`${ns.toFixed(1)}\t${path}`);
}
results.sort((a, b) => a - b);
console.log(`median_ns ${results[Math.floor(results.length / 2)].toFixed(1)}`);
if (sink === -1) console.log("");
