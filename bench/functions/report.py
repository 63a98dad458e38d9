#!/usr/bin/env python3
"""Reads the raw output of bench/functions/run.sh (client JSON, wrk text, nimbus snapshots
and function logs in --raw), writes every number to --out (JSON) and prints the table.

Percentiles are nearest-rank: pN = the ceil(N/100 * n)-th smallest sample."""
import argparse
import glob
import json
import math
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(p / 100.0 * len(v)) - 1)]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90),
            "p99": pct(values, 99), "min": min(values), "max": max(values),
            "mean": sum(values) / len(values)}


def wrk_ms(v):
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", v)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    out = {"text": text}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else None
    dist = text.split("Latency Distribution", 1)[-1]
    for p in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % p, dist, re.M)
        out["p" + p] = wrk_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: (.*)", text)
    out["socketErrors"] = m.group(1).strip() if m else ""
    return out


def read_logs(directory):
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        pass
    return records


def delta(before, after, key, name_filter=None):
    if not before or not after:
        return None
    total = 0
    for k, v in after.get(key, {}).items():
        if name_filter and not name_filter(k):
            continue
        total += v - before.get(key, {}).get(k, 0)
    return total


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return "%.0f" % v
    return ("%%.%df" % digits) % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--settings", default="{}")
    a = ap.parse_args()
    raw = a.raw
    settings = json.loads(a.settings)
    res = {"settings": settings}
    rows = []   # (metric, goal, nimbus, peer, ratio, met)
    notes = []

    # ---------------------------------------------------------------- cold
    cn = load(os.path.join(raw, "cold-nimbus.json"))
    cp = load(os.path.join(raw, "cold-peer.json"))
    if cn:
        ok = [s for s in cn["samples"] if "error" not in s]
        errs = [s for s in cn["samples"] if "error" in s]
        before = load(os.path.join(raw, "cold-before.json"))
        after = load(os.path.join(raw, "cold-after.json"))
        misses = delta(before, after, "stemMisses", lambda k: k.startswith("nodejs:"))
        colds = delta(before, after, "coldStarts")
        # Join with the worker's invocation records (x-nimbus-id = requestId).
        logs = read_logs(os.path.join(raw, "cold-logs"))
        inv = {r["requestId"]: r for r in logs if r.get("type") == "invocation"}
        ready = {}   # instance id -> ms from taking the stem cell to specialized
        for r in logs:
            if r.get("type") == "instance" and r.get("event") == "started":
                m = re.search(r"ready in ([0-9.]+) ms", r.get("message", ""))
                if m:
                    ready[r.get("instance")] = float(m.group(1))
        parts = {"initMs": [], "queueMs": [], "durationMs": [], "readyMs": [],
                 "beforeStartMs": [], "readyMinusInitMs": [], "forwardMs": [],
                 "outsideWorkerMs": []}
        not_cold = 0
        for s in ok:
            r = inv.get(s.get("id"))
            if not r:
                continue
            if not r.get("cold"):
                not_cold += 1
            parts["initMs"].append(r["initMs"])
            parts["queueMs"].append(r["queueMs"])
            parts["durationMs"].append(r["durationMs"])
            if r.get("instance") in ready:
                rd = ready[r["instance"]]
                parts["readyMs"].append(rd)
                parts["beforeStartMs"].append(r["queueMs"] - rd)
                parts["readyMinusInitMs"].append(rd - r["initMs"])
            parts["forwardMs"].append(r["durationMs"] - r["queueMs"])
            parts["outsideWorkerMs"].append(s["ms"] - r["durationMs"])
        pool_waits = [s["poolWaitMs"] for s in cn["samples"] if "poolWaitMs" in s]
        pool_not_full = sum(1 for s in cn["samples"] if s.get("poolFull") is False)
        res["cold"] = {
            "nimbus": {"samples": cn["samples"], "latencyMs": summary([s["ms"] for s in ok]),
                       "errors": len(errs), "stemCellMisses": misses, "coldStarts": colds,
                       "notColdInLog": not_cold, "joinedWithLog": len(parts["initMs"]),
                       "breakdownMs": {k: summary(v) for k, v in parts.items()},
                       "poolWaitMs": summary(pool_waits), "poolNotFull": pool_not_full},
        }
        if errs:
            notes.append("cold: %d nimbus request(s) failed, first: %s" % (len(errs), errs[0]["error"]))
        if not_cold:
            notes.append("cold: %d sample(s) were not cold starts according to the function log" % not_cold)
        if misses:
            notes.append("cold: %d stem-cell miss(es): those cold starts spawned a launcher on demand" % misses)
        if pool_not_full:
            notes.append("cold: the pool was not full again 10 s after %d sample(s)" % pool_not_full)
    if cp:
        ok = [s for s in cp["samples"] if "error" not in s]
        errs = [s for s in cp["samples"] if "error" in s]
        res.setdefault("cold", {})["peer"] = {
            "samples": cp["samples"], "latencyMs": summary([s["ms"] for s in ok]),
            "errors": len(errs), "requested": cp["requested"], "stoppedEarly": cp["stoppedEarly"]}
        if cp["stoppedEarly"]:
            notes.append("cold: the peer took %d of %d samples (stopped after the %.0f s budget)"
                         % (len(cp["samples"]), cp["requested"], cp["budgetS"]))
        if errs:
            notes.append("cold: %d peer spawn(s) failed, first: %s" % (len(errs), errs[0]["error"]))
    if "cold" in res:
        n = res["cold"].get("nimbus", {}).get("latencyMs", {})
        p = res["cold"].get("peer", {}).get("latencyMs", {})
        for q, goal in (("p50", 5.0), ("p99", 15.0)):
            ours = n.get(q)
            rows.append(("cold start %s ms (n=%s / %s)" % (q, n.get("n", 0), p.get("n", 0)),
                         "<= %g ms" % goal, ours, p.get(q), ratio(ours, p.get(q)),
                         None if ours is None else ours <= goal))

    # ---------------------------------------------------------------- warm
    wn = parse_wrk(os.path.join(raw, "wrk-nimbus.txt"))
    wg = parse_wrk(os.path.join(raw, "wrk-nginx.txt"))
    if wn or wg:
        snap = load(os.path.join(raw, "warm-after.json"))
        res["warm"] = {"nimbus": wn, "nginx": wg,
                       "nimbusInstances": (snap or {}).get("instances", {}).get("hello")}
        # Server-side CPU per request (user + system time of the processes, from /proc).
        for name, w in (("nimbus", wn), ("nginx", wg)):
            c = load(os.path.join(raw, "cpu-%s.json" % name))
            if c and w and w.get("requests"):
                us = lambda t: t / c["clkTck"] * 1e6 / w["requests"]
                res["warm"]["cpuUsPerRequest_" + name] = {
                    "proxy": us(c["proxyTicks"]), "app": us(c["appTicks"]),
                    "total": us(c["proxyTicks"] + c["appTicks"])}
        wn = wn or {}
        wg = wg or {}
        r_rps = ratio(wn.get("rps"), wg.get("rps"))
        r_p50 = ratio(wn.get("p50"), wg.get("p50"))
        rows.append(("warm req/s", ">= 1.00x", wn.get("rps"), wg.get("rps"), r_rps,
                     None if r_rps is None else r_rps >= 1.0))
        rows.append(("warm p50 ms", "<= 1.00x", wn.get("p50"), wg.get("p50"), r_p50,
                     None if r_p50 is None else r_p50 <= 1.0))
        rows.append(("warm p99 ms", "", wn.get("p99"), wg.get("p99"),
                     ratio(wn.get("p99"), wg.get("p99")), None))
        for name, w in (("nimbus", wn), ("nginx", wg)):
            if w.get("socketErrors"):
                notes.append("warm: wrk socket errors against %s: %s" % (name, w["socketErrors"]))

    # ---------------------------------------------------------------- burst
    rounds = sorted(glob.glob(os.path.join(raw, "burst-*.json")),
                    key=lambda p: int(re.search(r"(\d+)", os.path.basename(p)).group(1)))
    rounds = [r for r in rounds if re.search(r"/burst-\d+\.json$", r)]
    if rounds:
        logs = read_logs(os.path.join(raw, "burst-logs"))
        lat, errors, started_total, per_round, throttled = [], 0, 0, [], 0
        for path in rounds:
            k = re.search(r"burst-(\d+)\.json$", path).group(1)
            b = load(path)
            before = load(os.path.join(raw, "burst-%s-before.json" % k))
            after = load(os.path.join(raw, "burst-%s-after.json" % k))
            fn = b["path"].lstrip("/")
            cold = lambda snap: None if not (snap and before) else \
                snap["coldStarts"].get(fn, 0) - before["coldStarts"].get(fn, 0)
            if before and after:
                throttled += after["throttled"].get(fn, 0) - before["throttled"].get(fn, 0)
            ok = [s["ms"] for s in b["samples"] if "error" not in s]
            e = [s for s in b["samples"] if "error" in s]
            lat += ok
            errors += len(e)
            started = cold(after)
            started_total += started or 0
            invs = [r for r in logs if r.get("type") == "invocation" and r.get("function") == fn]
            served = {r.get("instance") for r in invs}
            last_ts = max((r.get("ts", 0) for r in invs), default=0)
            ready = []
            for r in logs:
                if r.get("type") == "instance" and r.get("event") == "started" and r.get("function") == fn:
                    m = re.search(r"ready in ([0-9.]+) ms \(init ([0-9.]+) ms\)", r.get("message", ""))
                    if m:
                        ready.append({"instance": r.get("instance"), "readyMs": float(m.group(1)),
                                      "initMs": float(m.group(2)), "served": r.get("instance") in served,
                                      "readyBeforeLastResponse": r.get("ts", 0) <= last_ts})
            queue = [r["queueMs"] for r in logs if r.get("type") == "invocation" and r.get("function") == fn]
            per_round.append({
                "function": fn, "latencyMs": summary(ok), "errors": len(e),
                "firstError": e[0]["error"] if e else None,
                "instancesStarted": started, "instancesReadyAtLastResponse": sum(1 for c in ready if c["readyBeforeLastResponse"]),
                "instancesThatServed": len(served),
                "stemCellMisses": delta(before, after, "stemMisses", lambda p: p.startswith("nodejs:")),
                "queueMs": summary(queue), "coldStarts": ready, "samples": b["samples"]})
        peer_lat, peer_err, peer_rounds = [], 0, []
        for path in sorted(glob.glob(os.path.join(raw, "peer-burst-*.json"))):
            b = load(path)
            ok = [s["ms"] for s in b["samples"] if "error" not in s]
            e = [s for s in b["samples"] if "error" in s]
            peer_lat += ok
            peer_err += len(e)
            peer_rounds.append({"latencyMs": summary(ok), "errors": len(e), "samples": b["samples"]})
        nr = len(per_round)
        res["burst"] = {"nimbus": {"latencyMs": summary(lat), "errors": errors,
                                   "instancesStarted": started_total, "throttled": throttled,
                                   "rounds": per_round},
                        "peer": {"latencyMs": summary(peer_lat), "errors": peer_err,
                                 "rounds": peer_rounds}}
        n = res["burst"]["nimbus"]["latencyMs"]
        p = res["burst"]["peer"]["latencyMs"]
        rows.append(("burst errors (%d x %s req)" % (nr, len(per_round[0]["samples"])), "0",
                     errors, peer_err if peer_rounds else None, None, errors == 0))
        rows.append(("burst p50 ms", "", n.get("p50"), p.get("p50"), ratio(n.get("p50"), p.get("p50")), None))
        rows.append(("burst p99 ms", "<= 250 ms", n.get("p99"), p.get("p99"),
                     ratio(n.get("p99"), p.get("p99")), None if n.get("p99") is None else n["p99"] <= 250))
        rows.append(("burst instances started (per burst)", "",
                     started_total / nr if nr else None, 1 if peer_rounds else None, None, None))
        served_avg = sum(r["instancesThatServed"] for r in per_round) / nr
        rows.append(("burst instances that served (per burst)", "", served_avg,
                     1 if peer_rounds else None, None, None))
        if throttled:
            notes.append("burst: %d request(s) throttled (503)" % throttled)

    # Other work on the machine skews both sides; say so when the load shows it.
    try:
        before = float(settings.get("loadavgStart", "0").split()[0])
        if before > 0.5:
            notes.append("the machine was busy before the run (1-min load average %.2f on %s CPUs):"
                         " other processes shared the cores, so the figures are less reliable"
                         % (before, settings.get("cpus", "?")))
    except ValueError:
        pass

    res["table"] = [{"metric": m, "goal": g, "nimbus": o, "peer": p, "ratio": r, "met": ok}
                    for m, g, o, p, r, ok in rows]
    res["notes"] = notes
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)

    # ---------------------------------------------------------------- print
    s = settings
    print()
    print("functions: nimbus vs peer in the same run; server side on cpu %s, clients on cpu %s"
          % (s.get("serverCpu", "?"), s.get("clientCpu", "?")))
    print("  nimbus binary built %s (sha256 %s), repo %s with %s changed path(s), node %s"
          % (s.get("binaryMtime", "?"), s.get("binarySha256", "?"), s.get("gitHead", "?"),
             s.get("gitChangedPaths", "?"), s.get("node", "?")))
    print("  cold:  nimbus = 1st request to a function at zero instances (keep-alive client);"
          " peer = spawn `node server.js` -> 1st response")
    print("  warm:  wrk -t1 -c%s -d%s: nimbus -> function  vs  nginx -> node server.js"
          % (s.get("connections", "?"), s.get("duration", "?")))
    print("  burst: %s requests at once to a function at zero instances  vs  to a node server.js"
          " spawned at that moment (latency from its spawn)" % s.get("burst", "?"))
    print()
    print("%-38s %-10s %10s %10s %8s  %s" % ("metric", "goal", "nimbus", "peer", "ratio", "goal met"))
    for m, g, o, p, r, ok in rows:
        met = "" if ok is None else ("yes" if ok else "NO")
        print("%-38s %-10s %10s %10s %8s  %s" % (m, g, fmt(o), fmt(p), fmt(r, 2), met))
    print("ratio = nimbus / peer (the peer of 'warm' is nginx -> node): req/s higher is better,"
          " latencies lower")

    if "cold" in res and "nimbus" in res["cold"]:
        c = res["cold"]["nimbus"]
        b = c["breakdownMs"]
        print()
        print("cold start, where the time goes (worker's invocation records, %d of %d samples joined;"
              " p50 / p99 ms):" % (c["joinedWithLog"], c["latencyMs"].get("n", 0)))
        for key, label in (
                ("outsideWorkerMs", "router + client (client latency - worker durationMs)"),
                ("durationMs", "worker: request in -> response out (durationMs)"),
                ("queueMs", "  waiting for an instance (queueMs)"),
                ("beforeStartMs", "    before the cold start began (lookup, scheduling)"),
                ("readyMs", "    cold start: stem cell taken -> specialized"),
                ("initMs", "      launcher: load handler (initMs)"),
                ("readyMinusInitMs", "      take cell, write files, specialize HTTP"),
                ("forwardMs", "  request to the instance and back")):
            print("  %-58s %7s / %7s" % (label, fmt(b[key].get("p50"), 2), fmt(b[key].get("p99"), 2)))
        print("  stem-cell misses %s, cold starts counted %s, pool wait after each sample p50 %s ms"
              % (fmt(c["stemCellMisses"], 0), fmt(c["coldStarts"], 0), fmt(c["poolWaitMs"].get("p50"))))
    if "warm" in res:
        print()
        print("warm: nimbus ran %s instance(s) of the function (flags: %s)"
              % (res["warm"].get("nimbusInstances"), s.get("nimbusFlags") or "defaults"))
        cn_ = res["warm"].get("cpuUsPerRequest_nimbus")
        cg_ = res["warm"].get("cpuUsPerRequest_nginx")
        if cn_ and cg_:
            print("  server CPU per request (user+sys, /proc):  nimbus %.0f us + its node instances"
                  " %.0f us = %.0f us;  nginx %.0f us + node %.0f us = %.0f us"
                  % (cn_["proxy"], cn_["app"], cn_["total"], cg_["proxy"], cg_["app"], cg_["total"]))
    if "burst" in res:
        print()
        for i, r in enumerate(res["burst"]["nimbus"]["rounds"]):
            print("burst %d (/%s): p50 %s ms, p99 %s ms, max %s ms, errors %d; instances: %s started"
                  " (%s stem-cell misses), %s ready by the last response, %s served"
                  % (i, r["function"], fmt(r["latencyMs"].get("p50")), fmt(r["latencyMs"].get("p99")),
                     fmt(r["latencyMs"].get("max")), r["errors"], fmt(r["instancesStarted"], 0),
                     fmt(r["stemCellMisses"], 0), fmt(r["instancesReadyAtLastResponse"], 0),
                     r["instancesThatServed"]))
            cs = sorted(r["coldStarts"], key=lambda c: c["readyMs"])
            if cs:
                print("  cold starts (stem cell or spawn -> specialized, ms): "
                      + ", ".join("%.0f%s" % (c["readyMs"], "" if c["served"] else " (idle)") for c in cs))
    if notes:
        print()
        for n in notes:
            print("note: " + n)
    print()
    print("raw numbers: %s" % a.out)


if __name__ == "__main__":
    sys.exit(main())
