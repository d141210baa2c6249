#!/usr/bin/env bash
# Facility mode: a Prefect server on PostgreSQL, the vfxmatte-gpu process work pool, one global
# concurrency limit per GPU, the deployments, the zombie-run automation and one worker per GPU.
#
#   scripts/facility_up.sh                      # everything on this machine, GPUs counted by nvidia-smi
#   GPUS=2 DROP=/shows/drop OUTPUT_ROOT=/shows/mattes scripts/facility_up.sh
#   ROLE=workers PREFECT_API_URL=http://farm-head:4200/api scripts/facility_up.sh   # a GPU node only
#
# Environment (all optional):
#   ROLE             all (default) | server (server + pool + limits + deployments) | workers
#   DATABASE_URL     postgresql+asyncpg://user@host:5432/prefect (default: a local cluster in $STATE/pg,
#                    created with initdb/pg_ctl, as the postgres user when run as root)
#   HOST, PORT       where the server listens (default 127.0.0.1:4200; the farm needs the head's address)
#   GPUS             number of GPUs (default: nvidia-smi -L count, at least 1)
#   DROP / MANIFEST, OUTPUT_ROOT, CRON    the nightly deployment's drop folder or manifest and schedule
#   VFXMATTE_ROOTS   roots flow inputs/outputs must lie in (passed to the workers; required for workers)
#   VFXMATTE_MODEL, VFXMATTE_MODEL_ROOTS  the workers' model folder and the folders it may lie in
#   PREFECT_SERVER_API_AUTH_STRING  user:password the server requires on every API call (basic auth)
#   PREFECT_API_AUTH_STRING         what deploy and the workers send (default: the server's string)
#   STATE            where logs, pids and the local database live (default ~/.vfxmatte-facility)
# Telemetry and analytics are off and nothing is fetched from the network.
# Stop everything with: scripts/facility_up.sh down
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="${VENV_BIN:-$HERE/.venv/bin}"
STATE="${STATE:-$HOME/.vfxmatte-facility}"
ROLE="${ROLE:-all}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-4200}"
mkdir -p "$STATE/logs"

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

stop_pidfile() {
    local pidfile="$1"
    if [ -f "$pidfile" ]; then
        kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

if [ "${1:-}" = "down" ]; then
    for pidfile in "$STATE"/worker-*.pid "$STATE/server.pid"; do
        [ -e "$pidfile" ] && stop_pidfile "$pidfile"
    done
    if [ -d "$STATE/pg/data" ]; then
        PG_CTL="$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -1)"
        as_pg=(); [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
        "${as_pg[@]}" "$PG_CTL" -D "$STATE/pg/data" -m fast stop || true
    fi
    echo "facility: stopped"
    exit 0
fi

gpu_count() {
    if [ -n "${GPUS:-}" ]; then echo "$GPUS"; return; fi
    local n=0
    if command -v nvidia-smi >/dev/null 2>&1; then n="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"; fi
    [ "$n" -ge 1 ] 2>/dev/null || n=1
    echo "$n"
}

wait_healthy() {
    for _ in $(seq 1 120); do
        if "$VENV_BIN/python" - "$PREFECT_API_URL" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/health", timeout=3).read() == b"true" else 1)
EOF
        sleep 1
    done
    echo "facility: the Prefect server at $PREFECT_API_URL did not come up; see $STATE/logs/server.log" >&2
    exit 1
}

local_postgres() {
    # A PostgreSQL cluster under $STATE/pg, owned by the postgres user when we are root.
    local initdb pg_ctl pgport="${PG_PORT:-5433}" as_pg=() log="$STATE/logs/postgres-setup.log"
    initdb="$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1 || true)"
    pg_ctl="$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -1 || true)"
    if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
        echo "facility: PostgreSQL not installed (scripts/install_test_deps.sh installs it) and no DATABASE_URL" >&2
        exit 1
    fi
    [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
    mkdir -p "$STATE/pg"
    [ "$(id -u)" -eq 0 ] && chown postgres "$STATE/pg"
    if [ ! -d "$STATE/pg/data" ]; then
        "${as_pg[@]}" "$initdb" -D "$STATE/pg/data" -U prefect --auth=trust -E UTF8 >>"$log" 2>&1
    fi
    # Only the URL goes to stdout (the caller captures it); pg_ctl's chatter goes to the log.
    "${as_pg[@]}" "$pg_ctl" -D "$STATE/pg/data" status >>"$log" 2>&1 || \
        "${as_pg[@]}" "$pg_ctl" -D "$STATE/pg/data" -l "$STATE/pg/pg.log" -w \
            -o "-p $pgport -h 127.0.0.1 -k $STATE/pg" start >>"$log" 2>&1
    echo "postgresql+asyncpg://prefect@127.0.0.1:$pgport/postgres"  # the cluster's own database
}

if [ "$ROLE" = "all" ] || [ "$ROLE" = "server" ]; then
    if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ "$HOST" != "127.0.0.1" ] && [ "$HOST" != "localhost" ]; then
        echo "facility: warning: the API on $HOST:$PORT accepts anyone who can reach it (anyone can run code on" \
            "the workers); set PREFECT_SERVER_API_AUTH_STRING=user:password (docs/FLOWS.md, Authentication)" >&2
    fi
    DATABASE_URL="${DATABASE_URL:-$(local_postgres)}"
    if [ ! -f "$STATE/server.pid" ] || ! kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
        PREFECT_API_DATABASE_CONNECTION_URL="$DATABASE_URL" setsid "$VENV_BIN/prefect" server start \
            --host "$HOST" --port "$PORT" >"$STATE/logs/server.log" 2>&1 </dev/null &
        echo $! >"$STATE/server.pid"
    fi
    wait_healthy
    echo "facility: Prefect server $PREFECT_API_URL (database ${DATABASE_URL%%@*}@…)"
    args=(--gpus "$(gpu_count)" --cron "${CRON:-0 2 * * *}")
    [ -n "${DROP:-}" ] && args+=(--drop "$DROP")
    [ -n "${MANIFEST:-}" ] && args+=(--manifest "$MANIFEST")
    [ -n "${OUTPUT_ROOT:-}" ] && args+=(--output-root "$OUTPUT_ROOT")
    (cd "$HERE" && "$VENV_BIN/vfxmatte" flow deploy --automations "${args[@]}")
fi

if [ "$ROLE" = "all" ] || [ "$ROLE" = "workers" ]; then
    wait_healthy
    cd "$HERE"  # deployments load the flows from this checkout
    : "${VFXMATTE_ROOTS:?set VFXMATTE_ROOTS to the folders flows may read and write (os.pathsep-separated)}"
    n="$(gpu_count)"
    for ((i = 0; i < n; i++)); do
        limit="gpu"; [ "$n" -gt 1 ] && limit="gpu-$i"
        pidfile="$STATE/worker-$i.pid"
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
        # A simple command (no subshell) so $! is the worker itself and nothing keeps our stdout open.
        CUDA_VISIBLE_DEVICES="$i" VFXMATTE_GPU_LIMIT="$limit" VFXMATTE_DEVICE=cuda \
            setsid "$VENV_BIN/prefect" worker start --pool vfxmatte-gpu --type process \
            --name "$(hostname)-gpu$i" >"$STATE/logs/worker-$i.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
        echo "facility: worker $(hostname)-gpu$i (CUDA_VISIBLE_DEVICES=$i, limit $limit)"
    done
fi
