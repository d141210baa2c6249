"""The Nuke bridge: its Prefect client, local mode and the panel's submit → reload cycle.

Nuke itself is the one thing mocked (``fake_nuke``: records nodes and knobs, insists on the
main thread).  The client is tested against a real HTTP server on 127.0.0.1 answering with
errors, local mode runs the real ``vfxmatte`` CLI on 64 px frames with the tiny model, and
farm mode submits to a real Prefect server with the ``matte-shot/vfxmatte`` deployment.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fake_nuke
import numpy as np
import OpenImageIO as oiio
import pytest
from prefect_server import PrefectServer, kill_tree, prefect_server, start_worker  # noqa: F401  (fixture)

from nuke_bridge.client import BridgeError, PrefectClient, latest_artifacts
from nuke_bridge.jobs import (
    ShotRequest,
    default_output,
    frame_path,
    hashes,
    missed_note,
    parse_result,
    review_page,
    start_job,
)

REPO = Path(__file__).resolve().parents[1]
NUKE_DIR = REPO / "nuke_bridge" / "nuke"

# -- a real HTTP server that answers what a test tells it to -------------------------------


class _Stub(BaseHTTPRequestHandler):
    routes: dict[tuple[str, str], tuple[int, Any, float]] = {}
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body.decode() or None}
        )
        status, payload, delay = self.routes.get((self.command, self.path), (404, {"detail": "Not Found"}, 0.0))
        if delay:
            time.sleep(delay)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def stub() -> Iterator[tuple[str, dict[tuple[str, str], tuple[int, Any, float]], list[dict[str, Any]]]]:
    routes: dict[tuple[str, str], tuple[int, Any, float]] = {}
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Stub,), {"routes": routes, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", routes, seen
    finally:
        server.shutdown()
        server.server_close()


DEPLOYMENT_PATH = "/api/deployments/name/matte-shot/vfxmatte"


def _assert_one_line(exc: BridgeError) -> None:
    assert "\n" not in str(exc) and 0 < len(str(exc)) <= 400


def test_client_missing_deployment_is_a_clear_404(stub: Any) -> None:
    url, routes, _ = stub
    routes[("GET", DEPLOYMENT_PATH)] = (404, {"detail": "Deployment not found"}, 0.0)
    with pytest.raises(BridgeError) as caught:
        PrefectClient(url).find_deployment("matte-shot/vfxmatte")
    assert caught.value.kind == "not_found" and caught.value.status == 404
    assert "deployment 'matte-shot/vfxmatte' not found on " + url in str(caught.value)
    _assert_one_line(caught.value)


def test_client_401_names_the_credentials_to_set(stub: Any) -> None:
    url, routes, seen = stub
    routes[("GET", DEPLOYMENT_PATH)] = (401, {"exception_message": "Unauthorized"}, 0.0)
    with pytest.raises(BridgeError) as caught:
        PrefectClient(url, auth_string="artist:wrong").find_deployment("matte-shot/vfxmatte")
    assert caught.value.kind == "auth" and caught.value.status == 401
    assert "PREFECT_API_AUTH_STRING" in str(caught.value)
    _assert_one_line(caught.value)
    assert seen[-1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"artist:wrong").decode()


def test_client_500_carries_the_servers_detail(stub: Any) -> None:
    url, routes, _ = stub
    routes[("GET", "/api/flow_runs/abc")] = (500, {"exception_message": "Internal Server Error\nTraceback…"}, 0.0)
    with pytest.raises(BridgeError) as caught:
        PrefectClient(url).read_flow_run("abc")
    assert caught.value.kind == "server" and caught.value.status == 500
    assert "HTTP 500" in str(caught.value) and "Internal Server Error" in str(caught.value)
    _assert_one_line(caught.value)


def test_client_times_out(stub: Any) -> None:
    url, routes, _ = stub
    routes[("GET", "/api/flow_runs/slow")] = (200, {"id": "slow"}, 2.0)
    started = time.monotonic()
    with pytest.raises(BridgeError) as caught:
        PrefectClient(url, timeout=0.3).read_flow_run("slow")
    assert time.monotonic() - started < 1.8
    assert caught.value.kind == "timeout" and "within 0.3 s" in str(caught.value)
    _assert_one_line(caught.value)


def test_client_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BridgeError) as caught:
        PrefectClient(f"http://127.0.0.1:{port}/api", timeout=2).find_deployment("matte-shot/vfxmatte")
    assert caught.value.kind == "unreachable" and f"127.0.0.1:{port}" in str(caught.value)
    assert "PREFECT_API_URL" in str(caught.value)
    _assert_one_line(caught.value)


def test_client_not_json_and_422(stub: Any) -> None:
    url, routes, _ = stub
    routes[("GET", DEPLOYMENT_PATH)] = (200, b"<html>Prefect UI</html>", 0.0)
    with pytest.raises(BridgeError, match="not JSON") as caught:
        PrefectClient(url).find_deployment("matte-shot/vfxmatte")
    assert caught.value.kind == "bad_response"
    routes[("POST", "/api/deployments/d1/create_flow_run")] = (422, {"detail": [{"msg": "extra keys"}]}, 0.0)
    with pytest.raises(BridgeError, match="HTTP 422.*extra keys") as caught:
        PrefectClient(url).create_flow_run("d1", {"steps": 3})
    assert caught.value.kind == "rejected"


def test_client_happy_path_and_headers(stub: Any) -> None:
    url, routes, seen = stub
    routes[("GET", DEPLOYMENT_PATH)] = (200, {"id": "d1", "name": "vfxmatte"}, 0.0)
    run = {"id": "r1", "name": "nuke-plate", "state_type": "SCHEDULED", "state_name": "Scheduled", "state": {}}
    routes[("POST", "/api/deployments/d1/create_flow_run")] = (201, run, 0.0)
    artifacts = [
        {"key": "vfxmatte-progress", "type": "progress", "data": 40.0, "created": "2024-01-01T00:00:02"},
        {"key": "vfxmatte-progress", "type": "progress", "data": 10.0, "created": "2024-01-01T00:00:01"},
        {"key": None, "type": "markdown", "data": "x", "created": "2024-01-01T00:00:03"},
    ]
    routes[("POST", "/api/artifacts/filter")] = (200, artifacts, 0.0)
    client = PrefectClient.from_env({"PREFECT_API_URL": url + "/", "PREFECT_API_KEY": "pnu_key"})
    assert client is not None
    state = client.submit("matte-shot/vfxmatte", {"input": "a.####.exr"}, name="nuke-plate")
    assert (state.id, state.state_type, state.is_final) == ("r1", "SCHEDULED", False)
    body = json.loads(seen[-1]["body"])
    assert body == {"parameters": {"input": "a.####.exr"}, "name": "nuke-plate", "tags": ["nuke"]}
    assert all(s["headers"]["Authorization"] == "Bearer pnu_key" for s in seen)
    latest = latest_artifacts(client.read_artifacts("r1"))
    assert list(latest) == ["vfxmatte-progress"] and latest["vfxmatte-progress"].data == 40.0
    assert json.loads(seen[-1]["body"])["artifacts"] == {"flow_run_id": {"any_": ["r1"]}}
    # The auth string wins over an API key, as in Prefect 3's own client.
    both = PrefectClient.from_env({"PREFECT_API_URL": url, "PREFECT_API_KEY": "k", "PREFECT_API_AUTH_STRING": "u:p"})
    assert both is not None and both._headers["Authorization"].startswith("Basic ")
    assert PrefectClient.from_env({}) is None
    with pytest.raises(BridgeError, match="flow-name/deployment-name"):
        client.find_deployment("matte-shot")


# -- pure helpers -----------------------------------------------------------------------------


def test_patterns_outputs_and_results(tmp_path: Path) -> None:
    assert frame_path("/s/plate.####.exr", 1001) == "/s/plate.1001.exr"
    assert frame_path("/s/plate.%04d.exr", 7) == "/s/plate.0007.exr"
    assert frame_path("/s/plate.%d.exr", 7) == "/s/plate.7.exr"
    assert hashes("/s/plate.%04d.exr") == "/s/plate.####.exr"
    assert default_output("/s/plate.%04d.exr", str(tmp_path)) == str(tmp_path / "plate" / "plate.####.exr")
    assert default_output("/s/sh010_bg.####.exr") == os.path.join("/s", "vfxmatte", "sh010_bg", "sh010_bg.####.exr")
    assert review_page("/o/plate/plate.####.exr") == os.path.join("/o/plate", "review", "index.html")
    flow_result = {"frames": {"written": [1], "failed": [2]}, "errors": {"2": "plate.0002.exr: damaged"}}
    parsed = parse_result("```json\n" + json.dumps(flow_result) + "\n```")
    assert parsed == flow_result
    # A finished run's frames whose matte leaves out what the clean plate calls subject reach the
    # status line (the flow's result and `vfxmatte matte --json` both carry "missed").
    assert missed_note(flow_result) == missed_note({"missed": {}}) == ""
    note = missed_note({"missed": {"1092": 0.0088, "1051": 0.0013}})
    assert note == (
        "; the clean plate sees a missed subject on frame(s) 1051, 1092 (review page; --clean-plate fill fills it)"
    )
    many = missed_note({"missed": {str(f): 0.01 for f in range(1001, 1009)}})
    assert "frame(s) 1001, 1002, 1003, 1004, 1005, 1006 and 2 more (" in many
    with pytest.raises(BridgeError, match="frame token"):
        ShotRequest(input="/s/a.####.exr", output="/o/a.exr", first=1, last=2)
    with pytest.raises(BridgeError, match="overwrite the plate"):
        ShotRequest(input="/s/a.####.exr", output="/s/a.####.exr", first=1, last=2)
    with pytest.raises(BridgeError, match="preset"):
        ShotRequest(input="/s/a.####.exr", output="/o/a.####.exr", first=1, last=2, preset="ultra")
    request = ShotRequest(input="/s/a.####.exr", output="/o/a.####.exr", first=1001, last=1010, prompt="")
    assert request.flow_parameters()["frames"] == "1001-1010" and request.flow_parameters()["prompt"] is None


def test_local_mode_without_a_cli_says_what_to_set(tmp_path: Path) -> None:
    plate, output = str(tmp_path / "a.####.exr"), str(tmp_path / "o" / "a.####.exr")
    request = ShotRequest(input=plate, output=output, first=1, last=1)
    with pytest.raises(BridgeError, match="VFXMATTE_CLI") as caught:
        start_job(request, environ={"PATH": str(tmp_path)})
    assert caught.value.kind == "usage"
    with pytest.raises(BridgeError, match="not an executable"):
        start_job(request, environ={"VFXMATTE_CLI": str(tmp_path / "nope")})


def test_bridge_needs_only_the_standard_library_and_python_3_9() -> None:
    """Nuke's Python has no site-packages of ours: import everything with ``-S`` (no site-packages at all)."""
    import ast
    import subprocess

    for path in sorted((REPO / "nuke_bridge").rglob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(REPO)!r}, {str(NUKE_DIR)!r}, {str(Path(__file__).parent)!r}]\n"
        "import fake_nuke\n"
        "fake_nuke.install()\n"
        "import nuke_bridge.client, nuke_bridge.jobs, nuke_bridge.local\n"
        "import vfxmatte_nuke.graph, vfxmatte_nuke.panel\n"
        "ours = {'nuke', 'fake_nuke', 'nuke_bridge', 'vfxmatte_nuke', '__main__'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - ours))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # nothing outside the standard library was imported


def test_movie_reads_keep_nukes_frame_numbers(tmp_path: Path) -> None:
    from nuke_bridge.local import matte_arguments
    from vfxmatte.cli import build_parser

    movie, output = str(tmp_path / "plate.mov"), str(tmp_path / "o" / "plate.####.exr")
    request = ShotRequest(input=movie, output=output, first=1, last=48)
    args = build_parser().parse_args(matte_arguments(request, ["vfxmatte"], {})[1:])
    assert (args.start_frame, args.frames) == (1, "1-48")  # local: numbered from the Read's first frame
    # The farm numbers a movie's frames from 1001: another first frame is refused before anything is sent.
    with pytest.raises(BridgeError, match="numbers movie frames from 1001") as caught:
        start_job(request, "farm", environ={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert caught.value.kind == "usage"


# -- Nuke: the fake module and the panel ----------------------------------------------------


@pytest.fixture()
def nuke(monkeypatch: pytest.MonkeyPatch) -> Iterator[fake_nuke.FakeNuke]:
    """A fresh fake ``nuke`` with ``nuke_bridge/nuke`` on sys.path, as NUKE_PATH would put it."""
    monkeypatch.syspath_prepend(str(NUKE_DIR))
    fake = fake_nuke.install()
    import vfxmatte_nuke.graph
    import vfxmatte_nuke.panel

    importlib.reload(vfxmatte_nuke.graph)
    importlib.reload(vfxmatte_nuke.panel)
    monkeypatch.setenv("VFXMATTE_POLL_SECONDS", "0.2")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("VFXMATTE_OUTPUT_ROOT", raising=False)
    yield fake
    for follower in vfxmatte_nuke.panel.FOLLOWERS:
        follower.stop()
    vfxmatte_nuke.panel.FOLLOWERS.clear()
    sys.modules.pop("nuke", None)


def test_menu_py_registers_the_command(nuke: fake_nuke.FakeNuke) -> None:
    import vfxmatte_nuke.panel

    code = compile((NUKE_DIR / "init.py").read_text(), str(NUKE_DIR / "init.py"), "exec")
    exec(code, {"__name__": "init"})
    code = compile((NUKE_DIR / "menu.py").read_text(), str(NUKE_DIR / "menu.py"), "exec")
    exec(code, {"__name__": "menu"})
    menu = nuke.menu("Nuke").findItem("vfxmatte")
    assert menu is not None
    assert menu.findItem("Matte selected Read") is vfxmatte_nuke.panel.matte_selected
    assert menu.findItem("Open review page of selected matte") is vfxmatte_nuke.panel.open_selected_review


def test_selection_errors_reach_the_artist(nuke: fake_nuke.FakeNuke, tmp_path: Path) -> None:
    import vfxmatte_nuke.panel as panel

    assert panel.matte_selected() is None
    assert nuke.messages[-1].startswith("vfxmatte: select the Read node of the plate")
    blur = nuke.create("Roto")
    nuke.select(blur)
    assert panel.matte_selected() is None and "Roto1: not a Read or a Write" in nuke.messages[-1]
    plate = nuke.nodes.Read(file=str(tmp_path / "plate.####.exr"), first=1, last=3)
    write = nuke.nodes.Write(file=str(tmp_path / "roto.####.exr"))
    nuke.select(plate, write)
    assert panel.matte_selected() is None  # the guide Write has rendered nothing yet
    assert nuke.messages[-1] == f"vfxmatte: guide Write1: no frames at {tmp_path / 'roto.0001.exr'}; render it first"
    assert [n.Class() for n in nuke.created] == ["Roto", "Read", "Write"]  # nothing was added to the script
    assert panel.ocio_colorspace("default (linear)") is None
    assert panel.ocio_colorspace("linear") == "Linear Rec.709 (sRGB)"
    assert panel.ocio_colorspace("ACES - ACEScg") == "ACES - ACEScg"


def test_a_guide_from_a_second_selected_node(nuke: fake_nuke.FakeNuke, tmp_path: Path) -> None:
    import vfxmatte_nuke.panel as panel

    from nuke_bridge.local import child_environment, matte_arguments
    from vfxmatte.cli import build_parser

    # The plate's Read and the Write that rendered a Roto: the Write is the guide.
    plate_file = str(tmp_path / "plate.####.exr")
    plate = nuke.nodes.Read(file=plate_file, first=1001, last=1002, colorspace="ACES - ACEScg")
    roto = nuke.nodes.Write(file=str(tmp_path / "roto.%04d.png"))
    (tmp_path / "roto.1001.png").write_bytes(b"")  # rendered: the bridge only checks that its frames exist
    nuke.select(plate, roto)
    plates, guide = panel.split_selection(nuke.selectedNodes(), nuke.selectedNode())
    assert plates == [plate] and guide is roto
    nuke.panel_answers.update(
        {"Guide kind": "trimap", "Prompt": "the dancer", "Subject prior": "people", "Clean plate": "off"}
    )
    choice = panel.ask(plates, guide)
    assert choice is not None and nuke.panels[-1].fields["Guide kind"] == "auto trimap mask scribble"
    assert nuke.panels[-1].fields["Subject prior"] == "u2netp people none"
    assert nuke.panels[-1].fields["Clean plate"] == "auto fill off"
    # A Roto rendered on a keyframe only is a valid guide; the dialog says which frames are keyframes.
    assert nuke.panels[-1].fields["Guide frames"] == "keyframes 1001: carried to the other frames"
    (tmp_path / "roto.1002.png").write_bytes(b"")
    assert panel.describe_guide_frames(panel.guide_frames(roto, 1001, 1002), 1001, 1002) == "a guide on every frame"
    (tmp_path / "roto.1002.png").unlink()
    request = panel.build_request(choice)
    guide_file = str(tmp_path / "roto.%04d.png")
    assert (request.guide, request.guide_kind, request.prompt) == (guide_file, "trimap", "the dancer")
    assert (request.first, request.last, request.colorspace) == (1001, 1002, "ACES - ACEScg")
    params = request.flow_parameters()  # farm mode
    assert (params["guide"], params["guide_kind"], params["frames"]) == (guide_file, "trimap", "1001-1002")
    assert request.prior == params["prior"] == "people"
    # The default prior is not sent: a farm on a flow from before the parameter still takes the job.
    assert "prior" not in replace(request, prior="u2netp").flow_parameters()
    with pytest.raises(BridgeError, match="prior 'folk': choose one of u2netp, people, none"):
        replace(request, prior="folk")
    assert request.clean_plate == params["clean_plate"] == "off"
    assert "clean_plate" not in replace(request, clean_plate="auto").flow_parameters()
    with pytest.raises(BridgeError, match="clean plate 'on': choose one of auto, fill, off"):
        replace(request, clean_plate="on")
    # Local mode: the real CLI has --guide, and its parser reads the guide and kind as values.
    command = [sys.executable, "-m", "vfxmatte.cli"]
    argv = matte_arguments(request, command, child_environment())
    args = build_parser().parse_args(argv[len(command) :])
    assert (args.guide, args.guide_kind, args.prompt) == (guide_file, "trimap", "the dancer")
    assert args.frames == "1001-1002" and args.prior == "people" and args.clean_plate == "off"

    # Two Reads: the dialog asks which is the plate (the last clicked first); the other is the guide.
    mask = nuke.nodes.Read(file=str(tmp_path / "mask.####.exr"), first=1001, last=1002)
    (tmp_path / "mask.1002.exr").write_bytes(b"")
    nuke.select(plate, mask)
    plates, guide = panel.split_selection(nuke.selectedNodes(), mask)
    assert plates == [mask, plate] and guide is None
    nuke.panel_answers.update({"Plate": plate.name(), "Guide kind": "mask"})
    choice = panel.ask(plates, guide)
    assert choice is not None and nuke.panels[-1].fields["Plate"] == f"{mask.name()} {plate.name()}"
    assert choice["plate"] is plate and choice["guide"] is mask
    assert choice["output"] == default_output(str(tmp_path / "plate.####.exr"))  # follows the chosen plate
    request = panel.build_request(choice)
    assert (request.input, request.guide, request.guide_kind) == (
        str(tmp_path / "plate.####.exr"),
        str(tmp_path / "mask.####.exr"),
        "mask",
    )


def test_farm_failure_and_a_lost_server_reach_the_artist(
    nuke: fake_nuke.FakeNuke, stub: Any, tmp_path: Path
) -> None:
    import vfxmatte_nuke.graph as graph
    import vfxmatte_nuke.panel as panel

    from nuke_bridge.jobs import FarmJob

    url, routes, seen = stub
    plate = nuke.nodes.Read(file=str(tmp_path / "plate.####.exr"), first=1001, last=1003)
    output = str(tmp_path / "out" / "plate.####.exr")
    request = ShotRequest(input=str(tmp_path / "plate.####.exr"), output=output, first=1001, last=1003)
    client = PrefectClient(url, timeout=5)

    # A run that failed on one frame: the flow's result artifact says which and why.
    flow_result = {
        "frames": {"written": [1001, 1003], "skipped": [], "failed": [1002]},
        "errors": {"1002": "plate.1002.exr: damaged"},
    }
    failed_run = {"id": "r1", "name": "nuke-plate", "state_type": "FAILED", "state_name": "Failed"}
    routes[("GET", "/api/flow_runs/r1")] = (200, failed_run, 0.0)
    artifacts = [
        {"key": "vfxmatte-result", "data": "```json\n" + json.dumps(flow_result) + "\n```", "created": "2"},
        {"key": "vfxmatte-progress", "data": 100.0, "created": "1"},
    ]
    routes[("POST", "/api/artifacts/filter")] = (200, artifacts, 0.0)
    read = graph.create_result_read(plate, output, 1001, 1003, None, "farm run nuke-plate")
    follower = panel.Follower(FarmJob(request, client, "r1", "nuke-plate"), read.name(), interval=0.05)
    follower.start()
    follow(nuke, follower, timeout=30)
    expected = "farm run nuke-plate Failed: frame 1002: plate.1002.exr: damaged"
    assert follower.final is not None and follower.final.state == "failed"
    assert follower.final.failed == {1002: "plate.1002.exr: damaged"}
    assert nuke.messages == [f"vfxmatte: {expected}"]
    assert read["vfxmatte_status"].value() == expected and nuke.tasks[-1].messages[-1] == expected

    # A server that keeps failing: retried, then the follow ends with one line (the run is not touched).
    routes[("GET", "/api/flow_runs/r2")] = (500, {"exception_message": "Internal Server Error"}, 0.0)
    nuke.messages.clear()
    read = graph.create_result_read(plate, output, 1001, 1003, None, "farm run nuke-plate2")
    follower = panel.Follower(FarmJob(request, client, "r2", "nuke-plate2"), read.name(), interval=0.02)
    follower.start()
    follow(nuke, follower, timeout=30)
    assert follower.final is not None and follower.final.state == "failed"
    (message,) = nuke.messages
    assert message.startswith("vfxmatte: lost track of farm run nuke-plate2: ") and "HTTP 500" in message
    assert "\n" not in message
    assert [s["method"] for s in seen if "/r2" in s["path"]] == ["GET"] * panel.MAX_POLL_ERRORS


def test_open_review_page_of_a_result_read(
    nuke: fake_nuke.FakeNuke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfxmatte_nuke.graph as graph
    import vfxmatte_nuke.panel as panel

    opened: list[str] = []
    monkeypatch.setattr(panel.webbrowser, "open", lambda url: opened.append(url) or True)
    plate = nuke.nodes.Read(file=str(tmp_path / "plate.####.exr"), first=1, last=2)
    output = str(tmp_path / "out" / "plate.####.exr")
    read = graph.create_result_read(plate, output, 1, 2, None, "local")
    nuke.select(plate)
    assert not panel.open_selected_review()
    assert nuke.messages[-1] == "vfxmatte: select a result Read made by vfxmatte"
    nuke.select(read)
    assert not read["vfxmatte_review"].enabled() and not panel.open_selected_review()
    assert nuke.messages[-1].startswith("vfxmatte: no review page yet")

    page = Path(review_page(output))
    page.parent.mkdir(parents=True)
    page.write_text("<!DOCTYPE html><title>review</title>")
    graph.set_status(read.name(), "local: 2/2 frames")  # what the follower does when the job moves on
    assert read["vfxmatte_review"].enabled()
    assert panel.open_selected_review() and opened == [page.resolve().as_uri()]
    # The button's own script, run as Nuke runs a PyScript knob (nuke.thisNode() is the result Read).
    nuke.this_node = read
    exec(read["vfxmatte_review"].script, {"nuke": nuke})
    assert opened == [page.resolve().as_uri()] * 2


def write_plates(directory: Path, frames: range, size: int = 64) -> str:
    """Tiny scene-linear RGB EXRs (a bright square on a dark ground) named plate.####.exr."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for frame in frames:
        image = (0.05 + 0.02 * rng.random((size, size, 3))).astype(np.float32)
        image[size // 4 : 3 * size // 4, size // 3 + frame % 3 : 2 * size // 3] = (0.8, 0.6, 0.3)
        out = oiio.ImageOutput.create("exr")
        assert out.open(str(directory / f"plate.{frame:04d}.exr"), oiio.ImageSpec(size, size, 3, "half"))
        assert out.write_image(image)
        assert out.close()
    return str(directory / "plate.%04d.exr")


def follow(nuke: fake_nuke.FakeNuke, follower: Any, timeout: float) -> None:
    """Be Nuke's event loop until the follower thread ends, then run what it queued last."""
    deadline = time.monotonic() + timeout
    while follower.is_alive() and time.monotonic() < deadline:
        nuke.run_main_thread_queue()
        time.sleep(0.05)
    assert not follower.is_alive(), f"job still running after {timeout} s: {nuke.tasks[-1].messages[-1:]}"
    nuke.run_main_thread_queue()


def check_result_graph(nuke: fake_nuke.FakeNuke, plate: Any, output: str, first: int, last: int) -> Any:
    (read,) = [n for n in nuke.of_class("Read") if n is not plate]
    assert read["file"].value() == output and output.endswith(".####.exr")
    assert (read["first"].value(), read["last"].value()) == (first, last)
    assert read["premultiplied"].value() is True and read["on_error"].value() == "black"
    assert read["vfxmatte_output"].value() == output
    assert nuke.layer_names == {"uncertainty": ["uncertainty.Y"]}
    (shuffle,) = nuke.of_class("Shuffle")
    assert shuffle["in"].value() == "uncertainty" and shuffle.input(0) is read
    assert {shuffle[c].value() for c in ("red", "green", "blue", "alpha")} == {"red"}
    (grade,) = nuke.of_class("Grade")
    assert grade.input(0) is shuffle and grade["whitepoint"].value() == 0.25
    (heat,) = nuke.of_class("Expression")
    assert heat.input(0) is grade and "clamp(3*r)" in heat["expr0"].value()
    (merge,) = nuke.of_class("Merge2")
    assert merge["operation"].value() == "over" and merge.input(0) is plate and merge.input(1) is heat
    return read


@pytest.mark.slow
def test_local_mode_submit_follow_reload(
    nuke: fake_nuke.FakeNuke, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfxmatte_nuke.panel as panel

    monkeypatch.setenv("VFXMATTE_CLI", f"{sys.executable} -m vfxmatte.cli")
    monkeypatch.setenv("VFXMATTE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("VFXMATTE_DEVICE", "cpu")
    opened: list[str] = []
    monkeypatch.setattr(panel.webbrowser, "open", lambda url: opened.append(url) or True)
    pattern = write_plates(tmp_path / "shot", range(1001, 1003))
    plate = nuke.nodes.Read(file=pattern, first=1001, last=1002, colorspace="default (linear)")
    nuke.select(plate)
    nuke.panel_answers.update({"Preset": "draft"})  # the tiny model has no text encoder: no prompt

    follower = panel.matte_selected()
    assert follower is not None, nuke.messages
    output = str(tmp_path / "shot" / "vfxmatte" / "plate" / "plate.####.exr")
    assert nuke.panels[-1].fields["Output"] == output and "Run on" not in nuke.panels[-1].fields
    read = check_result_graph(nuke, plate, output, 1001, 1002)
    follow(nuke, follower, timeout=240)

    assert follower.final is not None and follower.final.state == "completed", follower.final
    assert nuke.messages == []  # nothing went wrong
    assert read["reload"].executed >= 1 and "reload_read" in nuke.queued_calls
    task = nuke.tasks[-1]
    assert task.progress[-1] == 100 and task.messages[-1] == "local: 2/2 frames"
    assert read["vfxmatte_status"].value() == "local: 2/2 frames"
    for frame in (1001, 1002):
        inp = oiio.ImageInput.open(frame_path(output, frame))
        assert inp is not None
        assert list(inp.spec().channelnames) == ["R", "G", "B", "A", "uncertainty.Y"]
        params = json.loads(inp.spec().getattribute("vfxmatte:params"))
        inp.close()
        assert (params["steps"], params["seeds"], params["lr_size"]) == (4, 2, 256)  # the draft preset
    page = review_page(output)  # built by `vfxmatte review` after the matte
    assert os.path.isfile(page) and follower.final.review_page == page
    assert read["vfxmatte_review"].enabled()
    assert panel.open_review(read) and opened == [Path(page).resolve().as_uri()]


@pytest.mark.slow
def test_cancel_in_the_progress_panel_stops_the_local_process(
    nuke: fake_nuke.FakeNuke, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfxmatte_nuke.panel as panel

    monkeypatch.setenv("VFXMATTE_CLI", f"{sys.executable} -m vfxmatte.cli")
    monkeypatch.setenv("VFXMATTE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("VFXMATTE_POLL_SECONDS", "0.2")  # the cancel lands within a poll
    # 256 px frames: the whole job takes tens of seconds, far longer than a poll, however fast the machine.
    pattern = write_plates(tmp_path / "shot", range(1, 41), size=256)
    plate = nuke.nodes.Read(file=pattern, first=1, last=40)
    nuke.select(plate)
    follower = panel.matte_selected()
    assert follower is not None
    job = follower.job
    deadline = time.monotonic() + 60
    while not nuke.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    nuke.tasks[-1].cancelled = True  # the artist presses cancel in Nuke's progress panel
    follow(nuke, follower, timeout=120)
    assert follower.final is not None and follower.final.state == "cancelled"
    assert job.matte.popen.returncode is not None and nuke.messages == []
    assert len(read_frames(tmp_path / "shot" / "vfxmatte")) < 40


@pytest.mark.slow
def test_local_mode_failure_reaches_nuke_message(
    nuke: fake_nuke.FakeNuke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfxmatte_nuke.panel as panel

    monkeypatch.setenv("VFXMATTE_CLI", f"{sys.executable} -m vfxmatte.cli")
    plate = nuke.nodes.Read(file=str(tmp_path / "missing" / "plate.####.exr"), first=1, last=2)
    nuke.select(plate)
    follower = panel.matte_selected()
    assert follower is not None
    follow(nuke, follower, timeout=120)
    assert follower.final is not None and follower.final.state == "failed"
    (message,) = nuke.messages
    assert message.startswith("vfxmatte: vfxmatte failed: ") and "plate" in message and "\n" not in message
    assert not read_frames(tmp_path)


def read_frames(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.exr"))


# -- farm mode against a real Prefect server ---------------------------------------------------


@pytest.fixture()
def farm(prefect_server: PrefectServer, tmp_path: Path, tiny_model_dir: Path) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """The shared real Prefect server, ``matte-shot/vfxmatte`` deployed, and one worker whose roots hold tmp_path.

    Workers other tests left on the pool are stopped first: a worker confined to another
    test's folder would take this run and refuse its paths.
    """
    from test_flows_server import POOL, deploy, worker_env

    for worker in list(prefect_server.workers):
        kill_tree(worker)
        prefect_server.workers.remove(worker)
    deploy(prefect_server)
    worker = start_worker(prefect_server, POOL, worker_env(tmp_path, tiny_model_dir), limit=1, name="nuke")
    yield prefect_server.api_url, tmp_path
    kill_tree(worker)
    prefect_server.workers.remove(worker)


@pytest.mark.slow
def test_farm_mode_submit_follow_reload(
    nuke: fake_nuke.FakeNuke, farm: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfxmatte_nuke.panel as panel

    api_url, root = farm
    pattern = write_plates(root / "nuke_farm" / "shot", range(1001, 1003))
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    monkeypatch.setenv("VFXMATTE_POLL_SECONDS", "0.5")
    plate = nuke.nodes.Read(file=pattern, first=1001, last=1002, colorspace="default (linear)")
    nuke.select(plate)

    # A missing deployment is one clear line, and nothing is added to the script.
    monkeypatch.setenv("VFXMATTE_DEPLOYMENT", "matte-shot/no-such-deployment")
    assert panel.matte_selected() is None
    assert nuke.messages == [
        f"vfxmatte: deployment 'matte-shot/no-such-deployment' not found on {api_url}: "
        "deploy the vfxmatte flows there first (see docs/NUKE.md) or set VFXMATTE_DEPLOYMENT"
    ]
    assert len(nuke.created) == 1
    nuke.messages.clear()
    monkeypatch.delenv("VFXMATTE_DEPLOYMENT")

    nuke.panel_answers.update({"Preset": "draft", "Run on": "farm"})
    follower = panel.matte_selected()
    assert follower is not None, nuke.messages
    assert nuke.panels[-1].fields["Run on"] == "farm local"
    output = str(root / "nuke_farm" / "shot" / "vfxmatte" / "plate" / "plate.####.exr")
    read = check_result_graph(nuke, plate, output, 1001, 1002)
    follow(nuke, follower, timeout=420)

    assert follower.final is not None and follower.final.state == "completed", follower.final
    assert nuke.messages == [] and read["reload"].executed >= 1
    assert nuke.tasks[-1].progress[-1] == 100
    run = PrefectClient(api_url).read_flow_run(follower.job.flow_run_id)
    assert run.state_type == "COMPLETED"
    assert (run.parameters["preset"], run.parameters["frames"], run.parameters["input"]) == (
        "draft",
        "1001-1002",
        pattern,
    )
    for frame in (1001, 1002):
        assert os.path.isfile(frame_path(output, frame))
    assert follower.final.review_page == review_page(output) and read["vfxmatte_review"].enabled()
