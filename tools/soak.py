#!/usr/bin/env python3
"""Clew's soak: kill -9 rounds, then several writers at once for some minutes (tools/soak.sh runs it).

Phase 1, kill rounds (--rounds, default 1000), in turn:
  append   `clew append --json --commit-every 25` of 100-800 events to a stream of its own, killed at a
           random time (half of them after the first acknowledged commit). Every acknowledged event
           must be there, with its payload and seq; only whole commits are visible.
  run      `clew run shard_etl` (201 tasks) killed at a random time; then `clew resubmit` of that run
           must restart it with no manual clean-up and end it (succeeded, or failed by the DAG's own
           transient faults: exit 0 or 3, never an error).
  ingest   `clew serve` taking OpenLineage events (one per request, or batches) killed at a random
           time; every event answered 2xx must be in the log, exactly once.
  rebuild  `clew rebuild` killed at a random time; the old views stay in place and valid.
After every round, `clew verify` and `clew views verify` must pass. A fresh ledger is started every
--rounds-per-ledger rounds, so that a full verify after each round stays cheap.

Phase 2, load (--minutes, default 5): on one ledger at once, --appenders `clew append` processes in
loops, `clew run` in a loop, one thread posting OpenLineage events to `clew serve` and one reading its
API. Afterwards: every acknowledged event present, no 5xx, `verify` and `views verify` clean.

Prints a summary and one JSON line (`soak: {...}`) of the figures; exits 1 on the first broken
promise, naming the round, what was killed and what was found.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid


class Broken(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Broken(what)


class Clew:
    def __init__(self, binary, ledger):
        self.binary = binary
        self.ledger = ledger

    def argv(self, args):
        return [self.binary] + args + ["--ledger", self.ledger]

    def run(self, args, stdin=None, timeout=600):
        p = subprocess.run(self.argv(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                           cwd=os.path.dirname(self.ledger))
        return p.returncode, p.stdout, p.stderr

    def ok(self, args, stdin=None):
        rc, out, err = self.run(args, stdin)
        check(rc == 0, f"clew {' '.join(args)} exited {rc}: {err.strip()[-400:]}")
        return out

    def start(self, args, stdout, stderr=subprocess.DEVNULL, stdin=None):
        return subprocess.Popen(self.argv(args), stdin=stdin, stdout=stdout, stderr=stderr,
                                cwd=os.path.dirname(self.ledger))

    def head(self):
        out = self.ok(["stats", "--json"])
        return json.loads(out)["events"]

    def events(self, *filters):
        out = self.ok(["log", "--json"] + list(filters))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def verify_all(self):
        rc, out, err = self.run(["verify"])
        check(rc == 0, f"verify exited {rc}: {(out + err).strip()[-600:]}")
        rc, out, err = self.run(["views", "verify"])
        check(rc == 0, f"views verify exited {rc}: {(out + err).strip()[-600:]}")


def kill9(p):
    running = p.poll() is None
    try:
        p.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    return running


def event_line(stream, i, kind="soak.append"):
    return json.dumps({"type": kind, "stream": stream, "payload": {"i": i}})


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    # A kill can cut the last line: complete lines only.
    return data.split("\n")[:-1]


def ol_event(run_id, event_type, job):
    return {
        "eventType": event_type,
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "producer": "https://github.com/clew/soak",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "soak", "name": job},
        "inputs": [{"namespace": "soak", "name": "in." + job}],
        "outputs": [{"namespace": "soak", "name": "out." + job}],
    }


def request(url, token, body=None, timeout=10):
    """The HTTP status of a GET, or of a POST of `body` as JSON."""
    headers = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def start_server(clew, workdir, name):
    out = open(os.path.join(workdir, name + ".out"), "w+")
    p = clew.start(["serve", "--port", "0", "--no-alerts"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on http://127.0.0.1:"):
                return p, "http://127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        check(p.poll() is None, f"clew serve exited {p.returncode} before listening")
        time.sleep(0.02)
    kill9(p)
    raise Broken("clew serve did not say it was listening within 120 s")


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = args.workdir
        self.stats = {k: {"rounds": 0, "killed_midway": 0} for k in ("append", "run", "ingest", "rebuild")}
        self.stats["append"]["acknowledged"] = 0
        self.stats["append"]["present"] = 0
        self.stats["run"]["resubmitted"] = 0
        self.stats["ingest"]["acknowledged"] = 0
        self.ledgers = 0
        self.clew = None
        self.token = None
        self.run_seconds = 1.5
        self.rebuild_seconds = 0.5

    def new_ledger(self):
        self.ledgers += 1
        d = os.path.join(self.workdir, f"ledger-{self.ledgers}")
        os.makedirs(d)
        self.clew = Clew(self.args.clew, os.path.join(d, "clew.ledger"))
        self.clew.ok(["init"])
        self.token = json.loads(self.clew.ok(["token", "create", "--name", "soak", "--role", "operator", "--json"]))["token"]
        # A first run and a full rebuild: views exist, and how long each takes sets the kill window.
        t = time.monotonic()
        self.clew.run(["run", "shard_etl"])
        self.run_seconds = time.monotonic() - t
        t = time.monotonic()
        self.clew.ok(["rebuild"])
        self.rebuild_seconds = time.monotonic() - t

    # -- phase 1 --------------------------------------------------------------------------------------

    def round_append(self, n):
        st = self.stats["append"]
        before = self.clew.head()
        stream = f"soak/{n}"
        count = self.rng.randint(100, 800)
        lines = "\n".join(event_line(stream, i) for i in range(count)) + "\n"
        out_path = os.path.join(self.workdir, "append.out")
        with open(out_path, "w") as out, tempfile.TemporaryFile("w+") as inp:
            inp.write(lines)
            inp.seek(0)
            p = self.clew.start(["append", "--json", "--commit-every", "25"], stdout=out, stdin=inp)
            if n % 2 == 1:
                deadline = time.monotonic() + 60
                while p.poll() is None and not read_lines(out_path) and time.monotonic() < deadline:
                    time.sleep(0.001)
            time.sleep(self.rng.uniform(0, 0.04 if n % 2 == 1 else 0.15))
            if kill9(p):
                st["killed_midway"] += 1
        acknowledged = 0
        for line in read_lines(out_path):
            try:
                last = json.loads(line).get("last")
            except ValueError:
                continue
            if isinstance(last, int):
                acknowledged = max(acknowledged, last - before)
        events = self.clew.events("--stream", stream)
        check(len(events) >= acknowledged, f"{acknowledged} events acknowledged, {len(events)} present")
        check(len(events) % 25 == 0 or len(events) == count,
              f"{len(events)} of {count} events present: not whole commits of 25")
        for i, e in enumerate(events):
            check(e["seq"] == before + i + 1 and e["payload"]["i"] == i,
                  f"event {i} of the stream is seq {e['seq']} payload {e['payload']}, expected seq {before + i + 1}")
        check(self.clew.head() == before + len(events), "events outside the stream appeared")
        st["acknowledged"] += acknowledged
        st["present"] += len(events)

    def round_run(self, n):
        st = self.stats["run"]
        before = self.clew.head()
        p = self.clew.start(["run", "shard_etl"], stdout=subprocess.DEVNULL)
        time.sleep(self.rng.uniform(0.02, self.run_seconds * 1.1))
        if kill9(p):
            st["killed_midway"] += 1
        started = self.clew.events("--type", "run.started", "--from", str(before + 1))
        for e in started:
            run_id = e["stream"].rsplit("/", 1)[1]
            rc, out, err = self.clew.run(["resubmit", "shard_etl", run_id])
            check(rc in (0, 3), f"resubmit of {run_id} exited {rc}: {(out + err).strip()[-400:]}")
            state = json.loads(self.clew.ok(["run", "show", run_id, "--json"]))["run"]
            check(state.get("state") in ("succeeded", "failed"), f"run {run_id} is {state.get('state')} after resubmit")
            st["resubmitted"] += 1

    def round_ingest(self, n):
        st = self.stats["ingest"]
        server, base = start_server(self.clew, self.workdir, "serve")
        acked = []
        stop = threading.Event()

        def producer():
            batch_mode = n % 2 == 1
            while not stop.is_set():
                job = f"job{self.rng.randint(0, 9)}"
                if batch_mode:
                    events = [ol_event(str(uuid.uuid4()), "START", job) for _ in range(5)]
                    try:
                        status = request(base + "/api/v1/lineage/batch", self.token, events)
                    except (OSError, urllib.error.URLError):
                        return
                    if 200 <= status < 300:
                        acked.extend(e["run"]["runId"] for e in events)
                    elif status >= 500:
                        acked.append(("5xx", status))
                else:
                    e = ol_event(str(uuid.uuid4()), "START", job)
                    try:
                        status = request(base + "/api/v1/lineage", self.token, e)
                    except (OSError, urllib.error.URLError):
                        return
                    if 200 <= status < 300:
                        acked.append(e["run"]["runId"])
                    elif status >= 500:
                        acked.append(("5xx", status))

        before = self.clew.head()
        t = threading.Thread(target=producer)
        t.start()
        time.sleep(self.rng.uniform(0.01, 1.0))
        if kill9(server):
            st["killed_midway"] += 1
        stop.set()
        t.join()
        bad = [a for a in acked if isinstance(a, tuple)]
        check(not bad, f"the server answered {bad[0][1] if bad else ''}")
        received = self.clew.events("--type", "openlineage.received", "--from", str(before + 1))
        seen = {}
        for e in received:
            rid = e["stream"].split("/", 1)[1]
            seen[rid] = seen.get(rid, 0) + 1
        missing = [r for r in acked if r not in seen]
        check(not missing, f"{len(missing)} of {len(acked)} acknowledged OpenLineage events are missing, e.g. run {missing[:1]}")
        twice = [r for r, c in seen.items() if c > 1]
        check(not twice, f"OpenLineage run {twice[:1]} recorded more than once")
        st["acknowledged"] += len(acked)

    def round_rebuild(self, n):
        st = self.stats["rebuild"]
        p = self.clew.start(["rebuild"], stdout=subprocess.DEVNULL)
        time.sleep(self.rng.uniform(0.02, self.rebuild_seconds * 1.1))
        if kill9(p):
            st["killed_midway"] += 1

    def phase1(self):
        kinds = ["append", "run", "ingest", "rebuild"]
        t0 = time.monotonic()
        for n in range(self.args.rounds):
            if n % self.args.rounds_per_ledger == 0:
                self.new_ledger()
            kind = kinds[n % 4]
            try:
                getattr(self, "round_" + kind)(n)
                self.stats[kind]["rounds"] += 1
                self.clew.verify_all()
            except Broken as e:
                raise Broken(f"round {n} ({kind}, ledger {self.clew.ledger}): {e}")
            if (n + 1) % 50 == 0:
                print(f"soak: {n + 1} rounds in {time.monotonic() - t0:.0f} s", flush=True)
        return time.monotonic() - t0

    # -- phase 2 --------------------------------------------------------------------------------------

    def phase2(self):
        self.new_ledger()
        clew = self.clew
        server, base = start_server(clew, self.workdir, "serve-load")
        deadline = time.monotonic() + self.args.minutes * 60
        lock = threading.Lock()
        figures = {"append_acknowledged": 0, "append_batches": 0, "runs": 0, "ol_acknowledged": 0,
                   "reads": 0, "errors": []}
        acked_streams = {}

        def appender(k):
            i = 0
            while time.monotonic() < deadline:
                stream = f"load/{k}/{i}"
                lines = "\n".join(event_line(stream, j, "soak.load") for j in range(200)) + "\n"
                rc, out, err = clew.run(["append", "--json", "--commit-every", "50"], stdin=lines)
                if rc != 0:
                    with lock:
                        figures["errors"].append(f"append exited {rc}: {err.strip()[-200:]}")
                    return
                with lock:
                    acked_streams[stream] = 200
                    figures["append_acknowledged"] += 200
                    figures["append_batches"] += 1
                i += 1

        def runner():
            while time.monotonic() < deadline:
                rc, out, err = clew.run(["run", "csv_orders"])
                if rc != 0:
                    with lock:
                        figures["errors"].append(f"run exited {rc}: {err.strip()[-200:]}")
                    return
                with lock:
                    figures["runs"] += 1

        ol_acked = []

        def ingester():
            while time.monotonic() < deadline:
                events = [ol_event(str(uuid.uuid4()), t, "load") for t in ("START", "COMPLETE")]
                status = request(base + "/api/v1/lineage/batch", self.token, events, timeout=60)
                if not 200 <= status < 300:
                    with lock:
                        figures["errors"].append(f"OpenLineage batch answered {status}")
                    return
                ol_acked.extend(e["run"]["runId"] for e in events[:1])

        def reader():
            paths = ["/api/health", "/api/runs", "/api/dags", "/api/datasets",
                     "/api/v1/namespaces", "/api/v1/lineage?nodeId=dataset:soak:out.load&depth=2"]
            while time.monotonic() < deadline:
                for path in paths:
                    status = request(base + path, self.token, timeout=60)
                    if status >= 500 or status in (401, 403):
                        with lock:
                            figures["errors"].append(f"GET {path} answered {status}")
                        return
                    with lock:
                        figures["reads"] += 1

        threads = [threading.Thread(target=appender, args=(k,)) for k in range(self.args.appenders)]
        threads += [threading.Thread(target=f) for f in (runner, ingester, reader)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill9(server)
            figures["errors"].append("clew serve did not stop within 60 s of SIGTERM")
        check(not figures["errors"], "; ".join(figures["errors"][:3]))
        loads = clew.events("--type", "soak.load")
        per_stream = {}
        for e in loads:
            per_stream[e["stream"]] = per_stream.get(e["stream"], 0) + 1
        short = [s for s, c in acked_streams.items() if per_stream.get(s, 0) != c]
        check(not short, f"{len(short)} acknowledged append batches are not whole in the log, e.g. {short[:1]}")
        received = {e["stream"].split("/", 1)[1] for e in clew.events("--type", "openlineage.received")}
        missing = [r for r in ol_acked if r not in received]
        check(not missing, f"{len(missing)} acknowledged OpenLineage runs missing")
        figures["ol_acknowledged"] = len(ol_acked) * 2
        clew.verify_all()
        figures["seconds"] = round(elapsed)
        figures["events"] = clew.head()
        del figures["errors"]
        return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clew", required=True, help="the clew executable")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--rounds-per-ledger", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--appenders", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", help="scratch directory (default: a new temporary one, removed on success)")
    args = ap.parse_args()
    args.clew = os.path.abspath(args.clew)
    made = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="clew-soak-")
    soak = Soak(args)
    try:
        t1 = soak.phase1() if args.rounds > 0 else 0
        p1 = {k: dict(v) for k, v in soak.stats.items()}
        print(f"soak: phase 1: {args.rounds} kill -9 rounds in {t1:.0f} s over {soak.ledgers} ledgers, verify and views verify clean after each")
        for kind, s in p1.items():
            print(f"  {kind:8} " + ", ".join(f"{k} {v}" for k, v in s.items()))
        p2 = soak.phase2() if args.minutes > 0 else {}
        if p2:
            print(f"soak: phase 2: {p2['seconds']} s of {args.appenders} appenders, runs, ingest and reads at once: "
                  f"{p2['append_acknowledged']} appended events, {p2['runs']} runs, {p2['ol_acknowledged']} OpenLineage events, "
                  f"{p2['reads']} reads, no error; {p2['events']} events, verify and views verify clean")
        print("soak: " + json.dumps({"rounds": args.rounds, "seconds": round(t1), "phase1": p1, "phase2": p2}))
    except (Broken, subprocess.TimeoutExpired) as e:
        print(f"soak: FAILED: {e}\n  scratch kept in {args.workdir}", file=sys.stderr)
        sys.exit(1)
    if made:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
