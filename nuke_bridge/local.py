"""Local mode: ``vfxmatte matte`` as a background process, for an artist without a farm.

The command is ``VFXMATTE_CLI`` (an executable, optionally with arguments, e.g. the
``vfxmatte`` of the virtual environment it is installed in) or ``vfxmatte`` on ``PATH``.
It runs from an argument list (never a shell) with ``--json``; progress is the output EXRs
landing on disk plus the per-frame ``error: frame N: …`` lines on stderr, and the JSON
summary on stdout is the final word.  When the request asks for a review page,
``vfxmatte review`` runs after the matte, as the flow does on the farm.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from nuke_bridge.client import BridgeError
from nuke_bridge.jobs import Job, JobStatus, ShotRequest, is_movie, missed_note

_FRAME_ERROR = re.compile(r"^error: frame (-?\d+): (.*)$")
_FATAL = re.compile(r"^vfxmatte: (?:internal )?error: (.*)$")
_HELP_CACHE: dict[tuple[str, ...], str] = {}
# Nuke sets these for its own interpreter; a vfxmatte virtual environment must not inherit them.
_NUKE_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")


def cli_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``vfxmatte`` command line prefix: ``VFXMATTE_CLI`` split like a shell would, or ``vfxmatte`` on PATH."""
    env = os.environ if environ is None else environ
    configured = env.get("VFXMATTE_CLI", "").strip()
    if configured:
        command = shlex.split(configured, posix=os.name != "nt")
        if shutil.which(command[0]) is None and not os.path.isfile(command[0]):
            raise BridgeError(f"VFXMATTE_CLI {configured!r}: {command[0]} is not an executable", "usage")
        return command
    found = shutil.which("vfxmatte", path=env.get("PATH"))
    if found is None:
        raise BridgeError(
            "local mode needs the vfxmatte command: set VFXMATTE_CLI to the vfxmatte executable of its "
            "virtual environment (or set PREFECT_API_URL to use the farm)",
            "usage",
        )
    return [found]


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    for name in _NUKE_PYTHON_VARIABLES:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli_help(command: Sequence[str], env: Mapping[str, str]) -> str:
    key = tuple(command)
    if key not in _HELP_CACHE:
        done = subprocess.run(
            [*command, "matte", "--help"], capture_output=True, text=True, timeout=120, env=dict(env), check=False
        )
        _HELP_CACHE[key] = done.stdout
    return _HELP_CACHE[key]


def matte_arguments(request: ShotRequest, command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The full argument list of ``vfxmatte matte`` for ``request``.

    Values go in as ``--name=value`` and the input as an absolute path, so a value that starts
    with ``-`` (a prompt, a file name) can never be read as another option.
    """
    argv = [*command, "matte", os.path.abspath(request.input), f"--output={request.output}"]
    argv += [f"--frames={request.frame_range}", f"--preset={request.preset}", f"--seed={request.seed}", "--json"]
    if request.prompt:
        argv.append(f"--prompt={request.prompt}")
    if request.colorspace:
        argv.append(f"--colorspace={request.colorspace}")
    if request.overwrite:
        argv.append("--overwrite")
    if request.prior != "u2netp":
        argv.append(f"--prior={request.prior}")
    if request.clean_plate != "auto":
        argv.append(f"--clean-plate={request.clean_plate}")
    if is_movie(request.input):  # Nuke numbers a movie's frames from the Read's first frame
        argv.append(f"--start-frame={request.first}")
    if environ.get("VFXMATTE_MODEL"):
        argv.append(f"--model={environ['VFXMATTE_MODEL']}")
    if environ.get("VFXMATTE_DEVICE"):
        argv.append(f"--device={environ['VFXMATTE_DEVICE']}")
    if request.guide:
        if "--guide" not in _cli_help(command, environ):
            raise BridgeError(f"{command[-1]}: this vfxmatte has no --guide; update it or drop the guide", "usage")
        argv.append(f"--guide={request.guide}")
        if request.guide_kind != "auto":
            argv.append(f"--guide-kind={request.guide_kind}")
    return argv


class _Process:
    """A child process whose stdout and stderr are drained by threads (so pipes never fill)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=os.name != "nt",  # Nuke's own signals do not reach the job
            )
        except OSError as exc:
            raise BridgeError(f"cannot start {argv[0]}: {exc.strerror or exc}", "process") from None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.popen.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._drain, args=(self.popen.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: IO[str] | None, lines: list[str]) -> None:
        if stream is None:
            return
        for line in stream:
            lines.append(line.rstrip("\n"))
        stream.close()

    def returncode(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            for reader in self._readers:  # everything the process printed is in before we judge it
                reader.join(timeout=5)
        return code

    def interrupt(self) -> None:
        if self.popen.poll() is None:
            # SIGTERM: `vfxmatte matte` takes it as Ctrl-C (finishes or discards the frame in
            # progress, exits 130).  Not SIGINT: a Nuke started in the background of a launcher
            # script hands its children SIGINT ignored, and the job would never stop.
            self.popen.send_signal(signal.SIGTERM)


class LocalJob(Job):
    mode = "local"

    def __init__(self, request: ShotRequest, command: list[str], env: dict[str, str]) -> None:
        super().__init__(request)
        self.command = command
        self.env = env
        self.matte = _Process(matte_arguments(request, command, env), env)
        self.review: _Process | None = None
        self.summary: dict[str, Any] | None = None
        self.cancelled = False
        self._final: JobStatus | None = None

    @property
    def label(self) -> str:
        return f"local vfxmatte (pid {self.matte.popen.pid})"

    @classmethod
    def start(cls, request: ShotRequest, environ: Mapping[str, str] | None = None) -> LocalJob:
        env = child_environment(environ)
        return cls(request, cli_command(env), env)

    def _failed(self) -> dict[int, str]:
        failed: dict[int, str] = {}
        for line in list(self.matte.stderr):
            match = _FRAME_ERROR.match(line)
            if match:
                failed[int(match.group(1))] = match.group(2)
        frames = (self.summary or {}).get("frames")
        if isinstance(frames, dict):
            for item in frames.get("failed") or []:
                if isinstance(item, dict) and "frame" in item:
                    failed[int(item["frame"])] = str(item.get("error") or "failed")
        return failed

    def _fatal(self) -> str:
        for line in reversed(self.matte.stderr):
            match = _FATAL.match(line)
            if match:
                return match.group(1)
        tail = [line for line in self.matte.stderr if line.strip()]
        return tail[-1] if tail else "no output"

    def poll(self) -> JobStatus:
        if self._final is not None:
            return JobStatus(**{**self._final.__dict__, "landed": self.landed()})
        landed = self.landed()
        failed = self._failed()
        total = len(self.request.frames)
        done = min(self.frames_on_disk() + len(failed), total)
        code = self.matte.returncode()
        if code is None:
            return JobStatus("running", done / total, f"local: {done}/{total} frames", landed, failed)
        if self.summary is None:
            try:
                parsed = json.loads("\n".join(self.matte.stdout) or "null")
            except ValueError:
                parsed = None
            self.summary = parsed if isinstance(parsed, dict) else {}
            failed = self._failed()
        if self.cancelled or code in (130, -signal.SIGINT, -signal.SIGTERM):
            return self._finish(JobStatus("cancelled", done / total, "local: cancelled", landed, failed))
        if code not in (0, 1):
            return self._finish(JobStatus("failed", done / total, f"vfxmatte failed: {self._fatal()}", landed, failed))
        note = ""
        if self.request.review and self.frames_on_disk():
            if self.review is None:
                output = os.path.abspath(self.request.output)  # never read as an option
                self.review = _Process([*self.command, "review", output, "--quiet"], self.env)
            review_code = self.review.returncode()
            if review_code is None:
                return JobStatus("running", done / total, "local: building the review page", landed, failed)
            if review_code != 0:
                note = f" (review page not built: {(self.review.stderr or ['?'])[-1]})"
        if code == 1 or failed:
            reasons = "; ".join(f"frame {f}: {why}" for f, why in sorted(failed.items())[:3])
            status = JobStatus("failed", 1.0, f"local: {len(failed)} frame(s) failed: {reasons}{note}", landed, failed)
        else:
            message = f"local: {self.frames_on_disk()}/{total} frames{missed_note(self.summary or {})}{note}"
            status = JobStatus("completed", 1.0, message, landed, failed)
        status.review_page = self.existing_review_page()
        return self._finish(status)

    def _finish(self, status: JobStatus) -> JobStatus:
        self._final = status
        return status

    def cancel(self) -> None:
        self.cancelled = True
        self.matte.interrupt()
        if self.review is not None:
            self.review.interrupt()
