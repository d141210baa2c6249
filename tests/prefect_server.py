"""A real ``prefect server`` (and process workers) for integration tests, reusable by any test module.

Use from a test module (both fixtures are session-scoped; one server serves the whole session)::

    from prefect_server import PrefectServer, prefect_server, rest  # noqa: F401  (fixture import)

    def test_something(prefect_server: PrefectServer) -> None:
        rest(prefect_server.api_url, "GET", "/health")

``prefect_server`` starts ``prefect server start --host 127.0.0.1 --port <free port>`` with a
temporary ``PREFECT_HOME`` and a SQLite database there, analytics off and nothing reaching
outside 127.0.0.1, waits for ``/api/health`` and stops the server (its whole process group) at
the end of the session.  ``prefect_server_postgres`` does the same on a throw-away PostgreSQL
cluster (``initdb``/``pg_ctl`` as the ``postgres`` user when run as root) and skips with a reason
where PostgreSQL or asyncpg is not installed (``scripts/install_test_deps.sh`` installs it).

``PrefectServer.env`` is the environment child processes need to talk to the server
(``PREFECT_API_URL`` and the offline settings); ``start_worker`` starts a process worker on a
pool in its own process group and ``kill_tree`` SIGKILLs a worker and every process under it
(the flow runs it started), as a crashed node would; ``stop_workers`` ends a test's workers so
the next test's runs are not picked up by a worker with the wrong environment.  ``rest`` is a stdlib urllib JSON call,
the same way the Nuke bridge talks to the API.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
}


@dataclass
class PrefectServer:
    url: str  # http://127.0.0.1:PORT
    home: Path
    env: dict[str, str]  # for child processes: PREFECT_API_URL, PREFECT_HOME, offline settings
    process: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rest(api_url: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON call to the Prefect REST API with urllib (no Prefect client)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # 127.0.0.1 only
        text = response.read().decode()
    return json.loads(text) if text else None


def wait_healthy(api_url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if rest(api_url, "GET", "/health", timeout=5) is True:
                return
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s: {log.read_text()[-2000:]}")


def kill_tree(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal ``process`` and every descendant (found through /proc), children first."""
    pids = descendants(process.pid)
    for pid in [*reversed(pids), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _start(home: Path, database_url: str, extra_env: dict[str, str] | None = None) -> PrefectServer:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(OFFLINE_ENV)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"{url}/api",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update(extra_env or {})
    server_env = dict(env, PREFECT_API_DATABASE_CONNECTION_URL=database_url)
    server_env.pop("PREFECT_API_URL")
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=home,
        )
    try:
        wait_healthy(f"{url}/api", process, log)
    except BaseException:
        kill_tree(process)
        raise
    return PrefectServer(url=url, home=home, env=env, process=process)


def stop_workers(server: PrefectServer) -> None:
    """SIGKILL every worker started on ``server`` (and its flow runs); call it at the end of a test."""
    while server.workers:
        kill_tree(server.workers.pop())


def _stop(server: PrefectServer) -> None:
    stop_workers(server)
    kill_tree(server.process, signal.SIGTERM)
    if server.process.poll() is None:
        kill_tree(server.process)


def start_worker(
    server: PrefectServer, pool: str, extra_env: dict[str, str] | None = None, limit: int = 2, name: str = "worker"
) -> subprocess.Popen[bytes]:
    """A ``prefect worker start --type process`` on ``pool`` polling every second; stopped with the server."""
    env = dict(server.env, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1")
    env.update(extra_env or {})
    log = server.home / f"{name}.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
             "--limit", str(limit), "--name", name],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    server.workers.append(worker)
    return worker


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server on 127.0.0.1 with SQLite in a temporary PREFECT_HOME (see module docstring)."""
    home = tmp_path_factory.mktemp("prefect-home")
    server = _start(home, f"sqlite+aiosqlite:///{home / 'prefect.db'}")
    try:
        yield server
    finally:
        _stop(server)


def _postgres_tools() -> tuple[str, str] | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        for version in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (version / "initdb").exists() and (version / "pg_ctl").exists():
                return str(version / "initdb"), str(version / "pg_ctl")
        return None
    return initdb, pg_ctl


@pytest.fixture(scope="session")
def prefect_server_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The same server on a throw-away PostgreSQL cluster; skips where PostgreSQL is not installed."""
    tools = _postgres_tools()
    if tools is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) not installed: run scripts/install_test_deps.sh as root")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        pytest.skip("asyncpg (Prefect's PostgreSQL driver) not installed")
    initdb, pg_ctl = tools
    base = tmp_path_factory.mktemp("postgres")
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = [runuser, "-u", "postgres", "--"]
        os.chmod(base, 0o777)
        for parent in base.parents:  # the postgres user must be able to reach the folder
            if str(parent) in ("/", "/tmp"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o711)
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "prefect", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    start = [*as_user, pg_ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o",
             f"-p {port} -k {base} -h 127.0.0.1", "start"]
    subprocess.run(start, check=True, capture_output=True)
    try:  # the cluster's own "postgres" database: no createdb needed
        server = _start(tmp_path_factory.mktemp("prefect-pg-home"),
                        f"postgresql+asyncpg://prefect@127.0.0.1:{port}/postgres")
        try:
            yield server
        finally:
            _stop(server)
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
