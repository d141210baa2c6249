"""One shot submitted from Nuke, and the two ways it runs: on the farm (Prefect) or locally.

A :class:`ShotRequest` holds what the artist chose.  :func:`start_job` turns it into a
:class:`FarmJob` (a ``matte-shot`` flow run, when ``PREFECT_API_URL`` is set) or a
:class:`~nuke_bridge.local.LocalJob` (``vfxmatte matte`` in a background process).  Both
answer :meth:`Job.poll` with a :class:`JobStatus`; frames that "land" are output EXRs
that appeared or changed on disk, which is what tells Nuke to reload its Read node.
Standard library only (this runs inside Nuke's Python).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nuke_bridge.client import BridgeError, PrefectClient, latest_artifacts

DEFAULT_DEPLOYMENT = "matte-shot/vfxmatte"
PRESETS = ("draft", "standard", "final")
GUIDE_KINDS = ("auto", "trimap", "mask", "scribble")
PRIORS = ("u2netp", "people", "none")  # the subject prior without a guide (vfxmatte matte --prior)
CLEAN_PLATES = ("auto", "fill", "off")  # the shot's clean plate, trimap-free (vfxmatte matte --clean-plate)
PROGRESS_KEY = "vfxmatte-progress"
SUMMARY_KEY = "vfxmatte-summary"
RESULT_KEY = "vfxmatte-result"

_FRAME_TOKEN = re.compile(r"%0?(\d*)d|#+|@+")
# The bounds the matte-shot flow enforces (flows/params.py), checked here so Nuke says so at once.
MAX_FRAMES = 100_000
MAX_PATH_LENGTH = 4096
MAX_TEXT_LENGTH = 500
MOVIE_EXTENSIONS = (".mov", ".mp4", ".mkv", ".webm", ".m4v", ".mxf", ".avi")
MOVIE_START_FRAME = 1001  # the CLI's and the flow's default --start-frame


def is_movie(path: str) -> bool:
    return path.lower().endswith(MOVIE_EXTENSIONS)


# -- frame patterns -----------------------------------------------------------------------


def frame_path(pattern: str, frame: int) -> str:
    """``pattern`` (``####``, ``%04d`` or ``@@@@``) with ``frame`` filled in; a pattern without a token is one file."""
    match = _FRAME_TOKEN.search(pattern)
    if match is None:
        return pattern
    token = match.group(0)
    width = int(match.group(1) or 0) if token.startswith("%") else len(token)
    digits = f"{frame:0{width}d}" if frame >= 0 else "-" + f"{-frame:0{max(width - 1, 0)}d}"
    return pattern[: match.start()] + digits + pattern[match.end() :]


def has_frame_token(pattern: str) -> bool:
    return _FRAME_TOKEN.search(pattern) is not None


def hashes(pattern: str) -> str:
    """The same pattern written with ``#`` padding (``plate.%04d.exr`` → ``plate.####.exr``)."""
    match = _FRAME_TOKEN.search(pattern)
    if match is None or not match.group(0).startswith("%"):
        return pattern
    width = max(int(match.group(1) or 1), 1)
    return pattern[: match.start()] + "#" * width + pattern[match.end() :]


def default_output(plate: str, root: str | None = None) -> str:
    """Where a shot's mattes go unless the artist says otherwise.

    ``<root>/<stem>/<stem>.####.exr`` with ``root`` from ``VFXMATTE_OUTPUT_ROOT`` or, by default,
    a ``vfxmatte`` folder beside the plate; one folder per shot, so its review page
    (``<folder>/review/index.html``) belongs to that shot alone.
    """
    directory, name = os.path.split(plate)
    match = _FRAME_TOKEN.search(name)
    stem = name[: match.start()] if match else os.path.splitext(name)[0]
    stem = stem.rstrip("._-") or "shot"
    base = root or os.environ.get("VFXMATTE_OUTPUT_ROOT") or os.path.join(directory, "vfxmatte")
    return os.path.join(base, stem, f"{stem}.####.exr")


def review_page(output: str) -> str:
    """The review page the flow (or ``vfxmatte review``) writes for ``output``."""
    return os.path.join(os.path.dirname(output), "review", "index.html")


# -- the request --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShotRequest:
    """What the artist asked for; the field names are the ``matte-shot`` parameters."""

    input: str
    output: str
    first: int
    last: int
    preset: str = "standard"
    prompt: str | None = None
    guide: str | None = None
    guide_kind: str = "auto"
    colorspace: str | None = None
    seed: int = 0
    overwrite: bool = False
    review: bool = True
    prior: str = "u2netp"
    clean_plate: str = "auto"

    def __post_init__(self) -> None:
        for name, limit in (("input", MAX_PATH_LENGTH), ("output", MAX_PATH_LENGTH), ("guide", MAX_PATH_LENGTH),
                            ("prompt", MAX_TEXT_LENGTH), ("colorspace", MAX_TEXT_LENGTH)):
            _check_text(name, getattr(self, name), limit)
        if not 0 <= self.seed <= 2**31 - 1:
            raise BridgeError(f"seed {self.seed}: must be between 0 and {2**31 - 1}", "usage")
        if self.last - self.first + 1 > MAX_FRAMES:
            raise BridgeError(
                f"frame range {self.first}-{self.last}: more than {MAX_FRAMES} frames in one job; split it", "usage"
            )
        if self.preset not in PRESETS:
            raise BridgeError(f"preset {self.preset!r}: choose one of {', '.join(PRESETS)}", "usage")
        if self.guide_kind not in GUIDE_KINDS:
            raise BridgeError(f"guide kind {self.guide_kind!r}: choose one of {', '.join(GUIDE_KINDS)}", "usage")
        if self.prior not in PRIORS:
            raise BridgeError(f"prior {self.prior!r}: choose one of {', '.join(PRIORS)}", "usage")
        if self.clean_plate not in CLEAN_PLATES:
            raise BridgeError(f"clean plate {self.clean_plate!r}: choose one of {', '.join(CLEAN_PLATES)}", "usage")
        if self.last < self.first:
            raise BridgeError(f"frame range {self.first}-{self.last}: the last frame is before the first", "usage")
        if not has_frame_token(self.output):
            raise BridgeError(f"output {self.output!r}: needs a frame token such as ####", "usage")
        if os.path.normpath(self.output) == os.path.normpath(self.input):
            raise BridgeError(f"output {self.output!r}: would overwrite the plate", "usage")

    @property
    def frames(self) -> list[int]:
        return list(range(self.first, self.last + 1))

    @property
    def frame_range(self) -> str:
        return f"{self.first}-{self.last}" if self.last != self.first else str(self.first)

    def flow_parameters(self) -> dict[str, Any]:
        """The ``matte-shot`` parameters (FLOW_CONTRACT); ``chunk_size`` is left to the deployment.
        ``prior`` and ``clean_plate`` only when they are not the default, so a farm on an earlier flow
        still takes the rest."""
        parameters: dict[str, Any] = {
            "input": self.input,
            "output": self.output,
            "frames": self.frame_range,
            "preset": self.preset,
            "prompt": self.prompt or None,
            "guide": self.guide,
            "guide_kind": self.guide_kind,
            "seed": self.seed,
            "colorspace": self.colorspace,
            "overwrite": self.overwrite,
            "review": self.review,
        }
        if self.prior != "u2netp":
            parameters["prior"] = self.prior
        if self.clean_plate != "auto":
            parameters["clean_plate"] = self.clean_plate
        return parameters


def _check_text(name: str, value: str | None, limit: int) -> None:
    """No NUL or other control character (they would end or split a command-line argument), bounded length."""
    if value is None:
        return
    if len(value) > limit:
        raise BridgeError(f"{name} {value[:60]!r}…: longer than {limit} characters", "usage")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise BridgeError(f"{name} {value[:200]!r}: contains a NUL or another control character", "usage")


# -- a running job ------------------------------------------------------------------------


@dataclass
class JobStatus:
    """One poll of a job.  ``state`` is ``queued``, ``running``, ``completed``, ``failed`` or ``cancelled``."""

    state: str
    progress: float = 0.0  # 0…1
    message: str = ""
    landed: list[int] = field(default_factory=list)  # frames whose EXR appeared or changed since the last poll
    failed: dict[int, str] = field(default_factory=dict)
    review_page: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


class Job:
    """Base of the farm and local jobs: frame-landing detection on the output pattern."""

    mode = "?"

    def __init__(self, request: ShotRequest) -> None:
        self.request = request
        self._seen: dict[int, float] = {}
        for frame in request.frames:  # outputs already there (a resumed shot) do not count as landed
            stamp = _mtime(frame_path(request.output, frame))
            if stamp is not None:
                self._seen[frame] = stamp

    @property
    def label(self) -> str:
        return self.mode

    def landed(self) -> list[int]:
        """Frames whose output appeared or was rewritten since the last call (writes are atomic renames)."""
        new: list[int] = []
        for frame in self.request.frames:
            stamp = _mtime(frame_path(self.request.output, frame))
            if stamp is not None and self._seen.get(frame) != stamp:
                self._seen[frame] = stamp
                new.append(frame)
        return new

    def frames_on_disk(self) -> int:
        return len(self._seen)

    def existing_review_page(self) -> str | None:
        page = review_page(self.request.output)
        return page if os.path.isfile(page) else None

    def poll(self) -> JobStatus:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


_PREFECT_TO_JOB = {
    "SCHEDULED": "queued",
    "PENDING": "queued",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELLING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "cancelled",
}


class FarmJob(Job):
    """A ``matte-shot`` flow run on a Prefect server."""

    mode = "farm"

    def __init__(self, request: ShotRequest, client: PrefectClient, flow_run_id: str, name: str = "") -> None:
        super().__init__(request)
        self.client = client
        self.flow_run_id = flow_run_id
        self.name = name

    @property
    def label(self) -> str:
        return f"farm run {self.name or self.flow_run_id}"

    @classmethod
    def submit(cls, request: ShotRequest, client: PrefectClient, deployment: str = DEFAULT_DEPLOYMENT) -> FarmJob:
        stem = os.path.basename(request.output).split(".")[0]
        run = client.submit(deployment, request.flow_parameters(), name=f"nuke-{stem}-{request.frame_range}")
        return cls(request, client, run.id, run.name)

    def poll(self) -> JobStatus:
        run = self.client.read_flow_run(self.flow_run_id)
        artifacts = latest_artifacts(self.client.read_artifacts(self.flow_run_id))
        landed = self.landed()
        total = len(self.request.frames)
        progress = self.frames_on_disk() / total
        if PROGRESS_KEY in artifacts:
            try:
                progress = max(progress, float(artifacts[PROGRESS_KEY].data) / 100.0)
            except (TypeError, ValueError):
                pass
        state = _PREFECT_TO_JOB.get(run.state_type, "running")
        result = parse_result(artifacts[RESULT_KEY].data) if RESULT_KEY in artifacts else {}
        failed = _failed_frames(result)
        message = f"{run.state_name or run.state_type.title()}: {self.frames_on_disk()}/{total} frames"
        if state == "completed":
            message += missed_note(result)
        if state == "failed":
            reasons = "; ".join(f"frame {f}: {why}" for f, why in sorted(failed.items())[:3])
            message = f"{self.label} {run.state_name or 'failed'}: {reasons or run.message or 'see the Prefect UI'}"
        page = result.get("review_page") or result.get("review") or None
        if not (isinstance(page, str) and os.path.isfile(page)):
            page = self.existing_review_page()
        return JobStatus(
            state=state,
            progress=1.0 if state == "completed" else min(progress, 1.0),
            message=message,
            landed=landed,
            failed=failed,
            review_page=page,
        )

    def cancel(self) -> None:
        self.client.cancel_flow_run(self.flow_run_id)


def missed_note(result: Mapping[str, Any]) -> str:
    """What a finished run's ``missed`` says (the flow's result or ``vfxmatte matte --json``: the frames
    whose matte leaves out what the shot's clean plate calls subject, a head or hat lost against its own
    colour), as a clause for the status line; empty when it names none."""
    missed = result.get("missed")
    frames = sorted(int(f) for f in missed if str(f).isdigit()) if isinstance(missed, Mapping) else []
    if not frames:
        return ""
    shown = ", ".join(str(f) for f in frames[:6]) + (f" and {len(frames) - 6} more" if len(frames) > 6 else "")
    return f"; the clean plate sees a missed subject on frame(s) {shown} (review page; --clean-plate fill fills it)"


def parse_result(data: Any) -> dict[str, Any]:
    """The ``vfxmatte-result`` artifact as a dict, whether it came as JSON, a JSON block in Markdown or a table."""
    if isinstance(data, dict):
        return data
    if isinstance(data, list):  # a table artifact: rows of {"key"/"field": …, "value": …} or one row of columns
        rows = [row for row in data if isinstance(row, dict)]
        if rows and all(len(row) == 2 for row in rows):
            out: dict[str, Any] = {}
            for row in rows:
                key, value = list(row.values())
                out[str(key)] = value
            return out
        return rows[0] if len(rows) == 1 else {"rows": rows}
    if isinstance(data, str):
        text = data.strip()
        fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.DOTALL)
        candidate = fenced.group(1) if fenced else text
        try:
            return parse_result(json.loads(candidate))
        except ValueError:
            return {}
    return {}


def _failed_frames(result: Mapping[str, Any]) -> dict[int, str]:
    failed: Any = result.get("failed")
    if failed is None and isinstance(result.get("frames"), dict):
        failed = result["frames"].get("failed")
    out: dict[int, str] = {}
    if isinstance(failed, list):
        for item in failed:
            if isinstance(item, dict) and "frame" in item:
                out[int(item["frame"])] = str(item.get("error") or "failed")
            elif isinstance(item, int):
                out[item] = "failed"
    elif isinstance(failed, dict):
        out = {int(k): str(v) for k, v in failed.items()}
    errors = result.get("errors")
    if isinstance(errors, dict):  # the flow's result: frames.failed lists numbers, errors[frame] says why
        for frame in list(out):
            out[frame] = str(errors.get(str(frame)) or out[frame])
    return out


def farm_configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("PREFECT_API_URL", "").strip())


def start_job(request: ShotRequest, mode: str | None = None, environ: Mapping[str, str] | None = None) -> Job:
    """Start ``request`` on the farm or locally.

    ``mode`` ``None`` picks the farm when ``PREFECT_API_URL`` is set, else local mode
    (``vfxmatte matte`` in a background process); ``"farm"`` or ``"local"`` force one.
    """
    env = os.environ if environ is None else environ
    if mode is None:
        mode = "farm" if farm_configured(env) else "local"
    if mode == "farm":
        client = PrefectClient.from_env(env)
        if client is None:
            raise BridgeError("farm mode needs PREFECT_API_URL (e.g. http://farm:4200/api)", "usage")
        if is_movie(request.input) and request.first != MOVIE_START_FRAME:
            raise BridgeError(
                f"{request.input}: the farm numbers movie frames from {MOVIE_START_FRAME}; "
                "use local mode or render the movie to an image sequence",
                "usage",
            )
        return FarmJob.submit(request, client, env.get("VFXMATTE_DEPLOYMENT") or DEFAULT_DEPLOYMENT)
    if mode != "local":
        raise BridgeError(f"mode {mode!r}: choose farm or local", "usage")
    from nuke_bridge.local import LocalJob

    return LocalJob.start(request, env)
