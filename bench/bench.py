#!/usr/bin/env python3
"""Side-by-side benchmark: PocketBase (the reference) and Plinth (the candidate) with identical
data and workloads, plus the machine's ceilings (a bare axum server, raw SQLite).

    bench.py --plinth BIN --pocketbase BIN --hello BIN --sqlite-ceiling BIN
             [--profile full|smoke] [--out-dir DIR] [--only w1,w2] [--port-base N]
             [--pg ADMIN_URL [--pg-nodes 1,2] [--pg-cpus CPUS]]

Normally started by bench/run.sh, which installs the tools and builds the binaries. Both servers
run at the same time, pinned to the server CPU, each on a fresh data dir; every workload runs
against one and then the other (alternating which goes first), with wrk or the realtime client
pinned to the other CPU. Results: a table on stdout and JSON in the out dir.

With --pg, Plinth also runs on PostgreSQL beside them: "plinth-pg" (one node) and "plinth-pg2"
(two nodes sharing one database), each on a fresh database of the cluster ADMIN_URL points to.
That cluster must run on this machine: its processes are pinned (--pg-cpus, default the server
CPUs) and their CPU time is added to the Plinth nodes' in the CPU-per-request figures.

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
import re
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
# Run in this order. `update` goes before `create`: a create run adds as many posts as the
# server serves (Plinth some ten times PocketBase's), so an update measured after it would run
# against tables of different sizes; before it, both servers update the same 10,000 posts.
WORKLOADS = ["health", "view", "list", "list_skiptotal", "list_expand", "update", "create",
             "mixed", "auth", "create_hook", "route_hook", "realtime"]
PROFILES = {
    # Each wrk figure is the median of `repeat` runs of `duration` s after `warmup` s.
    # `subscribers` is a comma-separated list: one realtime row per count.
    "full": dict(duration=10, warmup=2, repeat=3, connections=32, seed=10000, subscribers="100",
                 events=50, timeout=10, settle=1.0, ceiling_seconds=3.0, ceiling_repeat=3,
                 ceiling_rows=10000, solo=0),
    # Seconds per workload and a few hundred records: proves every path works, measures little.
    "smoke": dict(duration=1, warmup=0, repeat=1, connections=4, seed=300, subscribers="5",
                  events=5, timeout=5, settle=0.1, ceiling_seconds=0.2, ceiling_repeat=1,
                  ceiling_rows=2000, solo=0),
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
PG1, PG2 = "plinth-pg", "plinth-pg2"  # with --pg: Plinth on PostgreSQL, one and two nodes


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


def proc_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 of proc(5) is index 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


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

    def __init__(self, role, binary, port, cpus, workdir, ask_version=True, db_url=None,
                 upsert=True):
        self.role, self.binary, self.port, self.cpus = role, binary, port, cpus
        self.db_url, self.upsert = db_url, upsert  # db_url: PostgreSQL (`--db`)
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
        db = [f"--db={self.db_url}"] if self.db_url else []
        if self.upsert:
            up = subprocess.run([self.binary, "superuser", "upsert", SU_EMAIL, SU_PASSWORD,
                                 "--dir", self.data] + db, cwd=self.dir, capture_output=True,
                                text=True, timeout=60)
            if up.returncode != 0:
                raise BenchError(f"{self.role}: superuser upsert failed (rc {up.returncode}): "
                                 f"{(up.stderr or up.stdout).strip()[-400:]}")
        with open(log_path, "w") as logf:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cpus, self.binary, "serve",
                 f"--http=127.0.0.1:{self.port}", f"--dir={self.data}"] + db,
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


# Lines in a Plinth log that deserve a look after a run (the workdir is deleted at the end).
LOG_PROBLEMS = ("current transaction is aborted", "panicked", " ERROR ")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def scan_logs(nodes):
    """node role -> {count, first}: the lines of each node's log matching LOG_PROBLEMS."""
    found = {}
    for node in nodes:
        try:
            with open(os.path.join(node.dir, "server.log"), errors="replace") as f:
                lines = (ANSI.sub("", line).strip() for line in f)
                hits = [line for line in lines if any(p in line for p in LOG_PROBLEMS)]
        except OSError:
            continue
        if hits:
            found[node.role] = {"count": len(hits), "first": hits[0][:400],
                                "aborted_transaction": sum("current transaction is aborted"
                                                           in h for h in hits)}
    return found


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


def link_order_match(binary):
    """How much of `crates/cli/link-order.txt` the binary still has, as (found, listed), or
    None when the binary has no symbols to read. The file orders functions by their linker
    names, which change with the code and the dependencies: a low share means the layout no
    longer matches (regenerate it with `bench/link_order.py`)."""
    path = os.path.join(HERE, "..", "crates", "cli", "link-order.txt")
    try:
        with open(path) as f:
            listed = [line.strip() for line in f if line.strip()]
        out = subprocess.run(["nm", binary], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = {parts[-1] for parts in (line.split() for line in out.stdout.splitlines()) if parts}
    if out.returncode != 0 or not names or not listed:
        return None
    return sum(1 for n in listed if n in names), len(listed)


class PgCluster:
    """The PostgreSQL cluster behind the PG candidates, reached through an admin URL.

    It must run on this machine: its processes are pinned like the servers, and their CPU time
    counts as server CPU. That time is read from /proc: the postmaster's own time plus the time
    of its children it has reaped (cutime + cstime: backends, parallel and autovacuum workers
    that exited), plus the time of its live children. So a backend that starts and exits
    during a workload is counted too, once the postmaster has reaped it. Everything the cluster
    does is counted, whichever database it is for: give the bench a cluster of its own.
    """

    SETTINGS = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                "shared_buffers", "max_connections", "max_parallel_workers_per_gather")

    def __init__(self, admin_url, cpus):
        if not shutil.which("psql"):
            raise BenchError("--pg needs psql (apt-get install -y postgresql-client)")
        self.admin_url, self.cpus = admin_url, cpus
        self.settings = dict(
            line.split("|", 1) for line in self.sql(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN (%s)"
                % ",".join(f"'{n}'" for n in self.SETTINGS)).splitlines())
        datadir = self.sql("SHOW data_directory")
        try:
            with open(os.path.join(datadir, "postmaster.pid")) as f:
                self.pid = int(f.readline())
        except (OSError, ValueError) as e:
            raise BenchError(f"cannot read the postmaster's pid from {datadir}/postmaster.pid "
                             f"({e}): the PostgreSQL server must run on this machine")
        if proc_stat_fields(self.pid) is None:
            raise BenchError(f"postmaster pid {self.pid} is not visible in /proc")
        self.datadir, self.saved_affinity, self.databases = datadir, None, []

    def sql(self, statement, db_url=None):
        out = subprocess.run(["psql", db_url or self.admin_url, "-X", "-q", "-A", "-t",
                              "-v", "ON_ERROR_STOP=1", "-c", statement],
                             capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        if out.returncode != 0:
            raise BenchError(f"psql {statement[:60]!r}: {out.stderr.strip()[-300:]}")
        return out.stdout.strip()

    def fresh_database(self, name):
        """Drops and creates `name` (C locale, as Plinth wants); returns its URL."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
        self.databases.append(name)
        u = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(u._replace(path="/" + name))

    def drop_databases(self):
        for name in self.databases:
            try:
                self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except BenchError as e:
                log(f"postgres: {e}")
        self.databases = []

    def children(self):
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                f = proc_stat_fields(int(entry))
                if f and int(f[1]) == self.pid:
                    kids.append(int(entry))
        return kids

    def cpu_seconds(self):
        """CPU time of the whole cluster so far (None when the postmaster is gone)."""
        f = proc_stat_fields(self.pid)
        if f is None:
            return None
        ticks = sum(int(x) for x in f[11:15])  # utime, stime, cutime, cstime
        for kid in self.children():
            k = proc_stat_fields(kid)
            if k is not None:
                ticks += int(k[11]) + int(k[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def pin(self):
        """Pins the postmaster and its children (backends forked later inherit it)."""
        cpus = {int(c) for c in self.cpus.split(",")}
        self.saved_affinity = os.sched_getaffinity(self.pid)
        for pid in [self.pid] + self.children():
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError as e:
                raise BenchError(f"cannot pin PostgreSQL process {pid} to cpus {self.cpus}: {e}")

    def unpin(self):
        if self.saved_affinity is None:
            return
        for pid in [self.pid] + self.children():
            try:
                os.sched_setaffinity(pid, self.saved_affinity)
            except OSError:
                pass
        self.saved_affinity = None


class Candidate:
    """One column of the results: one server, or several nodes of one app sharing a
    PostgreSQL database (then the cluster's CPU is counted with theirs)."""

    def __init__(self, role, nodes, pg=None):
        self.role, self.nodes, self.pg = role, nodes, pg
        self.start_error = None

    @property
    def url(self):
        return self.nodes[0].url

    @property
    def urls(self):
        return [n.url for n in self.nodes]

    @property
    def pids(self):
        return [n.pid for n in self.nodes]

    def start(self):
        for n in self.nodes:
            n.start()

    def alive(self):
        return all(n.alive() for n in self.nodes)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def cpu_seconds(self, with_pg=True):
        """CPU time of the candidate's processes (and of its database cluster)."""
        parts = [proc_cpu_seconds(p) for p in self.pids]
        if with_pg and self.pg:
            parts.append(self.pg.cpu_seconds())
        return None if None in parts else sum(parts)


def pg_candidates(pg, node_counts, binary, ports, cfg, workdir):
    """plinth-pg (one node) and plinth-pg2 (two nodes, one database), each on a fresh database
    of the cluster, which is pinned to its CPUs (the backends it forks later inherit that)."""
    tag = f"plinth_bench_{os.getpid()}"
    out = {}
    try:
        if 1 in node_counts:
            url = pg.fresh_database(f"{tag}_pg")
            out[PG1] = Candidate(PG1, [Server(PG1, binary, ports[3], cfg.server_cpus, workdir,
                                              db_url=url)], pg)
        if 2 in node_counts:
            url = pg.fresh_database(f"{tag}_pg2")
            out[PG2] = Candidate(PG2, [
                Server(PG2 + "-a", binary, ports[4], cfg.server_cpus, workdir, db_url=url),
                # The superuser is in the shared database already.
                Server(PG2 + "-b", binary, ports[5], cfg.server_cpus, workdir, db_url=url,
                       upsert=False)], pg)
        pg.pin()
    except BaseException:
        pg.drop_databases()
        pg.unpin()
        raise
    log(f"postgres: postmaster pid {pg.pid} ({pg.datadir}), PostgreSQL "
        f"{pg.settings.get('server_version')}, pinned to cpus {pg.cpus}; fresh databases "
        f"{', '.join(pg.databases)}")
    return out


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
        # A node applies realtime settings when it stores them or when it starts: with several
        # nodes, each is told (the token holds on all of them).
        for url in getattr(server, "urls", [server.url]):
            Api(url).call("PATCH", "/api/settings",
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
        if n_seed >= BATCH_SEED_FROM:
            ids = seed_in_batches(api, su, docs, seed_workers)
        else:
            with ThreadPoolExecutor(seed_workers) as ex:
                ids = list(ex.map(lambda d: api.call("POST", "/api/collections/posts/records",
                                                     d, token=su)[1]["id"], docs))
        seed_s = time.perf_counter() - t0
        step = "user login"
        _, r = api.call("POST", "/api/collections/users/auth-with-password",
                        {"identity": USER_EMAIL, "password": USER_PASSWORD})
        token = r["token"]
        _, r = api.call("POST", "/api/collections/users/auth-with-password",
                        {"identity": OTHER_EMAIL, "password": USER_PASSWORD})
        other_token = r["token"]
    except (BenchError, KeyError, TypeError) as e:
        raise BenchError(f"setup failed at '{step}': {e}")
    own = [i for i, d in zip(ids, docs) if d["author"] == user_id]
    visible = [i for i, d in zip(ids, docs) if d["published"] or d["author"] == user_id]
    published = [i for i, d in zip(ids, docs) if d["published"]]
    return {"api": api, "su_token": su, "user_token": token, "user_id": user_id,
            "other_token": other_token,
            "own_ids": own[:200],
            "visible_ids": visible[:200],
            "published_ids": published[:200],
            "summary": {"seeded": len(ids), "seed_seconds": round(seed_s, 2),
                        "seed_rps": round(len(ids) / seed_s, 1) if seed_s else None}}


# From this many seeded records on (the scale curves' 100k and 1M), the seed goes through the
# batch API, BATCH_SEED_SIZE creates per request: one create per request would take the Python
# client several minutes per server at 1M.
BATCH_SEED_FROM = 50_000
BATCH_SEED_SIZE = 500


def seed_in_batches(api, su, docs, workers):
    """Creates `docs` as posts through `POST /api/batch` (enabled for the purpose, on both
    servers alike); returns their ids in order."""
    api.call("PATCH", "/api/settings",
             {"batch": {"enabled": True, "maxRequests": BATCH_SEED_SIZE, "timeout": 120,
                        "maxBodySize": 64 << 20}}, token=su)

    def one(chunk):
        _, answers = api.call("POST", "/api/batch", {"requests": [
            {"method": "POST", "url": "/api/collections/posts/records", "body": d}
            for d in chunk]}, token=su)
        if len(answers) != len(chunk) or any(a.get("status") != 200 for a in answers):
            bad = next((a for a in answers if a.get("status") != 200), answers[:1])
            raise BenchError(f"batch seed: {len(answers)} answers for {len(chunk)}, e.g. {bad}")
        return [a["body"]["id"] for a in answers]

    chunks = [docs[i:i + BATCH_SEED_SIZE] for i in range(0, len(docs), BATCH_SEED_SIZE)]
    with ThreadPoolExecutor(workers) as ex:
        return [i for ids in ex.map(one, chunks) for i in ids]


def mixed_requests(st, lst):
    """The `mixed` workload's request cycle: two users; per 20 requests 9 views and 9 lists
    with their total (90 % reads, alternating the users; the other user views published posts
    only), then one create and one update by the first user (10 % writes). Each entry is
    (method, path, token, body or None). Five cycles (100 requests): wrk gets them in one
    environment variable, which Linux caps at 128 KiB."""
    user, other = st["user_token"], st["other_token"]
    body = {"title": "mixed post", "body": BODY_TEXT, "score": 7, "published": True,
            "author": st["user_id"]}
    cycle = []
    for n in range(min(5, len(st["own_ids"]))):
        for k in range(9):
            token = user if k % 2 == 0 else other
            ids = st["visible_ids"] if token == user else st["published_ids"]
            cycle.append(("GET", "/api/collections/posts/records/" + ids[(n * 9 + k) % len(ids)],
                          token, None))
            cycle.append(("GET", lst, token, None))
        cycle.append(("POST", "/api/collections/posts/records", user, body))
        cycle.append(("PATCH", "/api/collections/posts/records/" + st["own_ids"][n], user,
                      {"title": "mixed update"}))
    return cycle


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
        "mixed": ("MIXED", mixed_requests(st, lst), None, tok, lambda r: r["id"]),
        "auth": ("POST", ["/api/collections/users/auth-with-password"],
                 [{"identity": e, "password": USER_PASSWORD} for e in LOGIN_USERS], None,
                 lambda r: r["token"]),
    })
    return specs


# --------------------------------------------------------------------------------------------
# Measurement


def run_wrk(cfg, server, others, method, paths, body, token, duration):
    """One wrk run against a candidate. With several nodes, one wrk per node runs at the same
    time, the connections split between them: req/s is their sum, latencies are those of all
    requests together (merged from each wrk's percentiles), and the JSON keeps each node's."""
    urls = server.urls
    n = len(urls)
    conns = [cfg.connections // n + (1 if i < cfg.connections % n else 0) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        outs = [os.path.join(tmp, f"out{i}.json") for i in range(n)]
        bodies = body if isinstance(body, list) else None
        mixed = ""
        if method == "MIXED":
            # One request per line: method, path, token, JSON body, tab-separated.
            mixed = "\n".join("\t".join([m, p, t or "", json.dumps(b) if b is not None else ""])
                              for m, p, t, b in paths)
            method, paths, token = "GET", [paths[0][1]], None
        env = dict(os.environ, WRK_METHOD=method, WRK_REQUESTS=mixed,
                   WRK_BODY=json.dumps(bodies[0] if bodies else body) if body else "",
                   WRK_BODIES="\n".join(json.dumps(b) for b in bodies) if bodies else "",
                   WRK_TOKEN=token or "", WRK_PATHS="\n".join(paths))
        cmds = [["taskset", "-c", cfg.load_cpus, "wrk", "-t1", f"-c{c}",
                 f"-d{duration}s", "--timeout", f"{cfg.timeout}s",
                 "-s", os.path.join(HERE, "wrk.lua"), url + "/"] for url, c in zip(urls, conns)]
        cpu0, other0 = cpu_parts(server), other_cpu(others, server)
        procs = [subprocess.Popen(cmd, env=dict(env, WRK_OUT=out), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for cmd, out in zip(cmds, outs)]
        done = [(p, *p.communicate()) for p in procs]
        cpu1, other1 = cpu_parts(server), other_cpu(others, server)
        rs = []
        for (proc, stdout, stderr), out in zip(done, outs):
            if proc.returncode != 0 or not os.path.exists(out):
                raise BenchError(f"wrk failed (rc={proc.returncode}): "
                                 f"{(stderr or stdout).strip()[:300]}")
            with open(out) as f:
                rs.append(json.load(f))
    lat = rs[0]["latency_us"] if n == 1 else merge_latency(rs)
    # wrk stops with one request in flight per connection; let the server drain them.
    time.sleep(min(cfg.timeout, lat["max"] / 1e6) + 0.1)
    cpu2 = cpu_parts(server)
    secs = max(r["duration_us"] for r in rs) / 1e6
    requests = sum(r["requests"] for r in rs)
    errors = {k: sum(r["errors"][k] for r in rs) for k in rs[0]["errors"]}
    rps = sum(r["requests"] / (r["duration_us"] / 1e6) for r in rs if r["duration_us"])
    res = {"rps": round(rps, 1),
           "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000,
           "p99_ms": lat["p99"] / 1000, "max_ms": lat["max"] / 1000,
           "requests": requests, "errors": sum(errors.values()),
           "error_detail": errors}
    if n > 1:
        res["nodes"] = [{"url": url, "connections": c,
                         "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1)
                         if r["duration_us"] else 0.0,
                         "requests": r["requests"], "errors": sum(r["errors"].values()),
                         "p50_ms": r["latency_us"]["p50"] / 1000,
                         "p99_ms": r["latency_us"]["p99"] / 1000}
                        for url, c, r in zip(urls, conns, rs)]
    if None not in (cpu0, cpu1, cpu2) and requests:
        res["server_cpu_util"] = round((sum(cpu1) - sum(cpu0)) / secs, 3)
        res["server_cpu_us_per_req"] = round((sum(cpu2) - sum(cpu0)) * 1e6 /
                                             (requests + cfg.connections), 1)
        if server.pg:
            # The two parts of the figure above: the Plinth node(s), the PostgreSQL cluster.
            res["plinth_cpu_us_per_req"] = round((cpu2[0] - cpu0[0]) * 1e6 /
                                                 (requests + cfg.connections), 1)
            res["pg_cpu_us_per_req"] = round((cpu2[1] - cpu0[1]) * 1e6 /
                                             (requests + cfg.connections), 1)
            res["pg_cpu_util"] = round((cpu1[1] - cpu0[1]) / secs, 3)
    if None not in (other0, other1):
        # CPU the other (idle) servers used meanwhile: background noise on the shared core.
        res["other_server_cpu_util"] = round((other1 - other0) / secs, 3)
    return res


def cpu_parts(server):
    """(CPU s of the candidate's server processes, CPU s of its PostgreSQL cluster or 0)."""
    own = server.cpu_seconds(with_pg=False)
    pg = server.pg.cpu_seconds() if server.pg else 0.0
    return None if None in (own, pg) else (own, pg)


def other_cpu(others, server=None):
    """CPU time of the servers not being measured, and of the PostgreSQL cluster when the
    measured server does not use it (None when one of them is gone)."""
    if not others:
        return None
    parts = [o.cpu_seconds(with_pg=False) for o in others if o.alive()]
    pgs = {id(o.pg): o.pg for o in others if o.pg and o.alive()}
    if server is not None and server.pg:
        pgs.pop(id(server.pg), None)
    parts += [pg.cpu_seconds() for pg in pgs.values()]
    return None if not parts or None in parts else sum(parts)


def merge_latency(runs):
    """Percentiles of the requests of several wrk runs taken together. Each run's latency
    distribution is known from its percentile list (`quantiles_us`, 1 % steps, finer above
    99 %); the merged distribution weighs each by its request count."""
    total = sum(r["requests"] for r in runs)
    points = sorted({v for r in runs for _, v in r["quantiles_us"]})

    def share_at_most(r, x):
        below = [p for p, v in r["quantiles_us"] if v <= x]
        return max(below) / 100 if below else 0.0

    def quantile(p):
        if not total:
            return max((r["latency_us"]["p50"] for r in runs), default=0)
        for x in points:
            if sum(r["requests"] * share_at_most(r, x) for r in runs) >= p / 100 * total - 1e-6:
                return x
        return points[-1]

    return {"p50": quantile(50), "p90": quantile(90), "p99": quantile(99),
            "max": max(r["latency_us"]["max"] for r in runs)}


def measure(cfg, server, others, name, spec, api):
    """Probe once (the response must be right), then warm up and measure with wrk."""
    method, paths, body, token, probe = spec
    if method == "MIXED":
        # Every kind of request in the cycle must be answered, and right.
        for m, p, t, b in paths[:20]:
            api.call(m, p, b, t)
        _, resp = api.call(*paths[0][:2], None, paths[0][2])
    else:
        _, resp = api.call(method, paths[0], body[0] if isinstance(body, list) else body,
                           token)
    try:
        probe(resp)
    except (AssertionError, KeyError, TypeError, IndexError) as e:
        raise BenchError(f"probe response is wrong ({e}): {json.dumps(resp)[:300]}")
    solo = measure_solo(cfg, server, method, paths, body, token, api)
    # Several nodes: the sum of their peaks (PostgreSQL's memory is not counted).
    rsss = [RssPeak(pid) for pid in server.pids]
    if cfg.warmup > 0:
        run_wrk(cfg, server, others, method, paths, body, token, cfg.warmup)
    runs = [run_wrk(cfg, server, others, method, paths, body, token, cfg.duration)
            for _ in range(cfg.repeat)]
    peak = round(sum(r.finish() for r in rsss), 1)
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median run
    res = dict(best, rps=statistics.median(r["rps"] for r in runs),
               rps_runs=[r["rps"] for r in runs], errors=sum(r["errors"] for r in runs),
               requests=sum(r["requests"] for r in runs), peak_rss_mib=peak,
               loadavg=loadavg())
    for key in ("server_cpu_us_per_req", "plinth_cpu_us_per_req", "pg_cpu_us_per_req"):
        cpu_runs = [r[key] for r in runs if key in r]
        if cpu_runs:
            res[key] = round(statistics.median(cpu_runs), 1)
    res.update(solo)
    return res


def measure_solo(cfg, server, method, paths, body, token, api):
    """`--solo N`: N requests one after another, nothing else running - each request's own
    latency and the server CPU it took, which stay measurable where a loaded run completes
    few requests (PocketBase's counted list at 1M records). Reads only: a write would change
    the data the loaded run then measures."""
    if not cfg.solo or method != "GET":
        return {}
    lat = []
    c0 = cpu_parts(server)
    for k in range(cfg.solo):
        t0 = time.perf_counter()
        api.call(method, paths[k % len(paths)], None, token)
        lat.append((time.perf_counter() - t0) * 1000)
    c1 = cpu_parts(server)
    out = {"solo_ms": round(statistics.median(lat), 3), "solo_requests": cfg.solo}
    # /proc counts CPU in 10 ms ticks: the mean is given only when the requests took 20 or more.
    if None not in (c0, c1) and sum(c1) - sum(c0) >= 0.2:
        out["solo_cpu_ms"] = round((sum(c1) - sum(c0)) * 1000 / cfg.solo, 2)
    return out


def logging_cost(cfg, server, others, st, names):
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
            out[n] = measure(cfg, server, others, n, specs[n], api)
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
    """Creates go to the first node; with several nodes the subscribers are spread over all of
    them, so the others deliver what they learn from the shared change log."""
    rsss = [RssPeak(pid) for pid in server.pids]
    try:
        res = realtime.fanout(server.url, st["user_token"], st["user_id"], subscribers,
                              cfg.events, server_pid=server.pids, sub_urls=server.urls,
                              cpu_fn=server.cpu_seconds if server.pg else None)
    finally:
        peak = round(sum(r.finish() for r in rsss), 1)
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


def hello_health(cfg, hello_bin, port, workdir, label="hello"):
    """The axum hello world's health check, measured as a workload is (same pinning)."""
    hello = Server(label, hello_bin, port, cfg.server_cpus, workdir, ask_version=False)
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
        return measure(cfg, Candidate("hello", [hello]), None, "health", spec, Api(hello.url))
    finally:
        hello.stop()


def ceilings(cfg, hello_bin, sqlite_bin, port, workdir):
    out = {"axum_hello_health": hello_health(cfg, hello_bin, port, workdir)}
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
    if any(role not in (REF, CAND) for role in summary["servers"]):
        print_pg_table(summary)
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
    adjacent = summary.get("health_adjacent_hello") or {}
    health = (summary.get("workloads") or {}).get("health") or {}
    plinth_health = health.get(CAND) or {}
    if adjacent.get("server_cpu_us_per_req") and plinth_health.get("server_cpu_us_per_req"):
        print()
        print(f"health against the hello world measured right after it: "
              f"{plinth_health['server_cpu_us_per_req']} / {adjacent['server_cpu_us_per_req']} "
              f"us of server CPU a request = "
              f"{plinth_health['server_cpu_us_per_req'] / adjacent['server_cpu_us_per_req']:.2f}x")
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


def redact(url):
    """A database URL without its password."""
    u = urllib.parse.urlsplit(url or "")
    if u.password:
        u = u._replace(netloc=u.netloc.replace(":" + u.password + "@", ":***@"))
    return urllib.parse.urlunsplit(u)


def print_pg_table(summary):
    """Plinth on PostgreSQL (one node, two nodes) beside PocketBase and Plinth on SQLite."""
    roles = list(summary["servers"])
    short = {REF: "PB", CAND: "SQLite", PG1: "pg", PG2: "pg2"}
    extra = roles[2:]
    pgi = summary.get("postgres") or {}
    cpus = summary.get("cpus") or {}
    print()
    print(f"Plinth on PostgreSQL {pgi.get('settings', {}).get('server_version', '?')}: "
          + ", ".join(f"{short.get(r, r)} = {r} ({summary['servers'][r].get('nodes', 1)} node"
                      f"{'s' if summary['servers'][r].get('nodes', 1) > 1 else ''})"
                      for r in extra)
          + f"; ratios against PocketBase")
    print(f"  cpus: PocketBase and every Plinth node {cpus.get('servers')}, PostgreSQL "
          f"{cpus.get('postgres')}, wrk and realtime client {cpus.get('load')}. CPU us/req = "
          f"server processes; for pg candidates Plinth node(s) + all PostgreSQL processes.")
    print("  two nodes: one wrk per node, connections split; req/s summed, latencies of all "
          "requests merged.")
    hdr = (f"{'workload':15s} "
           + " ".join(f"{short.get(r, r) + ' req/s':>11s} {'ratio':>6s}" for r in extra)
           + " " + " ".join(f"{short.get(r, r) + ' p99':>9s}" for r in [REF] + extra)
           + f" {'errors ' + '/'.join(short.get(r, r) for r in extra):>14s}"
           + f"  CPU us/req {' / '.join(short.get(r, r) for r in roles)}")
    print(hdr)
    print("-" * len(hdr))
    for name, row in summary["workloads"].items():
        ref, ratios = row.get(REF), row.get("ratios") or {}
        if name.startswith("realtime"):
            for r in extra:
                res = row.get(r)
                if not res:
                    continue
                if "unsupported" in res:
                    text = f"unsupported ({res['unsupported'][:80]})"
                else:
                    per_node = res.get("subscribers_per_node")
                    text = (f"{res['received']}/{res['expected_deliveries']} delivered"
                            + (f" (subscribers per node {per_node}, creates on the first)"
                               if per_node else "")
                            + f", from create request p50 "
                            f"{fmt_num(res['delivery_from_request_p50_ms'], 2)} ms, p99 "
                            f"{fmt_num(res['delivery_from_request_p99_ms'], 2)} ms, "
                            f"CPU {fmt_num(res.get('server_cpu_us_per_delivery'), 1)} "
                            f"us/delivery")
                print(f"{name if r == extra[0] else '':15s} {short.get(r, r) + ':':7s} {text}")
            continue
        cells = []
        for r in extra:
            res = row.get(r)
            if not res or "unsupported" in res:
                cells.append(f"{'unsupp.' if res else '-':>11s} {'':>6s}")
                continue
            rt = (ratios.get(r) or {}).get("rps")
            cells.append(f"{fmt_num(res['rps']):>11s} "
                         f"{(fmt_num(rt, 2) + 'x') if rt else '-':>6s}")
        p99s = []
        for r in [REF] + extra:
            res = row.get(r)
            p99s.append(f"{fmt_num(res['p99_ms'], 2) if res and 'p99_ms' in res else '-':>9s}")
        errs = "/".join(str(row[r]["errors"]) if row.get(r) and "errors" in row[r] else "-"
                        for r in extra)
        cpu = " / ".join(fmt_num(row[r].get("server_cpu_us_per_req"))
                         if row.get(r) and "rps" in row[r] else "-" for r in roles)
        print(f"{name:15s} {' '.join(cells)} {' '.join(p99s)} {errs:>14s}  {cpu}")
    for name, row in summary["workloads"].items():
        for r in extra:
            res = row.get(r)
            if res and "unsupported" in res:
                print(f"  {name} {r}: unsupported: {res['unsupported'][:200]}")


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
    ap.add_argument("--pg", metavar="ADMIN_URL", default="",
                    help="also run Plinth on PostgreSQL: a superuser URL of a cluster on this\n"
                    "machine, e.g. postgres://postgres@127.0.0.1:54339/postgres (each candidate\n"
                    "gets a fresh database, dropped at the end)")
    ap.add_argument("--pg-nodes", default="1,2",
                    help="with --pg: node counts to run, 1 = plinth-pg, 2 = plinth-pg2 (1,2)")
    ap.add_argument("--pg-cpus", default=os.environ.get("PG_CPUS", ""),
                    help="CPUs the PostgreSQL cluster is pinned to (default: the server CPUs)")
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
    try:
        pg_nodes = sorted({int(n) for n in args.pg_nodes.split(",") if n.strip()})
    except ValueError:
        ap.error("--pg-nodes takes 1, 2 or 1,2")
    if args.pg and (not pg_nodes or not set(pg_nodes) <= {1, 2}):
        ap.error("--pg-nodes takes 1, 2 or 1,2")
    pg_nodes = pg_nodes if args.pg else []
    if pg_nodes:
        cfg.pg_cpus = args.pg_cpus or cfg.server_cpus

    # The realtime client shares the load generator's CPUs.
    os.sched_setaffinity(0, {int(c) for c in cfg.load_cpus.split(",")})
    # PocketBase, Plinth, the hello ceiling, then plinth-pg and plinth-pg2's two nodes.
    ports = (list(range(args.port_base, args.port_base + 6)) if args.port_base
             else [free_port() for _ in range(6)])
    workdir = tempfile.mkdtemp(prefix="plinth-bench-")
    servers = {REF: Candidate(REF, [Server(REF, args.pocketbase, ports[0], cfg.server_cpus,
                                           workdir)]),
               CAND: Candidate(CAND, [Server(CAND, args.plinth, ports[1], cfg.server_cpus,
                                             workdir)])}
    pg = None
    if pg_nodes:
        try:
            pg = PgCluster(args.pg, cfg.pg_cpus)
            servers.update(pg_candidates(pg, pg_nodes, args.plinth, ports, cfg, workdir))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    roles = list(servers)

    def stop_all(*_):
        for s in servers.values():
            s.stop()
        if pg:
            pg.drop_databases()
            pg.unpin()
            summary["server_log_problems"] = scan_logs(
                [n for r in roles[1:] for n in servers[r].nodes])
            for node, found in summary["server_log_problems"].items():
                summary["notes"].append(f"{node}'s log: {found['count']} line(s) like "
                                        f"{found['first'][:200]!r}")
        shutil.rmtree(workdir, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    summary = {"kind": "plinth-bench", "schema": 1, "profile": args.profile,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": loadavg(),
               "machine": machine(), "config": vars(cfg),
               "servers": {}, "setup": {}, "workloads": {}, "notes": []}
    try:
        states = {}
        if pg:
            summary["postgres"] = {"admin_url": redact(args.pg), "data_directory": pg.datadir,
                                   "postmaster_pid": pg.pid, "settings": pg.settings,
                                   "cpus": cfg.pg_cpus, "databases": list(pg.databases)}
            summary["cpus"] = {"servers": cfg.server_cpus, "postgres": cfg.pg_cpus,
                               "load": cfg.load_cpus}
        for role, s in servers.items():
            node = s.nodes[0]
            summary["servers"][role] = {"binary": node.binary, "version": node.version,
                                        "port": node.port, "cpus": cfg.server_cpus}
            if role != REF:
                match = link_order_match(node.binary)
                if match:
                    summary["servers"][role]["link_order_found"] = list(match)
                    log(f"{role}: {match[0]} of the {match[1]} functions in "
                        f"crates/cli/link-order.txt are in the binary")
                    if match[0] < 0.9 * match[1]:
                        log("warning: the binary's function layout no longer follows "
                            "link-order.txt (regenerate it: python3 bench/link_order.py BIN)")
            if s.pg:
                summary["servers"][role].update(
                    nodes=len(s.nodes), ports=[n.port for n in s.nodes],
                    db=redact(node.db_url), postgres_cpus=cfg.pg_cpus)
            try:
                s.start()
            except BenchError as e:
                if role == REF:
                    raise
                log(f"{role}: {e}")
                s.start_error = str(e)
                summary["setup"][role] = {"error": str(e)}
        for role in roles[1:]:
            summary["servers"][role]["git"] = (git_describe() if args.plinth_built_here
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
                log(f"{role}: {e}")
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
            # Who goes first rotates from workload to workload.
            order = roles[idx % len(roles):] + roles[:idx % len(roles)]
            for role in order:
                s = servers[role]
                others = [o for r, o in servers.items() if r != role]
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
                        res = measure(cfg, s, others, name, workload_specs(st)[name],
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
            if len(roles) > 2:
                # Every candidate against PocketBase ("ratio" above is Plinth on SQLite's).
                for role in roles[2:]:
                    summary["workloads"][name][role] = row.get(role)
                summary["workloads"][name]["ratios"] = {
                    role: compare(row.get(REF), row.get(role)) for role in roles[1:]}
            check_reference(args.profile, name, row[REF], summary)
            if name == "health" and not args.no_ceilings:
                # The hello world again right after the health row: this machine's speed
                # drifts by tens of percent over a run, and a ratio to the ceiling measured at
                # the end compares two phases.
                try:
                    hello = hello_health(cfg, args.hello, ports[2], workdir, "hello-adjacent")
                    summary["health_adjacent_hello"] = hello
                    log(f"health          hello (adjacent) {hello['rps']:10.1f} req/s  "
                        f"{hello.get('server_cpu_us_per_req')} us/req")
                except BenchError as e:
                    summary["health_adjacent_hello"] = {"error": str(e)[:400]}
                time.sleep(cfg.settle)

        cost_names = [w for w in ("health", "view") if w in only]
        if cost_names and states.get(CAND) and servers[CAND].alive():
            try:
                summary["logging_cost"] = logging_cost(
                    cfg, servers[CAND], [o for r, o in servers.items() if r != CAND],
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
