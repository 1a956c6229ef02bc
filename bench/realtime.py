"""Realtime (SSE) fan-out benchmark: stdlib only, subscribers sharded over worker processes.
(Adapted from the shared harness in ../shared/bench/.)

K subscribers open GET /api/realtime, read the PB_CONNECT event, and subscribe
(POST /api/realtime) to a collection with the user's token. Then M records are
created one at a time (with a gap); every subscriber must receive every create
event. Latency = event receipt time - create response time (can be slightly
negative when the server pushes the event before answering the POST); the same
from the create *request* start is reported as well, and is the figure to compare
when a server answers the create only after it has pushed the event to everyone
(PocketBase does: its create latency grows with K and the response-based latency
goes negative).

One asyncio process does not keep up with thousands of streams, so the subscribers
are split over ceil(K / PER_PROCESS) forked worker processes (asyncio Protocols, no
per-event JSON parsing: the record title is found with a regex). Receipt times are
time.perf_counter() (CLOCK_MONOTONIC, shared by all processes on Linux), so they
compare with the coordinator's create times. The gap between creates grows with K
(GAP_PER_SUBSCRIBER) so that the client keeps up and fan-outs do not overlap; the
client still shares one CPU, so its own time (`client_cpu_s`) is reported.

Memory: when the server's pid is given, its VmRSS is read idle before the
subscribers connect, with all of them connected, subscribed and idle (after a
settle), at its peak during the fan-out, and after they disconnect. The idle figure
over K gives the server's memory per idle connected client.

Several nodes of one app (sharing a PostgreSQL database): `sub_urls` lists them; the
subscribers are spread evenly over them (at least one worker process per node) while
the creates go to `base_url`, so the other nodes must deliver events written on
another node. `server_pid` may then be a list (VmRSS and CPU are summed over it), and
`cpu_fn` may replace the CPU reading (e.g. to add the database server's).
"""
import asyncio
import http.client
import json
import math
import multiprocessing
import os
import re
import resource
import statistics
import threading
import time
import urllib.parse
import uuid

PER_PROCESS = 2500  # subscribers per worker process
GAP_MIN = 0.02  # seconds between creates
GAP_PER_SUBSCRIBER = 25e-6  # + this per subscriber (10,000 -> 0.25 s)
CONNECT_CONCURRENCY = 50  # SSE connects in flight per worker
SUBSCRIBE_CONNECTIONS = 4  # keep-alive connections per worker for POST /api/realtime
IDLE_SETTLE = 2.0  # seconds all subscribers sit idle before the idle RSS is read

CLIENT_ID_RE = re.compile(rb'"clientId":"([^"]+)"')


class RealtimeError(Exception):
    pass


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (each subscriber is one socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values, p):
    """Nearest-rank percentile of an unsorted list (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def ms(v):
    return None if v is None else round(v * 1000, 3)


def rss_kib(pid):
    if isinstance(pid, (list, tuple)):
        parts = [rss_kib(p) for p in pid]
        return None if None in parts else sum(parts)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """utime + stime of a process (None when it is gone); of several, their sum."""
    if isinstance(pid, (list, tuple)):
        parts = [cpu_seconds(p) for p in pid]
        return None if None in parts else sum(parts)
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def steady_rss(pid, samples=5, every=0.1):
    """Median of a few VmRSS readings (KiB)."""
    vals = []
    for _ in range(samples):
        v = rss_kib(pid)
        if v is not None:
            vals.append(v)
        time.sleep(every)
    return int(statistics.median(vals)) if vals else None


# --------------------------------------------------------------------------------------------
# Worker process: K_i SSE streams


async def request(conn, host, method, path, body=None, token=None):
    """One HTTP/1.1 request on a keep-alive (reader, writer) pair: (status, body, keep)."""
    reader, writer = conn
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n")
    if token:
        head += f"Authorization: {token}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    line = await reader.readline()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise RealtimeError(f"bad HTTP status line: {line!r}")
    headers = {}
    while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    raw = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while (size := int((await reader.readline()).split(b";")[0], 16)):
            raw += (await reader.readexactly(size + 2))[:-2]
        await reader.readline()
    elif (n := int(headers.get("content-length", "0"))):
        raw = await reader.readexactly(n)
    return int(parts[1]), raw, headers.get("connection", "").lower() != "close"


class SseStream(asyncio.Protocol):
    """One subscriber: records the receipt time of every event carrying the run's tag."""

    def __init__(self, worker):
        self.worker, self.buf, self.head = worker, b"", False
        self.client_id = asyncio.get_running_loop().create_future()
        self.transport, self.closed = None, False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(f"GET {self.worker.prefix}/api/realtime HTTP/1.1\r\n"
                        f"Host: {self.worker.hostport}\r\nAccept: text/event-stream\r\n\r\n"
                        .encode())

    def data_received(self, data):
        now = time.perf_counter()
        buf = self.buf + data
        if not self.head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                status = buf.split(b"\r\n", 1)[0]
                self.fail(f"GET /api/realtime -> {status!r}")
                return
            self.head, buf = True, buf[end + 4:]
        # Frames end with a blank line; chunk-size lines between them do not matter here.
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.buf = buf
            return
        frames, self.buf = buf[:end + 2], buf[end + 2:]
        if not self.client_id.done():
            m = CLIENT_ID_RE.search(frames)
            if m:
                self.client_id.set_result(m.group(1).decode())
        for m in self.worker.title_re.finditer(frames):
            self.worker.arrivals[int(m.group(1))].append(now)
            self.worker.received += 1

    def fail(self, msg):
        if not self.client_id.done():
            self.client_id.set_exception(RealtimeError(msg))
        self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        if not self.client_id.done():
            self.client_id.set_exception(RealtimeError(f"stream closed before PB_CONNECT: {exc!r}"))


class Worker:
    def __init__(self, base_url, token, collection, k, tag, events):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.prefix = u.hostname, u.port or 80, u.path.rstrip("/")
        self.hostport, self.token, self.collection, self.k = u.netloc, token, collection, k
        self.title_re = re.compile(rb'"title":"' + tag.encode() + rb'-(\d+)"')
        self.arrivals = [[] for _ in range(events)]
        self.received, self.streams = 0, []

    async def open_all(self):
        loop = asyncio.get_running_loop()
        pool = asyncio.Queue()
        for _ in range(min(SUBSCRIBE_CONNECTIONS, self.k)):
            pool.put_nowait(await asyncio.open_connection(self.host, self.port))
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one():
            async with gate:
                _, stream = await loop.create_connection(lambda: SseStream(self),
                                                         self.host, self.port)
                self.streams.append(stream)
                client_id = await asyncio.wait_for(stream.client_id, 30)
                conn = await pool.get()
                keep = False
                try:
                    st, raw, keep = await request(
                        conn, self.hostport, "POST", f"{self.prefix}/api/realtime",
                        {"clientId": client_id, "subscriptions": [self.collection]},
                        self.token)
                finally:
                    if keep:
                        pool.put_nowait(conn)
                    else:
                        conn[1].close()
                        pool.put_nowait(await asyncio.open_connection(self.host, self.port))
                if st not in (200, 204):
                    raise RealtimeError(f"POST /api/realtime (subscribe) -> HTTP {st}: "
                                        f"{raw[:300]!r}")

        await asyncio.gather(*(one() for _ in range(self.k)))
        while not pool.empty():
            pool.get_nowait()[1].close()

    async def main(self, pipe):
        loop = asyncio.get_running_loop()
        try:
            await self.open_all()
        except (OSError, asyncio.TimeoutError, RealtimeError, ValueError,
                asyncio.IncompleteReadError) as e:
            pipe.send(("error", f"{type(e).__name__}: {e}"))
            return
        pipe.send(("ready", len(self.streams)))
        cpu0 = time.process_time()
        cmd = await loop.run_in_executor(None, pipe.recv)
        if cmd[0] != "collect":
            return
        expected, deadline = cmd[1] * self.k, cmd[2]
        while (self.received < expected and time.perf_counter() < deadline
               and not all(s.closed for s in self.streams)):
            await asyncio.sleep(0.02)
        closed = sum(s.closed for s in self.streams)
        pipe.send(("result", self.arrivals, closed, time.process_time() - cpu0))
        for s in self.streams:
            if s.transport:
                s.transport.close()
        await asyncio.sleep(0.05)


def _worker_entry(pipe, args):
    raise_nofile()
    try:
        asyncio.run(Worker(*args).main(pipe))
    except Exception as e:  # reported to the coordinator, which raises
        try:
            pipe.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
    finally:
        pipe.close()


# --------------------------------------------------------------------------------------------
# Coordinator


class _RssSampler:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid) or 0)
            self.stop.wait(0.02)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak or None


def _recv(pipe, deadline, what):
    left = deadline - time.perf_counter()
    if left <= 0 or not pipe.poll(left):
        raise RealtimeError(f"no answer from a subscriber process ({what}) in time")
    try:
        msg = pipe.recv()
    except EOFError:
        raise RealtimeError(f"a subscriber process died ({what})")
    if msg[0] == "error":
        raise RealtimeError(msg[1])
    return msg


def fanout(base_url, token, author_id, subscribers=100, events=50, collection="posts",
           gap=None, wait=None, server_pid=None, sub_urls=None, cpu_fn=None):
    """Runs the fan-out benchmark and returns a dict of results.

    Raises RealtimeError when the server does not speak the protocol (or hangs): every wait
    is bounded, so a server that accepts the stream but never answers cannot stall it.
    """
    k, m = subscribers, events
    gap = GAP_MIN + GAP_PER_SUBSCRIBER * k if gap is None else gap
    wait = 10.0 + k * m * 20e-6 if wait is None else wait
    nofile = raise_nofile()
    if k + 64 > nofile:
        raise RealtimeError(f"{k} subscribers need more open files than RLIMIT_NOFILE {nofile}")
    u = urllib.parse.urlsplit(base_url)
    prefix = u.path.rstrip("/")
    tag = "rt-" + uuid.uuid4().hex[:8]
    sub_urls = list(sub_urls or [base_url])
    nproc = max(1, math.ceil(k / PER_PROCESS))
    nproc = math.ceil(nproc / len(sub_urls)) * len(sub_urls)  # the same number per node
    shares = [k // nproc + (1 if i < k % nproc else 0) for i in range(nproc)]
    urls = [sub_urls[i % len(sub_urls)] for i in range(nproc)]
    res = {"subscribers": k, "events": m, "processes": nproc, "gap_s": round(gap, 4)}
    if len(sub_urls) > 1:
        res["subscribers_per_node"] = [sum(sh for sh, u in zip(shares, urls) if u == url)
                                       for url in sub_urls]
        res["creates_to"] = base_url
    read_cpu = cpu_fn or (lambda: cpu_seconds(server_pid))

    if server_pid:
        res["rss_before_kib"] = steady_rss(server_pid)
    ctx = multiprocessing.get_context("fork")
    procs, pipes = [], []
    try:
        t_conn = time.perf_counter()
        for share, url in zip(shares, urls):
            if not share:
                continue
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker_entry,
                            args=(child, (url, token, collection, share, tag, m)),
                            daemon=True)
            p.start()
            child.close()
            procs.append(p)
            pipes.append(parent)
        ready_by = time.perf_counter() + 30 + k / 100
        for pipe in pipes:
            _recv(pipe, ready_by, "connect + subscribe")
        res["connect_s"] = round(time.perf_counter() - t_conn, 2)
        time.sleep(IDLE_SETTLE)
        if server_pid:
            res["rss_idle_kib"] = steady_rss(server_pid)
            res["idle_bytes_per_client"] = round(
                (res["rss_idle_kib"] - res["rss_before_kib"]) * 1024 / k)

        sampler = _RssSampler(server_pid) if server_pid else None
        cpu0 = read_cpu() if server_pid else None
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        sent = []  # (request start, response end) per event index
        try:
            for i in range(m):
                body = json.dumps({"title": f"{tag}-{i}", "body": "realtime", "score": 1,
                                   "published": True, "author": author_id})
                t0 = time.perf_counter()
                conn.request("POST", f"{prefix}/api/collections/{collection}/records", body,
                             {"Content-Type": "application/json", "Authorization": token})
                r = conn.getresponse()
                raw = r.read()
                t1 = time.perf_counter()
                if r.status != 200:
                    raise RealtimeError(f"create record -> HTTP {r.status}: {raw[:300]!r}")
                sent.append((t0, t1))
                time.sleep(gap)
        except (OSError, http.client.HTTPException) as e:
            raise RealtimeError(f"create record: {e!r}")
        finally:
            conn.close()
        deadline = time.perf_counter() + wait
        for pipe in pipes:
            pipe.send(("collect", m, deadline))
        results = [_recv(pipe, deadline + 10, "collect") for pipe in pipes]
        if server_pid:
            cpu1 = read_cpu()
            res["rss_fanout_peak_kib"] = sampler.finish()
            if cpu0 is not None and cpu1 is not None:
                res["server_cpu_s"] = round(cpu1 - cpu0, 3)
    finally:
        # Closing the pipes first ends a worker still waiting for its next command.
        for pipe in pipes:
            pipe.close()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join()
    if server_pid:
        time.sleep(1.0)
        res["rss_after_close_kib"] = steady_rss(server_pid)

    from_resp, from_req, complete, complete_req = [], [], [], []
    per_event = [[] for _ in range(m)]
    for _, arrivals, _, _ in results:
        for i, times in enumerate(arrivals):
            per_event[i] += times
    for i, (t0, t1) in enumerate(sent):
        times = per_event[i]
        from_resp += [t - t1 for t in times]
        from_req += [t - t0 for t in times]
        if len(times) == k:
            complete.append(max(times) - t1)
            complete_req.append(max(times) - t0)
    received = len(from_resp)
    create_lat = [t1 - t0 for t0, t1 in sent]
    res.update({
        "expected_deliveries": k * m,
        "received": received,
        "missing": k * m - received,
        "all_delivered": received == k * m,
        "streams_closed": sum(r[2] for r in results),
        "client_cpu_s": round(sum(r[3] for r in results), 3),
        "create_p50_ms": ms(pct(create_lat, 50)),
        "delivery_p50_ms": ms(pct(from_resp, 50)),
        "delivery_p90_ms": ms(pct(from_resp, 90)),
        "delivery_p99_ms": ms(pct(from_resp, 99)),
        "delivery_max_ms": ms(max(from_resp, default=None)),
        "delivery_from_request_p50_ms": ms(pct(from_req, 50)),
        "delivery_from_request_p99_ms": ms(pct(from_req, 99)),
        "fanout_complete_p50_ms": ms(pct(complete, 50)),
        "fanout_complete_p99_ms": ms(pct(complete, 99)),
        "fanout_complete_from_request_p50_ms": ms(pct(complete_req, 50)),
        "fanout_complete_from_request_p99_ms": ms(pct(complete_req, 99)),
    })
    if res.get("server_cpu_s") is not None and received:
        res["server_cpu_us_per_delivery"] = round(res["server_cpu_s"] * 1e6 / received, 2)
    return res
