"""`vfxmatte eval`: score predicted mattes against ground truth, as files, folders or sequences.

PRED, GT and TRIMAP can each be

* a single image file (any format OpenImageIO reads: EXR, PNG, TIFF, JPEG, DPX…);
* a folder: its images are paired by *stem*, ignoring the extension (``GT01.png`` in one
  folder pairs with ``GT01.exr`` in the other); names found on one side only are reported;
* a sequence pattern (``matte.####.exr``, ``matte.%04d.exr``, ``matte.@.exr``): frames are
  paired by frame number, whatever the two patterns' names; frames found on one side only
  are reported.

A single TRIMAP file applies to every pair (a static garbage trimap over a shot); a trimap
folder pairs by stem and a trimap sequence by frame number.

Which channel is the matte:

* predictions: the ``pred_channel`` channel (default ``A``: vfxmatte's output EXRs hold
  ``R G B A uncertainty.Y``); without it, the file's only channel, or the first channel of
  a grey image stored as RGB(A) (R = G = B).  An 8/16-bit image whose ``A`` is fully opaque
  everywhere while its R = G = B is read as a grey matte, not as that constant alpha;
* ground truth: the only channel; else the first channel of a grey RGB(A) image (the
  alphamatting.com GT PNGs are grey stored as RGB); else ``A``;
* trimaps: the first channel.  Background is 0, foreground the format's maximum (255 for
  8-bit, 65535 for 16-bit, 1.0 for float) and **every value strictly between is unknown**:
  the usual 128, but also the 102 of pymatting's lemur trimap.

Integer images keep their integer values (8-bit is divided by 255 and 16-bit by 65535 by
:mod:`vfxmatte.metrics`, as the reference scripts divide their PNGs); float images are read
as float32 and clipped to [0, 1] (the count of clipped values is noted).  An EXR whose data
window differs from the other file's is placed in its display window first (zero outside
the data window); images of different sizes are refused.

Scores: whole image in the P3M convention for every pair, and with a trimap the unknown
region in the DIM / GCA-Matting convention (see :mod:`vfxmatte.metrics`).  Two sequences
with at least two paired consecutive frames also get dtSSD (RobustVideoMatting scale).

Uncertainty: predictions that carry an uncertainty channel (``uncertainty.Y`` in vfxmatte's
EXRs; ``--uncertainty-channel``) also get its sparsification curve against the squared alpha
error, with the oracle's and random removal's, and AUSE (:func:`vfxmatte.metrics.sparsification`),
per image and pooled over every pair (the shot, or the folder); the pooled curve keeps at
most :data:`POOLED_PIXELS` pixels in all, a regular subsample of each image.  With at least
three pairs whose headers hold ``vfxmatte:uncertainty`` the report adds Spearman's rank
correlation of that per-frame score with each frame's true MSE.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import OpenImageIO as oiio

from vfxmatte.errors import InputError, UsageError
from vfxmatte.io.exr import configure_limits, oiio_error
from vfxmatte.io.sequence import FrameSequence
from vfxmatte.metrics import (
    MattingScores,
    Sparsification,
    dtssd,
    evaluate_unknown,
    evaluate_whole,
    mean_scores,
    rank_correlation,
    sparsification_of_errors,
    squared_error,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "WHOLE_CONVENTION",
    "UNKNOWN_CONVENTION",
    "EvalItem",
    "EvalReport",
    "add_eval_parser",
    "cmd_eval",
    "evaluate",
    "format_scores_row",
    "images_by_stem",
    "read_matte",
    "read_trimap",
    "scores_table_header",
]

#: File extensions a folder is scanned for (lower case).
IMAGE_EXTENSIONS = (".exr", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dpx", ".bmp", ".tga", ".webp")

#: Caption of the whole-image numbers (P3M ``core/evaluate.py``).
WHOLE_CONVENTION = (
    "whole image, P3M convention (every pixel counts): MSE x1e3, MAD x1e3, SAD /1000, Conn /1000, "
    "Grad /10 (scipy Gaussian derivative, sigma 1.4)"
)
#: Caption of the unknown-region numbers (DIM MATLAB code / GCA-Matting ``utils/evaluate.py``).
UNKNOWN_CONVENTION = (
    "unknown region of the trimap, DIM / GCA-Matting convention (pixels strictly between background "
    "and foreground): MSE x1e3, MAD x1e3, SAD /1000, Conn /1000, Grad /1000 (unit-norm DIM kernel, sigma 1.4)"
)
#: Caption of dtSSD.
DTSSD_CONVENTION = "dtSSD, RobustVideoMatting scale (sqrt(mean(e^2)) x1e2), mean over consecutive frame pairs"

#: Column order of every table: the order of the "Matting by Generation" Table 1.
METRIC_COLUMNS = ("mse", "mad", "sad", "conn", "grad")
_COLUMN_TITLES = {"mse": "MSE", "mad": "MAD", "sad": "SAD", "conn": "Conn", "grad": "Grad"}

SourceKind = Literal["file", "folder", "sequence"]

#: The prediction channel scored as an uncertainty map when present.
UNCERTAINTY_CHANNEL = "uncertainty.Y"
#: Header attribute holding a vfxmatte frame's score.
SCORE_ATTRIBUTE = "vfxmatte:uncertainty"
#: Most pixels kept, over all pairs, for the pooled sparsification curve.
POOLED_PIXELS = 8_000_000
#: Caption of the uncertainty numbers.
SPARSIFICATION_CONVENTION = (
    "sparsification against the squared alpha error (Ilg et al. 2018): pixels removed most uncertain first, "
    "mean error left / mean error of all; AUSE = area between the curve and the oracle's, ratio = AUSE / AUSE of "
    "random removal (0 perfect, 1 chance)"
)


# --------------------------------------------------------------------------- reading


@dataclass
class _Image:
    """Pixels of one image file's first part, with its windows (x, y, width, height)."""

    path: str
    pixels: np.ndarray  # (H, W, C), uint8 / uint16 / float32
    channels: list[str]
    data: tuple[int, int, int, int]
    display: tuple[int, int, int, int]
    is_float: bool
    score: float | None = None  # the header's vfxmatte:uncertainty, when it holds a number


def _header_score(spec: Any) -> float | None:
    value = spec.getattribute(SCORE_ATTRIBUTE)
    try:
        score = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return score if score is not None and math.isfinite(score) else None


def _read_image(path: str, what: str) -> _Image:
    configure_limits()
    if not os.path.exists(path):
        raise InputError(f"{path}: {what} file does not exist")
    if os.path.isdir(path):
        raise InputError(f"{path}: {what} is a directory, not an image file")
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # keep RGB as stored in RGBA PNGs
    inp = oiio.ImageInput.open(path, config)
    if inp is None:
        raise InputError(f"{path}: cannot open {what}: {oiio_error()}")
    try:
        spec = inp.spec()
        if spec.deep:
            raise InputError(f"{path}: {what} is a deep image; flatten it first")
        fmt = str(spec.format)
        read_as = fmt if fmt in ("uint8", "uint16") else "float"
        pixels = inp.read_image(0, 0, 0, spec.nchannels, read_as)
        if pixels is None or not isinstance(pixels, np.ndarray) or pixels.size == 0:
            raise InputError(f"{path}: cannot read {what} pixels: {oiio_error(inp)}")
        pixels = pixels.reshape(spec.height, spec.width, spec.nchannels)
        return _Image(
            path=path,
            pixels=pixels,
            channels=list(spec.channelnames),
            data=(spec.x, spec.y, spec.width, spec.height),
            display=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
            is_float=read_as == "float",
            score=_header_score(spec),
        )
    finally:
        inp.close()


def _is_grey(image: _Image) -> bool:
    """R = G = B in the first three channels (a grey matte stored as RGB or RGBA)."""
    if image.pixels.shape[2] < 3:
        return False
    first = image.pixels[:, :, 0]
    return bool(np.array_equal(first, image.pixels[:, :, 1]) and np.array_equal(first, image.pixels[:, :, 2]))


def _opaque(channel: np.ndarray) -> bool:
    top = 255 if channel.dtype == np.uint8 else 65535 if channel.dtype == np.uint16 else None
    return top is not None and bool(np.all(channel == top))


def _matte_channel(image: _Image, role: Literal["prediction", "ground truth"], channel: str | None) -> int:
    names = image.channels
    if role == "prediction" and channel is not None and channel in names:
        index = names.index(channel)
        if channel == "A" and not image.is_float and _opaque(image.pixels[:, :, index]) and _is_grey(image):
            return 0  # an opaque grey RGBA still: the grey is the matte
        return index
    if role == "prediction" and channel is not None and channel != "A":
        raise InputError(f"{image.path}: no channel {channel!r} (has {', '.join(names)})")
    if len(names) == 1:
        return 0
    if _is_grey(image):
        return 0
    if "A" in names:
        return names.index("A")
    raise InputError(
        f"{image.path}: {role} has colour channels {', '.join(names)} and no A: not a matte"
        + (" (choose one with --pred-channel)" if role == "prediction" else "")
    )


@dataclass
class _Plane:
    """One channel of an image, as the metrics take it."""

    path: str
    array: np.ndarray
    data: tuple[int, int, int, int]
    display: tuple[int, int, int, int]
    notes: list[str] = field(default_factory=list)


def _matte_plane(
    path: str, role: Literal["prediction", "ground truth"], channel: str | None, image: _Image | None = None
) -> _Plane:
    image = image or _read_image(path, role)
    array = np.ascontiguousarray(image.pixels[:, :, _matte_channel(image, role, channel)])
    notes = []
    if image.is_float:
        if np.isnan(array).any():
            raise InputError(f"{path}: {role} matte holds NaN values")
        outside = int(np.count_nonzero((array < 0.0) | (array > 1.0)))
        if outside:
            array = np.clip(array, 0.0, 1.0)
            notes.append(f"{path}: {outside} {role} values outside [0, 1] clipped")
    return _Plane(path, array, image.data, image.display, notes)


def read_matte(
    path: str, role: Literal["prediction", "ground truth"] = "prediction", channel: str | None = "A"
) -> np.ndarray:
    """The matte of one file as a 2-D array: uint8 / uint16 as stored, or float32 clipped to [0, 1].

    Channel choice as described in the module docstring (``channel`` applies to predictions).
    """
    return _matte_plane(path, role, channel).array


def _trimap_plane(path: str) -> _Plane:
    image = _read_image(path, "trimap")
    first = image.pixels[:, :, 0]
    if image.is_float:
        if np.isnan(first).any():
            raise InputError(f"{path}: trimap holds NaN values")
        unknown = (first > 0.0) & (first < 1.0)
    else:
        top = 255 if first.dtype == np.uint8 else 65535
        unknown = (first > 0) & (first < top)
    return _Plane(path, np.ascontiguousarray(unknown), image.data, image.display)


def read_trimap(path: str) -> np.ndarray:
    """The unknown region of a trimap file as a boolean mask (strictly between 0 and the maximum)."""
    return _trimap_plane(path).array


def _in_display_window(plane: _Plane) -> np.ndarray:
    """The plane placed in its display window, zero outside its data window (OpenEXR semantics)."""
    x, y, width, height = plane.data
    fx, fy, fw, fh = plane.display
    out = np.zeros((fh, fw), dtype=plane.array.dtype)
    x0, y0 = max(x, fx), max(y, fy)
    x1, y1 = min(x + width, fx + fw), min(y + height, fy + fh)
    if x1 > x0 and y1 > y0:
        out[y0 - fy : y1 - fy, x0 - fx : x1 - fx] = plane.array[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def _align(a: _Plane, b: _Plane, a_role: str, b_role: str) -> tuple[np.ndarray, np.ndarray]:
    """The two planes over the same pixels, or an error naming both files.

    Equal data windows compare as they are; different data windows inside equal display
    windows (EXRs with overscan or a cropped data window) compare over the display window.
    """
    if a.data == b.data:
        return a.array, b.array
    if a.display == b.display:
        return _in_display_window(a), _in_display_window(b)
    raise InputError(
        f"{a.path}: {a_role} is {a.data[2]}x{a.data[3]} but the {b_role} {b.path} is "
        f"{b.data[2]}x{b.data[3]}; they must be the same size"
    )


# --------------------------------------------------------------------------- sources and pairing


def images_by_stem(folder: str) -> dict[str, str]:
    """``{stem: path}`` of the image files directly in ``folder`` (hidden files skipped).

    Two images with the same stem (``a.png`` and ``a.exr``) cannot be paired: refused.
    """
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder: {exc.strerror}") from exc
    found: dict[str, str] = {}
    for name in names:
        stem, ext = os.path.splitext(name)
        path = os.path.join(folder, name)
        if name.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS or not os.path.isfile(path):
            continue
        if stem in found:
            raise InputError(
                f"{folder}: two images named {stem!r} ({os.path.basename(found[stem])}, {name}); keep one"
            )
        found[stem] = path
    return found


@dataclass
class _Source:
    text: str
    kind: SourceKind
    files: dict[str, str]  # key (stem, or the frame number as text) -> path
    frames: dict[str, int] = field(default_factory=dict)  # key -> frame number (sequences)


def _source(text: str, what: str) -> _Source:
    if os.path.isdir(text):
        files = images_by_stem(text)
        if not files:
            raise InputError(f"{text}: {what} folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return _Source(text, "folder", files)
    sequence = FrameSequence.parse(text)
    if sequence.is_single:
        if not os.path.isfile(text):
            raise InputError(f"{text}: {what} file does not exist")
        return _Source(text, "file", {Path(text).stem: text})
    frames = sequence.frames_on_disk()
    if not frames:
        raise InputError(f"{text}: no {what} frames match the pattern")
    return _Source(
        text,
        "sequence",
        {str(f): sequence.path(f) for f in frames},
        {str(f): f for f in frames},
    )


@dataclass
class _Pair:
    name: str
    pred: str
    gt: str
    trimap: str | None
    frame: int | None = None


def _pair(pred: _Source, gt: _Source) -> tuple[list[_Pair], list[str], list[str]]:
    if pred.kind == "file" and gt.kind == "file":
        (gt_name,) = gt.files
        return [_Pair(gt_name, pred.text, gt.text, None)], [], []
    if pred.kind != gt.kind:
        raise UsageError(
            f"cannot pair a {pred.kind} ({pred.text}) with a {gt.kind} ({gt.text}); give two files, "
            "two folders or two sequence patterns"
        )
    shared = [k for k in gt.files if k in pred.files]
    if gt.kind == "sequence":
        shared.sort(key=lambda k: gt.frames[k])
    pairs = [_Pair(k, pred.files[k], gt.files[k], None, gt.frames.get(k)) for k in shared]
    pred_only = [_display_name(pred, k) for k in pred.files if k not in gt.files]
    gt_only = [_display_name(gt, k) for k in gt.files if k not in pred.files]
    if not pairs:
        unit = "frame numbers" if gt.kind == "sequence" else "image names"
        raise InputError(f"{pred.text}: no {unit} in common with {gt.text}")
    return pairs, pred_only, gt_only


def _display_name(source: _Source, key: str) -> str:
    return key if source.kind == "sequence" else os.path.basename(source.files[key])


def _attach_trimaps(pairs: list[_Pair], trimap: _Source, gt: _Source) -> list[str]:
    """Give each pair its trimap; return the names of pairs left without one."""
    if trimap.kind == "file":
        for p in pairs:
            p.trimap = trimap.text
        return []
    if trimap.kind == "sequence" and gt.kind != "sequence":
        raise UsageError(f"a trimap sequence ({trimap.text}) pairs with ground-truth sequences only")
    if trimap.kind == "folder" and gt.kind == "sequence":
        raise UsageError(f"a trimap folder ({trimap.text}) pairs with ground-truth files or folders, not sequences")
    missing = []
    for p in pairs:
        p.trimap = trimap.files.get(p.name)
        if p.trimap is None:
            missing.append(p.name)
    return missing


# --------------------------------------------------------------------------- report


@dataclass
class EvalItem:
    """Scores of one prediction / ground-truth pair."""

    name: str
    pred: str
    gt: str
    trimap: str | None
    whole: MattingScores
    unknown: MattingScores | None
    frame: int | None = None
    seconds: float = 0.0  # metrics only (reading excluded)
    sparsification: Sparsification | None = None  # of the prediction's uncertainty channel
    score: float | None = None  # the prediction header's vfxmatte:uncertainty

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "frame": self.frame,
            "pred": self.pred,
            "gt": self.gt,
            "trimap": self.trimap,
            "whole": self.whole.as_dict(),
            "unknown": None if self.unknown is None else self.unknown.as_dict(),
            "uncertainty": None if self.sparsification is None else self.sparsification.as_dict(),
            "score": self.score,
            "metrics_s": round(self.seconds, 4),
        }


@dataclass
class EvalReport:
    """Everything ``vfxmatte eval`` reports: per-item scores, means, dtSSD, what did not pair."""

    pred: str
    gt: str
    trimap: str | None
    kind: SourceKind
    items: list[EvalItem]
    unmatched: dict[str, list[str]] = field(default_factory=lambda: {"pred": [], "gt": [], "trimap": []})
    dtssd: float | None = None
    dtssd_pairs: int = 0
    notes: list[str] = field(default_factory=list)
    read_seconds: float = 0.0
    metrics_seconds: float = 0.0
    pooled: Sparsification | None = None  # every pair's pixels together (the shot)
    score_rank: float | None = None  # Spearman of the header scores with the true MSE

    def uncertainty_dict(self) -> dict[str, Any] | None:
        """The uncertainty section of the JSON: pooled and mean per-image AUSE, rank correlation."""
        scored = [item.sparsification for item in self.items if item.sparsification is not None]
        if not scored and self.score_rank is None:
            return None
        ratios = [s.ratio for s in scored]
        return {
            "convention": SPARSIFICATION_CONVENTION,
            "count": len(scored),
            "mean_ause": math.fsum(s.ause for s in scored) / len(scored) if scored else None,
            "mean_ause_random": math.fsum(s.ause_random for s in scored) / len(scored) if scored else None,
            "mean_ause_ratio": math.fsum(ratios) / len(ratios) if ratios else None,
            "pooled": None if self.pooled is None else self.pooled.as_dict(),
            "score_rank_correlation": self.score_rank,
            "score_rank_count": sum(1 for item in self.items if item.score is not None),
        }

    @property
    def mean_whole(self) -> MattingScores:
        return mean_scores(item.whole for item in self.items)

    @property
    def mean_unknown(self) -> MattingScores | None:
        scored = [item.unknown for item in self.items if item.unknown is not None]
        return mean_scores(scored) if scored else None

    @property
    def complete(self) -> bool:
        """True when every input found its partner (and its trimap, when trimaps were given)."""
        return not any(self.unmatched.values())

    def as_dict(self) -> dict[str, Any]:
        unknown = self.mean_unknown
        return {
            "pred": self.pred,
            "gt": self.gt,
            "trimap": self.trimap,
            "kind": self.kind,
            "count": len(self.items),
            "conventions": {"whole": WHOLE_CONVENTION, "unknown": UNKNOWN_CONVENTION, "dtssd": DTSSD_CONVENTION},
            "mean": {
                "whole": self.mean_whole.as_dict(),
                "unknown": None if unknown is None else unknown.as_dict(),
                "unknown_count": sum(1 for item in self.items if item.unknown is not None),
            },
            "dtssd": self.dtssd,
            "dtssd_pairs": self.dtssd_pairs,
            "uncertainty": self.uncertainty_dict(),
            "items": [item.as_dict() for item in self.items],
            "unmatched": self.unmatched,
            "notes": self.notes,
            "timings": {"read_s": round(self.read_seconds, 4), "metrics_s": round(self.metrics_seconds, 4)},
        }

    def to_markdown(self) -> str:
        """Tables (rows per item + the mean), each under a caption line naming its convention."""
        lines = [f"Scores: {WHOLE_CONVENTION}.", "", scores_table_header("item")]
        for item in self.items:
            lines.append(format_scores_row(item.name, item.whole))
        lines.append(format_scores_row(f"**mean ({len(self.items)})**", self.mean_whole))
        unknown = self.mean_unknown
        if unknown is not None:
            scored = [item for item in self.items if item.unknown is not None]
            lines += ["", f"Scores: {UNKNOWN_CONVENTION}.", "", scores_table_header("item")]
            for item in scored:
                assert item.unknown is not None
                lines.append(format_scores_row(item.name, item.unknown))
            lines.append(format_scores_row(f"**mean ({len(scored)})**", unknown))
        if self.dtssd is not None:
            lines += ["", f"dtSSD: {self.dtssd:.3f} ({DTSSD_CONVENTION}, {self.dtssd_pairs} pairs)."]
        lines += self._uncertainty_markdown()
        for side, names in self.unmatched.items():
            if names:
                what = "without a trimap" if side == "trimap" else f"only in {side.upper()}"
                lines += ["", f"Unmatched ({what}): {', '.join(names)}."]
        for note in self.notes:
            lines += ["", f"Note: {note}"]
        return "\n".join(lines)


    def _uncertainty_markdown(self) -> list[str]:
        scored = [item for item in self.items if item.sparsification is not None]
        lines: list[str] = []
        if scored:
            lines += ["", f"Uncertainty: {SPARSIFICATION_CONVENTION}.", ""]
            lines += ["| item | MSE | AUSE | AUSE random | ratio |", "|---|---:|---:|---:|---:|"]
            rows = [(item.name, item.sparsification) for item in scored]
            if self.pooled is not None:
                rows.append((f"**pooled ({len(scored)})**", self.pooled))
            for name, s in rows:
                assert s is not None
                lines.append(f"| {name} | {s.mse:.2f} | {s.ause:.4f} | {s.ause_random:.4f} | {s.ratio:.3f} |")
        if self.score_rank is not None:
            rank = f"{self.score_rank:.3f}"
            lines += ["", f"Rank correlation of the header's {SCORE_ATTRIBUTE} with the true MSE: {rank}."]
        return lines


def scores_table_header(first: str = "item", extra: tuple[str, ...] = ()) -> str:
    """The Markdown header (two lines) of a score table: ``| first | MSE | MAD | SAD | Conn | Grad |``."""
    titles = [_COLUMN_TITLES[c] for c in METRIC_COLUMNS] + list(extra)
    return "| " + " | ".join([first, *titles]) + " |\n|---|" + "---:|" * len(titles)


def format_scores_row(label: str, scores: MattingScores, extra: tuple[str, ...] = ()) -> str:
    """One Markdown row in the order of :func:`scores_table_header`, two decimals."""
    values = scores.as_dict()
    cells = [_number(values[c]) for c in METRIC_COLUMNS] + list(extra)
    return "| " + " | ".join([label, *cells]) + " |"


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2f}"


# --------------------------------------------------------------------------- evaluate


def evaluate(
    pred: str,
    gt: str,
    trimap: str | None = None,
    *,
    pred_channel: str = "A",
    uncertainty_channel: str = UNCERTAINTY_CHANNEL,
) -> EvalReport:
    """Score PRED against GT (files, folders or sequences; see the module docstring).

    Raises :class:`~vfxmatte.errors.InputError` for unreadable or mismatched files and
    :class:`~vfxmatte.errors.UsageError` for inputs that cannot be paired.  Names found on
    one side only are listed in ``report.unmatched``, not raised.
    """
    pred_source = _source(os.fspath(pred), "prediction")
    gt_source = _source(os.fspath(gt), "ground-truth")
    pairs, pred_only, gt_only = _pair(pred_source, gt_source)
    missing_trimaps: list[str] = []
    if trimap is not None:
        missing_trimaps = _attach_trimaps(pairs, _source(os.fspath(trimap), "trimap"), gt_source)
    report = EvalReport(
        pred=pred_source.text,
        gt=gt_source.text,
        trimap=None if trimap is None else os.fspath(trimap),
        kind=gt_source.kind,
        items=[],
        unmatched={"pred": pred_only, "gt": gt_only, "trimap": missing_trimaps},
    )
    sequence = gt_source.kind == "sequence"
    previous: tuple[int, np.ndarray, np.ndarray] | None = None
    pair_errors: list[float] = []
    pooled_errors: list[np.ndarray] = []
    pooled_maps: list[np.ndarray] = []
    scores: list[tuple[float, float]] = []
    for pair, p, g, region, u, score in _read_pairs(pairs, pred_channel, uncertainty_channel, report):
        started = time.perf_counter()
        whole = evaluate_whole(p, g)
        unknown = evaluate_unknown(p, g, region) if region is not None else None
        spars = None
        if u is not None:
            error = squared_error(p, g)
            spars = sparsification_of_errors(error, u)
            stride = max(1, math.ceil(error.size * len(pairs) / POOLED_PIXELS))
            pooled_errors.append(error.ravel()[::stride].astype(np.float32))
            pooled_maps.append(np.asarray(u, dtype=np.float32).ravel()[::stride])
        if score is not None:
            scores.append((score, whole.mse))
        if sequence and pair.frame is not None:
            if previous is not None and previous[0] == pair.frame - 1:
                pair_errors.append(dtssd([previous[1], p], [previous[2], g]))
            previous = (pair.frame, p, g)
        seconds = time.perf_counter() - started
        report.metrics_seconds += seconds
        report.items.append(
            EvalItem(pair.name, pair.pred, pair.gt, pair.trimap, whole, unknown, pair.frame, seconds, spars, score)
        )
    if pooled_errors:
        report.pooled = sparsification_of_errors(np.concatenate(pooled_errors), np.concatenate(pooled_maps))
    if len(scores) >= 3:
        rank = rank_correlation([s for s, _ in scores], [m for _, m in scores])
        report.score_rank = None if math.isnan(rank) else rank
    if pair_errors:
        report.dtssd = math.fsum(pair_errors) / len(pair_errors)
        report.dtssd_pairs = len(pair_errors)
    elif sequence and len(report.items) >= 2:
        report.notes.append("dtSSD not computed: no two paired frames are consecutive")
    return report


def _uncertainty_plane(image: _Image, channel: str) -> _Plane | None:
    if channel not in image.channels:
        return None
    array = np.ascontiguousarray(image.pixels[:, :, image.channels.index(channel)], dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError(f"{image.path}: {channel} holds NaN or infinite values")
    return _Plane(image.path, array, image.data, image.display)


def _read_pairs(
    pairs: list[_Pair], pred_channel: str, uncertainty_channel: str, report: EvalReport
) -> Iterator[tuple[_Pair, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, float | None]]:
    """Read each pair (with its trimap and the prediction's uncertainty) aligned, one at a time, timing the reads."""
    for pair in pairs:
        started = time.perf_counter()
        image = _read_image(pair.pred, "prediction")
        p_plane = _matte_plane(pair.pred, "prediction", pred_channel, image)
        g_plane = _matte_plane(pair.gt, "ground truth", None)
        report.notes += p_plane.notes + g_plane.notes
        p, g = _align(p_plane, g_plane, "prediction", "ground truth")
        u_plane = _uncertainty_plane(image, uncertainty_channel)
        u = _align(u_plane, g_plane, "uncertainty", "ground truth")[0] if u_plane is not None else None
        region = None
        if pair.trimap is not None:
            t_plane = _trimap_plane(pair.trimap)
            _, region = _align(g_plane, t_plane, "ground truth", "trimap")
        report.read_seconds += time.perf_counter() - started
        yield pair, p, g, region, u, image.score


# --------------------------------------------------------------------------- CLI glue


def add_eval_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``vfxmatte eval`` on an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="matting metrics (SAD, MSE, MAD, Grad, Conn; dtSSD) of predicted mattes against ground truth",
        description="Score PRED against GT: two files, two folders (paired by file stem) or two sequence "
        "patterns (paired by frame number).  Whole image (P3M convention) always; the trimap's unknown "
        "region (DIM / GCA convention) with --trimap.",
    )
    p.add_argument("pred", help="predicted matte: a file, a folder, or a pattern such as matte.####.exr")
    p.add_argument("gt", help="ground-truth matte: a file, a folder, or a pattern such as gt.####.png")
    p.add_argument("--trimap", help="trimap file (applies to every pair), folder (by stem) or pattern (by frame)")
    p.add_argument("--pred-channel", default="A", help="channel of the predictions holding the matte (default A)")
    p.add_argument(
        "--uncertainty-channel",
        default=UNCERTAINTY_CHANNEL,
        help=f"prediction channel scored by sparsification / AUSE where present (default {UNCERTAINTY_CHANNEL})",
    )
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON (the default)")
    output.add_argument("--markdown", action="store_true", help="print Markdown tables instead of JSON")
    return p


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``vfxmatte eval``: JSON (DESIGN §4) or, with ``--markdown``, tables on stdout.

    Exit status 0 when every input paired, 1 when some were left unmatched (listed on stderr).
    """
    report = evaluate(
        args.pred, args.gt, args.trimap, pred_channel=args.pred_channel, uncertainty_channel=args.uncertainty_channel
    )
    if args.markdown:
        print(report.to_markdown())
    else:
        print(json.dumps(report.as_dict(), indent=2))
    for side, names in report.unmatched.items():
        if names:
            what = "have no trimap" if side == "trimap" else f"are only in {side.upper()}"
            print(f"warning: {len(names)} item(s) {what}: {', '.join(names)}", file=sys.stderr)
    return 0 if report.complete else 1
