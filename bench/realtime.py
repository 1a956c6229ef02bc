"""Realtime (SSE) fan-out benchmark: asyncio on stdlib sockets, one thread.
(Adapted from the shared harness in ../shared/bench/.)

K subscribers open GET /api/realtime, read the PB_CONNECT event, and subscribe
(POST /api/realtime) to a collection with the user's token. Then M records are
created one at a time (with a short gap); every subscriber must receive every
create event. Latency = event receipt time - create response time (can be
slightly negative when the server pushes the event before answering the POST);
the same from the create *request* start is reported as well.
"""
import asyncio
import json
import time
import urllib.parse
import uuid


class RealtimeError(Exception):
    pass


async def read_head(reader):
    line = await reader.readline()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise RealtimeError(f"bad HTTP status line: {line!r}")
    headers = {}
    while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers


async def read_body(reader, status, headers):
    """Yields body pieces; handles chunked, Content-Length and read-until-close."""
    if status in (204, 304) or 100 <= status < 200:
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()  # final CRLF (trailers are not expected)
                return
            yield (await reader.readexactly(size + 2))[:-2]
    elif "content-length" in headers:
        n = int(headers["content-length"])
        if n:
            yield await reader.readexactly(n)
    else:
        while data := await reader.read(65536):
            yield data


async def request(conn, host, method, path, body=None, token=None):
    reader, writer = conn
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n")
    if token:
        head += f"Authorization: {token}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    status, headers = await read_head(reader)
    raw = b"".join([piece async for piece in read_body(reader, status, headers)])
    return status, raw


async def sse_events(reader, headers):
    """Yields (receipt_time, event_name, data) for each server-sent event."""
    buf = b""
    async for piece in read_body(reader, 200, headers):
        t = time.perf_counter()
        buf += piece.replace(b"\r", b"")
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            name, data = "message", []
            for line in raw.split(b"\n"):
                field, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if field == b"event":
                    name = value.decode()
                elif field == b"data":
                    data.append(value.decode())
            yield t, name, "\n".join(data)


def pct(values, p):
    """Nearest-rank percentile of an unsorted list (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def ms(v):
    return None if v is None else round(v * 1000, 3)


async def _fanout(base_url, token, author_id, k, m, collection, gap, wait):
    u = urllib.parse.urlsplit(base_url)
    host, port, prefix = u.hostname, u.port or 80, u.path.rstrip("/")
    hostport = u.netloc
    tag = "rt-" + uuid.uuid4().hex[:8]
    arrivals = {}  # title -> [receipt times]
    writers = []

    async def subscribe():
        reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)
        writer.write(f"GET {prefix}/api/realtime HTTP/1.1\r\nHost: {hostport}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        status, headers = await read_head(reader)
        if status != 200:
            raise RealtimeError(f"GET /api/realtime -> HTTP {status}")
        events = sse_events(reader, headers)
        _, name, data = await asyncio.wait_for(anext(events), 10)
        if name != "PB_CONNECT":
            raise RealtimeError(f"expected PB_CONNECT as first event, got {name!r}")
        client_id = json.loads(data)["clientId"]
        conn = await asyncio.open_connection(host, port)
        try:
            st, raw = await request(conn, hostport, "POST", f"{prefix}/api/realtime",
                                    {"clientId": client_id, "subscriptions": [collection]}, token)
        finally:
            conn[1].close()
        if st not in (200, 204):
            raise RealtimeError(f"POST /api/realtime (subscribe) -> HTTP {st}: {raw[:300]!r}")
        return events

    async def consume(events):
        async for t, name, data in events:
            if name == collection:
                title = json.loads(data).get("record", {}).get("title", "")
                if title.startswith(tag):
                    arrivals.setdefault(title, []).append(t)

    try:
        streams = await asyncio.gather(*(subscribe() for _ in range(k)))
        consumers = [asyncio.create_task(consume(s)) for s in streams]
        await asyncio.sleep(0.3)

        conn = await asyncio.open_connection(host, port)
        writers.append(conn[1])
        sent = {}  # title -> (request start, response end)
        for i in range(m):
            title = f"{tag}-{i}"
            body = {"title": title, "body": "realtime", "score": 1, "published": True,
                    "author": author_id}
            t0 = time.perf_counter()
            st, raw = await request(conn, hostport, "POST",
                                    f"{prefix}/api/collections/{collection}/records", body, token)
            t1 = time.perf_counter()
            if st != 200:
                raise RealtimeError(f"create record -> HTTP {st}: {raw[:300]!r}")
            sent[title] = (t0, t1)
            await asyncio.sleep(gap)

        deadline = time.perf_counter() + wait
        while (sum(map(len, arrivals.values())) < k * m and time.perf_counter() < deadline
               and not any(c.done() for c in consumers)):
            await asyncio.sleep(0.05)
        for c in consumers:
            if c.done() and c.exception():
                raise RealtimeError(f"subscriber stream failed: {c.exception()!r}")
            c.cancel()
    finally:
        for w in writers:
            w.close()

    from_resp, from_req, complete = [], [], []
    for title, (t0, t1) in sent.items():
        times = arrivals.get(title, [])
        from_resp += [t - t1 for t in times]
        from_req += [t - t0 for t in times]
        if times and len(times) == k:
            complete.append(max(times) - t1)
    received = len(from_resp)
    create_lat = [t1 - t0 for t0, t1 in sent.values()]
    return {
        "subscribers": k,
        "events": m,
        "expected_deliveries": k * m,
        "received": received,
        "missing": k * m - received,
        "all_delivered": received == k * m,
        "create_p50_ms": ms(pct(create_lat, 50)),
        "delivery_p50_ms": ms(pct(from_resp, 50)),
        "delivery_p90_ms": ms(pct(from_resp, 90)),
        "delivery_p99_ms": ms(pct(from_resp, 99)),
        "delivery_max_ms": ms(max(from_resp, default=None)),
        "delivery_from_request_p50_ms": ms(pct(from_req, 50)),
        "delivery_from_request_p99_ms": ms(pct(from_req, 99)),
        "fanout_complete_p50_ms": ms(pct(complete, 50)),
        "fanout_complete_p99_ms": ms(pct(complete, 99)),
    }


def fanout(base_url, token, author_id, subscribers=100, events=50, collection="posts",
           gap=0.02, wait=10.0):
    """Runs the fan-out benchmark and returns a dict of results.

    Raises RealtimeError when the server does not speak the protocol (or hangs): the whole
    run is bounded, so a server that accepts the stream but never answers cannot stall it.
    """
    limit = 20.0 + events * (gap + 0.5) + wait

    async def bounded():
        try:
            return await asyncio.wait_for(
                _fanout(base_url, token, author_id, subscribers, events, collection, gap, wait),
                limit)
        except asyncio.TimeoutError:
            raise RealtimeError(f"no result within {limit:.0f} s")
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            raise RealtimeError(f"connection problem: {e!r}")

    return asyncio.run(bounded())
