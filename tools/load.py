#!/usr/bin/env python3
"""Clew's load test (tools/load.sh runs it): wrk against `clew serve`'s read endpoints and OpenLineage
ingest, with the server's memory sampled each second. Two identical cycles of: each read endpoint in
turn, ingest alone, then `GET /api/runs` while ingest goes on; then the reads once more.

For each phase it prints requests per second, p50/p90/p99/max latency, errors (connect, read, write,
timeout, and non-2xx answers), and the server's resident memory (anonymous and file-backed) at the
phase's end. /api/health is the floor every other endpoint is compared to: what the HTTP stack does
with no work behind it, measured in the same run.

Afterwards: every ingest request answered 2xx is in the log (`openlineage.received`), `clew verify` and
`clew views verify` pass. Exits 1 when a request failed or timed out (10 s), an acknowledged event is
missing, the ledger does not verify, or the server's anonymous memory grew by more than
--max-growth-mib during the second cycle (the first may raise it: caches, the allocator's high-water
mark; the same work again must not).
Prints one JSON line (`load: {...}`) with every figure.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def die(msg):
    print(f"load: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def memory(pid):
    """Resident memory of a process in MiB: (anonymous, file-backed)."""
    anon = file = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) / 1024
            elif line.startswith("RssFile:"):
                file = int(line.split()[1]) / 1024
    return anon, file


def api(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clew", required=True, help="the clew executable")
    ap.add_argument("--seconds", type=int, default=30, help="seconds per phase")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-growth-mib", type=float, default=64)
    ap.add_argument("--seed-runs", type=int, default=10, help="runs of shard_etl added to the demo's ledger")
    ap.add_argument("--workdir", help="scratch directory (default: a new temporary one, removed on success)")
    args = ap.parse_args()
    clew_bin = os.path.abspath(args.clew)
    wrk = shutil.which("wrk")
    if not wrk:
        die("wrk is not installed (apt-get install wrk; tools/setup.sh installs it)")
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.lua")
    made = args.workdir is None
    work = args.workdir or tempfile.mkdtemp(prefix="clew-load-")
    os.makedirs(work, exist_ok=True)
    ledger = os.path.join(work, "clew.ledger")

    def clew(*a, check=True):
        p = subprocess.run([clew_bin, *a, "--ledger", ledger], capture_output=True, text=True, cwd=work)
        if check and p.returncode != 0:
            die(f"clew {' '.join(a)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
        return p.stdout

    # A ledger with something in it: the demo's four pipelines, and ten runs of the 201-task DAG.
    print(f"load: seeding a ledger (clew demo, {args.seed_runs} runs of shard_etl)", flush=True)
    p = subprocess.run([clew_bin, "demo", "--ledger", ledger], capture_output=True, text=True, cwd=work)
    if p.returncode != 0:
        die(f"clew demo exited {p.returncode}: {p.stderr.strip()[-400:]}")
    for _ in range(args.seed_runs):
        clew("run", "shard_etl", check=False)
    token = json.loads(clew("token", "create", "--name", "load", "--role", "operator", "--json"))["token"]
    out = open(os.path.join(work, "serve.out"), "w+")
    server = subprocess.Popen([clew_bin, "serve", "--port", "0", "--no-alerts", "--ledger", ledger],
                              stdout=out, stderr=subprocess.STDOUT, cwd=work)
    base = None
    deadline = time.monotonic() + 120
    while base is None and time.monotonic() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on http://127.0.0.1:"):
                base = "http://127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        if server.poll() is not None:
            die(f"clew serve exited {server.returncode}")
        time.sleep(0.05)
    if base is None:
        die("clew serve did not say it was listening within 120 s")

    samples = []
    sampling = threading.Event()

    def views_lag():
        """How many events the views are behind the log (/api/health: no token, no wait for the views)."""
        try:
            h = api(base, token, "/api/health")
            return int(h["events"]) - int(h["views"])
        except (OSError, KeyError, ValueError):
            return None

    def sampler():
        while not sampling.is_set():
            try:
                samples.append((time.monotonic(), *memory(server.pid), views_lag()))
            except OSError:
                return
            sampling.wait(1)

    threading.Thread(target=sampler, daemon=True).start()

    runs = api(base, token, "/api/runs?limit=1")
    datasets = api(base, token, "/api/datasets")
    if not runs or not datasets:
        die("the seeded ledger has no runs or datasets")
    run = runs[0]
    dataset = max(datasets, key=lambda d: d["chunks"])["name"]
    reads = [
        ("health", "/api/health"),
        ("runs", "/api/runs?limit=50"),
        ("run", f"/api/runs/{run['dag']}/{run['run']}"),
        ("datasets", "/api/datasets"),
        ("chunks", f"/api/chunks?dataset={dataset}"),
        ("lineage", f"/api/lineage?node=dataset:{dataset}&depth=5"),
    ]

    nonces = iter(range(1, 1 << 30))

    def wrk_run(name, path, mode="get", seconds=args.seconds):
        cmd = [wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s", "--timeout", "10s",
               "-H", f"Authorization: Bearer {token}", "-s", lua, base + path, "--", mode, str(next(nonces))]
        began = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        ended = time.monotonic()
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines:
            die(f"wrk for {name} exited {p.returncode}: {(p.stdout + p.stderr).strip()[-400:]}")
        r = json.loads(lines[-1])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        anon, file = memory(server.pid)
        r["rss_anon_mib"], r["rss_file_mib"] = round(anon, 1), round(file, 1)
        lags = [x[3] for x in samples if began <= x[0] <= ended and x[3] is not None]
        r["views_lag_max"] = max(lags, default=None)
        errors = sum(r["errors"].values())
        print(f"  {name:16} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:7.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms"
              f"  max {r['max_us'] / 1000:7.1f} ms  errors {errors}  rss anon {anon:6.1f} MiB file {file:6.1f} MiB"
              f"  views lag max {r['views_lag_max']}", flush=True)
        return r

    results = {}
    print(f"load: {args.seconds} s per phase, {args.connections} connections, {args.threads} wrk threads, server {base}")
    before = int(json.loads(clew("stats", "--json"))["events"])
    ingest_phases = []
    # Two identical cycles: memory may rise in the first (caches, the allocator's high-water mark) and
    # must not rise again in the second, or it grows with the work done.
    marks = []
    for cycle in (1, 2):
        print(f"load: cycle {cycle}: reads")
        for name, path in reads:
            results[f"{name}#{cycle}"] = wrk_run(name, path)
        print(f"load: cycle {cycle}: ingest")
        results[f"ingest#{cycle}"] = wrk_run("ingest", "/api/v1/lineage", mode="ingest")
        print(f"load: cycle {cycle}: reads during ingest")
        mixed = {}

        def background_ingest():
            mixed["ingest"] = wrk_run("ingest (mixed)", "/api/v1/lineage", mode="ingest", seconds=args.seconds + 1)

        t = threading.Thread(target=background_ingest)
        t.start()
        time.sleep(0.5)
        mixed["runs"] = wrk_run("runs (mixed)", "/api/runs?limit=50")
        t.join()
        results[f"ingest (mixed)#{cycle}"] = mixed["ingest"]
        results[f"runs (mixed)#{cycle}"] = mixed["runs"]
        ingest_phases += [f"ingest#{cycle}", f"ingest (mixed)#{cycle}"]
        marks.append(memory(server.pid)[0])
    print("load: reads at the end")
    for name, path in reads:
        results[f"{name}#end"] = wrk_run(name, path)

    sampling.set()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        die("clew serve did not stop within 60 s of SIGTERM")

    failures = [f"{k}: {v['errors']}" for k, v in results.items() if sum(v["errors"].values())]
    acknowledged = sum(results[k]["requests"] - results[k]["errors"]["status"] for k in ingest_phases)
    received = len(clew("log", "--json", "--type", "openlineage.received", "--from", str(before + 1)).splitlines())
    # wrk counts only answers it read before its deadline; a request in flight then may still be recorded
    # (one per connection and ingest phase).
    in_flight = len(ingest_phases) * args.connections
    if received < acknowledged or received > acknowledged + in_flight:
        failures.append(f"{acknowledged} ingest requests answered 2xx, {received} recorded")
    v = subprocess.run([clew_bin, "verify", "--ledger", ledger], capture_output=True, text=True, cwd=work)
    vv = subprocess.run([clew_bin, "views", "verify", "--ledger", ledger], capture_output=True, text=True, cwd=work)
    if v.returncode != 0:
        failures.append("verify: " + (v.stdout + v.stderr).strip()[-300:])
    if vv.returncode != 0:
        failures.append("views verify: " + (vv.stdout + vv.stderr).strip()[-300:])
    growth = marks[1] - marks[0]
    peak_anon = max(s[1] for s in samples)
    health = results["health#1"]["rps"]
    summary = {
        "seconds_per_phase": args.seconds, "connections": args.connections,
        "phases": {k: {"rps": round(r["rps"]), "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                       "max_ms": r["max_us"] / 1000, "errors": sum(r["errors"].values()),
                       "ratio_to_health": round(r["rps"] / health, 3),
                       "rss_anon_mib": r["rss_anon_mib"], "rss_file_mib": r["rss_file_mib"],
                       "views_lag_max": r["views_lag_max"]} for k, r in results.items()},
        "ingest_acknowledged": acknowledged, "ingest_recorded": received,
        "anon_mib_after_cycle_1": round(marks[0], 1), "anon_mib_after_cycle_2": round(marks[1], 1),
        "anon_growth_mib": round(growth, 1), "peak_anon_mib": round(peak_anon, 1),
        "events_before": before,
    }
    print(f"load: ingest {acknowledged} acknowledged, {received} recorded; server anonymous memory "
          f"{marks[0]:.1f} MiB after cycle 1, {marks[1]:.1f} MiB after cycle 2 (peak {peak_anon:.1f})")
    print("load: " + json.dumps(summary))
    if growth > args.max_growth_mib:
        failures.append(f"the server's anonymous memory grew by {growth:.1f} MiB in the second cycle (limit {args.max_growth_mib})")
    if failures:
        die("; ".join(failures) + f" (scratch kept in {work})")
    if made:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
