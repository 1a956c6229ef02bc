#!/usr/bin/env python3
"""Writes the function order the release binary is linked in (`crates/cli/link-order.txt`).

    python3 bench/link_order.py target/release/plinth [--out crates/cli/link-order.txt]

The server runs under callgrind (valgrind) from its first instruction: it starts, takes the
benchmark's setup (collections, users, a few hundred posts through the batch API) and then a
few hundred requests of every benchmark workload, a realtime subscription with its events,
password logins, the admin UI's files and a JS hook; before that, a server without hooks
starts and idles on its own. Every function of the binary that ran is written out by its
linker symbol name (the order: `layout`). `crates/cli/build.rs`
hands the file to the linker (lld's `--symbol-ordering-file`), which places those functions
first and together in `.text`, in that order:

- startup touches a few dozen pages of code instead of one page in each of ~150 places spread
  over 20 MiB, and the kernel maps every faulting page's cached neighbours (fault-around, up to
  64 KiB), so the code resident at idle shrinks;
- the request path's functions share pages and TLB entries.

Symbols are matched by name; names that no longer exist (the code changed) are skipped by the
linker, so a stale file costs only the effect. `bench/run.sh` reports how much of the file the
binary under test still matches. Needs valgrind.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

REQUESTS_PER_WORKLOAD = 150
SEED = 300
IDLE_SECONDS = 6
SYMBOL = re.compile(r"^(?!0x)[A-Za-z_.$][A-Za-z0-9_.$]*$")


def wrapper(tmp, binary, out):
    """An executable that runs the binary under callgrind: `serve` writes `out` (and `out.1`
    ... on each dump), other commands (the superuser upsert before it, which creates a fresh
    data dir's tables) `out.cli.<pid>`."""
    path = os.path.join(tmp, "plinth-callgrind")
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
if [ "$1" = serve ]; then
  exec valgrind --tool=callgrind --demangle=no --dump-instr=no --dump-line=no \\
    --callgrind-out-file={out} {binary} "$@"
fi
exec valgrind --tool=callgrind --demangle=no --dump-instr=no --dump-line=no \\
  --callgrind-out-file={out}.cli.%p {binary} "$@"
""")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def call(port, method, path, token=None, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = dict(headers or {})
    if token:
        h["Authorization"] = token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, raw


def realtime(port, token, creates):
    """One SSE client: connect, subscribe to posts, receive `creates` events."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/api/realtime")
    r = c.getresponse()
    client_id = None
    while client_id is None:
        line = r.fp.readline().decode()
        if line.startswith("data:"):
            client_id = json.loads(line[5:])["clientId"]
    status, raw = call(port, "POST", "/api/realtime", token,
                       {"clientId": client_id, "subscriptions": ["posts"]})
    if status != 204:
        raise bench.BenchError(f"realtime subscribe -> {status}: {raw[:200]!r}")
    got = []

    def read():
        while len(got) < creates:
            line = r.fp.readline().decode()
            if not line:
                return
            if line.startswith("event:posts"):
                got.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got, c


def drive(srv, st):
    port = srv.port
    specs = bench.workload_specs(st)
    rt_thread, rt_got, rt_conn = realtime(port, st["user_token"], 20)
    for name, (method, paths, body, token, _probe) in specs.items():
        if name == "auth":
            n = 5  # argon2 under valgrind takes seconds each
        else:
            n = REQUESTS_PER_WORKLOAD
        for i in range(n):
            if method == "MIXED":
                m, p, tok, b = paths[i % len(paths)]
            else:
                m, p, tok = method, paths[i % len(paths)], token
                b = body[i % len(body)] if isinstance(body, list) else body
            status, raw = call(port, m, p, tok, b)
            if status >= 300:
                raise bench.BenchError(f"{name}: {m} {p} -> {status}: {raw[:200]!r}")
        bench.log(f"profile: {name} x{n}")
    # Requests the benchmark does not make but every deployment sees.
    for p in ["/_/", "/api/collections/posts/records/missing", "/api/nothing"]:
        call(port, "GET", p)
    call(port, "POST", "/api/collections/posts/records", st["user_token"], {"score": "x"})
    rt_thread.join(60)
    rt_conn.close()
    bench.log(f"profile: realtime received {len(rt_got)} events")


def parse(out, binary):
    """Self instructions per function of `binary` (by symbol name) in a callgrind output."""
    names, costs = {}, {}
    obj_names, cur_obj, cur_fn = {}, None, None
    in_call = False
    target = os.path.realpath(binary)
    ref = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def resolve(table, text):
        m = ref.match(text)
        if not m:
            return text
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1))

    with open(out) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                cur_obj = resolve(obj_names, line[3:])
            elif line.startswith("cob="):
                resolve(obj_names, line[4:])
            elif line.startswith("fn="):
                cur_fn = (cur_obj, resolve(names, line[3:]))
            elif line.startswith("cfn="):
                resolve(names, line[4:])
            elif line.startswith("calls="):
                in_call = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                if in_call:
                    in_call = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and cur_fn:
                    costs[cur_fn] = costs.get(cur_fn, 0) + int(parts[1])
    ours = {}
    for (obj, fn), c in costs.items():
        if obj and os.path.realpath(obj) == target and fn:
            # callgrind names a recursive function's deeper levels `name'2`, `name'3`, ...
            fn = re.sub(r"'\d+$", "", fn)
            # Only linker symbols: not "(below main)" nor bare addresses of unnamed code.
            if SYMBOL.match(fn):
                ours[fn] = ours.get(fn, 0) + c
    return ours


def plain_startup(binary):
    """What a server without hooks runs to start and idle: `serve` under callgrind on a data dir
    made by `superuser upsert`, no `pb_hooks` beside it, one health check, then idle."""
    with tempfile.TemporaryDirectory(prefix="link-order-plain-") as tmp:
        data, cg, port = os.path.join(tmp, "data"), os.path.join(tmp, "cg.out"), 18796
        subprocess.run([binary, "superuser", "upsert", bench.SU_EMAIL, bench.SU_PASSWORD,
                        "--dir", data], cwd=tmp, check=True, capture_output=True, timeout=120)
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
             "--dump-line=no", f"--callgrind-out-file={cg}", binary, "serve",
             f"--http=127.0.0.1:{port}", f"--dir={data}"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if call(port, "GET", "/api/health")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise bench.BenchError("the plain server did not start under callgrind")
                time.sleep(0.5)
            time.sleep(IDLE_SECONDS)
            call(port, "GET", "/api/health")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(300)
        return parse(cg, binary)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--out", default=os.path.join(bench.HERE, "..", "crates", "cli",
                                                  "link-order.txt"))
    ap.add_argument("--costs", help="also write each phase's instructions per function (JSON)")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed (apt-get install valgrind)")
    binary = os.path.realpath(args.binary)
    plain = plain_startup(binary)
    with tempfile.TemporaryDirectory(prefix="link-order-") as tmp:
        cg = os.path.join(tmp, "callgrind.out")
        srv = bench.Server("plinth", wrapper(tmp, binary, cg), 18795, "0,1", tmp,
                           ask_version=False)
        srv.start(timeout=300)
        try:
            # Everything so far is startup (and one health check): its own dump, `cg.1`;
            # then what the idle server runs in the background (timers, flushes), `cg.2`.
            dump = ["callgrind_control", "-d", str(srv.proc.pid)]
            subprocess.run(dump, check=True, capture_output=True, timeout=120)
            time.sleep(IDLE_SECONDS)
            call(srv.port, "GET", "/api/health")
            subprocess.run(dump, check=True, capture_output=True, timeout=120)
            st = bench.setup(srv, SEED)
            drive(srv, st)
        finally:
            # callgrind writes its file when the program exits.
            srv.proc.send_signal(signal.SIGTERM)
            srv.proc.wait(300)
        startup = parse(cg + ".1", binary)
        for fn, c in parse(cg + ".2", binary).items():
            startup[fn] = startup.get(fn, 0) + c
        cli = {}
        for name in os.listdir(tmp):
            if name.startswith("callgrind.out.cli."):
                for fn, c in parse(os.path.join(tmp, name), binary).items():
                    cli[fn] = cli.get(fn, 0) + c
        later = parse(cg, binary)
    if args.costs:
        with open(args.costs, "w") as f:
            json.dump({"plain": plain, "startup": startup, "later": later, "cli": cli}, f)
    order = layout(plain, startup, later, cli)
    if len(order) < 1000:
        sys.exit(f"only {len(order)} functions of {binary} in the profile: not written")
    with open(args.out, "w") as f:
        f.write("\n".join(order) + "\n")
    bench.log(f"{len(order)} functions ({len(startup)} at startup), "
              f"{sum(later.values()):,} instructions after it; written to {args.out}")


def layout(plain, startup, later, cli):
    """Startup's code in one stretch and the requests' hot code in another, overlapping:
    first what a server without hooks ran to start and idle, then what startup with hooks
    added, then the hot functions startup also ran, then the hot ones only requests ran (hot:
    together 99.5 % of the requests' instructions, most first), then what the other commands
    ran (a fresh data dir's tables among it), then the rest."""
    def by_cost(costs):
        return sorted(costs, key=lambda fn: (-costs[fn], fn))

    hot, run, total = [], 0, sum(later.values())
    for fn in by_cost(later):
        if run >= total * 0.995:
            break
        run += later[fn]
        hot.append(fn)
    hot_set = set(hot)
    both = {**startup, **plain}
    order = ([fn for fn in by_cost(plain) if fn not in hot_set]
             + [fn for fn in by_cost(startup) if fn not in hot_set and fn not in plain]
             + [fn for fn in hot if fn in both]
             + [fn for fn in hot if fn not in both])
    seen = set(order)
    for costs in (cli, later):
        for fn in by_cost(costs):
            if fn not in seen:
                order.append(fn)
                seen.add(fn)
    return order


if __name__ == "__main__":
    main()
