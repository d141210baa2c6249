"""The Prefect flows in-process, on Prefect's own test server (``prefect_test_harness``).

Real EXRs (OIIO), the tiny seeded model, 64 px frames, the ``draft`` preset. The integration
tests with a real ``prefect server``, a process worker and the REST API are in
``test_flows_server.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from vfxmatte.config import PRESETS, MatteParams, preset_params
from vfxmatte.errors import UsageError
from vfxmatte.security import confine


def write_sequence(directory: Path, frames: range | list[int], size: int = 64, stem: str = "plate") -> str:
    """Write a tiny scene-linear RGB EXR sequence (a bright disc on a dark ground); return its pattern."""
    directory.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for frame in frames:
        disc = ((xx - size / 2 - (frame % 7)) ** 2 + (yy - size / 2) ** 2) < (size / 4) ** 2
        rng = np.random.default_rng(frame)
        image = np.where(disc[..., None], 0.8, 0.05) + 0.02 * rng.random((size, size, 3))
        out = oiio.ImageOutput.create("exr")
        assert out.open(str(directory / f"{stem}.{frame:04d}.exr"), oiio.ImageSpec(size, size, 3, "half"))
        out.write_image(image.astype(np.float32))
        out.close()
    return str(directory / f"{stem}.####.exr")


def header(path: str | Path, name: str) -> Any:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, path
    try:
        return inp.spec().getattribute(name)
    finally:
        inp.close()


# -- library pieces the flows rely on (no Prefect) -----------------------------------------


def test_confine_accepts_inside_and_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "shots").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    roots = [str(root)]
    assert confine(str(root / "shots" / "a.####.exr"), "input", roots) == str(root / "shots" / "a.####.exr")
    assert confine(str(root / "new" / "b.####.exr"), "output", roots).startswith(str(root))
    for bad, reason in (
        (str(root / "shots" / ".." / ".." / "outside" / "a.exr"), "'..'"),
        (str(root / "escape" / "a.####.exr"), "outside the allowed roots"),
        (str(outside / "a.exr"), "outside the allowed roots"),
        (str(root) + "-sibling/a.exr", "outside the allowed roots"),
    ):
        with pytest.raises(UsageError, match=reason):
            confine(bad, "output", roots)


def test_presets_map_to_params_and_flags_win() -> None:
    assert preset_params("standard") == MatteParams()
    draft = preset_params("draft", seed=3)
    assert (draft.steps, draft.seeds, draft.lr_size, draft.seed) == (4, 2, 256, 3)
    assert preset_params("final", steps=7).steps == 7
    assert set(PRESETS) == {"draft", "standard", "final"}
    with pytest.raises(UsageError, match="--preset"):
        preset_params("ultra")


def test_request_refuses_unknown_keys_bad_enums_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from flows.params import MatteShotRequest

    monkeypatch.setenv("VFXMATTE_ROOTS", str(tmp_path))
    ok = MatteShotRequest(input=str(tmp_path / "p.####.exr"), output=str(tmp_path / "o" / "m.####.exr"), frames="1-3")
    assert ok.frame_list() == [1, 2, 3] and ok.preset == "standard" and ok.chunk_size == 24
    with pytest.raises(ValidationError, match="Extra inputs"):
        MatteShotRequest(input=ok.input, output=ok.output, steps=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="preset"):
        MatteShotRequest(input=ok.input, output=ok.output, preset="ultra")  # type: ignore[arg-type]
    assert ok.prior == "u2netp" and ok.matte_params().prior == "u2netp"
    people = MatteShotRequest(input=ok.input, output=ok.output, prior="people")
    assert people.matte_params().prior == "people" and people.matte_params().steps == ok.matte_params().steps
    with pytest.raises(ValidationError, match="prior"):
        MatteShotRequest(input=ok.input, output=ok.output, prior="folk")  # type: ignore[arg-type]
    assert ok.clean_plate == "auto" and ok.matte_params().clean_plate == "auto"
    off = MatteShotRequest(input=ok.input, output=ok.output, clean_plate="off")
    assert off.matte_params().clean_plate == "off"
    with pytest.raises(ValidationError, match="clean_plate"):
        MatteShotRequest(input=ok.input, output=ok.output, clean_plate="on")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="outside the allowed roots"):
        MatteShotRequest(input="/etc/passwd", output=ok.output)
    with pytest.raises(UsageError, match="--frames"):
        MatteShotRequest(input=ok.input, output=ok.output, frames="10-1")


def test_run_log_gets_vfxmatte_errors_in_one_line_and_other_errors_with_traceback() -> None:
    """What a worker's flow-run process logs when a run fails (Prefect's engine wrapper)."""
    import logging

    import flows.matte_shot  # noqa: F401  (installs the filter)

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(self.format(record))

    logger, keep = logging.getLogger("prefect.flow_runs"), Keep()
    logger.addHandler(keep)
    try:
        for error in (UsageError("input /x.####.exr: outside the allowed roots (/r); set VFXMATTE_ROOTS"),
                      RuntimeError("a bug")):
            try:
                raise error
            except Exception:
                logger.error("Engine execution exited with unexpected exception", exc_info=True)
    finally:
        logger.removeHandler(keep)
    refused, bug = keep.lines
    assert refused == ("Engine execution exited with unexpected exception: "
                       "input /x.####.exr: outside the allowed roots (/r); set VFXMATTE_ROOTS")
    assert "Traceback" in bug and "RuntimeError: a bug" in bug


# -- the flows on the Prefect test harness -------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture()
def flow_env(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VFXMATTE_ROOTS", str(tmp_path))
    monkeypatch.setenv("VFXMATTE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("VFXMATTE_MODEL_ROOTS", str(tiny_model_dir.parent))
    monkeypatch.setenv("VFXMATTE_DEVICE", "cpu")
    monkeypatch.setenv("VFXMATTE_RETRIES", "1")
    monkeypatch.setenv("VFXMATTE_RETRY_DELAY", "0")
    return tmp_path


def artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    """The newest artifact per key of one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    latest: dict[str, Any] = {}
    for artifact in sorted(found, key=lambda a: a.created):
        if artifact.key:
            latest[artifact.key] = artifact
    return latest


def result_json(artifact: Any) -> dict[str, Any]:
    text = artifact.data
    assert text.startswith("```json\n") and text.endswith("\n```")
    return json.loads(text[len("```json\n") : -len("\n```")])


def test_the_summary_names_the_frames_whose_matte_leaves_out_the_plates_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    """The run's result and its Markdown summary read ``vfxmatte:clean_plate_missed`` from each
    header and name the frames past 0.1 % of the frame, as the CLI's note and the review page do."""
    from test_review import FRAMES, MISSED, write_shot

    from flows.matte_shot import markdown_summary, summarise
    from flows.params import MatteShotRequest
    from flows.settings import FlowSettings

    monkeypatch.setenv("VFXMATTE_ROOTS", str(tmp_path))
    pattern = write_shot(tmp_path / "out", tiny_model_dir)
    request = MatteShotRequest(input=str(tmp_path / "p.####.exr"), output=str(pattern), review=False)
    records = [
        {"frame": f, "status": "written", "path": str(tmp_path / "out" / f"matte.{f:04d}.exr"), "seconds": 1.0}
        for f in FRAMES
    ]
    result = summarise(request, FlowSettings(roots=(str(tmp_path),)), str(pattern), records)
    assert result["missed"] == {"1005": pytest.approx(MISSED[1005])}  # 1002's 0.05 % is under the 0.1 % named
    text = markdown_summary(result)
    assert "Missed subject (the clean plate sees a subject the matte leaves out" in text
    assert "| 1005 | written |" in text and "missed subject 2.00% of the frame" in text
    assert json.loads(json.dumps(result)) == result  # the result artifact is plain JSON


@pytest.mark.slow
def test_matte_shot_chunks_resume_and_artifacts(harness: None, flow_env: Path) -> None:
    from flows.matte_shot import matte_shot

    pattern = write_sequence(flow_env / "plate", range(1001, 1006))
    output = str(flow_env / "out" / "matte.####.exr")
    state = matte_shot(pattern, output, preset="draft", chunk_size=2, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["frames"] == {"written": [1001, 1002, 1003, 1004, 1005], "skipped": [], "failed": []}
    for frame in range(1001, 1006):
        path = flow_env / "out" / f"matte.{frame}.exr"
        score = header(path, "vfxmatte:uncertainty")
        assert result["uncertainty"][str(frame)] == pytest.approx(score)
        assert json.loads(header(path, "vfxmatte:params"))["steps"] == PRESETS["draft"]["steps"]
    assert not [p for p in os.listdir(flow_env / "out") if p.endswith(".tmp.exr")]

    artifacts = artifacts_of(state.state_details.flow_run_id)
    assert {"vfxmatte-progress", "vfxmatte-summary", "vfxmatte-result"} <= set(artifacts)
    assert artifacts["vfxmatte-progress"].data == 100.0
    assert "| written | skipped" in artifacts["vfxmatte-summary"].data
    assert result_json(artifacts["vfxmatte-result"]) == json.loads(json.dumps(result))
    scores = result["uncertainty"]
    assert result["flag_threshold"] == pytest.approx(1.5 * float(np.median(list(scores.values()))))
    assert result["flagged"] == [int(f) for f, s in scores.items() if s > result["flag_threshold"]]
    if result["review_page"]:
        assert os.path.isfile(result["review_page"])
        assert result["review_page"] == str(flow_env / "out" / "review" / "index.html")
    else:
        assert "no review page made" in result["review_note"]

    # A second run finds every frame done (same parameters in the headers) and writes nothing.
    mtimes = {p: os.stat(flow_env / "out" / p).st_mtime_ns for p in os.listdir(flow_env / "out") if p.endswith("exr")}
    again = matte_shot(pattern, output, preset="draft", chunk_size=3, review=False)
    assert again["frames"]["skipped"] == [1001, 1002, 1003, 1004, 1005] and not again["frames"]["written"]
    assert again["review_page"] is None
    assert mtimes == {p: os.stat(flow_env / "out" / p).st_mtime_ns for p in mtimes}


def test_failed_frames_fail_the_run_after_retries_and_are_reported(harness: None, flow_env: Path) -> None:
    from flows.matte_shot import matte_shot

    pattern = write_sequence(flow_env / "plate", [1001, 1002, 1004])
    (flow_env / "plate" / "plate.1002.exr").write_bytes(b"not an exr")  # damaged frame: fails every attempt
    output = str(flow_env / "out" / "matte.####.exr")
    state = matte_shot(pattern, output, frames="1001-1004", preset="draft", chunk_size=2, return_state=True)
    assert state.is_failed()
    assert "2 frame(s) failed: 1002-1003" in (state.message or "")
    artifacts = artifacts_of(state.state_details.flow_run_id)
    result = result_json(artifacts["vfxmatte-result"])
    assert result["frames"] == {"written": [1001, 1004], "skipped": [], "failed": [1002, 1003]}
    assert "plate.1002.exr" in result["errors"]["1002"] and "missing on disk" in result["errors"]["1003"]
    assert sorted(os.listdir(flow_env / "out"))[:2] == ["matte.1001.exr", "matte.1004.exr"]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    chunk = next(r for r in runs if r.name == "frames 1001-1002")
    assert chunk.run_count == 2 and chunk.state is not None and chunk.state.is_failed()  # retried once


def test_paths_outside_the_roots_are_refused(harness: None, flow_env: Path, tmp_path_factory: Any) -> None:
    """A deployment's run (a worker calls the flow, no local_paths()): refused in one line, no traceback."""
    import logging

    from flows.matte_shot import matte_shot

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    pattern = write_sequence(elsewhere / "plate", [1001])
    class Keep(logging.Handler):
        records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    handler, logger = Keep(), logging.getLogger("prefect")
    logger.addHandler(handler)
    try:
        state = matte_shot(pattern, str(flow_env / "out" / "m.####.exr"), return_state=True)
    finally:
        logger.removeHandler(handler)
    records = handler.records
    expected = f"input {pattern}: outside the allowed roots ({flow_env}); set VFXMATTE_ROOTS"
    assert state.is_failed() and state.message == expected
    error = state.result(raise_on_failure=False)
    assert isinstance(error, UsageError) and str(error) == expected
    assert records and not [r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert not (flow_env / "out").exists()


def test_run_checks_frames_found_on_disk_and_a_directory_outputs_links(
    harness: None, flow_env: Path, tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request cannot say up front is checked once the shot is open, before any model work."""
    import flows.params
    from flows.matte_shot import matte_shot

    pattern = write_sequence(flow_env / "plate", [1001, 1002, 1003])
    monkeypatch.setattr(flows.params, "MAX_FRAMES_PER_RUN", 2)  # 3 frames on disk, no frames parameter
    state = matte_shot(pattern, str(flow_env / "out") + "/", return_state=True)
    assert state.is_failed() and "3 frames: more than 2 in one run" in (state.message or "")
    monkeypatch.setattr(flows.params, "MAX_FRAMES_PER_RUN", 100_000)
    secret = write_sequence(tmp_path_factory.mktemp("elsewhere") / "s", [1001]).replace("####", "1001")
    (flow_env / "out").mkdir()
    (flow_env / "out" / "plate.1001.exr").symlink_to(secret)  # the directory output's frame leads out
    state = matte_shot(pattern, str(flow_env / "out") + "/", overwrite=True, return_state=True)
    assert state.is_failed() and "symlink to a file outside the allowed roots" in (state.message or "")


@pytest.mark.slow
def test_matte_new_shots_finds_incomplete_shots_and_skips_done_ones(harness: None, flow_env: Path) -> None:
    from flows.new_shots import matte_new_shots, pending_shots

    drop, mattes = flow_env / "drop", flow_env / "mattes"
    write_sequence(drop / "sq010", [1001, 1002], stem="plate")
    write_sequence(drop / "sq020", [1001, 1002], stem="bg")
    (drop / ".hidden").mkdir()
    todo = pending_shots(str(drop), None, str(mattes))
    assert [(t["name"], t["output"]) for t in todo] == [
        ("sq010_plate", str(mattes / "sq010_plate" / "plate.####.exr")),
        ("sq020_bg", str(mattes / "sq020_bg" / "bg.####.exr")),
    ]
    outcome = matte_new_shots(drop=str(drop), output_root=str(mattes), preset="draft", review=False)
    assert outcome == {"done": [t["output"] for t in todo], "failed": {}}
    assert sorted(os.listdir(mattes / "sq020_bg")) == ["bg.1001.exr", "bg.1002.exr"]
    assert pending_shots(str(drop), None, str(mattes)) == []  # complete now: the next scheduled run has nothing to do
    write_sequence(drop / "sq010", [1003], stem="plate")  # a new frame arrives
    assert [t["name"] for t in pending_shots(str(drop), None, str(mattes))] == ["sq010_plate"]

    manifest = flow_env / "manifest.json"
    manifest.write_text(json.dumps({"shots": [{"input": "/etc/x.####.exr", "output": str(mattes / "x.####.exr")}]}))
    state = matte_new_shots(manifest=str(manifest), return_state=True)
    assert state.is_failed() and "1 of 1 shot(s) failed" in (state.message or "")


@pytest.mark.slow
def test_vfxmatte_flow_run_cli_embedded_server(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`vfxmatte flow run` in a fresh process: Prefect's ephemeral server, no set-up, JSON summary, exit codes."""
    import subprocess
    import sys

    # The user's own absolute paths, outside the working directory and outside VFXMATTE_ROOTS
    # (which confines only runs that arrive over the network): accepted.
    pattern = write_sequence(tmp_path / "shots" / "plate", [1001, 1002])
    cwd, roots = tmp_path / "elsewhere", tmp_path / "roots"
    cwd.mkdir()
    roots.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(VFXMATTE_ROOTS=str(roots), VFXMATTE_MODEL=str(tiny_model_dir), PREFECT_HOME=str(tmp_path / "ph"),
               VFXMATTE_MODEL_ROOTS=str(tiny_model_dir.parent))
    out = tmp_path / "shots" / "out"
    command = [sys.executable, "-m", "vfxmatte.cli", "flow", "run", pattern, "-o", str(out) + "/",
               "--preset", "draft", "--json"]
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["frames"]["written"] == [1001, 1002] and result["output"] == str(out / "plate.####.exr")
    assert sorted(os.listdir(out)) == ["plate.1001.exr", "plate.1002.exr", "review"]
    assert result["review_page"] == str(out / "review" / "index.html")
    assert "Traceback" not in proc.stderr and "nanobind" not in proc.stderr, proc.stderr[-2000:]
    # A relative path that does not exist: one line, exit 2, no traceback, no nanobind leak report.
    missing = subprocess.run([*command[:5], "../shots/nothere.####.exr", *command[6:]], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2, missing.stderr[-2000:]
    errors = [line for line in missing.stderr.splitlines() if "|" not in line]  # Prefect's log lines have "|"
    assert errors == [f"vfxmatte: error: {tmp_path}/shots/nothere.####.exr: no frames match the pattern"], errors


@pytest.mark.slow
def test_local_server_answers_health_then_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default's early-started server: healthy on 127.0.0.1, gone after stop(); a server
    that dies while starting is a one-line error, not a 90 s wait."""
    import urllib.request

    from flows.local_server import LocalServer, start_if_unconfigured

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "ph"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert start_if_unconfigured() is None  # a configured server is used as it is
    monkeypatch.delenv("PREFECT_API_URL")
    server = LocalServer()
    try:
        assert server.api_url.startswith("http://127.0.0.1:")
        server.wait_ready(timeout=120)
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()
    assert server.process.poll() is not None
    dead = LocalServer()
    dead.process.kill()
    with pytest.raises(UsageError, match="exited with status"):
        dead.wait_ready(timeout=30)
    dead.stop()


@pytest.mark.slow
def test_local_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """A run killed outright (SIGKILL: no atexit) leaves no embedded server behind (Linux)."""
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    script = (
        "from flows.local_server import LocalServer\nimport time\n"
        "s = LocalServer()\nprint(s.process.pid, flush=True)\ntime.sleep(60)\n"
    )
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "ph"))
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{child}/stat") as stat:  # a zombie awaiting its reaper has left too
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the embedded server outlived its killed parent")
