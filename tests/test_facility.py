"""``scripts/facility_up.sh`` for real: a CPU node brought up as documented, and its start-up failures.

The end-to-end test runs the documented command with no ``STATE``, as root where the suite runs as
root (CI), with ``HOME`` under a folder only its owner may enter — so the default state folder is
one the postgres user cannot reach — on this GPU-less machine: PostgreSQL, the server, the pool,
the deployments and the CPU workers come up; a shot dropped is matted through the nightly
deployment run by hand (``prefect deployment run``) by a CPU worker; everything stops.  The other
tests each provoke one start-up failure and check its one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import OpenImageIO as oiio
import pytest
from prefect_server import OFFLINE_ENV, REPO, _postgres_tools, free_port, rest
from test_flows import write_sequence

SCRIPT = REPO / "scripts" / "facility_up.sh"
BIN = Path(sys.executable).parent
IS_ROOT = os.geteuid() == 0


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VFXMATTE_"))}
    env.pop("STATE", None)
    env.update(OFFLINE_ENV)
    env.update(VENV_BIN=str(BIN), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90", **extra)
    return env


def facility(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def one_failure_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit status 1 and one ``facility:`` line (informational lines aside)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("facility: "), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[-1]


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


@pytest.fixture()
def pg_parent() -> Iterator[Path]:
    """A folder the postgres user may enter (pytest's tmp folders are root-only when root runs them)."""
    folder = Path(tempfile.mkdtemp(prefix="vfxmatte-facility-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _postgres_missing() -> str | None:
    if _postgres_tools() is None:
        return "PostgreSQL (initdb, pg_ctl) not installed: run scripts/install_test_deps.sh"
    if IS_ROOT and not shutil.which("runuser"):
        return "running as root without runuser: cannot start PostgreSQL as the postgres user"
    if IS_ROOT:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user: run scripts/install_test_deps.sh"
    return None


needs_postgres = pytest.mark.skipif(_postgres_missing() is not None, reason=str(_postgres_missing()))


# -- start-up failures: each one line naming the cause (and the log, where there is one) ---------------


def test_unwritable_state_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    state = tmp_path / "file" / "state"
    line = one_failure_line(facility(script_env(STATE=str(state), ROLE="server")))
    assert line == f"facility: cannot create the state folder {state} (Not a directory); set STATE to a writable folder"


def test_postgresql_not_installed(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="server", PG_BIN=str(tmp_path / "bin"),
                               PORT=str(free_port())))
    line = one_failure_line(proc)
    assert line.startswith(f"facility: PostgreSQL is not installed (no initdb/pg_ctl in {tmp_path / 'bin'})")
    assert "scripts/install_test_deps.sh" in line and "DATABASE_URL" in line
    assert not (tmp_path / "s" / "server.pid").exists()


def test_server_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    with listening(port):
        proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="server", PORT=str(port),
                                   DATABASE_URL="postgresql+asyncpg://prefect@127.0.0.1:1/postgres"))
    line = one_failure_line(proc)
    assert line == (f"facility: port {port} on 127.0.0.1 (the Prefect server, PORT) is in use by another program: "
                    "set PORT or stop it")


@needs_postgres
def test_postgres_port_in_use(tmp_path: Path, pg_parent: Path) -> None:
    pg_port = free_port()
    with listening(pg_port):
        proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="server", PORT=str(free_port()),
                                   PG_PORT=str(pg_port), PG_DIR=str(pg_parent / "pg")))
    line = one_failure_line(proc)
    assert line.startswith(f"facility: port {pg_port} on 127.0.0.1 (PostgreSQL, PG_PORT) is in use by another program")


@needs_postgres
def test_postgres_that_does_not_start(tmp_path: Path, pg_parent: Path) -> None:
    data = pg_parent / "pg" / "data"  # a damaged cluster: PG_VERSION but nothing else
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    data.chmod(0o700)
    if IS_ROOT:
        shutil.chown(data.parent, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(data / "PG_VERSION", "postgres")
    proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="server", PORT=str(free_port()),
                               PG_PORT=str(free_port()), PG_DIR=str(pg_parent / "pg")))
    line = one_failure_line(proc)
    assert line.startswith("facility: PostgreSQL did not start: "), line
    assert "postgresql.conf" in line and line.endswith(f"; see {pg_parent / 'pg' / 'pg.log'}")


@pytest.mark.slow
def test_server_that_cannot_reach_its_database(tmp_path: Path) -> None:
    dead = free_port()
    proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="server", PORT=str(free_port()),
                               DATABASE_URL=f"postgresql+asyncpg://prefect@127.0.0.1:{dead}/postgres"))
    line = one_failure_line(proc)
    log = tmp_path / "s" / "logs" / "server.log"
    assert line == (f"facility: the Prefect server exited at start-up: it cannot connect to its database at "
                    f"127.0.0.1:{dead} (connection refused); see {log}")
    assert not (tmp_path / "s" / "server.pid").exists()


@pytest.mark.slow
def test_workers_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = facility(script_env(STATE=str(tmp_path / "s"), ROLE="workers", PREFECT_API_URL=url, SERVER_TIMEOUT="2",
                               VFXMATTE_ROOTS=str(tmp_path)))
    line = one_failure_line(proc)
    assert line.startswith(f"facility: no Prefect server answers at {url} after 2 s"), line
    assert not list((tmp_path / "s").glob("worker-*.pid"))


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.slow
def test_no_cuda_worker_on_a_cpu_node(tmp_path: Path) -> None:
    if _has_cuda():
        pytest.skip("this machine has CUDA: a CUDA worker is allowed here")
    proc = facility(script_env(STATE=str(tmp_path / "s"), DEVICE="cuda", VFXMATTE_ROOTS=str(tmp_path),
                               PORT=str(free_port())))
    line = one_failure_line(proc)
    assert line == "facility: DEVICE=cuda but torch sees no CUDA device on this node; use DEVICE=cpu (CPU workers)"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["logs"]  # nothing started
    # A worker started by hand: the same refusal, one line, exit 1, before it contacts any server.
    env = script_env(PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    for device, expected in [
        ("cuda", "vfxmatte worker: --device cuda: torch sees no CUDA device on this node; start CPU workers here"),
        ("tpu", "vfxmatte worker: --device tpu: choose auto, cpu, cuda or cuda:N"),
    ]:
        worker = subprocess.run([sys.executable, "-m", "flows.worker", "--device", device], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert worker.returncode == 1 and worker.stderr.strip().startswith(expected), worker.stderr
        assert len(worker.stderr.strip().splitlines()) == 1, worker.stderr


def test_worker_device_limit_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import worker

    host = socket.gethostname().split(".")[0]
    monkeypatch.setattr(worker, "cuda_devices", lambda: 0)
    assert worker.check_device("auto") == "cpu" and worker.check_device("cpu") == "cpu"
    with pytest.raises(worker.StartupError, match="cuda:1: torch sees no CUDA device"):
        worker.check_device("cuda:1")
    monkeypatch.setattr(worker, "cuda_devices", lambda: 2)
    assert worker.check_device("auto") == "cuda" and worker.check_device("cuda:1") == "cuda:1"
    with pytest.raises(worker.StartupError, match="only 2 CUDA device"):
        worker.check_device("cuda:2")
    with pytest.raises(worker.StartupError, match="not a CUDA device"):
        worker.check_device("cuda:x")
    assert worker.default_limit("cpu") == f"cpu-{host}"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert worker.default_limit("cuda") == f"gpu-{host}-3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert worker.default_limit("cuda") == f"gpu-{host}"
    assert worker.thread_env(2) == {name: "2" for name in worker.THREAD_VARIABLES}


# -- the documented command on a CPU node, as root, default state folder -------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_final(api_url: str, run_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rest(api_url, "GET", f"/flow_runs/{run_id}")
        if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return dict(run)
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not finished after {timeout:.0f} s")


@needs_postgres
@pytest.mark.slow
def test_cpu_facility_mattes_a_dropped_shot(tmp_path: Path, tiny_model_dir: Path) -> None:
    private = tmp_path / "private"  # only its owner may enter: as root, the postgres user cannot
    home = private / "home"
    home.mkdir(parents=True)
    private.chmod(0o700)
    shows = tmp_path / "shows"
    write_sequence(shows / "drop" / "sq010", range(1001, 1003))
    port, pg_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    state = home / ".vfxmatte-facility"
    env = script_env(
        HOME=str(home), PORT=str(port), PG_PORT=str(pg_port), VFXMATTE_ROOTS=str(shows),
        DROP=str(shows / "drop"), OUTPUT_ROOT=str(shows / "mattes"), VFXMATTE_MODEL=str(tiny_model_dir),
        VFXMATTE_MODEL_ROOTS=str(tiny_model_dir.parent), VFXMATTE_RETRY_DELAY="0",
        PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1", PREFECT_LOGGING_LEVEL="INFO",
    )
    pg_dir: Path | None = None
    try:
        up = facility(env, timeout=600)
        assert up.returncode == 0, (up.stdout[-3000:], up.stderr[-3000:])
        pg_dir = Path((state / "pg.dir").read_text().strip())
        if IS_ROOT:  # the cluster went where its user can reach it, and the script said where
            assert not pg_dir.is_relative_to(private) and pg_dir.stat().st_uid != 0
            assert f"PostgreSQL cluster in {pg_dir}" in up.stderr
        host = socket.gethostname().split(".")[0]
        workers = re.findall(rf"facility: worker ({re.escape(host)}-cpu\d+) \(CPU, (\d+) thread\(s\)", up.stdout)
        assert workers, up.stdout
        assert "gpu" not in " ".join(name for name, _ in workers)
        limit = rest(api_url, "GET", f"/v2/concurrency_limits/cpu-{host}")
        assert limit["limit"] == len(workers)

        # A run pinned to the gpu queue: no CPU worker may take it.
        deployment = rest(api_url, "GET", "/deployments/name/matte-shot/vfxmatte")
        pinned = rest(api_url, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                      {"work_queue_name": "gpu", "parameters": {
                          "input": str(shows / "drop" / "sq010" / "plate.####.exr"),
                          "output": str(shows / "pinned" / "matte.####.exr"), "preset": "draft", "review": False}})

        started = subprocess.run([str(BIN / "prefect"), "deployment", "run", "matte-new-shots/nightly"],
                                 env=dict(env, PREFECT_API_URL=api_url, PREFECT_HOME=str(state / "prefect-home")),
                                 cwd=REPO, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout)
        assert run_id, started.stdout
        run = _wait_final(api_url, run_id[1], timeout=420)
        logs = {p.name: p.read_text() for p in (state / "logs").glob("worker-cpu*.log")}
        assert run["state_type"] == "COMPLETED", (run["state"], {k: v[-2000:] for k, v in logs.items()})

        out = shows / "mattes" / "sq010_plate"
        assert sorted(p.name for p in out.glob("*.exr")) == ["plate.1001.exr", "plate.1002.exr"]
        for frame in (1001, 1002):
            inp = oiio.ImageInput.open(str(out / f"plate.{frame}.exr"))
            assert inp is not None, oiio.geterror()
            assert list(inp.spec().channelnames) == ["R", "G", "B", "A", "uncertainty.Y"]
            assert json.loads(inp.spec().getattribute("vfxmatte:params"))
            inp.close()
        # Done by a CPU worker: its log holds the run, and the shot's model work held the CPU limit.
        # Both workers may poll the run; the one that lost the race logs Prefect's abort, so look at every
        # log that names the run for the one that ran it.
        by = [name for name, text in logs.items() if run_id[1] in text]
        assert by, logs
        assert any(f"GPU limit 'cpu-{host}'" in logs[name] for name in by), {name: logs[name][-2000:] for name in by}
        assert rest(api_url, "GET", f"/flow_runs/{pinned['id']}")["state_type"] == "SCHEDULED"
        assert not (shows / "pinned").exists()
    finally:
        pids = [int(p.read_text()) for p in state.glob("*.pid")]
        if pg_dir is None and (state / "pg.dir").exists():
            pg_dir = Path((state / "pg.dir").read_text().strip())
        down = facility(env, "down", timeout=180)
        try:
            assert down.returncode == 0 and "facility: stopped" in down.stdout, down.stderr
            assert not list(state.glob("*.pid"))
            time.sleep(1)
            assert [pid for pid in pids if _pid_alive(pid)] == []
            with socket.socket() as sock, pytest.raises(ConnectionRefusedError):  # PostgreSQL stopped
                sock.connect(("127.0.0.1", pg_port))
            assert pg_dir is not None and not (pg_dir / "data" / "postmaster.pid").exists()
        finally:
            for pid in pids:  # whatever `down` left (it should leave nothing)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            if pg_dir is not None and not pg_dir.is_relative_to(tmp_path):
                shutil.rmtree(pg_dir, ignore_errors=True)
