"""The ``matte-shot`` flow: one shot, split into chunks, each chunk a task over :func:`vfxmatte.pipeline.matte_shot`.

- Chunks call the same library function as ``vfxmatte matte`` with a frame subset; a chunk is
  retried with exponential backoff when any of its frames fails, and a retry (or a rerun after a
  crash) skips every frame whose output header already records the same parameters (resume).
- The model work of a chunk holds one slot of the global concurrency limit ``gpu`` (or the
  worker's ``VFXMATTE_GPU_LIMIT``, e.g. ``gpu-0``), so two runs never share a GPU at once.
- Artifacts: ``vfxmatte-progress`` (frames done / total, updated while running),
  ``vfxmatte-summary`` (Markdown for people) and ``vfxmatte-result`` (Markdown holding one JSON
  block for programs such as the Nuke bridge).  The run fails when any frame failed.

Run it locally on Prefect's ephemeral server: ``vfxmatte flow run plate.####.exr -o out/matte.####.exr``
or ``python -m flows.matte_shot plate.####.exr out/matte.####.exr``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import statistics
import sys
import threading
import time
from functools import lru_cache
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.context import get_run_context
from prefect.states import Failed, State
from prefect.tasks import exponential_backoff
from pydantic import ValidationError

from flows.params import CleanPlate, GuideKind, MatteShotRequest, Preset, Prior, check_chunks
from flows.settings import FlowSettings
from vfxmatte.carry import next_keyframes
from vfxmatte.cleanplate import MISSED_NOTE
from vfxmatte.config import RunOptions
from vfxmatte.errors import FrameError, InputError, UsageError, VfxmatteError
from vfxmatte.io.exr import read_header_numbers
from vfxmatte.io.sequence import FrameSequence, format_ranges, output_sequence
from vfxmatte.model.core import MattingModel
from vfxmatte.pipeline import FrameResult, load_run_model, open_shot, output_path, plan_shot_guides
from vfxmatte.pipeline import matte_shot as pipeline_matte_shot
from vfxmatte.security import confine, local_paths

PROGRESS_KEY = "vfxmatte-progress"
SUMMARY_KEY = "vfxmatte-summary"
RESULT_KEY = "vfxmatte-result"
# The per-frame numbers the summary reads from each written EXR header (``vfxmatte:<name>``).
HEADER_NUMBERS = ("uncertainty", "keyframe_doubt", "clean_plate_missed")


class OneLineErrors(logging.Filter):
    """vfxmatte's own errors are one line (DESIGN §4): Prefect's run log gets no traceback for them.

    Prefect logs a failed run's exception with its traceback twice: the flow engine
    ("Encountered exception during execution") and, in a worker's flow-run process, the engine
    wrapper ("Engine execution exited with unexpected exception").  For a
    :class:`~vfxmatte.errors.VfxmatteError` (a refused path, no frames on disk, failed frames)
    the message says all there is; any other exception keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, VfxmatteError):
            message = record.getMessage()
            record.msg = message if str(error) in message else f"{message}: {error}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def _install_one_line_errors() -> None:
    logger = logging.getLogger("prefect.flow_runs")  # get_run_logger() and the engines' run loggers
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())


_install_one_line_errors()


# -- per-process state shared by a flow run's tasks ---------------------------------------


@lru_cache(maxsize=2)
def _cached_model(model: str | None, device: str) -> tuple[MattingModel, threading.Lock]:
    """One loaded model per worker process: chunks after the first skip the load."""
    return load_run_model(model, device), threading.Lock()


class ShotProgress:
    """The ``vfxmatte-progress`` artifact of one flow run, updated at most every half second."""

    def __init__(self, total: int, description: str) -> None:
        self.total = max(total, 1)
        self.seen: set[int] = set()
        self.description = description
        self._lock = threading.Lock()
        self._last = 0.0
        artifact_id = create_progress_artifact(0.0, key=PROGRESS_KEY, description=description)
        assert isinstance(artifact_id, UUID)  # the sync call returns the id, not a coroutine
        self.artifact_id = artifact_id

    def frame_done(self, result: FrameResult) -> None:
        with self._lock:
            if result.frame in self.seen:  # a retry reports the frames its earlier attempt wrote
                return
            self.seen.add(result.frame)
            done, now = len(self.seen), time.monotonic()
            if now - self._last < 0.5 and done < self.total:
                return
            self._last = now
        percent = 100.0 * min(done, self.total) / self.total
        update_progress_artifact(self.artifact_id, percent, description=f"{self.description}: {done}/{self.total}")

    def finish(self) -> None:
        update_progress_artifact(self.artifact_id, 100.0, description=f"{self.description}: finished")


_PROGRESS: dict[str, ShotProgress] = {}  # flow run id → its progress artifact
_WRITTEN: dict[str, set[int]] = {}  # task run id → frames written by earlier attempts of that chunk


class ShotFailed(FrameError):
    """Some frames of the shot failed (after retries); carries the run's result record."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (ShotFailed, (str(self), self.result))


class ChunkFailed(Exception):
    """Some frames of a chunk failed; carries every frame's record so the flow can report them."""

    def __init__(self, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.records = records

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChunkFailed, (str(self), self.records))


def _record(result: FrameResult, written_before: set[int]) -> dict[str, Any]:
    status = result.status
    if status == "skipped" and result.frame in written_before:
        status = "written"  # done by an earlier attempt of this chunk, not before the run
    return {
        "frame": result.frame,
        "status": status,
        "path": result.path,
        "error": result.error,
        "seconds": round(result.seconds, 3),
    }


# -- the chunk task ------------------------------------------------------------------------


@task(
    name="matte-chunk",
    task_run_name="frames {label}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
)
def matte_chunk(
    request: MatteShotRequest, frames: list[int], label: str, settings: FlowSettings
) -> list[dict[str, Any]]:
    """Matte ``frames`` of the shot through :func:`vfxmatte.pipeline.matte_shot`, holding a GPU slot."""
    context = get_run_context()
    task_run_id = str(getattr(getattr(context, "task_run", None), "id", "")) or label
    flow_run_id = str(getattr(getattr(context, "flow_run", None), "id", ""))
    written_before = _WRITTEN.setdefault(task_run_id, set())
    progress = _PROGRESS.get(flow_run_id)
    params = request.matte_params()
    options = RunOptions(device=settings.device, overwrite=request.overwrite)

    def on_frame(result: FrameResult) -> None:
        if result.status == "written":
            written_before.add(result.frame)
        if progress is not None:
            progress.frame_done(result)

    with concurrency(settings.gpu_limit, occupy=1, lease_duration=settings.lease_seconds, strict=True):
        model, lock = _cached_model(settings.model, settings.device)
        with lock:
            summary = pipeline_matte_shot(
                request.input, request.output, params, options, frames=frames, model=model, on_frame=on_frame
            )
    records = [_record(result, written_before) for result in summary.results]
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        first = failed[0]
        raise ChunkFailed(
            f"{len(failed)} of {len(records)} frame(s) failed; frame {first['frame']}: {first['error']}", records
        )
    return records


# -- the flow ------------------------------------------------------------------------------


def ensure_gpu_limit(name: str, slots: int) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` slots unless it exists (embedded mode)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:
                pass  # another run created it first


def split_chunks(frames: list[int], size: int) -> list[list[int]]:
    return [frames[i : i + size] for i in range(0, len(frames), size)]


@flow(name="matte-shot", validate_parameters=True)
def matte_shot(
    input: str,
    output: str,
    frames: str | None = None,
    preset: Preset = "standard",
    prompt: str | None = None,
    guide: str | None = None,
    guide_kind: GuideKind = "auto",
    guide_channel: str | None = None,
    guide_frame: int | None = None,
    seed: int = 0,
    colorspace: str | None = None,
    overwrite: bool = False,
    chunk_size: int = 24,
    review: bool = True,
    prior: Prior = "u2netp",
    clean_plate: CleanPlate = "auto",
) -> dict[str, Any] | State[Any]:
    """Matte one shot in chunks on the worker's GPU; see the module docstring.

    Refused parameters and unreadable inputs (a path outside ``VFXMATTE_ROOTS``, no frames on
    disk) end the run Failed with their one-line message, without a traceback in its log.
    """
    try:
        request = MatteShotRequest(
            input=input,
            output=output,
            frames=frames,
            preset=preset,
            prompt=prompt,
            guide=guide,
            guide_kind=guide_kind,
            guide_channel=guide_channel,
            guide_frame=guide_frame,
            seed=seed,
            colorspace=colorspace,
            overwrite=overwrite,
            chunk_size=chunk_size,
            prior=prior,
            clean_plate=clean_plate,
            review=review,
        )
        return run_shot(request, FlowSettings.from_env())
    except (UsageError, InputError, ValidationError) as exc:
        refused = exc if isinstance(exc, VfxmatteError) else UsageError(one_line_validation(exc))
        return Failed(message=str(refused), data=refused)


def one_line_validation(exc: ValidationError) -> str:
    """A pydantic error as one line: each field and its reason."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}" for e in exc.errors())


def run_shot(request: MatteShotRequest, settings: FlowSettings) -> dict[str, Any]:
    logger = get_run_logger()
    params = request.matte_params()
    options = RunOptions(device=settings.device, overwrite=request.overwrite)
    shot = open_shot(request.input, request.frame_list(), params, options)
    in_seq = FrameSequence.parse(shot.description) if not shot.is_movie else None
    out_seq = output_sequence(request.output, in_seq, shot.stem)
    confine(out_seq.pattern, "output")  # a directory output's frames: no symlink out of the roots
    check_chunks(len(shot.frames), request.chunk_size)  # frames on disk or declared by a movie
    # Keyframe guides: each chunk carries them over the frames between (read, not written), so a
    # chunk gives the frames one run would; a bad keyframe fails here, before any chunk.
    keyframes = plan_shot_guides(request.input, shot, params, options).keyframes if params.guide else []
    chunks = split_chunks(shot.frames, request.chunk_size)
    ensure_gpu_limit(settings.gpu_limit, settings.gpu_slots)
    flow_run_id = str(getattr(getattr(get_run_context(), "flow_run", None), "id", ""))
    progress = ShotProgress(len(shot.frames), f"{shot.description} → {out_seq.pattern}")
    _PROGRESS[flow_run_id] = progress
    logger.info(
        "%d frame(s) of %s in %d chunk(s) of ≤%d; GPU limit %r",
        len(shot.frames),
        shot.description,
        len(chunks),
        request.chunk_size,
        settings.gpu_limit,
    )
    chunk_task = matte_chunk.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay) if settings.retry_delay else 0,
        retry_jitter_factor=0.5,
    )
    records: dict[int, dict[str, Any]] = {}
    try:
        for chunk in chunks:
            label = format_ranges(chunk)
            state = chunk_task(request, chunk, label, settings, return_state=True)
            value = state.result(raise_on_failure=False)
            if isinstance(value, ChunkFailed):
                chunk_records = value.records
            elif isinstance(value, BaseException) or not isinstance(value, list):
                # The chunk raised before recording frames (model, output or slot error).
                done = _WRITTEN.get(str(state.state_details.task_run_id), set())
                reason = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
                chunk_records = [
                    {
                        "frame": f,
                        "status": "written" if f in done else "failed",
                        "path": output_path(out_seq, f),
                        "error": None if f in done else reason,
                        "seconds": 0.0,
                    }
                    for f in chunk
                ]
            else:
                chunk_records = value
            records.update({r["frame"]: r for r in chunk_records})
            _WRITTEN.pop(str(state.state_details.task_run_id), None)  # a long-lived process keeps no history
    finally:
        _PROGRESS.pop(flow_run_id, None)
        progress.finish()
    for frame in shot.missing:
        records[frame] = {
            "frame": frame,
            "status": "failed",
            "path": None,
            "seconds": 0.0,
            "error": f"{shot.description}: frame {frame} is missing on disk",
        }
    result = summarise(request, settings, out_seq.pattern, [records[f] for f in sorted(records)], keyframes)
    publish(result)
    if result["frames"]["failed"]:
        failed = result["frames"]["failed"]
        raise ShotFailed(f"{out_seq.pattern}: {len(failed)} frame(s) failed: {format_ranges(failed)}", result)
    return result


# -- summary, review page, artifacts -------------------------------------------------------


def summarise(
    request: MatteShotRequest,
    settings: FlowSettings,
    pattern: str,
    records: list[dict[str, Any]],
    keyframes: list[int] | None = None,
) -> dict[str, Any]:
    """The run's result record: frame lists, per-frame uncertainty (from each EXR header), flags, the
    frames whose matte leaves out what the clean plate calls subject (``vfxmatte:clean_plate_missed``
    over :data:`vfxmatte.cleanplate.MISSED_NOTE`, as the CLI's note and the review page), review page;
    for keyframe guides the keyframes and where the next roto would help most."""
    for record in records:
        path = record.get("path") if record["status"] != "failed" else None
        if not isinstance(path, str) or not os.path.exists(path):
            record.update(dict.fromkeys(HEADER_NUMBERS))
            continue
        numbers = read_header_numbers(path, [f"vfxmatte:{key}" for key in HEADER_NUMBERS])
        record.update({key: numbers[f"vfxmatte:{key}"] for key in HEADER_NUMBERS})
    scores = [r["uncertainty"] for r in records if r["uncertainty"] is not None]
    threshold, rule = flag_threshold(scores, settings)
    flagged = [r["frame"] for r in records if r["uncertainty"] is not None and r["uncertainty"] > threshold]
    review_page, review_note = make_review_page(request, pattern, threshold)
    return {
        "input": request.input,
        "output": pattern,
        "preset": request.preset,
        "frames": {
            status: [r["frame"] for r in records if r["status"] == status]
            for status in ("written", "skipped", "failed")
        },
        "uncertainty": {str(r["frame"]): r["uncertainty"] for r in records},
        "seconds": {str(r["frame"]): r["seconds"] for r in records if r["status"] == "written"},
        "flag_threshold": threshold,
        "flag_rule": rule,
        "flagged": flagged,
        "missed": {
            str(r["frame"]): r["clean_plate_missed"]
            for r in records
            if r["clean_plate_missed"] is not None and r["clean_plate_missed"] > MISSED_NOTE
        },
        "errors": {str(r["frame"]): r["error"] for r in records if r["status"] == "failed"},
        "review_page": review_page,
        "review_note": review_note,
        **(_keyframe_record(records, keyframes) if keyframes else {}),
    }


def _keyframe_record(records: list[dict[str, Any]], keyframes: list[int]) -> dict[str, Any]:
    doubt = {r["frame"]: r["keyframe_doubt"] for r in records if r.get("keyframe_doubt") is not None}
    return {"keyframes": keyframes, "next_keyframes": next_keyframes(doubt, keyframes)}


def flag_threshold(scores: list[float], settings: FlowSettings) -> tuple[float, str]:
    """A fixed threshold if configured, else ``flag_factor`` × the median score (the review page's rule)."""
    if settings.flag_threshold is not None:
        return settings.flag_threshold, f"fixed threshold {settings.flag_threshold:.4g}"
    median = statistics.median(scores) if scores else 0.0
    return settings.flag_factor * median, f"{settings.flag_factor:g} × the shot's median score ({median:.4g})"


def make_review_page(request: MatteShotRequest, pattern: str, threshold: float) -> tuple[str | None, str]:
    """Build ``<output dir>/review/index.html`` with :mod:`vfxmatte.review` when this build has it."""
    page = os.path.join(os.path.dirname(pattern), "review", "index.html")
    if not request.review:
        return None, "no review page made: review=false"
    try:
        confine(os.path.dirname(page) + os.sep, "review page folder")  # review/ may be a symlink out
    except UsageError as exc:
        return None, f"no review page made: {exc}"
    try:
        review = importlib.import_module("vfxmatte.review")
    except ModuleNotFoundError:
        return None, "no review page made: this vfxmatte build has no vfxmatte.review module"
    build = getattr(review, "build_review", None)
    if build is None:
        return None, "no review page made: vfxmatte.review has no build_review()"
    try:
        made = build(pattern, os.path.dirname(page), threshold=threshold)
    except Exception as exc:  # the mattes are delivered either way; say why the page is missing
        return None, f"no review page made: {type(exc).__name__}: {exc}"
    return str(getattr(made, "index_html", page)), "review page written"


def markdown_summary(result: dict[str, Any]) -> str:
    frames = result["frames"]
    lines = [
        f"# Matte {result['output']}",
        "",
        f"Input `{result['input']}`, preset `{result['preset']}`.",
        "",
        "| written | skipped (already done) | failed | flagged |",
        "|---:|---:|---:|---:|",
        f"| {len(frames['written'])} | {len(frames['skipped'])} | {len(frames['failed'])} | {len(result['flagged'])} |",
        "",
        f"Flagged for review (uncertainty score > {result['flag_threshold']:.4g}, {result['flag_rule']}): "
        + (format_ranges(result["flagged"]) if result["flagged"] else "none"),
        "",
        "Missed subject (the clean plate sees a subject the matte leaves out: a head or hat lost against its own "
        "colour?): " + (format_ranges(int(f) for f in result["missed"]) if result["missed"] else "none"),
        "",
        f"Review page: `{result['review_page']}`" if result["review_page"] else f"Review page: {result['review_note']}",
        "",
        "| frame | status | uncertainty | note |",
        "|---:|---|---:|---|",
    ]
    flagged = set(result["flagged"])
    for frame_key, score in result["uncertainty"].items():
        frame = int(frame_key)
        status = next(s for s in ("written", "skipped", "failed") if frame in frames[s])
        notes = ["flagged"] if frame in flagged else []
        if frame_key in result["missed"]:
            notes.append(f"missed subject {result['missed'][frame_key]:.2%} of the frame")
        note = result["errors"].get(frame_key) or ", ".join(notes)
        lines.append(f"| {frame} | {status} | {'' if score is None else f'{score:.4f}'} | {note} |")
    return "\n".join(lines)


def publish(result: dict[str, Any]) -> None:
    create_markdown_artifact(markdown_summary(result), key=SUMMARY_KEY, description=f"matte {result['output']}")
    create_markdown_artifact(
        "```json\n" + json.dumps(result, indent=1) + "\n```", key=RESULT_KEY, description="machine-readable result"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.matte_shot INPUT OUTPUT [FRAMES]``: run the flow on the ephemeral server."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3):
        print("usage: python -m flows.matte_shot INPUT OUTPUT [FRAMES]", file=sys.stderr)
        return 2
    with local_paths():  # typed here: the user's own paths, not confined to VFXMATTE_ROOTS
        state = matte_shot(args[0], args[1], frames=args[2] if len(args) == 3 else None, return_state=True)
    result = state.result(raise_on_failure=False)
    if not isinstance(result, dict):  # the run failed: its error, in one line
        print(f"matte-shot: error: {result if isinstance(result, BaseException) else state.message}", file=sys.stderr)
        return int(getattr(result, "exit_code", 1))
    print(json.dumps(result["frames"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
