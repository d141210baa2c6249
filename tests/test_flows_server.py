"""The flows against a real ``prefect server``: deployments applied, process workers, runs created over REST.

Exactly the way the Nuke bridge submits (urllib JSON to ``/deployments/name/…`` and
``/deployments/{id}/create_flow_run``).  Tiny model, 64 px frames, the ``draft`` preset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import OpenImageIO as oiio
import pytest
from prefect_server import (  # noqa: F401  (fixtures)
    REPO,
    PrefectServer,
    kill_tree,
    prefect_server,
    prefect_server_postgres,
    rest,
    start_worker,
    stop_workers,
)
from test_flows import write_sequence

pytestmark = pytest.mark.slow
POOL = "vfxmatte-gpu"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def deploy(server: PrefectServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vfxmatte.cli", "flow", "deploy"],
        env=server.env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deployment matte-shot/vfxmatte" in proc.stdout


def worker_env(root: Path, model: Path, **extra: str) -> dict[str, str]:
    return {
        "VFXMATTE_ROOTS": str(root),
        "VFXMATTE_MODEL": str(model),
        "VFXMATTE_MODEL_ROOTS": str(model.parent),
        "VFXMATTE_DEVICE": "cpu",
        "VFXMATTE_RETRY_DELAY": "0",
        "VFXMATTE_GPU_LEASE_SECONDS": "60",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def submit(server: PrefectServer, parameters: dict[str, Any]) -> str:
    deployment = rest(server.api_url, "GET", "/deployments/name/matte-shot/vfxmatte")
    run = rest(server.api_url, "POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
    return str(run["id"])


def wait_final(server: PrefectServer, run_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rest(server.api_url, "GET", f"/flow_runs/{run_id}")
        if run["state_type"] in FINAL:
            return dict(run)
        time.sleep(1)
    logs = "".join(p.read_text()[-1500:] for p in server.home.glob("*.log"))
    raise AssertionError(f"flow run {run_id} not finished after {timeout:.0f} s; logs:\n{logs}")


def artifacts(server: PrefectServer, run_id: str) -> dict[str, Any]:
    found = rest(server.api_url, "POST", "/artifacts/filter",
                 {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "sort": "CREATED_DESC"})
    return {a["key"]: a for a in reversed(found) if a["key"]}  # newest per key wins


def result_of(server: PrefectServer, run_id: str) -> dict[str, Any]:
    text = artifacts(server, run_id)["vfxmatte-result"]["data"]
    return dict(json.loads(text.removeprefix("```json\n").removesuffix("\n```")))


def outputs(directory: Path) -> list[str]:
    return sorted(p for p in os.listdir(directory) if p.endswith(".exr"))


def finished(directory: Path) -> list[str]:
    """The frames written in full: not the hidden temporary file of a write still under way."""
    return [p for p in outputs(directory) if not p.startswith(".")]


def check_outputs(directory: Path, frames: range) -> None:
    """Every frame exactly once, complete (readable, all channels, parameters in the header), no temp file."""
    assert outputs(directory) == [f"matte.{f}.exr" for f in frames]
    for frame in frames:
        inp = oiio.ImageInput.open(str(directory / f"matte.{frame}.exr"))
        assert inp is not None, oiio.geterror()
        spec = inp.spec()
        assert list(spec.channelnames) == ["R", "G", "B", "A", "uncertainty.Y"]
        assert json.loads(spec.getattribute("vfxmatte:params"))["steps"] == 4  # draft preset
        assert inp.read_image("float") is not None
        inp.close()


@pytest.fixture(scope="module")
def deployed_once(prefect_server: PrefectServer) -> PrefectServer:  # noqa: F811
    deploy(prefect_server)
    return prefect_server


@pytest.fixture()
def deployed(deployed_once: PrefectServer) -> Iterator[PrefectServer]:
    """The deployed server; the workers a test starts are stopped when it ends."""
    yield deployed_once
    stop_workers(deployed_once)


def test_two_rest_runs_complete_and_share_the_gpu_limit(
    deployed: PrefectServer, tmp_path: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = deployed
    limit = rest(server.api_url, "GET", "/v2/concurrency_limits/gpu")
    assert limit["limit"] == 1
    start_worker(server, POOL, worker_env(tmp_path, tiny_model_dir), limit=2, name="pair")
    # A REST-created run naming a path outside the worker's VFXMATTE_ROOTS: refused in one line.
    outside = write_sequence(tmp_path_factory.mktemp("outside") / "plate", [1001])
    refused_id = submit(server, {"input": outside, "output": str(tmp_path / "c" / "matte.####.exr"), "review": False})
    runs = {}
    for shot in ("a", "b"):
        pattern = write_sequence(tmp_path / shot / "plate", range(1001, 1004))
        runs[shot] = submit(server, {"input": pattern, "output": str(tmp_path / shot / "out" / "matte.####.exr"),
                                     "preset": "draft", "chunk_size": 3, "review": False})
    refused = wait_final(server, refused_id)
    assert refused["state_type"] == "FAILED"
    assert refused["state"]["message"] == f"input {outside}: outside the allowed roots ({tmp_path}); set VFXMATTE_ROOTS"
    assert not (tmp_path / "c").exists()
    deadline, logs = time.monotonic() + 60, list[str]()
    while time.monotonic() < deadline and not any("outside the allowed roots" in m for m in logs):
        time.sleep(1)  # the flow-run process ships its log lines as it exits
        logs = [log["message"] for log in rest(server.api_url, "POST", "/logs/filter",
                                               {"logs": {"flow_run_id": {"any_": [refused_id]}}})]
    assert any("outside the allowed roots" in m for m in logs), logs
    assert not [m for m in logs if "Traceback" in m or "\n" in m], logs  # the run's log: one line each
    for shot, run_id in runs.items():
        run = wait_final(server, run_id)
        assert run["state_type"] == "COMPLETED", run["state"]
        check_outputs(tmp_path / shot / "out", range(1001, 1004))
        result = result_of(server, run_id)
        assert result["frames"]["written"] == [1001, 1002, 1003]
        keys = artifacts(server, run_id)
        assert keys["vfxmatte-progress"]["data"] == 100.0 and "| frame | status" in keys["vfxmatte-summary"]["data"]
    # One GPU slot: the two runs' frames were written one run after the other, never interleaved.
    spans = []
    for shot in runs:
        times = [os.stat(tmp_path / shot / "out" / name).st_mtime for name in outputs(tmp_path / shot / "out")]
        spans.append((min(times), max(times)))
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0, f"runs overlapped on a 1-slot gpu limit: {spans}"


def test_killed_worker_run_is_requeued_and_resumes(
    deployed: PrefectServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    server = deployed
    frames = range(1001, 1013)
    pattern = write_sequence(tmp_path / "plate", frames)
    out = tmp_path / "out"
    # This worker's GPU is 'gpu-kill'; after the kill its slot stays held until its lease expires.
    first = start_worker(server, POOL, worker_env(tmp_path, tiny_model_dir, VFXMATTE_GPU_LIMIT="gpu-kill"), name="k1")
    run_id = submit(server, {"input": pattern, "output": str(out / "matte.####.exr"), "preset": "draft",
                             "chunk_size": 2, "review": False})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (out.is_dir() and len(finished(out)) >= 3):
        time.sleep(0.2)
    done_before = len(finished(out))
    assert 3 <= done_before < len(frames), f"{done_before} frames before the kill"
    kill_tree(first)  # the worker and the flow-run process under it, as a dead node
    time.sleep(1)
    before = set(outputs(out))
    time.sleep(2)
    assert set(outputs(out)) == before, "a frame was written after the kill"
    assert rest(server.api_url, "GET", f"/flow_runs/{run_id}")["state_type"] == "RUNNING"  # stuck, as after a crash
    stale = out / ".matte.1012.exr.0123456789ab.tmp.exr"  # what a write cut short leaves
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))

    requeue = subprocess.run([sys.executable, "-m", "vfxmatte.cli", "flow", "requeue", run_id],
                             env=server.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert requeue.returncode == 0 and "SCHEDULED" in requeue.stdout, requeue.stderr[-2000:]
    start_worker(server, POOL, worker_env(tmp_path, tiny_model_dir, VFXMATTE_GPU_LIMIT="gpu-kill-2"), name="k2")
    run = wait_final(server, run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    check_outputs(out, frames)
    assert not [p for p in os.listdir(out) if p.endswith(".tmp.exr")]
    result = result_of(server, run_id)
    assert sorted(result["frames"]["written"] + result["frames"]["skipped"]) == list(frames)
    assert len(result["frames"]["skipped"]) >= done_before  # resumed: frames done before the kill were not redone


def test_postgres_backed_server_runs_a_shot(
    prefect_server_postgres: PrefectServer, tmp_path: Path, tiny_model_dir: Path  # noqa: F811
) -> None:
    server = prefect_server_postgres
    deploy(server)
    start_worker(server, POOL, worker_env(tmp_path, tiny_model_dir), name="pg")
    pattern = write_sequence(tmp_path / "plate", range(1001, 1003))
    run_id = submit(server, {"input": pattern, "output": str(tmp_path / "out" / "matte.####.exr"),
                             "preset": "draft", "review": False})
    try:
        run = wait_final(server, run_id)
    finally:
        stop_workers(server)
    assert run["state_type"] == "COMPLETED", run["state"]
    check_outputs(tmp_path / "out", range(1001, 1003))
