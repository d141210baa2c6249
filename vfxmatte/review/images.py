"""A matte EXR's review images: display-referred comp, alpha, heat map, crops of its uncertain regions."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio

from vfxmatte.errors import FrameError
from vfxmatte.io import color
from vfxmatte.io.exr import configure_limits, oiio_error, read_channels
from vfxmatte.review.records import ReviewSettings

MATTE_CHANNELS = ["R", "G", "B", "A", "uncertainty.Y"]
SCORE_ATTRIBUTE = "vfxmatte:uncertainty"
#: How much a new keyframe would help the frame (runs with a carried guide only).
KEYFRAME_ATTRIBUTE = "vfxmatte:keyframe_doubt"
#: The share of the frame the clean plate calls subject and the matte leaves out (trimap-free runs
#: with a clean plate, without ``--clean-plate fill``).
MISSED_ATTRIBUTE = "vfxmatte:clean_plate_missed"
COLORMAP = "inferno"
# Checkerboard greys in linear light (≈ 0.43 and 0.60 once sRGB-encoded).
_CHECKER_LINEAR = (0.155, 0.32)


def read_score(path: str) -> tuple[float, str]:
    """The header's ``vfxmatte:uncertainty`` score and ``vfxmatte:colorspace`` of one matte EXR."""
    score, space, _, _, _ = read_header(path)
    return score, space


def _share(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_header(path: str) -> tuple[float, str, float | None, list[int], float | None]:
    """:func:`read_score`, plus the header's ``vfxmatte:keyframe_doubt`` (None when absent or not a
    number), the run's keyframes (``"keyframes"`` of ``vfxmatte:params``; empty without) and the
    header's ``vfxmatte:clean_plate_missed`` (None when absent or not a number)."""
    configure_limits()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise FrameError(f"{path}: cannot open: {oiio_error()}")
    try:
        spec = inp.spec()
        value = spec.getattribute(SCORE_ATTRIBUTE)
        space = spec.getattribute("vfxmatte:colorspace")
        keyframe = spec.getattribute(KEYFRAME_ATTRIBUTE)
        params = spec.getattribute("vfxmatte:params")
        missed = spec.getattribute(MISSED_ATTRIBUTE)
    finally:
        inp.close()
    if value is None:
        raise FrameError(f"{path}: no {SCORE_ATTRIBUTE} header; not a vfxmatte output")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path}: {SCORE_ATTRIBUTE} header {value!r} is not a number") from None
    if not math.isfinite(score) or score < 0:
        raise FrameError(f"{path}: {SCORE_ATTRIBUTE} header {score} is not a finite non-negative number")
    space = space if isinstance(space, str) and space else color.LINEAR_REC709
    return score, space, _share(keyframe), _keyframes(params), _share(missed)


def _keyframes(params: object) -> list[int]:
    try:
        listed = json.loads(params).get("keyframes") if isinstance(params, str) else None
    except (ValueError, AttributeError):
        return []
    return [int(f) for f in listed if isinstance(f, int)] if isinstance(listed, list) else []


# -- images -------------------------------------------------------------------------


def _downsample(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Area-average (H, W, C) float32 to ``long_side`` on its longer side (never up)."""
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return pixels
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    # Integer box averaging first (cheap in numpy), then OIIO's filtered resize for what is left.
    k = min(height // out_h, width // out_w)
    if k >= 2:
        h, w = (height // k) * k, (width // k) * k
        box = np.zeros((h // k, w // k, pixels.shape[2]), np.float32)
        for dy in range(k):
            for dx in range(k):
                box += pixels[dy:h:k, dx:w:k]
        pixels = box * np.float32(1.0 / (k * k))
        if pixels.shape[:2] == (out_h, out_w):
            return pixels
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


def colormap_lut() -> np.ndarray:
    import matplotlib

    lut = matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]
    return _to_uint8(np.asarray(lut, dtype=np.float32))


def heat_display(uncertainty: np.ndarray, heat_max: float) -> np.ndarray:
    """Uncertainty through the ``inferno`` map, 0 → black, ``heat_max`` and above → pale yellow."""
    index = np.clip(np.nan_to_num(uncertainty) / heat_max, 0.0, 1.0) * 255.0
    result: np.ndarray = colormap_lut()[np.rint(index).astype(np.uint8)]
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

    Fed the ``uncertainty.Y`` layer (the estimated alpha error), so the crops show where the
    errors most likely are, confident wrong objects included.

    Greedy: take the square of highest mean uncertainty, suppress every square overlapping
    it, repeat; squares weaker than ``min_fraction`` of the best are dropped.
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
        # No later square may overlap this one.
        valid[max(0, cy - window + 1) : cy + window, max(0, cx - window + 1) : cx + window] = -np.inf
    return regions


def render_frame(path: str, frame: int, out_dir: Path, settings: ReviewSettings) -> dict[str, Any]:
    """Read one matte EXR and write its thumbnails, large views and crops; the manifest entry."""
    score, colorspace, keyframe_doubt, keyframes, missed = read_header(path)
    matte = read_channels(path, MATTE_CHANNELS)
    height, width = matte.shape[:2]
    stem = f"f{frame}"
    images: dict[str, str] = {}
    # The large view from the full frame, the thumbnail from the large view: one full-size pass.
    preview = _downsample(matte, settings.preview_size)
    for kind, small in (("", _downsample(preview, settings.thumb_size)), ("_large", preview)):
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
    # Regions are found on the large view's uncertainty (cheap), then cut from the full frame.
    window = max(32, min(height, width, round(max(height, width) / 8)))
    scale = preview.shape[1] / width
    found = uncertain_regions(preview[..., 4], max(1, round(window * scale)), settings.crops)
    for index, (px, py, mean) in enumerate(found):
        x, y = min(width - window, round(px / scale)), min(height - window, round(py / scale))
        region = _downsample(matte[y : y + window, x : x + window], settings.crop_size)
        square = max(4, round(region.shape[0] / 16))
        panels = [
            comp_display(region, colorspace, square),
            np.repeat(alpha_display(region[..., 3])[..., None], 3, axis=2),
            heat_display(region[..., 4], settings.heat_max),
        ]
        gap = np.full((region.shape[0], 4, 3), 40, np.uint8)
        relative = f"thumbs/{stem}.crop{index}.jpg"
        _save(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1), out_dir / relative)
        crops.append({"image": relative, "x": x, "y": y, "size": window, "mean": round(mean, 6)})
    return {
        "score": score,
        "keyframe_doubt": keyframe_doubt,
        "keyframes": keyframes,
        "clean_plate_missed": missed,
        "colorspace": colorspace,
        "width": width,
        "height": height,
        "images": images,
        "crops": crops,
    }


def render_job(job: tuple[str, int, str, ReviewSettings]) -> tuple[int, dict[str, Any] | str]:
    """Process-pool entry: a manifest entry, or the one-line error of a frame that failed."""
    path, frame, out_dir, settings = job
    try:
        return frame, render_frame(path, frame, Path(out_dir), settings)
    except FrameError as exc:
        return frame, str(exc)
