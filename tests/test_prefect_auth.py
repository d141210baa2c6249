"""Facility authentication (issue 12 item 5) against a real Prefect server started with basic auth.

The server runs with ``PREFECT_SERVER_API_AUTH_STRING``; clients send ``PREFECT_API_AUTH_STRING``.
The Nuke bridge's stdlib client, ``vfxmatte flow`` (Prefect's own client) and a process worker
are each tried with the right credentials, a wrong one and none.  Only ``GET /health`` (and
``/ready``) answer without credentials: Prefect leaves them open for load-balancer probes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_server import REPO, PrefectServer, _start, _stop, kill_tree, start_worker

from nuke_bridge.client import BridgeError, PrefectClient

AUTH = "vfxmatte-farm:correct-horse-battery"
WRONG = "vfxmatte-farm:wrong-password"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server on 127.0.0.1 that refuses requests without ``AUTH``; its children send ``AUTH``."""
    home = tmp_path_factory.mktemp("prefect-auth-home")
    auth = {"PREFECT_SERVER_API_AUTH_STRING": AUTH, "PREFECT_API_AUTH_STRING": AUTH}
    server = _start(home, f"sqlite+aiosqlite:///{home / 'prefect.db'}", auth)
    try:
        yield server
    finally:
        _stop(server)


def raw(api_url: str, path: str, authorization: str | None) -> tuple[int, Any]:
    """One POST with urllib and a hand-made header: the server's own answer, status and body."""
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(api_url + path, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_server_refuses_requests_without_the_auth_string(auth_server: PrefectServer) -> None:
    import base64

    good = "Basic " + base64.b64encode(AUTH.encode()).decode()
    bad = "Basic " + base64.b64encode(WRONG.encode()).decode()
    assert raw(auth_server.api_url, "/deployments/filter", good) == (200, [])
    for header in (None, bad, "Bearer " + AUTH, "Basic not-base64!"):
        assert raw(auth_server.api_url, "/deployments/filter", header) == (401, {"exception_message": "Unauthorized"})


def test_bridge_sends_credentials_and_a_wrong_or_missing_one_is_refused(auth_server: PrefectServer) -> None:
    api = auth_server.api_url
    client = PrefectClient.from_env({"PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": AUTH})
    assert client is not None
    assert client.request("POST", "/deployments/filter", {}) == []
    with pytest.raises(BridgeError) as missing_deployment:  # past the auth check: the server looked it up
        client.find_deployment("matte-shot/vfxmatte")
    assert missing_deployment.value.kind == "not_found"

    for env in ({"PREFECT_API_AUTH_STRING": WRONG}, {}, {"PREFECT_API_KEY": AUTH}):
        refused = PrefectClient.from_env({"PREFECT_API_URL": api, **env})
        assert refused is not None
        for method, argument in (("submit", "matte-shot/vfxmatte"), ("read_flow_run", "0" * 32)):
            with pytest.raises(BridgeError) as info:
                if method == "submit":
                    refused.submit(argument, {"input": "x"})
                else:
                    refused.read_flow_run(argument)
            message = str(info.value)
            assert (info.value.kind, info.value.status) == ("auth", 401), message
            assert message == (
                f"the Prefect server at {api} refused our credentials (HTTP 401): set "
                "PREFECT_API_AUTH_STRING='user:pass' (self-hosted) or PREFECT_API_KEY (Prefect Cloud)"
            )
        assert refused.health() is True  # health probes stay open (Prefect's choice), nothing else does


def flow_cli(server: PrefectServer, auth: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in server.env.items() if k != "PREFECT_API_AUTH_STRING"}
    if auth is not None:
        env["PREFECT_API_AUTH_STRING"] = auth
    command = [sys.executable, "-m", "vfxmatte.cli", "flow", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two CLI processes that import Prefect: about 10 s on 2 cores
def test_flow_cli_with_the_auth_string_and_without(auth_server: PrefectServer) -> None:
    done = flow_cli(auth_server, AUTH, "requeue")
    assert (done.returncode, done.stdout, done.stderr) == (0, "nothing to requeue\n", "")
    for auth in (WRONG, None):
        refused = flow_cli(auth_server, auth, "requeue")
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr == (
            f"vfxmatte: error: the Prefect server at {auth_server.api_url} refused our credentials (HTTP 401): "
            "set PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING (user:password)\n"
        )


@pytest.mark.slow
def test_worker_with_the_auth_string_registers_and_a_wrong_one_stops(auth_server: PrefectServer) -> None:
    client = PrefectClient(auth_server.api_url, auth_string=AUTH)
    client.request("POST", "/work_pools/", {"name": "auth-pool", "type": "process"})
    good = start_worker(auth_server, "auth-pool", name="auth-good")
    bad = start_worker(auth_server, "auth-pool", {"PREFECT_API_AUTH_STRING": WRONG}, name="auth-wrong")
    try:
        deadline, names = time.monotonic() + 120, []
        while time.monotonic() < deadline and not (names and bad.poll() is not None):
            names = [w["name"] for w in client.request("POST", "/work_pools/auth-pool/workers/filter", {})]
            time.sleep(1)
        assert names == ["auth-good"] and good.poll() is None
        assert bad.poll() not in (None, 0)
        assert "401 Unauthorized" in (auth_server.home / "auth-wrong.log").read_text()
    finally:
        for worker in (good, bad):
            kill_tree(worker)
            auth_server.workers.remove(worker)


@pytest.mark.slow
def test_a_shot_submitted_by_the_bridge_runs_on_an_authenticated_farm(
    auth_server: PrefectServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    """End to end with credentials everywhere: deploy, a worker, the bridge submits and polls, frames land."""
    from test_flows import write_sequence
    from test_flows_server import POOL, deploy, worker_env

    from nuke_bridge.jobs import FarmJob, ShotRequest

    deploy(auth_server)  # vfxmatte flow deploy with PREFECT_API_AUTH_STRING
    worker = start_worker(auth_server, POOL, worker_env(tmp_path, tiny_model_dir), limit=1, name="auth-farm")
    try:
        pattern = write_sequence(tmp_path / "plate", [1001, 1002])
        output = str(tmp_path / "out" / "matte.####.exr")
        request = ShotRequest(input=pattern, output=output, first=1001, last=1002, preset="draft", review=False)
        job = FarmJob.submit(request, PrefectClient(auth_server.api_url, auth_string=AUTH))
        deadline = time.monotonic() + 300
        status = job.poll()
        while not status.finished and time.monotonic() < deadline:
            time.sleep(1)
            status = job.poll()
        assert status.state == "completed", (status.message, (auth_server.home / "auth-farm.log").read_text()[-3000:])
        assert sorted(p.name for p in (tmp_path / "out").glob("*.exr")) == ["matte.1001.exr", "matte.1002.exr"]
        with pytest.raises(BridgeError, match="refused our credentials"):
            FarmJob.submit(request, PrefectClient(auth_server.api_url, auth_string=WRONG))
    finally:
        kill_tree(worker)
        auth_server.workers.remove(worker)
