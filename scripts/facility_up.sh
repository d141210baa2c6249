#!/usr/bin/env bash
# Facility mode: a Prefect server on PostgreSQL, the vfxmatte-gpu process work pool (CPU and GPU workers
# both serve it), the deployments, the zombie-run automation and this node's workers: one per GPU on a
# GPU node, CPU_WORKERS CPU workers on a node without CUDA (docs/FLOWS.md).
#
#   scripts/facility_up.sh                      # everything on this machine; its GPUs or, without CUDA, its CPUs
#   DROP=/shows/drop OUTPUT_ROOT=/shows/mattes VFXMATTE_ROOTS=/shows scripts/facility_up.sh
#   ROLE=workers PREFECT_API_URL=http://farm-head:4200/api VFXMATTE_ROOTS=/shows scripts/facility_up.sh  # a node
#
# Environment (all optional):
#   ROLE             all (default) | server (server + pool + deployments) | workers
#   DEVICE           auto (default: CUDA when torch sees a GPU, else the CPU) | cuda | cpu
#   GPUS             GPU workers on a CUDA node (default: every GPU torch sees); ignored without CUDA
#   CPU_WORKERS      CPU workers on a CPU node (default: one per core, at most one per 3 GiB of memory)
#   CPU_THREADS      torch threads per CPU worker (default: cores / CPU_WORKERS, at least 1)
#   DATABASE_URL     postgresql+asyncpg://user@host:5432/prefect (default: a local cluster, created with
#                    initdb/pg_ctl — as the postgres user when run as root — in $STATE/pg, or, when the
#                    postgres user cannot reach $STATE, in its home folder; PG_DIR chooses the folder)
#   PG_PORT, PG_BIN  the local cluster's port (default 5433) and the folder of initdb/pg_ctl
#   HOST, PORT       where the server listens (default 127.0.0.1:4200; the farm needs the head's address)
#   SERVER_TIMEOUT   seconds to wait for the server to answer (default 120)
#   DROP / MANIFEST, OUTPUT_ROOT, CRON    the nightly deployment's drop folder or manifest and schedule
#   VFXMATTE_ROOTS   roots flow inputs/outputs must lie in (passed to the workers; required for workers)
#   VFXMATTE_MODEL, VFXMATTE_MODEL_ROOTS  the workers' model folder and the folders it may lie in
#   PREFECT_SERVER_API_AUTH_STRING  user:password the server requires on every API call (basic auth)
#   PREFECT_API_AUTH_STRING         what deploy and the workers send (default: the server's string)
#   STATE            where logs, pids and the local database live (default ~/.vfxmatte-facility)
# Telemetry and analytics are off and nothing is fetched from the network.  A start-up failure is one
# line, "facility: <cause>; see <log>", and exit status 1.
# Stop everything with: scripts/facility_up.sh down
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="${VENV_BIN:-$HERE/.venv/bin}"
STATE="${STATE:-$HOME/.vfxmatte-facility}"
ROLE="${ROLE:-all}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-4200}"
DEVICE="${DEVICE:-auto}"
SERVER_TIMEOUT="${SERVER_TIMEOUT:-120}"

fail() {
    echo "facility: $*" >&2
    exit 1
}

case "$ROLE" in all | server | workers) ;; *) fail "ROLE=$ROLE: choose all, server or workers" ;; esac
case "$DEVICE" in auto | cpu | cuda) ;; *) fail "DEVICE=$DEVICE: choose auto, cpu or cuda" ;; esac
for var in PORT SERVER_TIMEOUT; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || fail "$var=${!var}: not a number"
done
[ -x "$VENV_BIN/python" ] || fail "no Python environment at $VENV_BIN (make install, or set VENV_BIN)"

# The state folder: created and writable, or one line naming it and why not.
if ! err="$(mkdir -p "$STATE/logs" 2>&1)"; then
    fail "cannot create the state folder $STATE (${err##*: }); set STATE to a writable folder"
fi
if ! err="$( (: >"$STATE/logs/.write-test" && rm -f "$STATE/logs/.write-test") 2>&1)"; then
    fail "the state folder $STATE is not writable (${err##*: }); set STATE to a writable folder"
fi

export PREFECT_HOME="$STATE/prefect-home"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY=false
export PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS=false
export DO_NOT_TRACK=1
export HF_HUB_OFFLINE=1
# Flow runs send a heartbeat every 60 s; the automation below marks runs silent for 3 minutes Crashed.
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-60}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://$HOST:$PORT/api}"
# Facility authentication (docs/FLOWS.md): on the head, deploy and the workers send the server's string.
if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ -z "${PREFECT_API_AUTH_STRING:-}" ]; then
    export PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING"
fi

as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

pg_tool() {  # pg_tool initdb|pg_ctl: PG_BIN's, else PATH's, else the newest /usr/lib/postgresql/*/bin's
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/$1" ] && echo "$PG_BIN/$1"
        return 0
    fi
    command -v "$1" 2>/dev/null && return 0
    ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

pg_dir() {  # where the local cluster lives (recorded in $STATE/pg.dir once chosen)
    if [ -n "${PG_DIR:-}" ]; then echo "$PG_DIR"; elif [ -f "$STATE/pg.dir" ]; then cat "$STATE/pg.dir"
    else echo "$STATE/pg"; fi
}

port_free() {  # port_free HOST PORT: nothing listens there and we may bind it
    "$VENV_BIN/python" - "$1" "$2" <<'EOF'
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}

log_cause() {  # log_cause LOG: the line of a start-up log that names why it failed
    "$VENV_BIN/python" - "$1" <<'EOF'
import re, sys
try:
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
except OSError:
    sys.exit(0)
text = "\n".join(lines)
match = re.search(r"Connect call failed \('([^']+)', (\d+)\)", text)
if match:
    print(f"it cannot connect to its database at {match[1]}:{match[2]} (connection refused)")
    sys.exit(0)
for pattern, say in [
    (r'password authentication failed for user "([^"]+)"', "the database refused the password of user {0}"),
    (r'database "([^"]+)" does not exist', "database {0} does not exist"),
    (r"(address already in use)", "its port is in use ({0})"),
]:
    match = re.search(pattern, text)
    if match:
        print(say.format(*match.groups()))
        sys.exit(0)
for line in reversed(lines):  # PostgreSQL's FATAL/ERROR line, or a Python exception's last line
    line = line.strip()
    found = re.search(r"(FATAL|PANIC|ERROR):\s+(.*)", line) or re.match(r"^([\w.]+(?:Error|Exception)):\s*(.*)", line)
    if found:
        print(f"{found[1]}: {found[2]}"[:300])
        sys.exit(0)
print(next((line.strip()[:300] for line in reversed(lines) if line.strip()), "no message"))
EOF
}

if [ "${1:-}" = "down" ]; then
    stop_pidfile() {  # SIGTERM the process group; SIGKILL what is left after 15 s (a worker's shutdown can hang)
        local pidfile="$1" pid
        [ -f "$pidfile" ] || return 0
        pid="$(cat "$pidfile")"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 -- "-$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
        rm -f "$pidfile"
    }
    # Workers first (and in parallel), while the server they report to still answers; then the server.
    for pidfile in "$STATE"/worker-*.pid; do
        [ -e "$pidfile" ] && stop_pidfile "$pidfile" &
    done
    wait
    stop_pidfile "$STATE/server.pid"
    data="$(pg_dir)/data"
    if [ -f "$data/postmaster.pid" ] && [ -n "$(pg_tool pg_ctl)" ]; then
        "${as_pg[@]}" "$(pg_tool pg_ctl)" -D "$data" -m fast -w stop >>"$STATE/logs/postgres-setup.log" 2>&1 || true
    fi
    echo "facility: stopped"
    exit 0
fi

# -- what this node's workers run on: decided before anything starts ------------------------------
plan_workers() {
    local found cores mem_gib
    [ -n "${VFXMATTE_ROOTS:-}" ] ||
        fail "set VFXMATTE_ROOTS to the folders flows may read and write (os.pathsep-separated): workers need it"
    found="$(cd "$HERE" && "$VENV_BIN/python" -m flows.worker --detect 2>"$STATE/logs/detect.log")" ||
        fail "cannot ask torch for this node's CUDA devices: $(log_cause "$STATE/logs/detect.log"); see $STATE/logs/detect.log"
    KIND="$DEVICE"
    if [ "$DEVICE" = "auto" ]; then
        KIND=cpu
        [ "$found" -ge 1 ] && KIND=cuda
        if [ "$KIND" = cpu ] && [ -n "${GPUS:-}" ] && [ "${GPUS}" != 0 ]; then
            echo "facility: GPUS=$GPUS but torch sees no CUDA device on this node: starting CPU workers" \
                "(DEVICE=cuda to insist)" >&2
        fi
    fi
    if [ "$KIND" = cuda ]; then
        [ "$found" -ge 1 ] || fail "DEVICE=cuda but torch sees no CUDA device on this node; use DEVICE=cpu (CPU workers)"
        WORKERS="${GPUS:-$found}"
        [[ "$WORKERS" =~ ^[0-9]+$ ]] && [ "$WORKERS" -ge 1 ] || fail "GPUS=$WORKERS: not a number of GPUs"
        [ "$WORKERS" -le "$found" ] || fail "GPUS=$WORKERS but torch sees only $found CUDA device(s) on this node"
    else
        cores="$(nproc)"
        mem_gib="$(awk '/^MemTotal:/ {print int($2 / 1048576)}' /proc/meminfo 2>/dev/null || echo 0)"
        CPU_THREADS_DEFAULT=1
        WORKERS="${CPU_WORKERS:-$((cores / CPU_THREADS_DEFAULT))}"
        if [ -z "${CPU_WORKERS:-}" ] && [ "$mem_gib" -ge 3 ] && [ "$WORKERS" -gt $((mem_gib / 3)) ]; then
            WORKERS=$((mem_gib / 3))  # a 4K frame's run peaks near 2 GiB: keep a worker per 3 GiB
        fi
        [[ "$WORKERS" =~ ^[0-9]+$ ]] && [ "$WORKERS" -ge 1 ] || fail "CPU_WORKERS=$WORKERS: not a number of workers"
        if [ -n "${CPU_THREADS:-}" ]; then
            [[ "$CPU_THREADS" =~ ^[0-9]+$ ]] && [ "$CPU_THREADS" -ge 1 ] ||
                fail "CPU_THREADS=$CPU_THREADS: not a number of threads"
            THREADS="$CPU_THREADS"
        else
            THREADS=$((cores / WORKERS))
            [ "$THREADS" -ge 1 ] || THREADS=1
        fi
    fi
}
if [ "$ROLE" = "all" ] || [ "$ROLE" = "workers" ]; then
    plan_workers
fi

# -- the server: PostgreSQL and prefect server ----------------------------------------------------
server_running() { [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; }

wait_healthy() {  # wait_healthy [PID]: the server answers /api/health, or one line saying why not
    local pid="${1:-}" log="$STATE/logs/server.log"
    for _ in $(seq 1 "$SERVER_TIMEOUT"); do
        if "$VENV_BIN/python" - "$PREFECT_API_URL" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/health", timeout=3).read() == b"true" else 1)
EOF
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$STATE/server.pid"
            fail "the Prefect server exited at start-up: $(log_cause "$log"); see $log"
        fi
        sleep 1
    done
    if [ -n "$pid" ]; then
        fail "the Prefect server at $PREFECT_API_URL did not answer within ${SERVER_TIMEOUT} s (SERVER_TIMEOUT); see $log"
    fi
    fail "no Prefect server answers at $PREFECT_API_URL after ${SERVER_TIMEOUT} s; start the head" \
        "(scripts/facility_up.sh there) or set PREFECT_API_URL"
}

local_postgres() {  # sets DATABASE_URL to a local cluster, created and started if need be
    local initdb pg_ctl pgport="${PG_PORT:-5433}" dir data log="$STATE/logs/postgres-setup.log" home
    [[ "$pgport" =~ ^[0-9]+$ ]] || fail "PG_PORT=$pgport: not a number"
    initdb="$(pg_tool initdb)"
    pg_ctl="$(pg_tool pg_ctl)"
    if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
        fail "PostgreSQL is not installed (no initdb/pg_ctl in ${PG_BIN:-PATH or /usr/lib/postgresql/*/bin}):" \
            "run scripts/install_test_deps.sh as root, or set DATABASE_URL to a running server"
    fi
    dir="$(pg_dir)"
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses root: the cluster belongs to the postgres user, who must reach its folder.
        id postgres >/dev/null 2>&1 ||
            fail "running as root but there is no postgres user to run PostgreSQL as; install PostgreSQL" \
                "(scripts/install_test_deps.sh) or set DATABASE_URL"
        if [ -z "${PG_DIR:-}" ] && [ ! -f "$STATE/pg.dir" ] && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
            home="$(getent passwd postgres | cut -d: -f6)"
            dir="${home:-/var/lib/postgresql}/vfxmatte-facility/$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
            echo "facility: the postgres user cannot enter $STATE: PostgreSQL cluster in $dir (PG_DIR to choose)" >&2
        fi
        if ! err="$(mkdir -p "$dir" 2>&1 && chown postgres "$dir" && chmod 700 "$dir")"; then
            fail "cannot create the PostgreSQL folder $dir (${err##*: }); set PG_DIR"
        fi
        runuser -u postgres -- test -w "$dir" 2>/dev/null ||
            fail "the postgres user cannot write to $dir (a parent folder it may not enter); set PG_DIR or STATE"
    elif ! err="$(mkdir -p "$dir" 2>&1)"; then
        fail "cannot create the PostgreSQL folder $dir (${err##*: }); set PG_DIR"
    fi
    echo "$dir" >"$STATE/pg.dir"
    data="$dir/data"
    if [ ! -f "$data/PG_VERSION" ]; then
        "${as_pg[@]}" "$initdb" -D "$data" -U prefect --auth=trust -E UTF8 >>"$log" 2>&1 ||
            fail "initdb could not create the cluster in $data: $(log_cause "$log"); see $log"
    fi
    if "${as_pg[@]}" "$pg_ctl" -D "$data" status >>"$log" 2>&1; then
        pgport="$(sed -n 4p "$data/postmaster.pid")"  # already running (ours): its port
    else
        port_free 127.0.0.1 "$pgport" ||
            fail "port $pgport on 127.0.0.1 (PostgreSQL, PG_PORT) is in use by another program: set PG_PORT" \
                "to a free port or stop that program"
        # No Unix socket (-k ''): TCP on 127.0.0.1 only, and no socket path length limit.
        "${as_pg[@]}" "$pg_ctl" -D "$data" -l "$dir/pg.log" -w -t 60 \
            -o "-p $pgport -h 127.0.0.1 -k ''" start >>"$log" 2>&1 ||
            fail "PostgreSQL did not start: $(log_cause "$dir/pg.log"); see $dir/pg.log"
    fi
    DATABASE_URL="postgresql+asyncpg://prefect@127.0.0.1:$pgport/postgres"  # the cluster's own database
}

if [ "$ROLE" = "all" ] || [ "$ROLE" = "server" ]; then
    if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ "$HOST" != "127.0.0.1" ] && [ "$HOST" != "localhost" ]; then
        echo "facility: warning: the API on $HOST:$PORT accepts anyone who can reach it (anyone can run code on" \
            "the workers); set PREFECT_SERVER_API_AUTH_STRING=user:password (docs/FLOWS.md, Authentication)" >&2
    fi
    server_pid=""
    if ! server_running; then
        port_free "$HOST" "$PORT" ||
            fail "port $PORT on $HOST (the Prefect server, PORT) is in use by another program: set PORT or stop it"
        [ -n "${DATABASE_URL:-}" ] || local_postgres
        PREFECT_API_DATABASE_CONNECTION_URL="$DATABASE_URL" setsid "$VENV_BIN/prefect" server start \
            --host "$HOST" --port "$PORT" >"$STATE/logs/server.log" 2>&1 </dev/null &
        server_pid=$!
        echo "$server_pid" >"$STATE/server.pid"
    else
        server_pid="$(cat "$STATE/server.pid")"
        [ -n "${DATABASE_URL:-}" ] || local_postgres
    fi
    wait_healthy "$server_pid"
    echo "facility: Prefect server $PREFECT_API_URL (database ${DATABASE_URL%%@*}@…)"
    args=(--cron "${CRON:-0 2 * * *}")
    [ -n "${DROP:-}" ] && args+=(--drop "$DROP")
    [ -n "${MANIFEST:-}" ] && args+=(--manifest "$MANIFEST")
    [ -n "${OUTPUT_ROOT:-}" ] && args+=(--output-root "$OUTPUT_ROOT")
    (cd "$HERE" && "$VENV_BIN/vfxmatte" flow deploy --automations "${args[@]}" 2>"$STATE/logs/deploy.log") ||
        fail "vfxmatte flow deploy failed: $(tail -1 "$STATE/logs/deploy.log"); see $STATE/logs/deploy.log"
fi

# -- this node's workers --------------------------------------------------------------------------
start_worker() {  # start_worker ID LOG-NAME ENV… -- WORKER-ARGS…: one worker, unless it runs already
    local id="$1" pidfile="$STATE/worker-$1.pid" log="$STATE/logs/worker-$1.log" envs=()
    shift
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
    # flows.worker checks the device and the server, then execs `prefect worker start` (same pid).
    env "${envs[@]}" setsid "$VENV_BIN/python" -m flows.worker "$@" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    STARTED+=("$id:$!:$log")
}

if [ "$ROLE" = "all" ] || [ "$ROLE" = "workers" ]; then
    [ "$ROLE" = "workers" ] && wait_healthy
    cd "$HERE"  # deployments load the flows from this checkout
    host="$(hostname -s 2>/dev/null || hostname)"
    STARTED=()
    if [ "$KIND" = cuda ]; then
        for ((i = 0; i < WORKERS; i++)); do
            start_worker "gpu$i" "CUDA_VISIBLE_DEVICES=$i" -- --device cuda --limit "gpu-$host-$i" --name "$host-gpu$i"
            echo "facility: worker $host-gpu$i (CUDA_VISIBLE_DEVICES=$i, limit gpu-$host-$i)"
        done
    else
        for ((i = 0; i < WORKERS; i++)); do
            start_worker "cpu$i" "CUDA_VISIBLE_DEVICES=" -- --device cpu --threads "$THREADS" --slots "$WORKERS" \
                --limit "cpu-$host" --name "$host-cpu$i"
            echo "facility: worker $host-cpu$i (CPU, $THREADS thread(s), limit cpu-$host with $WORKERS slot(s))"
        done
    fi
    # A worker that fails its start-up check (device, server) exits within seconds: say which and why.
    for _ in $(seq 1 60); do
        pending=0
        for started in "${STARTED[@]}"; do
            IFS=: read -r id pid log <<<"$started"
            if ! kill -0 "$pid" 2>/dev/null; then
                rm -f "$STATE/worker-$id.pid"
                fail "worker $id did not start: $(grep -m1 '^vfxmatte worker: ' "$log" || log_cause "$log"); see $log"
            fi
            grep -q "started!\|Worker .* started" "$log" 2>/dev/null || pending=1
        done
        [ "$pending" -eq 0 ] && break
        sleep 1
    done
fi
