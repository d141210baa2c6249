"""vfxmatte ▸ Matte selected Read: the dialog, the submission, and the thread that follows a job.

Select the plate's Read node (and, optionally, a guide: a second Read, or the Write that
renders a Roto), choose a preset and a prompt, and the shot goes to the farm (Prefect, when
``PREFECT_API_URL`` is set) or to a local ``vfxmatte matte`` process.  A Read of the result
and an uncertainty heat overlay appear beside the plate at once; a background thread polls
the job, reloads the Read (through ``nuke.executeInMainThread``) as frames land, shows
progress in a ``nuke.ProgressTask`` and reports a failure with ``nuke.message``.
"""

from __future__ import annotations

import os
import threading
import webbrowser
from pathlib import Path
from typing import Any

import nuke

from nuke_bridge.client import BridgeError
from nuke_bridge.jobs import (
    CLEAN_PLATES,
    GUIDE_KINDS,
    PRESETS,
    PRIORS,
    Job,
    JobStatus,
    ShotRequest,
    default_output,
    farm_configured,
    frame_path,
    has_frame_token,
    start_job,
)
from vfxmatte_nuke import graph

MENU_NAME = "vfxmatte"
MATTE_COMMAND = "Matte selected Read"
REVIEW_COMMAND = "Open review page of selected matte"
GUIDE_CLASSES = ("Read", "Write")
# Nuke's own (non-OCIO) colour space names → the OpenColorIO names vfxmatte uses; OCIO names pass through.
NUKE_COLORSPACES = {
    "linear": "Linear Rec.709 (sRGB)",
    "sRGB": "sRGB Encoded Rec.709 (sRGB)",
    "Gamma1.8": "Gamma 1.8 Encoded Rec.709",
    "Gamma2.2": "Gamma 2.2 Encoded Rec.709",
}
MAX_POLL_ERRORS = 5
# Jobs being followed; the threads are daemons, this only keeps them reachable (e.g. from the Script Editor).
FOLLOWERS: list[Follower] = []


def install_menu() -> None:
    menu = nuke.menu("Nuke").addMenu(MENU_NAME)
    menu.addCommand(MATTE_COMMAND, matte_selected)
    menu.addCommand(REVIEW_COMMAND, open_selected_review)


# -- reading the selection ---------------------------------------------------------------


def ocio_colorspace(value: str) -> str | None:
    """The Read's colour space as vfxmatte should be told it; None for Nuke's "default (…)" and raw."""
    name = str(value or "").strip()
    if not name or name.startswith("default") or name.lower() == "raw":
        return None
    return NUKE_COLORSPACES.get(name, name)


def file_pattern(node: Any) -> str:
    """The node's file knob with Nuke's TCL evaluated and the frame token kept (``####`` or ``%04d``)."""
    path = nuke.filename(node) or str(node["file"].value() or "")
    if not path:
        raise BridgeError(f"{node.name()}: its file knob is empty", "usage")
    if "%V" in path or "%v" in path:
        raise BridgeError(f"{node.name()}: stereo file knobs (%V) are not supported; render one view", "usage")
    return path


def split_selection(nodes: list[Any], focused: Any = None) -> tuple[list[Any], Any]:
    """(plate candidates, guide) from the selected nodes; the plate is a Read, a Write is always the guide."""
    if not nodes:
        raise BridgeError("select the Read node of the plate (and optionally a guide Read or Write)", "usage")
    if len(nodes) > 2:
        raise BridgeError("select one Read (the plate) and at most one guide node (a Read or a Write)", "usage")
    odd = [n.name() for n in nodes if n.Class() not in GUIDE_CLASSES]
    if odd:
        raise BridgeError(f"{', '.join(odd)}: not a Read or a Write; select the plate's Read node", "usage")
    reads = [n for n in nodes if n.Class() == "Read"]
    writes = [n for n in nodes if n.Class() == "Write"]
    if not reads:
        raise BridgeError("no Read selected: select the plate's Read node (a Write can only be the guide)", "usage")
    if writes:
        return reads, writes[0]
    if len(reads) == 2 and focused is not None and focused in reads:  # the last-clicked Read first
        reads = [focused] + [r for r in reads if r is not focused]
    return reads, None


def plate_range(node: Any) -> tuple[int, int]:
    return int(node["first"].value()), int(node["last"].value())


def guide_frames(node: Any, first: int, last: int) -> list[int] | None:
    """The frames of the plate's range the guide has files for (its keyframes when they are not all
    of them); None for a single image, which guides every frame."""
    pattern = file_pattern(node)
    if not has_frame_token(pattern):
        return None
    return [f for f in range(first, last + 1) if os.path.isfile(frame_path(pattern, f))]


def describe_guide_frames(frames: list[int] | None, first: int, last: int) -> str:
    """What the dialog says of a guide: every frame, or which frames are keyframes."""
    if frames is None:
        return "one image: the same guide on every frame"
    if len(frames) == last - first + 1:
        return "a guide on every frame"
    shown = ", ".join(map(str, frames[:12])) + (" …" if len(frames) > 12 else "")
    return f"keyframes {shown}: carried to the other frames"


def guide_pattern(node: Any, first: int, last: int) -> str:
    """The guide's rendered files; a guide with no file in the plate's range is refused.  A Roto
    rendered through a Write on a few keyframes only is a valid guide: vfxmatte carries it."""
    pattern = file_pattern(node)
    frames = guide_frames(node, first, last)
    present = os.path.isfile(pattern) if frames is None else bool(frames)
    if not present:
        action = "render it first" if node.Class() == "Write" else "check its file knob"
        raise BridgeError(f"guide {node.name()}: no frames at {frame_path(pattern, first)}; {action}", "usage")
    return pattern


# -- the dialog ---------------------------------------------------------------------------


def ask(plates: list[Any], guide: Any) -> dict[str, Any] | None:
    """The submission dialog; None when the artist cancels."""
    panel = nuke.Panel("vfxmatte: matte selected Read")
    if len(plates) > 1:
        panel.addEnumerationPulldown("Plate", " ".join(n.name() for n in plates))
    panel.addSingleLineInput("Prompt", "")
    panel.addEnumerationPulldown("Preset", " ".join(("standard", *[p for p in PRESETS if p != "standard"])))
    # Without a trimap or scribble: which subject prior (people: heads and hats on shots of people).
    panel.addEnumerationPulldown("Subject prior", " ".join(PRIORS))
    # Without a guide, on a locked-off shot: what still shows the shot's clean plate is background.
    panel.addEnumerationPulldown("Clean plate", " ".join(CLEAN_PLATES))
    if guide is not None or len(plates) > 1:
        panel.addEnumerationPulldown("Guide kind", " ".join(GUIDE_KINDS))
    if guide is not None:
        first, last = plate_range(plates[0])
        panel.addSingleLineInput("Guide frames", describe_guide_frames(guide_frames(guide, first, last), first, last))
    panel.addSingleLineInput("Output", default_output(file_pattern(plates[0])))
    if farm_configured():
        panel.addEnumerationPulldown("Run on", "farm local")
    panel.addBooleanCheckBox("Overwrite existing mattes", False)  # type: ignore[attr-defined]  # stubs: addbooleanCheckBox
    if not panel.show():
        return None
    plate = plates[0]
    if len(plates) > 1:
        chosen = panel.value("Plate")
        plate = next((n for n in plates if n.name() == chosen), plates[0])
        guide = next((n for n in plates if n is not plate), None)
    output = str(panel.value("Output") or "").strip()
    if output == default_output(file_pattern(plates[0])) and plate is not plates[0]:
        output = default_output(file_pattern(plate))  # the default follows the plate chosen in the dialog
    return {
        "plate": plate,
        "guide": guide,
        "prompt": str(panel.value("Prompt") or "").strip() or None,
        "preset": str(panel.value("Preset") or "standard"),
        "prior": str(panel.value("Subject prior") or "u2netp"),
        "clean_plate": str(panel.value("Clean plate") or "auto"),
        "guide_kind": str(panel.value("Guide kind") or "auto") if guide is not None else "auto",
        "output": output,
        "mode": str(panel.value("Run on")) if farm_configured() else "local",
        "overwrite": bool(panel.value("Overwrite existing mattes")),
    }


def build_request(choice: dict[str, Any]) -> ShotRequest:
    plate = choice["plate"]
    first, last = plate_range(plate)
    guide = choice["guide"]
    return ShotRequest(
        input=file_pattern(plate),
        output=choice["output"],
        first=first,
        last=last,
        preset=choice["preset"],
        prompt=choice["prompt"],
        guide=guide_pattern(guide, first, last) if guide is not None else None,
        guide_kind=choice["guide_kind"],
        colorspace=ocio_colorspace(plate["colorspace"].value()),
        overwrite=choice["overwrite"],
        prior=choice.get("prior", "u2netp"),
        clean_plate=choice.get("clean_plate", "auto"),
    )


def result_colorspace(plate: Any, request: ShotRequest) -> str | None:
    """The result Read's colour space knob: the plate's for an EXR plate (the matte stays in it), else default."""
    value = str(plate["colorspace"].value() or "")
    if request.input.lower().endswith(".exr") and value and not value.startswith("default"):
        return value
    return None


# -- the command --------------------------------------------------------------------------


def matte_selected() -> Follower | None:
    """vfxmatte ▸ Matte selected Read."""
    try:
        plates, guide = split_selection(nuke.selectedNodes(), _focused())
        choice = ask(plates, guide)
        if choice is None:
            return None
        request = build_request(choice)
        job = start_job(request, choice["mode"])
    except BridgeError as exc:
        nuke.message(f"vfxmatte: {exc}")
        return None
    plate = choice["plate"]
    read = graph.create_result_read(
        plate, request.output, request.first, request.last, result_colorspace(plate, request), job.label
    )
    graph.create_heat_overlay(plate, read)
    follower = Follower(job, read.name())
    FOLLOWERS.append(follower)
    follower.start()
    return follower


def _focused() -> Any:
    try:
        return nuke.selectedNode()
    except ValueError:  # nothing selected
        return None


def open_review(node: Any) -> bool:
    """The result Read's "Open review page" button."""
    page = graph.review_of(node)
    if page is None:
        nuke.message("vfxmatte: no review page yet; it is written when the shot has finished")
        return False
    webbrowser.open(Path(page).resolve().as_uri())
    return True


def open_selected_review() -> bool:
    nodes = [n for n in nuke.selectedNodes() if n.knob("vfxmatte_output") is not None]
    if not nodes:
        nuke.message("vfxmatte: select a result Read made by vfxmatte")
        return False
    return open_review(nodes[0])


# -- following a job ----------------------------------------------------------------------


class Follower(threading.Thread):
    """Polls a job in the background; every change to the script goes through ``executeInMainThread``."""

    def __init__(self, job: Job, read_name: str, interval: float | None = None) -> None:
        super().__init__(name=f"vfxmatte-{read_name}", daemon=True)
        self.job = job
        self.read_name = read_name
        self.interval = interval if interval is not None else _poll_interval()
        self.final: JobStatus | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Stop following (the job itself keeps running)."""
        self._stop_event.set()

    def run(self) -> None:
        task: Any = nuke.ProgressTask(f"vfxmatte {os.path.basename(self.job.request.output)}")
        errors = 0
        shown = ""
        cancel_sent = False
        try:
            while not self._stop_event.is_set():
                if not cancel_sent and task.isCancelled():
                    cancel_sent = True
                    self._try(self.job.cancel)
                try:
                    status = self.job.poll()
                    errors = 0
                except BridgeError as exc:
                    errors += 1
                    if errors < MAX_POLL_ERRORS:
                        self._stop_event.wait(self.interval)
                        continue
                    status = JobStatus("failed", message=f"lost track of {self.job.label}: {exc}")
                task.setProgress(int(round(status.progress * 100)))
                task.setMessage(status.message)
                if status.landed or status.finished:
                    nuke.executeInMainThread(graph.reload_read, args=(self.read_name,))
                if status.message != shown or status.finished:
                    shown = status.message
                    nuke.executeInMainThread(graph.set_status, args=(self.read_name, status.message))
                if status.finished:
                    self.final = status
                    break
                self._stop_event.wait(self.interval)
        finally:
            del task  # a ProgressTask closes when it is released
        if self.final is not None and self.final.state == "failed":
            nuke.executeInMainThread(nuke.message, args=(f"vfxmatte: {self.final.message}",))

    @staticmethod
    def _try(action: Any) -> None:
        try:
            action()
        except BridgeError:
            pass  # the next poll reports what the job did


def _poll_interval() -> float:
    try:
        return max(float(os.environ.get("VFXMATTE_POLL_SECONDS", "") or 2.0), 0.05)
    except ValueError:
        return 2.0
