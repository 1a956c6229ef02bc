#!/usr/bin/env python3
"""Scale curves: how Plinth's and PocketBase's costs grow with the data and the audience.

    bench/scale.py [PLINTH_BIN] [--sizes 10000,100000,1000000] [--subscribers 100,1000,10000]
                   [--out DIR] [--plot-only DIR]

For each record count, one `bench/run.sh` run seeds both servers with that many posts (the
batch API from 50,000 on) and measures view, list with its total, list with skipTotal and
create under the full profile's load (32 connections, each figure the median of 2 x 5 s),
plus 5 lone requests of each read (`--solo`: the latency of one request with nothing else
running, and its CPU where /proc can see it). Then one realtime run fans 50 creates out to
each subscriber count. Both servers are pinned to one core, wrk to the other, as in every
bench run.

Writes the runs' JSON under DIR (default bench/out/scale-DATE), and from them
docs/img/scale-records.png, docs/img/scale-realtime.png and a markdown table on stdout.
--plot-only DIR redraws from an earlier run's JSON. Needs matplotlib (installed with pip when
missing).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
READS = ["view", "list", "list_skiptotal"]
WORKLOADS = READS + ["create"]
NAMES = {"view": "view (rule)", "list": "list with total", "list_skiptotal": "list, skipTotal",
         "create": "create"}
SERVERS = [("pocketbase", "PocketBase 0.40.6", "tab:orange"), ("plinth", "Plinth", "tab:blue")]
# Fewer completed requests than this in a loaded run: its CPU per request is too coarse, so the
# lone requests' figure is plotted instead (hollow marker).
MIN_LOADED = 50


def run(plinth, args, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    cmd = [os.path.join(HERE, "run.sh")] + ([plinth] if plinth else []) + ["--"] + args + [
        "--no-ceilings", "--out-dir", out_dir]
    print("scale:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    found = sorted(glob.glob(os.path.join(out_dir, "bench-full-*.json")))
    if not found:
        raise SystemExit(f"scale: no result in {out_dir}")
    with open(found[-1]) as f:
        return json.load(f)


def measure(plinth, sizes, subscribers, out):
    for n in sizes:
        run(plinth, ["--seed", str(n), "--only", ",".join(WORKLOADS), "--duration", "5",
                     "--warmup", "1", "--repeat", "2", "--solo", "5", "--timeout", "30"],
            os.path.join(out, f"records-{n}"))
    run(plinth, ["--only", "realtime", "--subscribers", ",".join(map(str, subscribers))],
        os.path.join(out, "realtime"))


def load(out):
    records = {}
    for path in glob.glob(os.path.join(out, "records-*", "bench-full-*.json")):
        with open(path) as f:
            d = json.load(f)
        records[d["config"]["seed"]] = d
    realtime = None
    found = sorted(glob.glob(os.path.join(out, "realtime", "bench-full-*.json")))
    if found:
        with open(found[-1]) as f:
            realtime = json.load(f)
    return dict(sorted(records.items())), realtime


def cpu_us(res):
    """(CPU µs per request, whether it is the lone requests' figure) or (None, False)."""
    if not res or "unsupported" in res:
        return None, False
    if res.get("requests", 0) >= MIN_LOADED and res.get("server_cpu_us_per_req"):
        return res["server_cpu_us_per_req"], False
    if res.get("solo_cpu_ms") is not None:
        return res["solo_cpu_ms"] * 1000, True
    return None, False


def plot(records, realtime, img_dir):
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(img_dir, exist_ok=True)
    sizes = list(records)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for col, w in enumerate(WORKLOADS):
        ax_cpu, ax_lat = axes[0][col], axes[1][col]
        for role, label, color in SERVERS:
            pts = [(n, *cpu_us(records[n]["workloads"].get(w, {}).get(role))) for n in sizes]
            xs = [n for n, v, _ in pts if v is not None]
            ax_cpu.plot(xs, [v for _, v, _ in pts if v is not None], "-", color=color,
                        label=label)
            for n, v, solo in pts:
                if v is not None:
                    ax_cpu.plot([n], [v], "o", color=color, fillstyle="none" if solo else "full")
            # Reads: one request alone; create (no lone requests): p99 under load.
            key = "solo_ms" if w in READS else "p99_ms"
            lat = [(n, (records[n]["workloads"].get(w, {}).get(role) or {}).get(key))
                   for n in sizes]
            lat = [(n, v) for n, v in lat if v is not None]
            ax_lat.plot([n for n, _ in lat], [v for _, v in lat], "o-", color=color, label=label)
        ax_cpu.set_title(NAMES[w])
        ax_lat.set_xlabel("records in the collection")
        for ax in (ax_cpu, ax_lat):
            if not any(len(line.get_xdata()) for line in ax.get_lines()):
                continue  # nothing measured (an empty log axis cannot be drawn)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        if col == 0:
            ax_cpu.set_ylabel("server CPU per request (µs), under load")
            ax_lat.set_ylabel("one request alone (ms); create: p99 under load")
        ax_cpu.legend(fontsize=8)
    fig.suptitle("Cost per request against data size (one core each; hollow: lone requests, "
                 "the loaded run completed too few)")
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "scale-records.png"), dpi=90)
    plt.close(fig)

    if realtime:
        rows = sorted((w for w in realtime["workloads"] if w.startswith("realtime-")),
                      key=lambda w: int(w.split("-")[1]))
        counts = [int(w.split("-")[1]) for w in rows]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        panels = [("delivery_from_request_p99_ms", "delivery p99 from the create (ms)"),
                  ("server_cpu_us_per_delivery", "server CPU per delivered event (µs)"),
                  ("idle_bytes_per_client", "memory per idle subscriber (bytes)")]
        for ax, (key, title) in zip(axes, panels):
            for role, label, color in SERVERS:
                pts = [(k, (realtime["workloads"][w].get(role) or {}).get(key))
                       for k, w in zip(counts, rows)]
                if key == "idle_bytes_per_client":
                    pts = [(k, v) for k, v in pts if k >= 1000]
                pts = [(k, v) for k, v in pts if v is not None]
                ax.plot([k for k, _ in pts], [v for _, v in pts], "o-", color=color, label=label)
            ax.set_title(title)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("subscribers")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("Realtime fan-out against audience size (50 creates, every subscriber "
                     "receives each)")
        fig.tight_layout()
        fig.savefig(os.path.join(img_dir, "scale-realtime.png"), dpi=90)
        plt.close(fig)


def table(records, realtime):
    def fmt(v, nd=1):
        return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:,.{nd}f}")

    lines = ["| workload | records | PB req/s | Plinth req/s | ratio | PB CPU µs/req | "
             "Plinth CPU µs/req | PB alone ms | Plinth alone ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for w in WORKLOADS:
        for n, d in records.items():
            row = d["workloads"].get(w, {})
            pb, pl = row.get("pocketbase") or {}, row.get("plinth") or {}
            (pbc, pbs), (plc, pls) = cpu_us(pb), cpu_us(pl)
            r = (pl.get("rps") / pb["rps"]) if pb.get("rps") and pl.get("rps") else None
            lines.append(
                f"| {NAMES[w]} | {n:,} | {fmt(pb.get('rps'))} | {fmt(pl.get('rps'))} | "
                f"{'-' if r is None else f'{r:.1f}×'} | {fmt(pbc)}{' (alone)' if pbs else ''} | "
                f"{fmt(plc)}{' (alone)' if pls else ''} | {fmt(pb.get('solo_ms'), 2)} | "
                f"{fmt(pl.get('solo_ms'), 2)} |")
    out = "\n".join(lines)
    if realtime:
        out += ("\n\n| subscribers | PB delivery p99 ms | Plinth delivery p99 ms | "
                "PB CPU µs/delivery | Plinth CPU µs/delivery | PB idle B/client | "
                "Plinth idle B/client |\n|---|---|---|---|---|---|---|")
        for w, row in sorted(((w, r) for w, r in realtime["workloads"].items()
                              if w.startswith("realtime-")), key=lambda x: int(x[0][9:])):
            pb, pl = row.get("pocketbase") or {}, row.get("plinth") or {}
            if int(w[9:]) < 1000:
                # Below 1,000 subscribers allocator noise dominates the per-client figure.
                pb, pl = ({k: v for k, v in r.items() if k != "idle_bytes_per_client"}
                          for r in (pb, pl))
            out += (f"\n| {int(w[9:]):,} | {fmt(pb.get('delivery_from_request_p99_ms'))} | "
                    f"{fmt(pl.get('delivery_from_request_p99_ms'))} | "
                    f"{fmt(pb.get('server_cpu_us_per_delivery'))} | "
                    f"{fmt(pl.get('server_cpu_us_per_delivery'))} | "
                    f"{fmt(pb.get('idle_bytes_per_client'))} | "
                    f"{fmt(pl.get('idle_bytes_per_client'))} |")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("plinth", nargs="?", default="")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--subscribers", default="100,1000,10000")
    ap.add_argument("--out", default=os.path.join(HERE, "out",
                                                  time.strftime("scale-%Y%m%d-%H%M%S")))
    ap.add_argument("--plot-only", metavar="DIR")
    ap.add_argument("--img-dir", default=os.path.join(REPO, "docs", "img"))
    a = ap.parse_args()
    out = a.plot_only or a.out
    if not a.plot_only:
        measure(a.plinth, [int(s) for s in a.sizes.split(",") if s],
                [int(s) for s in a.subscribers.split(",")], out)
    records, realtime = load(out)
    if not records and not realtime:
        raise SystemExit(f"scale: nothing measured in {out}")
    plot(records, realtime, a.img_dir)
    print(table(records, realtime))


if __name__ == "__main__":
    main()
