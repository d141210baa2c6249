"""Build a review: resolve the frames, reuse or render their images, write the page."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vfxmatte import carry
from vfxmatte.errors import InputError, OutputError, UsageError
from vfxmatte.io.sequence import FrameSequence
from vfxmatte.review.images import render_job
from vfxmatte.review.page import render_html, write_contact_sheet, write_plot, write_scores, write_text
from vfxmatte.review.records import FrameReview, FrameStatus, ReviewResult, ReviewSettings, default_review_dir

#: Bumped whenever the cached images would come out differently.

CACHE_VERSION = 5

# -- inputs -------------------------------------------------------------------------

_NUMBERED_EXR = re.compile(r"^(?P<head>.*?[._])(?P<digits>-?\d+)(?P<tail>\.exr)$", re.IGNORECASE)


def resolve_pattern(pattern: str | os.PathLike[str]) -> FrameSequence:
    """A sequence from a pattern, a single file, or a folder holding exactly one EXR sequence."""
    text = os.fspath(pattern)
    if not os.path.isdir(text):
        return FrameSequence.parse(text)
    groups: dict[tuple[str, str, int], int] = {}
    for name in sorted(os.listdir(text)):
        m = _NUMBERED_EXR.match(name)
        if m and not name.startswith("."):
            key = (m.group("head"), m.group("tail"), len(m.group("digits").lstrip("-")))
            groups[key] = groups.get(key, 0) + 1
    if len(groups) != 1:
        found = ", ".join(f"{h}{'#' * p}{t}" for h, t, p in groups) or "none"
        raise UsageError(f"{text}: a folder needs exactly one numbered EXR sequence (found {found}); give a pattern")
    head, tail, padding = next(iter(groups))
    return FrameSequence(head=os.path.join(text, head), tail=tail, padding=padding)


# -- cache --------------------------------------------------------------------------


def _stat_key(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {"mtime_ns": st.st_mtime_ns, "size": st.st_size}


def _load_manifest(path: Path, settings: ReviewSettings) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("settings") != asdict(settings):
        return {}
    frames = data.get("frames")
    return frames if isinstance(frames, dict) else {}


def _cache_hit(entry: dict[str, Any] | None, path: str, out_dir: Path) -> bool:
    if not entry or entry.get("source") != os.path.abspath(path) or entry.get("stat") != _stat_key(path):
        return False
    files = list(entry.get("images", {}).values()) + [c["image"] for c in entry.get("crops", [])]
    return all((out_dir / f).is_file() for f in files)


# -- the review ---------------------------------------------------------------------


def choose_threshold(scores: list[float], threshold: float | None = None, factor: float = 1.5) -> tuple[float, str]:
    """The flag threshold and a sentence saying how it was chosen.

    An explicit ``threshold`` wins; otherwise ``factor`` × the shot's median score.
    """
    if threshold is not None:
        return threshold, f"fixed threshold {threshold:.4g}"
    median = statistics.median(scores) if scores else 0.0
    return factor * median, f"{factor:g} × the shot's median score ({median:.4g})"


def build_review(
    pattern: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    threshold: float | None = None,
    threshold_factor: float = 1.5,
    settings: ReviewSettings | None = None,
    jobs: int = 1,
    on_frame: Callable[[int, FrameStatus], None] | None = None,
) -> ReviewResult:
    """Write the review of a shot's matte EXRs into ``out_dir`` (default ``<output dir>/review``).

    Frames that cannot be read are listed on the page and in ``errors``; no readable frame
    at all raises :class:`InputError`.
    """
    settings = settings or ReviewSettings()
    if threshold_factor <= 0 or (threshold is not None and threshold < 0):
        raise UsageError("review: the threshold and the threshold factor must be positive")
    if jobs < 1:
        raise UsageError(f"review: --jobs must be at least 1, not {jobs}")
    sequence = resolve_pattern(pattern)
    on_disk = sequence.frames_on_disk()
    if not on_disk:
        raise InputError(f"{sequence.pattern}: no frames match the pattern")
    directory = Path(out_dir) if out_dir is not None else default_review_dir(sequence.pattern)
    try:
        (directory / "thumbs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the review folder: {exc.strerror}") from exc
    manifest_path = directory / "thumbs" / "manifest.json"
    manifest = _load_manifest(manifest_path, settings)

    entries: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    todo: list[tuple[str, int, str, ReviewSettings]] = []
    result_counts = {"generated": 0, "cached": 0}
    for frame in on_disk:
        path = sequence.path(frame)
        if _cache_hit(manifest.get(str(frame)), path, directory):
            entries[frame] = manifest[str(frame)]
            result_counts["cached"] += 1
            if on_frame is not None:
                on_frame(frame, "cached")
        else:
            todo.append((path, frame, str(directory), settings))
    for frame, outcome in _run_jobs(todo, jobs):
        path = sequence.path(frame)
        if isinstance(outcome, str):
            errors[frame] = outcome
            manifest.pop(str(frame), None)
            status: FrameStatus = "failed"
        else:
            entries[frame] = {"source": os.path.abspath(path), "stat": _stat_key(path), **outcome}
            result_counts["generated"] += 1
            status = "generated"
        if on_frame is not None:
            on_frame(frame, status)
    _remove_stale(directory, manifest, entries)
    manifest_text = json.dumps(
        {"version": CACHE_VERSION, "settings": asdict(settings), "frames": {str(f): e for f, e in entries.items()}},
        indent=1,
    )
    write_text(manifest_path, manifest_text)
    if not entries:
        first = next(iter(errors.values()), f"{sequence.pattern}: no readable frame")
        raise InputError(f"no readable matte frame; first error: {first}")

    frames = [
        FrameReview(
            frame=frame,
            path=sequence.path(frame),
            score=float(e["score"]),
            keyframe_doubt=None if e.get("keyframe_doubt") is None else float(e["keyframe_doubt"]),
            plate_missed=None if e.get("clean_plate_missed") is None else float(e["clean_plate_missed"]),
            width=int(e["width"]),
            height=int(e["height"]),
            colorspace=str(e["colorspace"]),
            images=dict(e["images"]),
            crops=list(e["crops"]),
        )
        for frame, e in sorted(entries.items())
    ]
    scores = [f.score for f in frames]
    limit, rule = choose_threshold(scores, threshold, threshold_factor)
    for f in frames:
        f.flagged = f.score > limit
    missing = [f for f in range(on_disk[0], on_disk[-1] + 1) if f not in set(on_disk)] if len(on_disk) > 1 else []
    result = ReviewResult(
        pattern=sequence.pattern,
        directory=directory,
        index_html=directory / "index.html",
        contact_sheet=directory / "contact_sheet.png",
        scores_csv=directory / "scores.csv",
        scores_json=directory / "scores.json",
        plot=directory / "plot.png",
        threshold=limit,
        threshold_rule=rule,
        median=statistics.median(scores),
        frames=frames,
        missing=missing,
        errors=[errors[f] for f in sorted(errors)],
        generated=result_counts["generated"],
        cached=result_counts["cached"],
        next_keyframes=carry.next_keyframes(
            {f.frame: f.keyframe_doubt for f in frames if f.keyframe_doubt is not None},
            sorted({k for e in entries.values() for k in e.get("keyframes", [])}),
        ),
    )
    axes = write_plot(result, result.plot)
    # The contact sheet reads every thumbnail: redo it only when a frame, score or flag changed.
    sheet_state = [[f.frame, f.score, f.flagged, entries[f.frame]["stat"]] for f in frames] + [asdict(settings)]
    sheet_key = hashlib.sha256(json.dumps(sheet_state).encode()).hexdigest()
    key_path = directory / "thumbs" / "contact_sheet.key"
    if not (result.contact_sheet.is_file() and key_path.is_file() and key_path.read_text() == sheet_key):
        write_contact_sheet(result, result.contact_sheet, settings)
        write_text(key_path, sheet_key)
    write_scores(result)
    write_text(result.index_html, render_html(result, axes, settings))
    return result


def _run_jobs(
    todo: list[tuple[str, int, str, ReviewSettings]], jobs: int
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    if jobs == 1 or len(todo) < 2:
        yield from map(render_job, todo)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        yield from pool.map(render_job, todo, chunksize=4)


def _remove_stale(directory: Path, old: dict[str, dict[str, Any]], new: dict[int, dict[str, Any]]) -> None:
    """Delete cached images of frames no longer in the shot (or re-rendered with fewer crops)."""
    keep = {f for e in new.values() for f in list(e["images"].values()) + [c["image"] for c in e["crops"]]}
    for entry in old.values():
        for relative in list(entry.get("images", {}).values()) + [c["image"] for c in entry.get("crops", [])]:
            if relative not in keep:
                (directory / relative).unlink(missing_ok=True)
