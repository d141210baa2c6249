"""The embedded default's Prefect server, started early so its start-up overlaps the imports.

With no ``PREFECT_API_URL``, Prefect starts its ephemeral SQLite-backed server the moment a flow
is called: after this process has imported torch, diffusers and Prefect, and loaded the model,
so the server's own start-up (about 10 s on two cores) adds to the run.  ``vfxmatte flow run``
instead starts the very same server (Prefect's ephemeral command line: uvicorn over
``prefect.server.api.server:create_app`` with ``PREFECT__SERVER_EPHEMERAL=1``, the UI off, on
127.0.0.1 and a free port, the database in ``PREFECT_HOME``) before importing anything heavy,
and points the flow at it with ``temporary_settings``; the server starts on one core while
this process imports on the other.  It is stopped when this process exits, after Prefect has
flushed its logs and events (``atexit`` handlers run in reverse order of registration, and
this one is registered before Prefect is imported), and on Linux also when it is killed outright
(``PR_SET_PDEATHSIG``), so a killed run leaves no server behind.

This module imports nothing from Prefect, so it can run before Prefect is loaded.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from vfxmatte.errors import UsageError

#: What Prefect's SubprocessASGIServer sets for its ephemeral server process.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_parent() -> str:
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise UsageError("vfxmatte flow: Prefect is not installed")
    return str(Path(spec.origin).resolve().parent.parent)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM when this process dies, even by SIGKILL (no atexit then)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalServer:
    """A Prefect API server process on 127.0.0.1 for the lifetime of this process."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="vfxmatte-prefect-server-")
        command = [
            sys.executable, "-m", "uvicorn", "--app-dir", _prefect_parent(),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        # stdout stays clean for `--json`; what the server says goes to a file shown on failure.
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **SERVER_ENV},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        atexit.register(self.stop)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the server answers ``/health``; a one-line error if it exits or never does."""
        if timeout is None:
            timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise UsageError(f"the local Prefect server exited with status {code} while starting: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise UsageError(
            f"the local Prefect server did not start within {timeout:.0f} s "
            f"(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS): {self._tail()}"
        )

    def _tail(self) -> str:
        try:
            self._log.seek(0)
            lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return "no output"
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            self._log.close()
        except OSError:
            pass


def start_if_unconfigured() -> LocalServer | None:
    """A :class:`LocalServer` when the environment names no Prefect API, else None.

    A ``PREFECT_API_URL`` in a Prefect profile (rather than the environment) is only known once
    Prefect is loaded: the caller checks that and stops the server it did not need.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    return LocalServer()
