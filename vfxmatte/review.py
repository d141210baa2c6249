"""The uncertainty review: a static HTML page, a contact sheet and the per-frame scores.

``build_review`` reads the multichannel EXRs ``vfxmatte matte`` writes (premultiplied
``R G B``, ``A``, ``uncertainty.Y``, header ``vfxmatte:uncertainty``) and writes, into one
folder that opens from disk with no server::

    index.html          thumbnails (comp over a checkerboard, alpha, uncertainty heat map),
                        the score plot with the flag threshold, the flagged frames with
                        crops of their most uncertain regions, a large view on click
    contact_sheet.png   every frame's comp and heat map, flagged frames outlined
    scores.csv/.json    the per-frame scores (the header values), flags and threshold
    plot.png            the score plot
    thumbs/             cached images and ``manifest.json``

Thumbnails are display-referred: the comp is made in linear light and converted to sRGB
with OpenColorIO.  Heat maps use matplotlib's perceptually uniform ``inferno`` on a fixed
scale (``heat_max``) so frames compare with each other.  Images are cached per frame and
regenerated only when the EXR's size or modification time (or the render settings) change,
so re-running the review on a long shot costs a directory listing and a page write.

Flag threshold: by default ``threshold_factor`` (1.5) × the shot's median score, so a frame
is flagged when its edge band is markedly less certain than the rest of the shot whatever
the model's overall calibration; an absolute ``threshold`` overrides it.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import statistics
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import OpenImageIO as oiio

from vfxmatte.errors import FrameError, InputError, OutputError, UsageError
from vfxmatte.io import color
from vfxmatte.io.exr import configure_limits, oiio_error, read_channels
from vfxmatte.io.sequence import FrameSequence, format_ranges

#: Bumped whenever the cached images would come out differently.
CACHE_VERSION = 1
MATTE_CHANNELS = ["R", "G", "B", "A", "uncertainty.Y"]
SCORE_ATTRIBUTE = "vfxmatte:uncertainty"
COLORMAP = "inferno"
# Checkerboard greys in linear light (≈ 0.43 and 0.60 once sRGB-encoded).
_CHECKER_LINEAR = (0.155, 0.32)

FrameStatus = Literal["generated", "cached", "failed"]


@dataclass(frozen=True)
class ReviewSettings:
    """Everything that changes the cached images (part of the cache key)."""

    thumb_size: int = 256  # long side of the grid thumbnails, pixels
    preview_size: int = 960  # long side of the large view
    crop_size: int = 240  # displayed size of one crop panel
    crops: int = 3  # most uncertain regions kept per frame
    heat_max: float = 0.25  # uncertainty (ensemble std) mapped to the top of the colour map


@dataclass
class FrameReview:
    """One frame on the page: its score, flag and the images made for it (relative paths)."""

    frame: int
    path: str
    score: float
    flagged: bool = False
    width: int = 0
    height: int = 0
    colorspace: str = color.LINEAR_REC709
    images: dict[str, str] = field(default_factory=dict)  # comp/alpha/heat (+ _large)
    crops: list[dict[str, Any]] = field(default_factory=list)  # image, x, y, size, mean


@dataclass
class ReviewResult:
    """What :func:`build_review` wrote and found."""

    pattern: str
    directory: Path
    index_html: Path
    contact_sheet: Path
    scores_csv: Path
    scores_json: Path
    plot: Path
    threshold: float
    threshold_rule: str
    median: float
    frames: list[FrameReview]
    missing: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    generated: int = 0
    cached: int = 0

    @property
    def flagged(self) -> list[int]:
        return [f.frame for f in self.frames if f.flagged]

    def as_dict(self) -> dict[str, object]:
        return {
            "pattern": self.pattern,
            "index_html": str(self.index_html),
            "contact_sheet": str(self.contact_sheet),
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "median": self.median,
            "flagged": self.flagged,
            "frames": [
                {"frame": f.frame, "score": f.score, "flagged": f.flagged, "path": f.path} for f in self.frames
            ],
            "missing": self.missing,
            "errors": self.errors,
            "images": {"generated": self.generated, "cached": self.cached},
        }


def default_review_dir(output_pattern: str | os.PathLike[str]) -> Path:
    """Where a shot's review goes by convention: ``<output dir>/review``."""
    text = os.fspath(output_pattern)
    directory = text if os.path.isdir(text) else os.path.dirname(text) or "."
    return Path(directory) / "review"


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


def read_score(path: str) -> tuple[float, str]:
    """The header's ``vfxmatte:uncertainty`` score and ``vfxmatte:colorspace`` of one matte EXR."""
    configure_limits()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise FrameError(f"{path}: cannot open: {oiio_error()}")
    try:
        spec = inp.spec()
        value = spec.getattribute(SCORE_ATTRIBUTE)
        space = spec.getattribute("vfxmatte:colorspace")
    finally:
        inp.close()
    if value is None:
        raise FrameError(f"{path}: no {SCORE_ATTRIBUTE} header; not a vfxmatte output")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path}: {SCORE_ATTRIBUTE} header {value!r} is not a number") from None
    return score, space if isinstance(space, str) and space else color.LINEAR_REC709


# -- images -------------------------------------------------------------------------


def _downsample(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Area-average (H, W, C) float32 to ``long_side`` on its longer side (never up)."""
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return pixels
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    # Integer box averaging first (cheap in numpy), then OIIO's filtered resize to the exact size.
    k = min(height // out_h, width // out_w) // 2
    if k >= 2:
        h, w = (height // k) * k, (width // k) * k
        pixels = pixels[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3), dtype=np.float32)
    buf = oiio.ImageBuf(np.ascontiguousarray(pixels, dtype=np.float32))
    channels = pixels.shape[2]
    out = oiio.ImageBufAlgo.resize(buf, roi=oiio.ROI(0, out_w, 0, out_h, 0, 1, 0, channels))
    return np.asarray(out.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(out_h, out_w, channels)


def _checker(height: int, width: int, square: int) -> np.ndarray:
    ys, xs = np.indices((height, width))
    dark, light = _CHECKER_LINEAR
    return np.where(((ys // square) + (xs // square)) % 2 == 0, dark, light).astype(np.float32)


def comp_display(matte: np.ndarray, colorspace: str, square: int = 8) -> np.ndarray:
    """Premultiplied RGBA (+ anything after) → display-referred sRGB uint8 comp over a checkerboard.

    The over is done in linear light; OpenColorIO encodes the result for an sRGB display.
    """
    rgb, alpha = matte[..., :3], np.clip(matte[..., 3], 0.0, 1.0)
    backdrop = _checker(alpha.shape[0], alpha.shape[1], square)[..., None]
    comp = rgb + (1.0 - alpha[..., None]) * backdrop
    return _to_uint8(color.to_network(comp, colorspace))


def alpha_display(alpha: np.ndarray) -> np.ndarray:
    """Alpha as an 8-bit grey image (coverage, not colour: no transfer function applied)."""
    return _to_uint8(np.clip(alpha, 0.0, 1.0))


def _colormap_lut() -> np.ndarray:
    import matplotlib

    lut = matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]
    return _to_uint8(np.asarray(lut, dtype=np.float32))


def heat_display(uncertainty: np.ndarray, heat_max: float) -> np.ndarray:
    """Uncertainty through the ``inferno`` map, 0 → black, ``heat_max`` and above → pale yellow."""
    index = np.clip(np.nan_to_num(uncertainty) / heat_max, 0.0, 1.0) * 255.0
    result: np.ndarray = _colormap_lut()[np.rint(index).astype(np.uint8)]
    return result


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _save(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    pil = Image.fromarray(image)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.suffix == ".jpg":
            pil.save(tmp, format="JPEG", quality=88)
        else:
            pil.save(tmp, format="PNG", optimize=False, compress_level=6)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def uncertain_regions(
    uncertainty: np.ndarray, window: int, count: int, min_fraction: float = 0.25
) -> list[tuple[int, int, float]]:
    """Top-left corners (x, y) and mean of the ``count`` most uncertain ``window``² squares.

    Greedy: take the square of highest mean uncertainty, suppress every square overlapping
    it by more than half, repeat; squares weaker than ``min_fraction`` of the best are dropped.
    """
    from scipy import ndimage

    height, width = uncertainty.shape
    window = max(1, min(window, height, width))
    means = ndimage.uniform_filter(np.nan_to_num(uncertainty).astype(np.float64), size=window, mode="constant")
    # Centres whose square lies inside the image.
    half = window // 2
    valid = np.full(means.shape, -np.inf)
    y0, y1 = half, height - (window - half) + 1
    x0, x1 = half, width - (window - half) + 1
    valid[y0:y1, x0:x1] = means[y0:y1, x0:x1]
    regions: list[tuple[int, int, float]] = []
    best = None
    for _ in range(count):
        cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
        value = float(valid[cy, cx])
        if not math.isfinite(value) or value <= 0.0:
            break
        best = value if best is None else best
        if value < min_fraction * best:
            break
        regions.append((int(cx) - half, int(cy) - half, value))
        valid[max(0, cy - half) : cy + half + 1, max(0, cx - half) : cx + half + 1] = -np.inf
    return regions


def render_frame(path: str, frame: int, out_dir: Path, settings: ReviewSettings) -> dict[str, Any]:
    """Read one matte EXR and write its thumbnails, large views and crops; the manifest entry."""
    score, colorspace = read_score(path)
    matte = read_channels(path, MATTE_CHANNELS)
    height, width = matte.shape[:2]
    stem = f"f{frame}"
    images: dict[str, str] = {}
    for kind, size in (("", settings.thumb_size), ("_large", settings.preview_size)):
        small = _downsample(matte, size)
        square = max(4, round(max(small.shape[:2]) / 32))
        outputs = {
            "comp": (comp_display(small, colorspace, square), "jpg"),
            "alpha": (alpha_display(small[..., 3]), "png"),
            "heat": (heat_display(small[..., 4], settings.heat_max), "jpg"),
        }
        for name, (image, ext) in outputs.items():
            relative = f"thumbs/{stem}.{name}{kind}.{ext}"
            _save(image, out_dir / relative)
            images[name + kind] = relative
    crops = []
    window = max(32, min(height, width, round(max(height, width) / 8)))
    for index, (x, y, mean) in enumerate(uncertain_regions(matte[..., 4], window, settings.crops)):
        region = _downsample(matte[y : y + window, x : x + window], settings.crop_size)
        square = max(4, round(region.shape[0] / 16))
        panels = [
            comp_display(region, colorspace, square),
            np.repeat(alpha_display(region[..., 3])[..., None], 3, axis=2),
            heat_display(region[..., 4], settings.heat_max),
        ]
        gap = np.full((region.shape[0], 4, 3), 255, np.uint8)
        relative = f"thumbs/{stem}.crop{index}.jpg"
        _save(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1), out_dir / relative)
        crops.append({"image": relative, "x": x, "y": y, "size": window, "mean": round(mean, 6)})
    return {
        "score": score,
        "colorspace": colorspace,
        "width": width,
        "height": height,
        "images": images,
        "crops": crops,
    }


def _render_job(job: tuple[str, int, str, ReviewSettings]) -> tuple[int, dict[str, Any] | str]:
    """Process-pool entry: a manifest entry, or the one-line error of a frame that failed."""
    path, frame, out_dir, settings = job
    try:
        return frame, render_frame(path, frame, Path(out_dir), settings)
    except FrameError as exc:
        return frame, str(exc)


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


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from exc


# -- the review ---------------------------------------------------------------------


def choose_threshold(
    scores: list[float], threshold: float | None = None, factor: float = 1.5
) -> tuple[float, str]:
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
    _write_text(manifest_path, manifest_text)
    if not entries:
        first = next(iter(errors.values()), f"{sequence.pattern}: no readable frame")
        raise InputError(f"no readable matte frame; first error: {first}")

    frames = [
        FrameReview(
            frame=frame,
            path=sequence.path(frame),
            score=float(e["score"]),
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
    )
    axes = write_plot(result, result.plot)
    write_contact_sheet(result, result.contact_sheet, settings)
    write_scores(result)
    _write_text(result.index_html, render_html(result, axes, settings))
    return result


def _run_jobs(
    todo: list[tuple[str, int, str, ReviewSettings]], jobs: int
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    if jobs == 1 or len(todo) < 2:
        yield from map(_render_job, todo)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        yield from pool.map(_render_job, todo, chunksize=4)


def _remove_stale(directory: Path, old: dict[str, dict[str, Any]], new: dict[int, dict[str, Any]]) -> None:
    """Delete cached images of frames no longer in the shot (or re-rendered with fewer crops)."""
    keep = {f for e in new.values() for f in list(e["images"].values()) + [c["image"] for c in e["crops"]]}
    for entry in old.values():
        for relative in list(entry.get("images", {}).values()) + [c["image"] for c in entry.get("crops", [])]:
            if relative not in keep:
                (directory / relative).unlink(missing_ok=True)


# -- outputs ------------------------------------------------------------------------


def write_scores(result: ReviewResult) -> None:
    """``scores.csv`` (frame, score, flagged, path) and ``scores.json`` (that plus the threshold)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "uncertainty", "flagged", "path"])
    for f in result.frames:
        writer.writerow([f.frame, repr(f.score), int(f.flagged), f.path])
    _write_text(result.scores_csv, buffer.getvalue())
    _write_text(result.scores_json, json.dumps(result.as_dict(), indent=2) + "\n")


def write_plot(result: ReviewResult, path: Path) -> dict[str, float]:
    """The per-frame score plot with the threshold; returns the axes' place in the image.

    The returned fractions (``left``/``right`` of the image width) and frame limits let the
    page turn a click on the plot into a frame.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frames = [f.frame for f in result.frames]
    scores = [f.score for f in result.frames]
    fig = Figure(figsize=(10, 2.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(frames, scores, color="#3b6ea5", linewidth=1.2, marker="o" if len(frames) <= 200 else None, markersize=3)
    flagged = [(f.frame, f.score) for f in result.frames if f.flagged]
    if flagged:
        ax.scatter([x for x, _ in flagged], [y for _, y in flagged], color="#d62728", s=22, zorder=3, label="flagged")
    ax.axhline(result.threshold, color="#d62728", linestyle="--", linewidth=1, label="threshold")
    ax.axhline(result.median, color="#7f7f7f", linestyle=":", linewidth=1, label="median")
    pad = 0.5 if len(frames) < 2 else 0.0
    ax.set_xlim(frames[0] - pad - 0.5, frames[-1] + pad + 0.5)
    ax.set_ylim(bottom=0.0, top=max(max(scores), result.threshold) * 1.15 or 1.0)
    ax.set_xlabel("frame")
    ax.set_ylabel("edge-band uncertainty")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", frameon=False, ncols=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, format="png")
    box = ax.get_position()
    xmin, xmax = ax.get_xlim()
    return {"left": float(box.x0), "right": float(box.x1), "xmin": float(xmin), "xmax": float(xmax)}


def write_contact_sheet(result: ReviewResult, path: Path, settings: ReviewSettings, max_width: int = 4096) -> None:
    """Every frame's comp and heat thumbnails side by side, labelled, flagged frames outlined red."""
    from PIL import Image, ImageDraw, ImageOps

    count = len(result.frames)
    first = result.frames[0]
    aspect = first.height / max(1, first.width)
    columns = max(1, min(count, math.ceil(math.sqrt(count * 1.5))))
    tile_w = max(48, min(settings.thumb_size, (max_width // columns - 12) // 2))
    tile_h = max(1, round(tile_w * aspect))
    label_h, pad = 16, 6
    cell_w, cell_h = 2 * tile_w + 2 * pad, tile_h + label_h + 2 * pad
    rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, f in enumerate(result.frames):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        for offset, key in ((0, "comp"), (tile_w, "heat")):
            with Image.open(result.directory / f.images[key]) as tile:
                fitted = ImageOps.pad(tile.convert("RGB"), (tile_w, tile_h), color=(24, 24, 24))
            sheet.paste(fitted, (x + pad + offset, y + pad))
        if f.flagged:
            draw.rectangle([x + 2, y + 2, x + cell_w - 3, y + cell_h - 3], outline=(214, 39, 40), width=3)
        text_colour = (255, 120, 120) if f.flagged else (220, 220, 220)
        draw.text((x + pad, y + pad + tile_h + 2), f"{f.frame}  {f.score:.4f}", fill=text_colour)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def _gradient_css() -> str:
    lut = _colormap_lut()
    stops = ", ".join(f"rgb({r},{g},{b}) {i / 15 * 100:.0f}%" for i, (r, g, b) in enumerate(lut[:: 255 // 15][:16]))
    return f"linear-gradient(to right, {stops})"


def render_html(result: ReviewResult, axes: dict[str, float], settings: ReviewSettings) -> str:
    """The page: header, plot, flagged frames with crops, every frame's thumbnails, a viewer."""
    esc = html.escape
    data = {
        "axes": axes,
        "frames": [
            {
                "frame": f.frame,
                "score": f.score,
                "flagged": f.flagged,
                "path": os.path.basename(f.path),
                "size": [f.width, f.height],
                "images": f.images,
                "crops": f.crops,
            }
            for f in result.frames
        ],
    }
    payload = json.dumps(data).replace("</", "<\\/")
    flagged = sorted((f for f in result.frames if f.flagged), key=lambda f: -f.score)

    def card(f: FrameReview) -> str:
        imgs = "".join(
            f'<img loading="lazy" src="{esc(f.images[k])}" alt="{k} {f.frame}" width="{settings.thumb_size}">'
            for k in ("comp", "alpha", "heat")
        )
        cls = "card flagged" if f.flagged else "card"
        return (
            f'<figure class="{cls}" id="frame-{f.frame}" data-frame="{f.frame}" tabindex="0">'
            f'<div class="thumbs">{imgs}</div>'
            f"<figcaption><b>{f.frame}</b> <span>{f.score:.5f}</span>{' ⚑ flagged' if f.flagged else ''}"
            "</figcaption></figure>"
        )

    def flagged_row(f: FrameReview) -> str:
        crops = "".join(
            f'<img loading="lazy" class="crop" src="{esc(c["image"])}" '
            f'title="region x={c["x"]} y={c["y"]} size {c["size"]} px, mean uncertainty {c["mean"]:.4f}" '
            f'alt="crop {f.frame}">'
            for c in f.crops
        )
        return (
            f'<div class="flag-row" data-frame="{f.frame}" tabindex="0">'
            f'<div class="flag-head"><b>{f.frame}</b><span>{f.score:.5f}</span></div>'
            f'<img loading="lazy" src="{esc(f.images["comp"])}" alt="comp {f.frame}" width="{settings.thumb_size}">'
            f"{crops or '<i>no uncertain region</i>'}</div>"
        )

    notes = []
    if result.missing:
        notes.append(f"missing on disk: frames {format_ranges(result.missing)}")
    notes.extend(result.errors)
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    flagged_html = "".join(flagged_row(f) for f in flagged) or "<p>No frame is above the threshold.</p>"
    return _PAGE.format(
        title=esc(os.path.basename(result.pattern)),
        pattern=esc(result.pattern),
        count=len(result.frames),
        first=result.frames[0].frame,
        last=result.frames[-1].frame,
        flagged_count=len(flagged),
        threshold=f"{result.threshold:.5f}",
        rule=esc(result.threshold_rule),
        heat_max=f"{settings.heat_max:g}",
        gradient=_gradient_css(),
        notes=f'<ul class="notes">{notes_html}</ul>' if notes else "",
        flagged_html=flagged_html,
        cards="".join(card(f) for f in result.frames),
        payload=payload,
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vfxmatte review — {title}</title>
<style>
body {{ margin: 0; padding: 16px 24px; background: #1b1b1b; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }}
a {{ color: #8cb4ff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 8px; }}
.meta span {{ margin-right: 18px; }}
#plot {{ max-width: 100%; background: #fff; cursor: pointer; display: block; }}
.legend {{ display: inline-flex; align-items: center; gap: 6px; }}
.legend i {{ display: inline-block; width: 160px; height: 10px; background: {gradient}; }}
.flag-row {{ display: flex; align-items: flex-start; gap: 8px; padding: 6px; margin-bottom: 6px;
  background: #2a2020; border-left: 4px solid #d62728; cursor: pointer; overflow-x: auto; }}
.flag-head {{ display: flex; flex-direction: column; min-width: 90px; }}
.flag-row img {{ height: 120px; width: auto; }}
#grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
.card {{ margin: 0; padding: 6px; background: #262626; border: 2px solid transparent; cursor: pointer; }}
.card.flagged {{ border-color: #d62728; }}
.card:hover, .card:focus, .flag-row:hover {{ outline: 2px solid #8cb4ff; }}
.thumbs {{ display: flex; gap: 3px; }}
.thumbs img {{ width: 120px; height: auto; background: #111; }}
figcaption span {{ color: #aaa; margin-left: 6px; }}
.card.flagged figcaption {{ color: #ff7878; }}
.notes {{ color: #ffb45a; }}
#viewer {{ position: fixed; inset: 0; background: rgba(0,0,0,.92); display: none; flex-direction: column;
  padding: 16px; overflow: auto; z-index: 10; }}
#viewer.open {{ display: flex; }}
#viewer .bar {{ display: flex; gap: 12px; align-items: center; margin-bottom: 10px; }}
#viewer button {{ background: #333; color: #eee; border: 1px solid #555; padding: 4px 10px; cursor: pointer; }}
#viewer .large {{ display: flex; gap: 8px; flex-wrap: wrap; }}
#viewer .large img {{ max-width: calc(33vw - 24px); height: auto; background: #111; }}
#viewer .crops img {{ margin: 8px 8px 0 0; max-width: 100%; }}
</style>
</head>
<body>
<h1>Uncertainty review — {title}</h1>
<div class="meta"><span>{pattern}</span><span>{count} frames ({first}–{last})</span>
<span><b>{flagged_count}</b> flagged: score &gt; {threshold} ({rule})</span></div>
<div class="meta"><a href="contact_sheet.png">contact sheet</a> · <a href="scores.csv">scores.csv</a> ·
<a href="scores.json">scores.json</a> · <span class="legend">heat map 0 <i></i> {heat_max}+ (ensemble std)</span></div>
{notes}
<h2>Edge-band uncertainty per frame</h2>
<img id="plot" src="plot.png" alt="per-frame uncertainty score with the flag threshold">
<h2>Flagged frames ({flagged_count}) — most uncertain regions: comp | alpha | heat</h2>
<div id="flagged">{flagged_html}</div>
<h2>All frames — comp over checkerboard | alpha | uncertainty</h2>
<div id="grid">{cards}</div>
<div id="viewer" role="dialog" aria-modal="true">
<div class="bar"><button id="prev">◀ prev</button><button id="next">next ▶</button>
<button id="close">close ✕</button><b id="viewer-title"></b></div>
<div class="large"><img id="large-comp" alt="comp"><img id="large-alpha" alt="alpha">
<img id="large-heat" alt="heat"></div>
<div class="crops" id="viewer-crops"></div>
</div>
<script id="review-data" type="application/json">{payload}</script>
<script>{script}</script>
</body>
</html>
"""

_SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const frames = data.frames;
  const byFrame = new Map(frames.map((f, i) => [f.frame, i]));
  const viewer = document.getElementById("viewer");
  let current = -1;

  function show(index) {
    if (index < 0 || index >= frames.length) return;
    current = index;
    const f = frames[index];
    for (const kind of ["comp", "alpha", "heat"]) {
      document.getElementById("large-" + kind).src = f.images[kind + "_large"];
    }
    document.getElementById("viewer-title").textContent =
      "frame " + f.frame + " — score " + f.score.toFixed(5) + (f.flagged ? " — flagged" : "") +
      " — " + f.path + " (" + f.size[0] + "×" + f.size[1] + ")";
    const crops = document.getElementById("viewer-crops");
    crops.replaceChildren(...f.crops.map((c) => {
      const img = document.createElement("img");
      img.src = c.image;
      img.title = "x=" + c.x + " y=" + c.y + " size " + c.size + " px, mean " + c.mean.toFixed(4);
      return img;
    }));
    viewer.classList.add("open");
    if (location.hash !== "#" + f.frame) history.replaceState(null, "", "#" + f.frame);
  }
  function close() {
    viewer.classList.remove("open");
    current = -1;
    history.replaceState(null, "", location.pathname);
  }
  function openFrame(frame) {
    const index = byFrame.get(frame);
    if (index !== undefined) show(index);
  }
  document.querySelectorAll("[data-frame]").forEach((el) => {
    el.addEventListener("click", () => openFrame(Number(el.dataset.frame)));
    el.addEventListener("keydown", (e) => { if (e.key === "Enter") openFrame(Number(el.dataset.frame)); });
  });
  document.getElementById("plot").addEventListener("click", (e) => {
    const rect = e.currentTarget.getBoundingClientRect();
    const a = data.axes;
    const fx = (e.clientX - rect.left) / rect.width;
    const value = a.xmin + (fx - a.left) / (a.right - a.left) * (a.xmax - a.xmin);
    let best = 0;
    frames.forEach((f, i) => { if (Math.abs(f.frame - value) < Math.abs(frames[best].frame - value)) best = i; });
    show(best);
  });
  document.getElementById("close").addEventListener("click", close);
  document.getElementById("prev").addEventListener("click", () => show(current - 1));
  document.getElementById("next").addEventListener("click", () => show(current + 1));
  viewer.addEventListener("click", (e) => { if (e.target === viewer) close(); });
  document.addEventListener("keydown", (e) => {
    if (current < 0) return;
    if (e.key === "Escape") close();
    else if (e.key === "ArrowLeft") show(current - 1);
    else if (e.key === "ArrowRight") show(current + 1);
  });
  const initial = Number(location.hash.slice(1));
  if (location.hash.length > 1 && byFrame.has(initial)) openFrame(initial);
})();
"""


# -- command line -------------------------------------------------------------------


def add_review_parser(sub: Any) -> Any:
    """Register ``vfxmatte review`` on an argparse subparsers object."""
    p = sub.add_parser(
        "review",
        help="HTML review page, contact sheet and per-frame scores of a shot's matte EXRs",
        description="Write a static review page (opens from disk) of the mattes vfxmatte wrote: thumbnails, "
        "the per-frame uncertainty plot, flagged frames with their most uncertain regions.  A frame is flagged "
        "when its score exceeds --threshold, or by default --threshold-factor × the shot's median score.",
    )
    p.add_argument("output", help="the matte EXRs: a pattern such as out/plate.####.exr, or their folder")
    p.add_argument("-o", "--out-dir", help="review folder (default: <output dir>/review)")
    p.add_argument("--threshold", type=float, help="flag frames whose score exceeds this absolute value")
    p.add_argument(
        "--threshold-factor", type=float, default=1.5, help="flag above this × the shot median (default 1.5)"
    )
    p.add_argument("--heat-max", type=float, default=0.25, help="uncertainty at the top of the heat map (0.25)")
    p.add_argument("--thumb-size", type=int, default=256, help="long side of thumbnails in pixels (256)")
    p.add_argument("--preview-size", type=int, default=960, help="long side of the large view in pixels (960)")
    p.add_argument("--jobs", type=int, default=1, help="frames rendered in parallel processes (default 1)")
    p.add_argument("--json", action="store_true", help="print the scores and paths as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cmd_review(args: Any) -> int:
    """Run ``vfxmatte review``; exit 0, or 1 when some frames could not be read."""
    import sys

    for name in ("heat_max", "thumb_size", "preview_size"):
        if getattr(args, name) <= 0:
            raise UsageError(f"review: --{name.replace('_', '-')} must be positive")
    settings = ReviewSettings(thumb_size=args.thumb_size, preview_size=args.preview_size, heat_max=args.heat_max)
    bar: Any = None
    if not args.quiet and not args.json:
        from tqdm import tqdm

        bar = tqdm(unit="frame", file=sys.stderr, dynamic_ncols=True)

    def on_frame(frame: int, status: FrameStatus) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{frame} {status}")
            bar.update(1)

    try:
        result = build_review(
            args.output,
            args.out_dir,
            threshold=args.threshold,
            threshold_factor=args.threshold_factor,
            settings=settings,
            jobs=args.jobs,
            on_frame=on_frame,
        )
    finally:
        if bar is not None:
            bar.close()
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"{len(result.frames)} frames, {len(result.flagged)} flagged "
            f"(threshold {result.threshold:.5f}: {result.threshold_rule}); "
            f"images {result.generated} generated, {result.cached} cached → {result.index_html}"
        )
    return 1 if result.errors else 0
