"""Composite moving shots with exact ground truth, built from real content (evaluation only).

A subject of the alphamatting.com training set (``../shared/data/matting``: photo and true
alpha) moves (translation and a slight scale) over real moving footage (by default
``../shared/data/video/chaplin.mp4``, which holds people), cropped by a window that pans and
pushes in so the camera moves.  A second, smaller subject crosses *behind* the target: it is
composited over the footage first, so it is part of the target's background.  The target's
foreground colour is pymatting's ``estimate_foreground_ml`` on its photo and true alpha
(Germer et al. 2021, the paper's choice, DESIGN section 1).

Everything is composited in scene-linear Rec.709 (the photos and the footage are sRGB and
converted with OpenColorIO) and written through vfxmatte's own EXR writer as half float:

``plate.####.exr``
    R G B: the shot to matte.
``truth.####.exr``
    R G B A: the target's foreground premultiplied by its true alpha (the output contract's
    layout, DESIGN section 5) and the true alpha itself.
``background.####.exr``
    R G B: everything behind the target (the footage with the distractor over it), so that
    ``plate = truth.RGB + background * (1 - truth.A)`` within half-float rounding.
``distractor.####.exr``
    R G B A: the distractor alone, premultiplied, as composited over the footage.
``roto.####.png``
    8-bit 0 / 255: a stand-in for an artist's roto of the target on every frame: true alpha
    > 0.5, closed and opened by ``roto_radius`` px so that hair gaps and specks are smoothed
    over as a hand-drawn shape would.

The alphamatting images are a research benchmark without a licence: they are used here for
evaluation only and never for training (``../shared/data/README.md``).  :data:`TUNING_HALF`
and :data:`REPORT_HALF` split GT01–GT20 so that a number tuned on one half can be reported on
shots built from the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vfxmatte.errors import InputError, UsageError

__all__ = [
    "REPORT_HALF",
    "SUBJECTS",
    "TUNING_HALF",
    "CompositeShot",
    "build_composite_shot",
    "default_data_root",
    "frame_path",
    "half_of",
    "read_channels",
]

#: Every subject of the alphamatting.com training subset in ``../shared/data/matting``.
SUBJECTS: tuple[str, ...] = tuple(f"GT{i:02d}" for i in range(1, 21))
#: The half that defaults may be tuned on.
TUNING_HALF: tuple[str, ...] = SUBJECTS[:10]
#: The held-out half that tuned numbers are reported on.
REPORT_HALF: tuple[str, ...] = SUBJECTS[10:]

_FRAME_TOKEN = "####"
#: The target's height at its largest, as a fraction of the frame height (its photo's lower
#: edge, where every alphamatting subject is cut off, stays below the frame's lower edge).
_TARGET_HEIGHT = 0.72
_DISTRACTOR_HEIGHT = 0.55
#: The target shrinks by this fraction over the shot (it walks away a little).
_TARGET_SHRINK = 0.12


def default_data_root() -> Path:
    """``../shared/data`` relative to the repository root (the folder holding ``vfxmatte/``)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def half_of(subject: str) -> str:
    """``"tuning"`` for GT01–GT10, ``"report"`` for GT11–GT20."""
    if subject in TUNING_HALF:
        return "tuning"
    if subject in REPORT_HALF:
        return "report"
    raise UsageError(f"{subject}: not an alphamatting subject (choose GT01–GT20)")


def frame_path(pattern: str, frame: int) -> str:
    """One frame's file of a ``####`` pattern."""
    return pattern.replace(_FRAME_TOKEN, f"{frame:04d}")


def read_channels(path: str, names: Sequence[str]) -> np.ndarray:
    """Channels ``names`` of an image file as float32 (H, W, len(names)); one-line InputError if unreadable."""
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(path)
    if buf.has_error:
        raise InputError(f"{path}: cannot read: {' '.join(buf.geterror().split())[:200]}")
    spec = buf.spec()
    missing = [n for n in names if n not in spec.channelnames]
    if missing:
        raise InputError(f"{path}: no channel {', '.join(missing)} (has {', '.join(spec.channelnames)})")
    pixels = np.asarray(buf.get_pixels(oiio.FLOAT), dtype=np.float32)
    return pixels[..., [list(spec.channelnames).index(n) for n in names]]


@dataclass(frozen=True)
class CompositeShot:
    """A built shot: ``####`` patterns of its files (module docstring) and its frame numbers."""

    folder: Path
    plate: str
    truth: str
    background: str
    distractor_layer: str
    roto: str
    frames: list[int]
    width: int
    height: int
    target: str
    distractor: str
    seed: int
    roto_radius: int
    source: str
    footage_frames: list[int] = field(default_factory=list)
    camera: str = "moving"

    def true_alpha(self, frame: int) -> np.ndarray:
        """The target's true alpha of one frame, float32 (H, W)."""
        return read_channels(frame_path(self.truth, frame), ["A"])[..., 0]

    def true_alphas(self) -> list[np.ndarray]:
        """The target's true alpha of every frame, in frame order."""
        return [self.true_alpha(f) for f in self.frames]

    def roto_mask(self, frame: int) -> np.ndarray:
        """One frame's roto as a boolean (H, W) array."""
        return np.asarray(read_channels(frame_path(self.roto, frame), ["Y"])[..., 0] > 0.5)


@dataclass
class _Layer:
    """A subject cut out of its photo and scaled to its largest on-screen size (linear light)."""

    prem: np.ndarray  # (h, w, 3) foreground premultiplied by alpha, scene-linear
    alpha: np.ndarray  # (h, w)


@dataclass(frozen=True)
class _Path:
    """Where a layer is on each frame: its lower-edge centre (x, y) in frame px and its scale."""

    x0: float
    x1: float
    scale0: float
    scale1: float
    dip: float  # how far (px) it sinks below its resting line mid-shot: never rises to show its cut edge
    bottom: float

    def at(self, phase: float) -> tuple[float, float, float]:
        ease = 0.5 - 0.5 * math.cos(math.pi * phase)  # starts and stops smoothly, like a move
        x = self.x0 + (self.x1 - self.x0) * ease
        y = self.bottom + self.dip * math.sin(math.pi * phase)
        return x, y, self.scale0 + (self.scale1 - self.scale0) * phase


def _subject_files(data: Path, name: str) -> tuple[Path, Path]:
    if name not in SUBJECTS:
        raise UsageError(f"{name}: not an alphamatting subject (choose GT01–GT20)")
    image = data / "matting" / "alphamatting" / "input" / f"{name}.png"
    alpha = data / "matting" / "alphamatting" / "gt" / f"{name}.png"
    for path in (image, alpha):
        if not path.is_file():
            raise InputError(f"{path}: not found (composite shots need the alphamatting subset of ../shared/data)")
    return image, alpha


def _resize(channel: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-aware resize of one float channel (PIL's antialiased bilinear on mode F)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None), dtype=np.float32)


def _load_layer(data: Path, name: str, height: int) -> _Layer:
    """The subject ``name`` cropped to its alpha, scaled to ``height`` px, its foreground estimated there."""
    from PIL import Image
    from pymatting import estimate_foreground_ml

    from vfxmatte.io import color

    image_path, alpha_path = _subject_files(data, name)
    try:
        photo = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255.0
        alpha = np.asarray(Image.open(alpha_path).convert("L"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise InputError(f"{image_path}: cannot read the subject: {exc}") from exc
    if photo.shape[:2] != alpha.shape:
        raise InputError(f"{alpha_path}: the true alpha is not the size of its photo {image_path.name}")
    ys, xs = np.nonzero(alpha > 1.0 / 255.0)
    if ys.size == 0:
        raise InputError(f"{alpha_path}: the true alpha is empty")
    top, left, right = max(0, int(ys.min()) - 2), max(0, int(xs.min()) - 2), min(alpha.shape[1], int(xs.max()) + 3)
    photo, alpha = photo[top:, left:right], alpha[top:, left:right]
    scale = height / alpha.shape[0]
    width = max(1, round(alpha.shape[1] * scale))
    small = np.stack([_resize(photo[..., c], height, width) for c in range(3)], axis=2)
    small_alpha = np.clip(_resize(alpha, height, width), 0.0, 1.0)
    # Germer et al. 2021 on the photo and its true alpha, in the photo's own (sRGB) values.
    fg = np.asarray(estimate_foreground_ml(np.clip(small, 0.0, 1.0).astype(np.float64), small_alpha.astype(np.float64)))
    fg_linear = color.convert(np.clip(fg, 0.0, 1.0).astype(np.float32), color.NETWORK_SPACE, color.LINEAR_REC709)
    return _Layer(fg_linear * small_alpha[..., None], small_alpha)


def _place(layer: _Layer, x: float, y: float, scale: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The layer drawn on a (height, width) frame with its lower-edge centre at (x, y), scaled by ``scale``."""
    from scipy import ndimage

    h, w = layer.alpha.shape
    # frame pixel o samples the layer at (o - anchor_frame) / scale + anchor_layer (pixel centres)
    offset = np.array([h - 0.5 - (y - 0.5) / scale, w / 2 - 0.5 - (x - 0.5) / scale])
    matrix = np.array([1.0 / scale, 1.0 / scale])

    def warp(channel: np.ndarray) -> np.ndarray:
        return np.asarray(
            ndimage.affine_transform(channel, matrix, offset=offset, output_shape=(height, width), order=1, cval=0.0),
            dtype=np.float32,
        )

    alpha = np.clip(warp(layer.alpha), 0.0, 1.0)
    prem = np.stack([warp(layer.prem[..., c]) for c in range(3)], axis=2)
    return np.clip(prem, 0.0, None), alpha


def _active_area(frame: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the footage inside letterbox / pillarbox bars
    (:func:`vfxmatte.prior.picture_area`, the bars the pipeline cuts off for the prior)."""
    from vfxmatte.prior import picture_area

    area = picture_area(frame)
    if area is None:
        return 0, 0, frame.shape[1], frame.shape[0]
    top, bottom, left, right = area
    return left, top, right - left, bottom - top


def _read_footage(path: Path, first: int, count: int) -> list[np.ndarray]:
    """``count`` decoded sRGB frames (float32 0–1) of a movie from index ``first``."""
    from vfxmatte.io.movie import read_movie

    if not path.is_file():
        raise InputError(f"{path}: not found (composite shots need background footage, e.g. ../shared/data/video)")
    wanted = set(range(first, first + count))
    frames = [plate.rgb for plate in read_movie(str(path), start_frame=0, frames=wanted)]
    if len(frames) < count:
        raise InputError(f"{path}: has {first + len(frames)} frames, the shot needs {first + count}")
    return frames


def _camera(
    frame: np.ndarray, area: tuple[int, int, int, int], window: tuple[float, float, float], size: tuple[int, int]
) -> np.ndarray:
    """The footage seen through a window (centre x, centre y, width) of the active area, at ``size`` (h, w)."""
    from scipy import ndimage

    height, width = size
    cx, cy, w_crop = window
    step = w_crop / width  # footage px per output px (square pixels)
    offset = np.array([cy - height * step / 2 + 0.5 * step - 0.5, cx - w_crop / 2 + 0.5 * step - 0.5])
    return np.stack(
        [
            np.asarray(
                ndimage.affine_transform(
                    frame[..., c],
                    np.array([step, step]),
                    offset=offset,
                    output_shape=(height, width),
                    order=1,
                    mode="nearest",
                ),
                dtype=np.float32,
            )
            for c in range(3)
        ],
        axis=2,
    )


def _roto(alpha: np.ndarray, radius: int) -> np.ndarray:
    """A hand-roto stand-in: alpha > 0.5, closed then opened by a disc of ``radius`` px."""
    from scipy import ndimage

    mask = alpha > 0.5
    if radius <= 0:
        return mask
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = yy * yy + xx * xx <= radius * radius
    padded = np.pad(mask, radius + 1, mode="edge")  # the subject's cut lower edge stays cut, not rounded
    closed = ndimage.binary_closing(padded, structure=disc)
    opened = ndimage.binary_opening(closed, structure=disc)
    return np.asarray(opened[radius + 1 : -radius - 1, radius + 1 : -radius - 1])


def _write(path: str, frame: int, channels: dict[str, np.ndarray], fps: Fraction) -> None:
    from vfxmatte.io import color
    from vfxmatte.io.exr import write_exr
    from vfxmatte.io.frames import Plate, Window

    height, width = next(iter(channels.values())).shape
    window = Window(0, 0, width, height)
    empty = np.zeros((height, width, 3), dtype=np.float32)
    plate = Plate(empty, window, window, path, frame, color.LINEAR_REC709, fps=fps)
    write_exr(path, plate, channels, {"vfxmatte:compositeShot": "evaluation only"})


def build_composite_shot(
    folder: str | Path,
    *,
    frames: int = 24,
    width: int = 640,
    height: int = 360,
    target: str = "GT16",
    distractor: str = "GT14",
    background: str | Path | None = None,
    data_root: str | Path | None = None,
    start_frame: int = 1001,
    footage_start: int = 0,
    seed: int = 0,
    roto_radius: int | None = None,
    camera: str = "moving",
) -> CompositeShot:
    """Build and write a composite shot into ``folder`` (created; files of the same names replaced).

    ``background`` is a movie (default ``DATA/video/chaplin.mp4``) read from its picture
    ``footage_start``; ``data_root`` defaults to :func:`default_data_root`.  The seed picks the
    directions and extents of the moves; the same arguments give the same files.
    ``roto_radius`` (px) defaults to 0.5 % of the frame's long side, at least 1.
    ``camera`` ``locked``: the window holds still at its first place (a locked-off shot, where a
    clean plate of the background can be gathered); ``moving`` (default): it pans and pushes in.
    """
    if frames < 2 or width < 16 or height < 16:
        raise UsageError(f"a composite shot needs at least 2 frames of 16x16 px (asked {frames} of {width}x{height})")
    if target == distractor:
        raise UsageError(f"{target}: the target and the distractor must be different subjects")
    if camera not in ("moving", "locked"):
        raise UsageError(f"camera {camera!r}: choose moving or locked")
    data = Path(data_root) if data_root is not None else default_data_root()
    movie = Path(background) if background is not None else data / "video" / "chaplin.mp4"
    radius = roto_radius if roto_radius is not None else max(1, round(0.005 * max(width, height)))
    rng = np.random.default_rng(seed)
    from vfxmatte.io import color

    target_layer = _load_layer(data, target, max(2, round(_TARGET_HEIGHT * height)))
    distractor_layer = _load_layer(data, distractor, max(2, round(_DISTRACTOR_HEIGHT * height)))
    footage = _read_footage(movie, footage_start, frames)

    # Moves: the target crosses the middle third one way while the distractor crosses most of the
    # frame the other way behind it; the camera pans across the footage and pushes in a little.
    way = 1.0 if rng.random() < 0.5 else -1.0
    t_w = target_layer.alpha.shape[1]
    half_span = min(0.14 * width, max(0.0, width / 2 - t_w / 2))
    jitter = float(rng.uniform(-0.03, 0.03)) * width
    target_path = _Path(
        width / 2 + jitter - way * half_span,
        width / 2 + jitter + way * half_span,
        1.0,
        1.0 - _TARGET_SHRINK,
        dip=0.04 * height,
        bottom=height + 1.0,
    )
    d_w = distractor_layer.alpha.shape[1]
    d_margin = max(d_w / 2, 0.1 * width)
    distractor_path = _Path(
        width / 2 + way * (width / 2 - d_margin),
        width / 2 - way * (width / 2 - d_margin),
        1.0,
        1.0,
        dip=0.0,
        bottom=height + 1.0,
    )
    area = _active_area(footage[0])
    ax, ay, aw, ah = area
    crop_w0 = min(aw, ah * width / height) * 0.86
    crop_w1 = crop_w0 * 0.9  # pushes in by 10 %
    pan = 1.0 if rng.random() < 0.5 else -1.0
    u0, u1 = (0.1, 0.9) if pan > 0 else (0.9, 0.1)
    v0, v1 = float(rng.uniform(0.2, 0.4)), float(rng.uniform(0.6, 0.8))

    def window(phase: float) -> tuple[float, float, float]:
        w_crop = crop_w0 + (crop_w1 - crop_w0) * phase
        h_crop = w_crop * height / width
        u, v = u0 + (u1 - u0) * phase, v0 + (v1 - v0) * phase
        return ax + w_crop / 2 + u * (aw - w_crop), ay + h_crop / 2 + v * max(0.0, ah - h_crop), w_crop

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    shot = CompositeShot(
        folder=out,
        plate=str(out / f"plate.{_FRAME_TOKEN}.exr"),
        truth=str(out / f"truth.{_FRAME_TOKEN}.exr"),
        background=str(out / f"background.{_FRAME_TOKEN}.exr"),
        distractor_layer=str(out / f"distractor.{_FRAME_TOKEN}.exr"),
        roto=str(out / f"roto.{_FRAME_TOKEN}.png"),
        frames=list(range(start_frame, start_frame + frames)),
        width=width,
        height=height,
        target=target,
        distractor=distractor,
        seed=seed,
        roto_radius=radius,
        source=str(movie.name),
        footage_frames=list(range(footage_start, footage_start + frames)),
        camera=camera,
    )
    fps = Fraction(25)
    from PIL import Image

    for index, number in enumerate(shot.frames):
        phase = index / (frames - 1)
        view = window(phase if camera == "moving" else 0.0)
        bg = color.convert(
            _camera(footage[index], area, view, (height, width)), color.NETWORK_SPACE, color.LINEAR_REC709
        )
        d_prem, d_alpha = _place(distractor_layer, *distractor_path.at(phase), height, width)
        behind = d_prem + bg * (1.0 - d_alpha[..., None])
        t_prem, t_alpha = _place(target_layer, *target_path.at(phase), height, width)
        plate = t_prem + behind * (1.0 - t_alpha[..., None])
        rgb = ("R", "G", "B")
        _write(frame_path(shot.plate, number), number, {n: plate[..., i] for i, n in enumerate(rgb)}, fps)
        _write(
            frame_path(shot.truth, number),
            number,
            {**{n: t_prem[..., i] for i, n in enumerate(rgb)}, "A": t_alpha},
            fps,
        )
        _write(frame_path(shot.background, number), number, {n: behind[..., i] for i, n in enumerate(rgb)}, fps)
        _write(
            frame_path(shot.distractor_layer, number),
            number,
            {**{n: d_prem[..., i] for i, n in enumerate(rgb)}, "A": d_alpha},
            fps,
        )
        Image.fromarray((_roto(t_alpha, radius) * 255).astype(np.uint8), mode="L").save(frame_path(shot.roto, number))
    manifest = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(shot).items()}
    (out / "shot.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return shot
