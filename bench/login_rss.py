#!/usr/bin/env python3
"""Memory around a burst of password logins: `bench/login_rss.py BINARY [--port N]`.

Starts BINARY (Plinth or PocketBase: both take `superuser upsert … --dir` and `serve --dir`) on a
fresh data dir, creates 20 users, then signs in 200 times at once and reports the server's
VmRSS: idle after start, before the burst, its peak, right after, and after 15 and 30 idle
seconds. Plinth hashes with argon2id (about 19 MiB per hash, at most one per CPU at a time);
PocketBase with bcrypt. The issue #16 target is RSS once idle again within twice the idle figure.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

USERS, LOGINS, PASSWORD = 20, 200, "login-burst-pass-1234"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--port", type=int, default=47390)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="login-rss-")
    data = os.path.join(work, "data")
    subprocess.run([args.binary, "superuser", "upsert", "su@example.com", PASSWORD, "--dir", data],
                   capture_output=True, check=True)
    server = subprocess.Popen([args.binary, "serve", f"--http=127.0.0.1:{args.port}",
                               f"--dir={data}"], cwd=work, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        run(args.port, server.pid)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def call(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = token
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(port, pid):
    for _ in range(200):
        try:
            if call(port, "GET", "/api/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    time.sleep(3)
    idle = rss_mib(pid)
    _, body = call(port, "POST", "/api/collections/_superusers/auth-with-password",
                   {"identity": "su@example.com", "password": PASSWORD})
    token = body["token"]
    for i in range(USERS):
        status, body = call(port, "POST", "/api/collections/users/records",
                            {"email": f"u{i}@example.com", "password": PASSWORD,
                             "passwordConfirm": PASSWORD}, token)
        assert status == 200, body
    time.sleep(2)
    before = rss_mib(pid)
    peak = [before]
    failures = []

    def login(i):
        status, _ = call(port, "POST", "/api/collections/users/auth-with-password",
                         {"identity": f"u{i % USERS}@example.com", "password": PASSWORD})
        if status != 200:
            failures.append(status)
        peak[0] = max(peak[0], rss_mib(pid))

    threads = [threading.Thread(target=login, args=(i,)) for i in range(LOGINS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = rss_mib(pid)
    time.sleep(15)
    later = rss_mib(pid)
    time.sleep(15)
    settled = rss_mib(pid)
    print(f"VmRSS MiB: idle {idle:.1f}, before the burst {before:.1f}, peak {peak[0]:.1f}, "
          f"right after {after:.1f}, idle 15 s {later:.1f}, idle 30 s {settled:.1f} "
          f"({settled / idle:.2f}x idle); {LOGINS - len(failures)}/{LOGINS} logins answered 200")


if __name__ == "__main__":
    main()
