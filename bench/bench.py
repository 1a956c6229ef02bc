#!/usr/bin/env python3
"""Side-by-side benchmark: PocketBase (the reference) and Plinth (the candidate) with identical
data and workloads, plus the machine's ceilings (a bare axum server, raw SQLite).

    bench.py --plinth BIN --pocketbase BIN --hello BIN --sqlite-ceiling BIN
             [--profile full|smoke] [--out-dir DIR] [--only w1,w2] [--port-base N]

Normally started by bench/run.sh, which installs the tools and builds the binaries. Both servers
run at the same time, pinned to the server CPU, each on a fresh data dir; every workload runs
against one and then the other (alternating which goes first), with wrk or the realtime client
pinned to the other CPU. Results: a table on stdout and JSON in the out dir.

Exit status: 0 when the run completed (even if Plinth could not serve some workloads: those are
reported as unsupported), 1 when the harness itself is broken - the reference PocketBase failed
setup, a probe, a workload or realtime delivery, a tool failed, or a ceiling could not be
measured - so `--smoke` in CI catches a harness that rots.
"""
import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import realtime

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKLOADS = ["health", "view", "list", "list_skiptotal", "list_expand", "create", "update",
             "auth", "create_hook", "route_hook", "realtime"]
PROFILES = {
    # Each wrk figure is the median of `repeat` runs of `duration` s after `warmup` s.
    # `subscribers` is a comma-separated list: one realtime row per count.
    "full": dict(duration=10, warmup=2, repeat=3, connections=32, seed=10000, subscribers="100",
                 events=50, timeout=10, settle=1.0, ceiling_seconds=3.0, ceiling_repeat=3,
                 ceiling_rows=10000),
    # Seconds per workload and a few hundred records: proves every path works, measures little.
    "smoke": dict(duration=1, warmup=0, repeat=1, connections=4, seed=300, subscribers="5",
                  events=5, timeout=5, settle=0.1, ceiling_seconds=0.2, ceiling_repeat=1,
                  ceiling_rows=2000),
}
SU_EMAIL, SU_PASSWORD = "bench-admin@example.com", "bench-admin-pass-123"
USER_EMAIL, OTHER_EMAIL = "bench-user@example.com", "bench-other@example.com"
# The auth workload signs in as these in turn: with 32 connections each identity then has a
# few attempts in flight, as real clients would (Plinth caps in-flight attempts per identity
# and address at 10, issue #11).
LOGIN_USERS = [f"bench-login-{i}@example.com" for i in range(8)]
USER_PASSWORD = "bench-password-123"
RULE = "published = true || author = @request.auth.id"
LIST_FILTER = "score > 500 && published = true"
BODY_TEXT = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
             "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud.")
REF, CAND = "pocketbase", "plinth"


class BenchError(Exception):
    """Something the harness cannot work around (fatal when it concerns the reference)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Processes


def proc_cpu_seconds(pid):
    """utime + stime of a process (all threads), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssPeak:
    """Peak resident set size of a process over a measured interval.

    Resets the kernel's high-water mark (VmHWM) through /proc/PID/clear_refs when allowed, and
    also samples VmRSS every 50 ms, so the figure is right even where the reset is refused.
    """

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, proc_status_kb(self.pid, "VmRSS") or 0)
            self.stop.wait(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        if self.hwm_reset:
            self.peak = max(self.peak, proc_status_kb(self.pid, "VmHWM") or 0)
        return round(self.peak / 1024, 1)


class Server:
    """One server under test: fresh data dir, superuser, `serve` pinned to the server CPUs."""

    def __init__(self, role, binary, port, cpus, workdir, ask_version=True):
        self.role, self.binary, self.port, self.cpus = role, binary, port, cpus
        self.dir = os.path.join(workdir, role)
        self.data = os.path.join(self.dir, "data")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None
        self.start_error = None
        self.version = version_of(binary) if ask_version else None

    def start(self, timeout=20.0):
        os.makedirs(self.data)
        # Both servers load the same hook file from pb_hooks beside the data dir.
        hooks = os.path.join(self.dir, "pb_hooks")
        os.makedirs(hooks, exist_ok=True)
        shutil.copy(os.path.join(HERE, "hooks", "bench.pb.js"), hooks)
        log_path = os.path.join(self.dir, "server.log")
        # The working directory is the scratch dir, so PocketBase's ./pb_public and the
        # pb_migrations/pb_hooks dirs next to the data dir start empty.
        up = subprocess.run([self.binary, "superuser", "upsert", SU_EMAIL, SU_PASSWORD,
                             "--dir", self.data], cwd=self.dir, capture_output=True, text=True,
                            timeout=60)
        if up.returncode != 0:
            raise BenchError(f"{self.role}: superuser upsert failed (rc {up.returncode}): "
                             f"{(up.stderr or up.stdout).strip()[-400:]}")
        with open(log_path, "w") as logf:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cpus, self.binary, "serve",
                 f"--http=127.0.0.1:{self.port}", f"--dir={self.data}"],
                cwd=self.dir, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.role} exited during startup (rc {self.proc.returncode}):"
                                 f" {tail(log_path)}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/api/health")
                if c.getresponse().status == 200:
                    exe = os.path.realpath(f"/proc/{self.proc.pid}/exe")
                    log(f"{self.role} ready on {self.url} (pid {self.proc.pid}, {exe}, "
                        f"cpus {self.cpus})")
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.role} did not answer /api/health within {timeout:.0f} s: "
                         f"{tail(log_path)}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip().replace("\n", " | ")
    except OSError:
        return "(no log)"


def version_of(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if out.returncode == 0 and text else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# --------------------------------------------------------------------------------------------
# HTTP setup


class Api:
    """Tiny JSON client with one keep-alive connection per thread."""

    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()

    def call(self, method, path, body=None, token=None, ok=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            headers["Authorization"] = token
        for attempt in (1, 2):  # retry once on a stale keep-alive connection
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                status, raw = resp.status, resp.read()
                break
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise BenchError(f"{method} {path}: cannot talk to {self.host}:{self.port}: "
                                     f"{e}")
        if status not in ok:
            raise BenchError(f"{method} {path} -> HTTP {status}: "
                             f"{raw[:300].decode(errors='replace')}")
        try:
            return status, (json.loads(raw) if raw.strip() else None)
        except ValueError:
            raise BenchError(f"{method} {path} -> HTTP {status} with a body that is not JSON: "
                             f"{raw[:200]!r}")


def q(**params):
    return "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def setup(server, n_seed, seed_workers=4):
    """Same collections, rules, users and seeded records on every server (fresh data dir)."""
    api = Api(server.url)
    step = "superuser login"
    try:
        _, r = api.call("POST", "/api/collections/_superusers/auth-with-password",
                        {"identity": SU_EMAIL, "password": SU_PASSWORD})
        su = r["token"]
        step = "realtime settings"
        # Plinth caps realtime clients per IP (1,000) and in total (10,000); every benchmark
        # subscriber comes from loopback. PocketBase ignores the unknown section.
        api.call("PATCH", "/api/settings",
                 {"realtime": {"maxClients": 1_000_000, "maxClientsPerIp": 1_000_000}},
                 token=su, ok=(200, 400))
        step = "users collection"
        status, users = api.call("GET", "/api/collections/users", token=su, ok=(200, 404))
        if status == 404:
            _, users = api.call("POST", "/api/collections", {
                "name": "users", "type": "auth",
                "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"},
                token=su)
        if users.get("type") != "auth":
            raise BenchError("collection 'users' is not an auth collection")
        step = "users"
        pw = {"password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD}
        user_id = api.call("POST", "/api/collections/users/records",
                           {"email": USER_EMAIL, **pw}, token=su)[1]["id"]
        other_id = api.call("POST", "/api/collections/users/records",
                            {"email": OTHER_EMAIL, **pw}, token=su)[1]["id"]
        for email in LOGIN_USERS:
            api.call("POST", "/api/collections/users/records", {"email": email, **pw}, token=su)
        step = "posts collection"
        api.call("POST", "/api/collections", {
            "name": "posts", "type": "base",
            "listRule": RULE, "viewRule": RULE,
            "createRule": '@request.auth.id != ""', "updateRule": "author = @request.auth.id",
            "deleteRule": None,
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "body", "type": "text"},
                {"name": "score", "type": "number"},
                {"name": "published", "type": "bool"},
                {"name": "author", "type": "relation", "collectionId": users["id"],
                 "maxSelect": 1},
            ],
            "indexes": ["CREATE INDEX idx_posts_score ON posts (score)"],
        }, token=su)
        step = "hooked collection"
        hooked = {"name": "hooked", "type": "base", "createRule": '@request.auth.id != ""',
                  "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"},
                             {"name": "score", "type": "number"},
                             {"name": "published", "type": "bool"},
                             {"name": "author", "type": "relation",
                              "collectionId": users["id"], "maxSelect": 1}]}
        api.call("POST", "/api/collections", hooked, token=su)
        step = "seeding"
        rng = random.Random(42)
        docs = [{"title": f"post {i}", "body": BODY_TEXT, "score": rng.randint(0, 1000),
                 "published": rng.random() < 0.5,
                 "author": user_id if i % 2 == 0 else other_id} for i in range(n_seed)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(seed_workers) as ex:
            ids = list(ex.map(lambda d: api.call("POST", "/api/collections/posts/records", d,
                                                 token=su)[1]["id"], docs))
        seed_s = time.perf_counter() - t0
        step = "user login"
        _, r = api.call("POST", "/api/collections/users/auth-with-password",
                        {"identity": USER_EMAIL, "password": USER_PASSWORD})
        token = r["token"]
    except (BenchError, KeyError, TypeError) as e:
        raise BenchError(f"setup failed at '{step}': {e}")
    own = [i for i, d in zip(ids, docs) if d["author"] == user_id]
    visible = [i for i, d in zip(ids, docs) if d["published"] or d["author"] == user_id]
    return {"api": api, "su_token": su, "user_token": token, "user_id": user_id,
            "own_ids": own[:200],
            "visible_ids": visible[:200],
            "summary": {"seeded": len(ids), "seed_seconds": round(seed_s, 2),
                        "seed_rps": round(len(ids) / seed_s, 1) if seed_s else None}}


def workload_specs(st):
    """name -> (method, paths, body, token, probe(response json))."""
    tok = st["user_token"] if st else None
    lst = "/api/collections/posts/records" + q(filter=LIST_FILTER, sort="-score", perPage=20)

    def list_ok(r):
        assert len(r["items"]) == 20, f"{len(r['items'])} items instead of 20"
        assert all(i["published"] and i["score"] > 500 for i in r["items"]), "filter ignored"
        scores = [i["score"] for i in r["items"]]
        assert scores == sorted(scores, reverse=True), "sort ignored"

    def counted(r):
        list_ok(r)
        assert r["totalItems"] > 20, f"totalItems {r['totalItems']}"

    def skipped(r):
        list_ok(r)
        assert r["totalItems"] == -1, f"totalItems {r['totalItems']} with skipTotal"

    def expand_ok(r):
        list_ok(r)
        assert any("author" in i.get("expand", {}) for i in r["items"]), "author not expanded"

    def health_ok(r):
        assert r["code"] == 200, r

    def hooked_ok(r):
        assert r["score"] == 43, f"the request hook did not run (score {r['score']})"

    def route_ok(r):
        assert r == {"hello": "world", "n": 1}, r

    specs = {"health": ("GET", ["/api/health"], None, None, health_ok)}
    if not st:
        return specs
    specs.update({
        "view": ("GET", [f"/api/collections/posts/records/{i}" for i in st["visible_ids"]],
                 None, tok, lambda r: r["id"]),
        "list": ("GET", [lst], None, tok, counted),
        "list_skiptotal": ("GET", [lst + "&skipTotal=1"], None, tok, skipped),
        "list_expand": ("GET", [lst + "&expand=author"], None, tok, expand_ok),
        "create": ("POST", ["/api/collections/posts/records"],
                   {"title": "new post", "body": BODY_TEXT, "score": 42, "published": False,
                    "author": st["user_id"]}, tok, lambda r: r["id"]),
        "update": ("PATCH", [f"/api/collections/posts/records/{i}" for i in st["own_ids"]],
                   {"title": "updated title", "body": "updated body"}, tok,
                   lambda r: r["id"]),
        "create_hook": ("POST", ["/api/collections/hooked/records"],
                        {"title": "new post", "body": BODY_TEXT, "score": 42, "published": False,
                         "author": st["user_id"]}, tok, hooked_ok),
        "route_hook": ("GET", ["/bench/hello/world"], None, None,
                       route_ok),
        "auth": ("POST", ["/api/collections/users/auth-with-password"],
                 [{"identity": e, "password": USER_PASSWORD} for e in LOGIN_USERS], None,
                 lambda r: r["token"]),
    })
    return specs


# --------------------------------------------------------------------------------------------
# Measurement


def run_wrk(cfg, server, other, method, paths, body, token, duration):
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        out = os.path.join(tmp, "out.json")
        bodies = body if isinstance(body, list) else None
        env = dict(os.environ, WRK_METHOD=method,
                   WRK_BODY=json.dumps(bodies[0] if bodies else body) if body else "",
                   WRK_BODIES="\n".join(json.dumps(b) for b in bodies) if bodies else "",
                   WRK_TOKEN=token or "", WRK_PATHS="\n".join(paths), WRK_OUT=out)
        cmd = ["taskset", "-c", cfg.load_cpus, "wrk", "-t1", f"-c{cfg.connections}",
               f"-d{duration}s", "--timeout", f"{cfg.timeout}s",
               "-s", os.path.join(HERE, "wrk.lua"), server.url + "/"]
        cpu0, other0 = proc_cpu_seconds(server.pid), other_cpu(other)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        cpu1, other1 = proc_cpu_seconds(server.pid), other_cpu(other)
        if proc.returncode != 0 or not os.path.exists(out):
            raise BenchError(f"wrk failed (rc={proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[:300]}")
        with open(out) as f:
            r = json.load(f)
    lat = r["latency_us"]
    # wrk stops with one request in flight per connection; let the server drain them.
    time.sleep(min(cfg.timeout, lat["max"] / 1e6) + 0.1)
    cpu2 = proc_cpu_seconds(server.pid)
    secs = r["duration_us"] / 1e6
    res = {"rps": round(r["requests"] / secs, 1) if secs else 0.0,
           "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000,
           "p99_ms": lat["p99"] / 1000, "max_ms": lat["max"] / 1000,
           "requests": r["requests"], "errors": sum(r["errors"].values()),
           "error_detail": r["errors"]}
    if None not in (cpu0, cpu1, cpu2) and r["requests"]:
        res["server_cpu_util"] = round((cpu1 - cpu0) / secs, 3)
        res["server_cpu_us_per_req"] = round((cpu2 - cpu0) * 1e6 /
                                             (r["requests"] + cfg.connections), 1)
    if None not in (other0, other1):
        # CPU the other (idle) server used meanwhile: background noise on the shared core.
        res["other_server_cpu_util"] = round((other1 - other0) / secs, 3)
    return res


def other_cpu(server):
    return proc_cpu_seconds(server.pid) if server and server.alive() else None


def measure(cfg, server, other, name, spec, api):
    """Probe once (the response must be right), then warm up and measure with wrk."""
    method, paths, body, token, probe = spec
    _, resp = api.call(method, paths[0], body[0] if isinstance(body, list) else body, token)
    try:
        probe(resp)
    except (AssertionError, KeyError, TypeError, IndexError) as e:
        raise BenchError(f"probe response is wrong ({e}): {json.dumps(resp)[:300]}")
    rss = RssPeak(server.pid)
    if cfg.warmup > 0:
        run_wrk(cfg, server, other, method, paths, body, token, cfg.warmup)
    runs = [run_wrk(cfg, server, other, method, paths, body, token, cfg.duration)
            for _ in range(cfg.repeat)]
    peak = rss.finish()
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median run
    res = dict(best, rps=statistics.median(r["rps"] for r in runs),
               rps_runs=[r["rps"] for r in runs], errors=sum(r["errors"] for r in runs),
               requests=sum(r["requests"] for r in runs), peak_rss_mib=peak,
               loadavg=loadavg())
    cpu_runs = [r["server_cpu_us_per_req"] for r in runs if "server_cpu_us_per_req" in r]
    if cpu_runs:
        res["server_cpu_us_per_req"] = round(statistics.median(cpu_runs), 1)
    return res


def logging_cost(cfg, server, other, st, names):
    """What request logging costs Plinth on the given workloads: each is measured with logging
    on, then off (`logs.maxDays` 0 turns it off), then on again, so drift over the run falls on
    both sides; the cost compares the off figure with the mean of the two on figures, in
    throughput and in server CPU per request."""
    api, su = st["api"], st["su_token"]
    _, settings = api.call("GET", "/api/settings", token=su)
    keep = settings.get("logs", {}).get("maxDays") or 5
    specs = workload_specs(st)

    def measure_all(label):
        out = {}
        for n in names:
            out[n] = measure(cfg, server, other, n, specs[n], api)
            log(f"logging cost  {n:10s} logs {label:3s} {out[n]['rps']:10.1f} req/s  "
                f"{out[n].get('server_cpu_us_per_req')} us/req")
            time.sleep(cfg.settle)
        return out

    first = measure_all("on")
    api.call("PATCH", "/api/settings", {"logs": {"maxDays": 0}}, token=su)
    try:
        off = measure_all("off")
    finally:
        api.call("PATCH", "/api/settings", {"logs": {"maxDays": keep}}, token=su)
    second = measure_all("on")
    result = {}
    for n in names:
        on_rps = (first[n]["rps"] + second[n]["rps"]) / 2
        row = {"rps_on": [first[n]["rps"], second[n]["rps"]], "rps_off": off[n]["rps"],
               "throughput_cost_pct": round(100 * (1 - on_rps / off[n]["rps"]), 1)
               if off[n]["rps"] else None}
        cpu_on = [r.get("server_cpu_us_per_req") for r in (first[n], second[n])]
        cpu_off = off[n].get("server_cpu_us_per_req")
        if all(c is not None for c in cpu_on) and cpu_off:
            row["cpu_us_on"], row["cpu_us_off"] = cpu_on, cpu_off
            row["cpu_cost_pct"] = round(100 * (sum(cpu_on) / 2 / cpu_off - 1), 1)
        result[n] = row
    return result


def measure_realtime(cfg, server, st, subscribers):
    rss = RssPeak(server.pid)
    try:
        res = realtime.fanout(server.url, st["user_token"], st["user_id"], subscribers,
                              cfg.events, server_pid=server.pid)
    finally:
        peak = rss.finish()
    res["peak_rss_mib"] = peak
    res["loadavg"] = loadavg()
    return res


def ratio(a, b):
    return round(b / a, 3) if a and b is not None else None


def compare(ref, cand):
    """Plinth / PocketBase ratios (req/s > 1 = Plinth faster; latency, RSS < 1 = Plinth less)."""
    if not ref or not cand or "unsupported" in ref or "unsupported" in cand:
        return None
    if "rps" in ref:
        return {"rps": ratio(ref["rps"], cand["rps"]), "p50": ratio(ref["p50_ms"], cand["p50_ms"]),
                "p99": ratio(ref["p99_ms"], cand["p99_ms"]),
                "peak_rss": ratio(ref["peak_rss_mib"], cand["peak_rss_mib"]),
                "cpu_per_req": ratio(ref.get("server_cpu_us_per_req"),
                                     cand.get("server_cpu_us_per_req"))}
    # From the create request's start: PocketBase answers the create only after the fan-out,
    # so its latency after the response can be negative (a meaningless ratio).
    return {"delivery_p50": ratio(ref["delivery_from_request_p50_ms"],
                                  cand["delivery_from_request_p50_ms"]),
            "delivery_p99": ratio(ref["delivery_from_request_p99_ms"],
                                  cand["delivery_from_request_p99_ms"]),
            "fanout_complete_p99": ratio(ref.get("fanout_complete_from_request_p99_ms"),
                                         cand.get("fanout_complete_from_request_p99_ms")),
            "peak_rss": ratio(ref["peak_rss_mib"], cand["peak_rss_mib"]),
            "idle_bytes_per_client": ratio(ref.get("idle_bytes_per_client"),
                                           cand.get("idle_bytes_per_client"))}


# --------------------------------------------------------------------------------------------
# Ceilings


def ceilings(cfg, hello_bin, sqlite_bin, port, workdir):
    out = {}
    hello = Server("hello", hello_bin, port, cfg.server_cpus, workdir, ask_version=False)
    os.makedirs(hello.dir)
    with open(os.path.join(hello.dir, "server.log"), "w") as logf:
        hello.proc = subprocess.Popen(["taskset", "-c", cfg.server_cpus, hello_bin,
                                       f"127.0.0.1:{port}"], stdout=logf,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/api/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise BenchError("the axum hello-world ceiling did not start")
        spec = workload_specs(None)["health"]
        out["axum_hello_health"] = measure(cfg, hello, None, "health", spec, Api(hello.url))
    finally:
        hello.stop()
    proc = subprocess.run(["taskset", "-c", cfg.server_cpus, sqlite_bin,
                           os.path.join(workdir, "sqlite-ceiling"), str(cfg.ceiling_rows),
                           str(cfg.ceiling_seconds), str(cfg.ceiling_repeat)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BenchError(f"sqlite-ceiling failed: {proc.stderr.strip()[-300:]}")
    try:
        out["sqlite"] = json.loads(proc.stdout)
    except ValueError:
        raise BenchError(f"sqlite-ceiling printed no JSON: {proc.stdout[:200]!r}")
    return out


# --------------------------------------------------------------------------------------------
# Report


def fmt_num(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}"


def print_table(summary):
    w = summary["workloads"]
    print()
    print(f"Plinth vs PocketBase, profile '{summary['profile']}', {summary['date']}, "
          f"load {summary['loadavg_start']} -> {summary['loadavg_end']}")
    print(f"  pocketbase: {summary['servers'][REF]['version']}   plinth: "
          f"{summary['servers'][CAND]['version']} ({summary['servers'][CAND].get('git', '')})")
    hdr = (f"{'workload':15s} {'PB req/s':>10s} {'Plinth req/s':>12s} {'ratio':>7s} "
           f"{'PB p50':>8s} {'Pl p50':>8s} {'PB p99':>8s} {'Pl p99':>8s} {'errors PB/Pl':>13s} "
           f"{'RSS MiB PB/Pl':>14s}")
    print(hdr)
    print("-" * len(hdr))
    for name, row in w.items():
        ref, cand = row.get(REF), row.get(CAND)
        if name.startswith("realtime"):
            def rt(r):
                if not r:
                    return "-"
                if "unsupported" in r:
                    return f"unsupported ({r['unsupported'][:60]})"
                # Below 1,000 subscribers allocator noise dominates the per-client figure.
                idle = r.get("idle_bytes_per_client") if r["subscribers"] >= 1000 else None
                return (f"{r['received']}/{r['expected_deliveries']} delivered, from create "
                        f"request p50 {fmt_num(r['delivery_from_request_p50_ms'], 2)} ms, p99 "
                        f"{fmt_num(r['delivery_from_request_p99_ms'], 2)} ms, "
                        f"RSS {r['peak_rss_mib']} MiB, "
                        f"idle {fmt_num(idle / 1024, 1) if idle is not None else '-'} KiB/client")
            print(f"{name:15s} PB:     {rt(ref)}")
            print(f"{'':15s} Plinth: {rt(cand)}")
            continue
        pb = (f"{fmt_num(ref['rps']):>10s}" if ref and "rps" in ref else f"{'-':>10s}")
        if cand and "unsupported" in cand:
            print(f"{name:15s} {pb} unsupported: {cand['unsupported'][:90]}")
            continue
        r = row.get("ratio") or {}
        print(f"{name:15s} {pb} {fmt_num(cand['rps']) if cand else '-':>12s} "
              f"{(fmt_num(r.get('rps'), 2) + 'x') if r.get('rps') else '-':>7s} "
              f"{fmt_num(ref['p50_ms'], 2):>8s} {fmt_num(cand['p50_ms'], 2) if cand else '-':>8s} "
              f"{fmt_num(ref['p99_ms'], 2):>8s} {fmt_num(cand['p99_ms'], 2) if cand else '-':>8s} "
              f"{str(ref['errors']) + '/' + (str(cand['errors']) if cand else '-'):>13s} "
              f"{str(ref['peak_rss_mib']) + '/' + (str(cand['peak_rss_mib']) if cand else '-'):>14s}")
    lc = summary.get("logging_cost") or {}
    if lc:
        print()
        if "error" in lc:
            print(f"logging cost: not measured ({lc['error'][:100]})")
        for name, row in lc.items():
            if name == "error":
                continue
            print(f"logging cost {name:8s}: {fmt_num(row['rps_off'])} req/s off, "
                  f"{' / '.join(fmt_num(x) for x in row['rps_on'])} on -> "
                  f"{row['throughput_cost_pct']} % throughput"
                  + (f", {row['cpu_cost_pct']} % server CPU per request "
                     f"({row['cpu_us_off']} -> {' / '.join(str(x) for x in row['cpu_us_on'])} us)"
                     if "cpu_cost_pct" in row else ""))
    c = summary.get("ceilings") or {}
    if c:
        h, s = c["axum_hello_health"], c["sqlite"]
        print()
        print(f"ceilings (same pinning): axum hello-world /api/health {fmt_num(h['rps'])} req/s "
              f"(p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms, RSS {h['peak_rss_mib']} MiB); "
              f"SQLite {s['sqlite_version']}: insert {s['insert_txn']['per_s']:,}/s, "
              f"select by id {s['select_pk']['per_s']:,}/s, update {s['update_txn']['per_s']:,}/s, "
              f"list page {s['list_page']['per_s']:,}/s, list page + count "
              f"{s['list_page_count']['per_s']:,}/s")
    print()


def git_describe():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = models[0] if models else "unknown"
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    info["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0].strip()
    return info


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--plinth", required=True)
    ap.add_argument("--pocketbase", required=True)
    ap.add_argument("--hello", required=True, help="the axum hello-world ceiling binary")
    ap.add_argument("--sqlite-ceiling", required=True, help="the raw SQLite ceiling binary")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    ap.add_argument("--only", default="", help=f"comma-separated subset of {WORKLOADS}")
    ap.add_argument("--no-ceilings", action="store_true")
    ap.add_argument("--plinth-built-here", action="store_true",
                    help="the Plinth binary was just built from this checkout (records its commit)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", 0)),
                    help="PocketBase on N, Plinth on N+1, hello on N+2 (default: free ports)")
    ap.add_argument("--server-cpus", default=os.environ.get("SERVER_CPUS", "1"))
    ap.add_argument("--load-cpus", default=os.environ.get("LOAD_CPUS", "0"))
    for k, v in PROFILES["full"].items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=None,
                        help="comma-separated counts, e.g. 1000,10000" if k == "subscribers"
                        else None)
    args = ap.parse_args()
    cfg = argparse.Namespace(**PROFILES[args.profile])
    for k in PROFILES["full"]:
        if getattr(args, k) is not None:
            setattr(cfg, k, getattr(args, k))
    cfg.server_cpus, cfg.load_cpus = args.server_cpus, args.load_cpus
    try:
        cfg.subscribers = [int(n) for n in str(cfg.subscribers).split(",") if n.strip()]
    except ValueError:
        ap.error("--subscribers takes comma-separated counts, e.g. 1000,10000")
    if not cfg.subscribers or min(cfg.subscribers) < 1:
        ap.error("--subscribers needs at least one count >= 1")
    only = [w.strip() for w in args.only.split(",") if w.strip()] or WORKLOADS
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {WORKLOADS}")
    # Every subscriber is a socket in this process tree and in the server, which inherits the
    # limit; the servers start after this.
    nofile = realtime.raise_nofile()
    if "realtime" in only and max(cfg.subscribers) + 256 > nofile:
        ap.error(f"{max(cfg.subscribers)} subscribers need RLIMIT_NOFILE above {nofile}")
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            raise BenchError(f"'{tool}' not found in PATH")

    # The realtime client shares the load generator's CPUs.
    os.sched_setaffinity(0, {int(c) for c in cfg.load_cpus.split(",")})
    ports = ([args.port_base, args.port_base + 1, args.port_base + 2] if args.port_base
             else [free_port() for _ in range(3)])
    workdir = tempfile.mkdtemp(prefix="plinth-bench-")
    servers = {REF: Server(REF, args.pocketbase, ports[0], cfg.server_cpus, workdir),
               CAND: Server(CAND, args.plinth, ports[1], cfg.server_cpus, workdir)}

    def stop_all(*_):
        for s in servers.values():
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    summary = {"kind": "plinth-bench", "schema": 1, "profile": args.profile,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": loadavg(),
               "machine": machine(), "config": vars(cfg),
               "servers": {}, "setup": {}, "workloads": {}, "notes": []}
    try:
        states = {}
        for role, s in servers.items():
            summary["servers"][role] = {"binary": s.binary, "version": s.version,
                                        "port": s.port, "cpus": cfg.server_cpus}
            try:
                s.start()
            except BenchError as e:
                if role == REF:
                    raise
                log(f"plinth: {e}")
                s.start_error = str(e)
                summary["setup"][role] = {"error": str(e)}
        summary["servers"][CAND]["git"] = (git_describe() if args.plinth_built_here
                                           else "binary given on the command line")

        needs_setup = any(w != "health" for w in only)
        for role, s in servers.items():
            if s.start_error or not needs_setup:
                continue
            log(f"{role}: setup, seeding {cfg.seed} records")
            try:
                st = setup(s, cfg.seed)
                states[role] = st
                summary["setup"][role] = st["summary"]
                log(f"{role}: seeded {st['summary']['seeded']} in "
                    f"{st['summary']['seed_seconds']} s")
            except BenchError as e:
                if role == REF:
                    raise
                log(f"plinth: {e}")
                summary["setup"][role] = {"error": str(e)}
        time.sleep(cfg.settle)

        rows = []
        for w in WORKLOADS:
            if w == "realtime" and w in only:
                rows += [(f"realtime-{k}", k) for k in cfg.subscribers]
            elif w in only:
                rows.append((w, None))
        for idx, (name, subscribers) in enumerate(rows):
            row = {}
            order = [REF, CAND] if idx % 2 == 0 else [CAND, REF]
            for role in order:
                s, other = servers[role], servers[CAND if role == REF else REF]
                st = states.get(role)
                if s.start_error:
                    row[role] = {"unsupported": f"server did not start: {s.start_error[:200]}"}
                    continue
                if not s.alive():
                    row[role] = {"unsupported": "server exited earlier in the run"}
                    if role == REF:
                        raise BenchError("PocketBase exited during the run")
                    continue
                if name != "health" and not st:
                    row[role] = {"unsupported": summary["setup"].get(role, {}).get("error",
                                                                                 "no setup")}
                    continue
                try:
                    if subscribers:
                        res = measure_realtime(cfg, s, st, subscribers)
                    else:
                        res = measure(cfg, s, other, name, workload_specs(st)[name],
                                      st["api"] if st else Api(s.url))
                except (BenchError, realtime.RealtimeError) as e:
                    if role == REF:
                        raise BenchError(f"PocketBase, workload {name}: {e}")
                    res = {"unsupported": str(e)[:400]}
                row[role] = res
                if "unsupported" in res:
                    log(f"{name:15s} {role:10s} unsupported: {res['unsupported'][:160]}")
                elif "rps" in res:
                    log(f"{name:15s} {role:10s} {res['rps']:10.1f} req/s  p50 {res['p50_ms']:.2f}"
                        f" ms  p99 {res['p99_ms']:.2f} ms  errors {res['errors']}  "
                        f"RSS {res['peak_rss_mib']} MiB")
                else:
                    log(f"{name:15s} {role:10s} delivered {res['received']}/"
                        f"{res['expected_deliveries']}, from create request p50 "
                        f"{res['delivery_from_request_p50_ms']} ms, p99 "
                        f"{res['delivery_from_request_p99_ms']} ms, idle "
                        f"{res.get('idle_bytes_per_client')} B/client, RSS before/idle/peak "
                        f"{res.get('rss_before_kib')}/{res.get('rss_idle_kib')}/"
                        f"{res.get('rss_fanout_peak_kib')} KiB, load {res['loadavg']}")
                time.sleep(cfg.settle)
            row["ratio"] = compare(row.get(REF), row.get(CAND))
            summary["workloads"][name] = {k: row.get(k) for k in (REF, CAND, "ratio")}
            check_reference(args.profile, name, row[REF], summary)

        cost_names = [w for w in ("health", "view") if w in only]
        if cost_names and states.get(CAND) and servers[CAND].alive():
            try:
                summary["logging_cost"] = logging_cost(cfg, servers[CAND], servers[REF],
                                                       states[CAND], cost_names)
            except BenchError as e:
                summary["logging_cost"] = {"error": str(e)[:400]}

        for s in servers.values():
            s.stop()
        if not args.no_ceilings:
            log("ceilings: axum hello world, raw SQLite")
            summary["ceilings"] = ceilings(cfg, args.hello, args.sqlite_ceiling, ports[2], workdir)
    finally:
        stop_all()
    summary["loadavg_end"] = loadavg()
    summary["elapsed_s"] = round(time.time() - started, 1)
    print_table(summary)
    os.makedirs(args.out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(args.out_dir, f"bench-{args.profile}-{stamp}.json")
    for p in (path, os.path.join(args.out_dir, f"latest-{args.profile}.json")):
        with open(p, "w") as f:
            json.dump(summary, f, indent=2)
    log(f"wrote {path} (and latest-{args.profile}.json); {summary['elapsed_s']} s")
    for note in summary["notes"]:
        log(f"note: {note}")


def check_reference(profile, name, ref, summary):
    """The reference must produce a sane measurement; otherwise the harness is broken."""
    if name.startswith("realtime"):
        problem = None if ref["all_delivered"] else (
            f"PocketBase delivered {ref['received']}/{ref['expected_deliveries']} events")
    elif ref["requests"] == 0:
        problem = f"no request to PocketBase completed in workload {name}"
    elif ref["errors"]:
        problem = f"PocketBase answered {ref['errors']} errors in workload {name}: " \
                  f"{ref['error_detail']}"
    else:
        problem = None
    if problem and profile == "smoke":
        raise BenchError(problem)
    if problem:
        summary["notes"].append(problem)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"bench: ERROR (harness): {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
