"""A locked-off shot's clean plate: the background as the camera saw it where no subject stood.

Trimap-free, the band around the prior's edge is solved from colour alone, and where the
background has the subject's colour (a dark lawn's rows beside a dark coat) the solve carries
alpha off the edge into it: streaks, a fringe, grey between two people.  A compositor's answer
on a locked-off shot is a clean plate, and a shot holds one: every background pixel is seen
without a subject on some frames.  This module gathers it and says, per frame, which pixels
still show it unchanged; the refine (:func:`vfxmatte.hr.refine`) makes those known background,
**only outside the prior's contour**, so the clean plate can take spill away and never eat
into what the prior calls the subject.

How:

* ``samples`` frames spread over the whole input (the same for every chunk of a farm run) are
  read, each with its prior's subjects grown by ``margin`` of the long side and by ``headroom``
  of their height above them (a head the prior misses on someone who stands still must not
  become the plate); a pixel's clean value is the median of the samples that saw it without a
  subject, where at least ``min_seen`` did.
* Matching is by window, not by pixel: a window (radius ``radius`` of the long side) whose
  mean difference from the clean plate is under ``match`` × the plate's own residual (the
  typical such difference on background, grain and compression) is background.  A coat's
  dark pixel can equal a dark lawn pixel by chance; a window of coat against a window of lawn
  does not, and a window that straddles the subject's edge seldom does, so the edge is still
  solved.
* A camera that moves leaves no clean plate: the median blurs and the residual exceeds
  ``max_residual`` (display-referred units), and the run says so and goes on without one.
  A frame that differs from the plate as a whole (a flash, a bump, a cloud) by more than
  ``frame_residual`` × the plate's residual is matted without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from vfxmatte.sampling import resize

__all__ = [
    "SETTINGS", "CleanPlate", "CleanPlateSettings", "background_match", "camera_moves", "gather", "sample_frames",
]


@dataclass(frozen=True)
class CleanPlateSettings:
    """How a clean plate is gathered and matched (module docstring)."""

    samples: int = 12
    margin: float = 0.02
    min_seen: int = 3
    radius: float = 0.0025
    #: Chosen on locked-off composite shots by the half-split protocol among 2, 3, 5, 8 and 12:
    #: half B picks 3, which holds on half A; half A picks 12, which is worse than no plate on B.
    #: On ``chaplin.mp4`` 8 takes a dark hat against dark trees for background (the right-hand
    #: man's head at 1201) and 3 does not.  docs/BENCHMARKS.md, "a locked-off shot's clean plate".
    match: float = 3.0
    max_residual: float = 0.03
    frame_residual: float = 2.0
    #: Before any prior runs: samples whose neighbours differ by more than this (the median over
    #: the frame of the windowed difference, the median over the pairs) come from a camera that
    #: moves, and no prior is spent on them.  0.014–0.028 on the locked-off shots here, 0.017 on
    #: ``chaplin.mp4``, 0.10 on the moving composite shots: set a priori at twice ``max_residual``.
    moving_pairs: float = 0.06
    #: The prior above this (after growing by ``margin``) is a subject in a sample.
    subject_level: float = 0.1
    #: In a sample, the column above each subject is left out too, this share of the subject's
    #: height: a head or hat the prior misses on a person who stands still would otherwise become
    #: the plate, and the frame's own head then matches it (seen on ``chaplin.mp4`` at 1201).
    headroom: float = 0.25
    #: Also inside the prior's 0.5 contour: what the prior calls a subject on this frame but the
    #: plate shows unchanged where the prior saw none on ``min_seen`` samples (a figure of the
    #: background that never moved).  False: only outside it.
    inside: bool = False


#: What the pipeline uses (the benchmarks replace it to compare settings).
SETTINGS = CleanPlateSettings()


@dataclass
class CleanPlate:
    """The gathered plate (display-referred RGB, float32), where it was seen, and its residual."""

    image: np.ndarray  # (H, W, 3)
    seen: np.ndarray  # (H, W) bool: at least min_seen samples saw the background there
    residual: float  # median windowed difference of the samples' background from the plate
    frames: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"clean plate from frames {','.join(str(f) for f in self.frames)}: {self.seen.mean():.0%} of the frame "
            f"seen without a subject, residual {self.residual:.4f}"
        )


def sample_frames(ordered: list[int], count: int) -> list[int]:
    """``count`` frames spread evenly over ``ordered`` (all of them when there are fewer)."""
    if len(ordered) <= count:
        return list(ordered)
    picks = np.round(np.linspace(0, len(ordered) - 1, count)).astype(int)
    return [ordered[i] for i in sorted(set(picks.tolist()))]


def _radius(shape: tuple[int, ...], settings: CleanPlateSettings) -> int:
    return max(1, round(settings.radius * max(shape[0], shape[1])))


def _window_difference(image: np.ndarray, plate: np.ndarray, radius: int) -> np.ndarray:
    difference = np.abs(image.astype(np.float32) - plate).mean(axis=2)
    return np.asarray(ndimage.uniform_filter(difference, size=2 * radius + 1, mode="nearest"), dtype=np.float32)


def _with_headroom(subject: np.ndarray, headroom: float) -> np.ndarray:
    """``subject`` with, above each of its pieces, ``headroom`` × that piece's height of each column
    in which the piece lies."""
    labels, count = ndimage.label(subject)
    grown = subject.copy()
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        reach = round(headroom * (rows.stop - rows.start))
        if reach < 1:
            continue
        piece = labels[rows, cols] == index
        top = np.where(piece.any(axis=0), piece.argmax(axis=0) + rows.start, -1)  # each column's highest
        start = max(0, rows.start - reach)
        row = np.arange(start, rows.stop)[:, None]
        grown[start : rows.stop, cols] |= (row >= top - reach) & (row < top)
    return grown


def _background(prior: np.ndarray, shape: tuple[int, int], settings: CleanPlateSettings) -> np.ndarray:
    """(H, W) bool: where a frame's prior (any size) sees no subject, its subjects grown by the
    margin, and by the head room above them."""
    height, width = shape
    subject = np.clip(prior, 0.0, 1.0) > settings.subject_level
    if settings.headroom > 0:
        subject = _with_headroom(subject, settings.headroom)
    subject = resize(subject.astype(np.float32), height, width) > 0.5
    grow = max(1, round(settings.margin * max(height, width)))
    return ~ndimage.maximum_filter(subject, size=2 * grow + 1)


def camera_moves(images: list[np.ndarray], settings: CleanPlateSettings | None = None) -> str | None:
    """Why the samples (display-referred, in order) cannot give a plate, seen before any prior
    runs: the camera moves (None: go on and gather).  Cheap, and on the safe side: a moving
    camera that passes is still refused by :func:`gather`'s residual."""
    settings = settings or SETTINGS
    pairs = [(a, b) for a, b in zip(images, images[1:], strict=False) if a.shape == b.shape]
    if not pairs:
        return None
    radius = _radius(pairs[0][0].shape, settings)
    change = float(np.median([np.median(_window_difference(a, b.astype(np.float32), radius)) for a, b in pairs]))
    if change > settings.moving_pairs:
        return (
            f"the background changes between frames (frame-to-frame {change:.3f} over {settings.moving_pairs}): "
            "the camera moves or the light changes"
        )
    return None


def gather(
    samples: Iterable[tuple[int, np.ndarray, np.ndarray]], settings: CleanPlateSettings | None = None
) -> CleanPlate | str:
    """The clean plate of ``samples`` (frame, display-referred image, prior mask at any size), or
    the reason there is none (one line)."""
    settings = settings or SETTINGS
    frames: list[int] = []
    images: list[np.ndarray] = []
    backgrounds: list[np.ndarray] = []
    for frame, image, prior in samples:
        frames.append(frame)
        images.append(image.astype(np.float16))
        backgrounds.append(_background(prior, image.shape[:2], settings))
    # A frame of another size (a damaged or mixed-in frame, which the run fails on its own) is left out.
    shapes = [image.shape for image in images]
    shape = max(shapes, key=shapes.count) if shapes else None
    keep = [i for i, s in enumerate(shapes) if s == shape]
    frames, images, backgrounds = [frames[i] for i in keep], [images[i] for i in keep], [backgrounds[i] for i in keep]
    if len(images) < settings.min_seen:
        return f"{len(images)} frame(s) of the shot's size to gather from, at least {settings.min_seen} needed"
    height, width = images[0].shape[:2]
    plate = np.zeros((height, width, 3), np.float32)
    count = np.zeros((height, width), np.int32)
    strip = max(1, 2_000_000 // max(1, width * len(images)))
    for top in range(0, height, strip):
        rows = slice(top, min(height, top + strip))
        stack = np.stack([im[rows] for im in images]).astype(np.float32)  # (N, h, W, 3)
        seen = np.stack([bg[rows] for bg in backgrounds])  # (N, h, W)
        stack[~seen] = np.nan
        ordered = np.sort(stack, axis=0)  # NaN last
        n = seen.sum(axis=0)  # (h, W)
        low = np.clip((n - 1) // 2, 0, len(images) - 1)[None, ..., None]
        high = np.clip(n // 2, 0, len(images) - 1)[None, ..., None]
        median = 0.5 * (
            np.take_along_axis(ordered, np.broadcast_to(low, (1, *ordered.shape[1:])), 0)[0]
            + np.take_along_axis(ordered, np.broadcast_to(high, (1, *ordered.shape[1:])), 0)[0]
        )
        plate[rows] = np.nan_to_num(median)
        count[rows] = n
    seen_plate = count >= settings.min_seen
    if not seen_plate.any():
        return f"no pixel was seen without a subject on {settings.min_seen} of the {len(images)} frames"
    radius = _radius(plate.shape, settings)
    whole_windows = ndimage.minimum_filter(seen_plate, size=2 * radius + 1)  # every pixel of the window seen
    residuals = []
    for image, background in zip(images, backgrounds, strict=True):
        where = background & whole_windows
        if where.any():
            residuals.append(_window_difference(image, plate, radius)[where])
    if not residuals:
        return "no sample saw the background where the plate was gathered"
    residual = float(np.median(np.concatenate(residuals)))
    if residual > settings.max_residual:
        return (
            f"the background changes between frames (residual {residual:.3f} over {settings.max_residual}): "
            "the camera moves or the light changes"
        )
    return CleanPlate(image=plate, seen=seen_plate, residual=residual, frames=frames)


def background_match(
    display: np.ndarray, plate: CleanPlate, prior: np.ndarray, settings: CleanPlateSettings | None = None
) -> tuple[np.ndarray | None, float]:
    """(H, W) bool: where this frame shows the clean plate unchanged outside the prior's 0.5
    contour (also inside it with ``settings.inside``): known background for the refine; None when
    the frame as a whole differs from the plate.  And the frame's own residual (NaN where none of
    its background was seen: then nothing is known).  ``prior`` (any size) is this frame's prior
    mask, whose background the residual is measured on."""
    settings = settings or SETTINGS
    if display.shape != plate.image.shape:
        return None, float("nan")
    radius = _radius(display.shape, settings)
    difference = _window_difference(display, plate.image, radius)
    seen = ndimage.minimum_filter(plate.seen, size=2 * radius + 1)
    where = seen & _background(prior, display.shape[:2], settings)
    if not where.any():  # subjects cover whatever of the frame the plate saw: nothing to match
        return np.zeros(display.shape[:2], bool), float("nan")
    own = float(np.median(difference[where]))
    if own > settings.frame_residual * max(plate.residual, 1e-4):
        return None, own
    level = max(settings.match * plate.residual, 2e-3)
    known = seen & (difference < level)
    if not settings.inside:
        known &= resize(np.clip(prior, 0.0, 1.0).astype(np.float32), *display.shape[:2]) < 0.5
    return known, own
