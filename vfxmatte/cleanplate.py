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
* A camera that moves (a pan, a tilt, a push-in, a roll) gets a **tracked** plate, with
  ``track``: each sample is placed on its neighbour by a similarity (shift, scale, rotation)
  fitted to features of its background (ORB, RANSAC; the prior's subjects masked out), the
  samples are warped into the middle sample's view and the median is taken there, over a mosaic
  larger than the frame.  A frame is placed on the nearest sample the same way and the mosaic
  warped into its view.  The camera is taken to move where the samples differ from frame to
  frame by more than ``moving_pairs``, or where, placed on one another, their corners travel
  more than ``track_still`` of the long side.  Near the edges the world moves across, a faint
  prior is a subject too (``track_edge``): a person the frame's edge cuts is barely seen by the
  prior, and must not become the plate.  A similarity is the motion of a long lens on a
  tripod or of a background far away; parallax (a dolly past near things) and a wide lens's
  keystone do not follow it, leave a residual over ``max_residual`` (display-referred units)
  and no plate, and the run says so and goes on without one.  A frame that differs from the
  plate as a whole (a flash, a bump, a cloud) by more than ``frame_residual`` × the plate's
  residual, or that cannot be placed on a tracked plate, is matted without it.
* The match also says what the plate shows is **not** background where the prior sees a subject
  only faintly outside its contour (a head or hat lost against a background of its own colour):
  a window that differs from the plate by more than ``differ`` × (the plate's residual +
  ``differ_spread`` × the samples' own spread there, the background's motion: leaves, water),
  through which the plate's texture does not show (a shadow or a translucent layer keeps it),
  shrunk by the window.  Asked to fill (``--clean-plate fill``), the refine makes it subject;
  otherwise the run reports the frames whose matte leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy import ndimage

from vfxmatte.sampling import resize

__all__ = [
    "MISSED_NOTE", "SETTINGS", "CleanPlate", "CleanPlateSettings", "PlateMatch", "Tracking", "background_match",
    "camera_moves", "gather", "sample_frames",
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
    #: A frame whose background's lower quartile of windowed differences from the plate is over
    #: this × the plate's residual differs from it as a whole (set a priori).
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
    #: A camera that moves gets a tracked plate (module docstring); False: it
    #: gets none, as before the tracked plate.
    track: bool = True
    #: The samples' corners move less than this share of the long side (the match window's
    #: radius) from the middle sample's: the camera holds still and the plate is not tracked
    #: (``chaplin.mp4``'s gate weave: 0.11 %).  A low-contrast pan can pass ``moving_pairs``;
    #: this sees it.
    track_still: float = 0.0025
    #: Tracking (set a priori, not tuned): features are found with the frame's long side at most
    #: ``track_size`` px; a placement needs ``track_inliers`` features that agree (RANSAC within
    #: ``track_tolerance`` px at that size); the mosaic may cover at most ``track_canvas`` × the
    #: frame's area.
    track_size: int = 960
    track_features: int = 3000
    track_inliers: int = 20
    track_tolerance: float = 1.5
    track_canvas: float = 4.0
    #: On a tracked plate a pixel also needs this share of the samples that show it to have seen
    #: no subject there.  As the camera moves, a person who stands still in the world passes the
    #: frame's edge and the prior, seeing part of him, misses him on a few samples: with
    #: ``min_seen`` alone those made him the plate, and the plate cleared him (a pan over
    #: ``chaplin.mp4`` 1090-1113: the left-hand man's leg at 1101, alpha 0.35 → 0.12).  Chosen
    #: among 0, 0.34 and 0.5 on the moving composite shots, bounded by that pan (docs/BENCHMARKS.md,
    #: "the clean plate tracked over a moving camera").  Not on a locked-off plate: its frame is
    #: the same on every sample, and there both halves keep their gains only without it.
    track_share: float = 0.5
    #: On a tracked plate, within this share of the long side of the frame's edges the world
    #: moves across (a pan's sides, every edge of a push-in), the prior over ``track_edge_level``
    #: is a subject in a sample: the prior barely sees a person the frame's edge cuts, and such
    #: samples made a person who stands still the plate (the pan over ``chaplin.mp4``: the
    #: left-hand man at 1105).  Set a priori, chosen on or off on the moving composite shots by
    #: the half-split protocol (docs/BENCHMARKS.md, "the faint prior at the moving edges").  0: off.
    track_edge: float = 0.1
    track_edge_level: float = 0.02
    #: Where the plate was seen, a window of the frame that differs from it by more than this ×
    #: (the plate's residual + ``differ_spread`` × the samples' spread there), and through which
    #: the plate's texture does not show (``through``), is not the plate; outside the prior's 0.5
    #: contour, where the prior sees a subject faintly (over ``subject_level``), that is subject
    #: (``PlateMatch.subject``): a head, a hat or an arm the prior half-sees against a background
    #: of its own colour.  ``--clean-plate fill`` fills it.  Chosen among 2, 3 and 5 on the
    #: locked-off composite shots by the half-split protocol, both halves picking 2
    #: (docs/BENCHMARKS.md, "filling what the prior half-sees").  0: never.
    differ: float = 2.0
    #: How much of the samples' spread (the background's own motion: leaves, water, flicker)
    #: a difference must rise above.  Set a priori.
    differ_spread: float = 1.5
    #: The window (this share of the long side) in which the plate's texture is looked for
    #: through what differs from it.  Set a priori.  0: not looked for.
    through: float = 0.01


#: What the pipeline uses (the benchmarks replace it to compare settings).
SETTINGS = CleanPlateSettings()

#: A frame whose matte leaves out more than this share of the frame that the plate calls subject
#: (``PlateMatch.subject`` under 0.5; header ``vfxmatte:clean_plate_missed``) is named in the run's
#: notes and on the review page (set a priori: 0.1 %, a head of 20×12 px at 640×360).
MISSED_NOTE = 0.001


@dataclass
class Tracking:
    """How a moving camera's frames lie on the tracked plate's mosaic."""

    shape: tuple[int, int]  # the frames' (height, width)
    #: Each sample's 3 × 3 matrix (a similarity) from its own pixels into the mosaic's.
    to_mosaic: dict[int, np.ndarray]
    #: Each sample's background features (points at full size, ORB descriptors), to place
    #: other frames on it.
    features: dict[int, tuple[np.ndarray, np.ndarray]]
    settings: CleanPlateSettings


@dataclass
class CleanPlate:
    """The gathered plate (display-referred RGB, float32), where it was seen, and its residual.

    With ``tracking`` (a moving camera) the image is a mosaic in the middle sample's view, larger
    than a frame; without it the plate is in every frame's own view."""

    image: np.ndarray  # (H, W, 3)
    seen: np.ndarray  # (H, W) bool: at least min_seen samples saw the background there
    residual: float  # median windowed difference of the samples' background from the plate
    frames: list[int] = field(default_factory=list)
    tracking: Tracking | None = None
    #: (H, W) float32: per pixel, the median absolute deviation of the samples that saw it from
    #: the plate (mean over RGB): how much the background itself moves there (leaves in the wind,
    #: water, flicker); 0 where it was not seen.  None: not measured.
    spread: np.ndarray | None = None

    def describe(self) -> str:
        if self.tracking is not None:
            height, width = self.tracking.shape
            return (
                f"clean plate tracked over a moving camera from frames {','.join(str(f) for f in self.frames)}: "
                f"a mosaic {self.seen.size / (height * width):.1f}x the frame, {self.seen.mean():.0%} of it seen "
                f"without a subject, residual {self.residual:.4f}"
            )
        return (
            f"clean plate from frames {','.join(str(f) for f in self.frames)}: {self.seen.mean():.0%} of the frame "
            f"seen without a subject, residual {self.residual:.4f}"
        )

    def view(
        self, frame: int, display: np.ndarray, background: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The plate, where it was seen and its samples' spread, in the view of ``frame``
        (display-referred, its ``background`` the pixels its prior sees no subject on); None where
        the frame cannot be placed on a tracked plate, or has another size."""
        spread = self.spread if self.spread is not None else np.zeros(self.seen.shape, np.float32)
        if self.tracking is None:
            return (self.image, self.seen, spread) if display.shape == self.image.shape else None
        if display.shape[:2] != self.tracking.shape:
            return None
        to_mosaic = _place(frame, display, background, self.tracking)
        if to_mosaic is None:
            return None
        height, width = self.tracking.shape
        flags = cv2.WARP_INVERSE_MAP
        image = cv2.warpPerspective(self.image, to_mosaic, (width, height), flags=cv2.INTER_LINEAR | flags)
        seen = cv2.warpPerspective(
            self.seen.astype(np.uint8), to_mosaic, (width, height), flags=cv2.INTER_NEAREST | flags
        )  # fmt: skip
        spread = cv2.warpPerspective(spread, to_mosaic, (width, height), flags=cv2.INTER_LINEAR | flags)
        return np.asarray(image, np.float32), seen > 0, np.asarray(spread, np.float32)


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


def _shows_through(image: np.ndarray, plate: np.ndarray, radius: int, residual: float) -> np.ndarray:
    """(H, W) bool: where a window of ``image`` still carries the ``plate``'s texture (their
    normalised cross-correlation over the window is over 0.5, both with texture past twice the
    residual: a gain, a tint or a translucent layer over the plate), or where neither has texture
    to tell.  A flat window over a textured plate hides it: opaque."""
    size = 2 * radius + 1
    a, b = image.astype(np.float32).mean(axis=2), plate.astype(np.float32).mean(axis=2)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.asarray(ndimage.uniform_filter(x, size=size, mode="nearest"), dtype=np.float32)

    mean_a, mean_b = mean(a), mean(b)
    var_a = np.maximum(mean(a * a) - mean_a**2, 0.0)
    var_b = np.maximum(mean(b * b) - mean_b**2, 0.0)
    covariance = mean(a * b) - mean_a * mean_b
    flat = (2.0 * residual) ** 2
    correlated = covariance > 0.5 * np.sqrt(var_a * var_b) + 1e-12
    textured_a, textured_b = var_a > flat, var_b > flat
    return (correlated & textured_a & textured_b) | (~textured_a & ~textured_b)


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
    samples: Iterable[tuple[int, np.ndarray, np.ndarray]],
    settings: CleanPlateSettings | None = None,
    moving: bool = False,
) -> CleanPlate | str:
    """The clean plate of ``samples`` (frame, display-referred image, prior mask at any size), or
    the reason there is none (one line).  The plate is tracked (with ``settings.track``) where
    ``moving`` (:func:`camera_moves` saw the camera move) or where the samples, placed on one
    another by their features, travel more than ``track_still``; otherwise it is the plain
    median of a locked-off shot."""
    settings = settings or SETTINGS
    frames: list[int] = []
    images: list[np.ndarray] = []
    backgrounds: list[np.ndarray] = []
    priors: list[np.ndarray] = []
    for frame, image, prior in samples:
        frames.append(frame)
        images.append(image.astype(np.float16))
        backgrounds.append(_background(prior, image.shape[:2], settings))
        priors.append(prior)
    # A frame of another size (a damaged or mixed-in frame, which the run fails on its own) is left out.
    shapes = [image.shape for image in images]
    shape = max(shapes, key=shapes.count) if shapes else None
    keep = [i for i, s in enumerate(shapes) if s == shape]
    frames, images, backgrounds = [frames[i] for i in keep], [images[i] for i in keep], [backgrounds[i] for i in keep]
    priors = [priors[i] for i in keep]
    if len(images) < settings.min_seen:
        return f"{len(images)} frame(s) of the shot's size to gather from, at least {settings.min_seen} needed"
    radius = _radius(images[0].shape, settings)
    chain = _chain(frames, images, backgrounds, settings) if settings.track else None
    if not moving and not (isinstance(chain, tuple) and _travel(chain[0], images[0].shape) > settings.track_still):
        # Locked off (the features say the camera holds still, or cannot say): the plain median.
        plate = _median(images, backgrounds, settings, radius)
        if isinstance(plate, CleanPlate) and plate.residual > settings.max_residual:
            return (
                f"the background changes between frames (residual {plate.residual:.3f} over {settings.max_residual}): "
                "the camera moves or the light changes"
            )
        if isinstance(plate, CleanPlate):
            plate.frames = frames
        return plate
    if chain is None:
        return "the camera moves (tracking is off)"
    if isinstance(chain, str):
        return chain
    return _tracked(frames, images, backgrounds, priors, settings, radius, *chain)


def _corners(height: int, width: int) -> np.ndarray:
    """A frame's four corners, as :func:`cv2.perspectiveTransform` takes points."""
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32).reshape(-1, 1, 2)


class _Warped:
    """A sample (or its mask) warped into the mosaic, made a band of rows at a time: a long pan's
    mosaic at 4K, as a stack of whole warped samples, would not fit in memory."""

    def __init__(self, source: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> None:
        self.source, self.matrix, self.size = source, matrix, size
        self.mask = source.dtype == np.uint8  # a mask: nearest, as bool; an image: linear, as float32
        self.shape = (size[1], size[0], *source.shape[2:])

    def __getitem__(self, rows: slice) -> np.ndarray:
        top, bottom = rows.start or 0, self.shape[0] if rows.stop is None else rows.stop
        width = self.size[0]
        band = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -top], [0.0, 0.0, 1.0]]) @ self.matrix
        # Only the part of the source this band of rows comes from (and a margin) is read.
        back = cv2.perspectiveTransform(_corners(bottom - top, width), np.linalg.inv(band)).reshape(-1, 2)
        height_s, width_s = self.source.shape[:2]
        x0, y0 = (max(0, int(np.floor(v)) - 2) for v in back.min(axis=0))
        x1, y1 = (int(np.ceil(v)) + 3 for v in back.max(axis=0))
        x1, y1 = min(width_s, x1), min(height_s, y1)
        if x0 >= x1 or y0 >= y1:
            empty = np.zeros((bottom - top, width, *self.shape[2:]), np.float32)
            return empty.astype(bool) if self.mask else empty
        crop = self.source[y0:y1, x0:x1]
        band = band @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        flags = cv2.INTER_NEAREST if self.mask else cv2.INTER_LINEAR
        source = crop if self.mask else crop.astype(np.float32)
        out = np.asarray(cv2.warpPerspective(source, band, (width, bottom - top), flags=flags))
        return out > 0 if self.mask else out


def _seen_median(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(h, W, 3) per pixel: the median over axis 0 of ``values`` (N, h, W, 3), NaN where a sample did not
    see the pixel, of the ``n`` (h, W) samples that did (NaN sorts last)."""
    ordered = np.sort(values, axis=0)
    low = np.clip((n - 1) // 2, 0, len(values) - 1)[None, ..., None]
    high = np.clip(n // 2, 0, len(values) - 1)[None, ..., None]
    shape = (1, *ordered.shape[1:])
    lower = np.take_along_axis(ordered, np.broadcast_to(low, shape), 0)[0]
    upper = np.take_along_axis(ordered, np.broadcast_to(high, shape), 0)[0]
    return np.asarray(0.5 * (lower + upper))


def _median(
    images: Sequence[np.ndarray | _Warped],
    backgrounds: Sequence[np.ndarray | _Warped],
    settings: CleanPlateSettings,
    radius: int,
    covers: Sequence[_Warped] | None = None,
) -> CleanPlate | str:
    """The per-pixel median of ``images`` where their ``backgrounds`` (all in one view) saw no
    subject, where at least ``min_seen`` did (and, with ``covers``, where each sample shows the
    mosaic, at least ``track_share`` of those that show the pixel), with its residual (not yet
    checked)."""
    height, width = images[0].shape[:2]
    plate = np.zeros((height, width, 3), np.float32)
    spread = np.zeros((height, width), np.float32)
    count = np.zeros((height, width), np.int32)
    shown = np.zeros((height, width), np.int32)
    strip = max(1, 2_000_000 // max(1, width * len(images)))
    for top in range(0, height, strip):
        rows = slice(top, min(height, top + strip))
        stack = np.stack([im[rows] for im in images]).astype(np.float32)  # (N, h, W, 3)
        seen = np.stack([bg[rows] for bg in backgrounds])  # (N, h, W)
        stack[~seen] = np.nan
        n = seen.sum(axis=0)  # (h, W)
        median = _seen_median(stack, n)
        plate[rows] = np.nan_to_num(median)
        spread[rows] = np.nan_to_num(_seen_median(np.abs(stack - median[None]), n)).mean(axis=2)
        count[rows] = n
        if covers is not None:
            shown[rows] = np.sum([cover[rows] for cover in covers], axis=0)
    seen_plate = count >= settings.min_seen
    if covers is not None:
        seen_plate &= count >= settings.track_share * shown
    if not seen_plate.any():
        return f"no pixel was seen without a subject on {settings.min_seen} of the {len(images)} frames"
    whole_windows = ndimage.minimum_filter(seen_plate, size=2 * radius + 1)  # every pixel of the window seen
    residuals = []
    for image, background in zip(images, backgrounds, strict=True):
        where = background[:] & whole_windows
        if where.any():
            residuals.append(_window_difference(image[:], plate, radius)[where])
    if not residuals:
        return "no sample saw the background where the plate was gathered"
    residual = float(np.median(np.concatenate(residuals)))
    return CleanPlate(image=plate, seen=seen_plate, residual=residual, spread=spread)


def _features(
    display: np.ndarray, background: np.ndarray, settings: CleanPlateSettings
) -> tuple[np.ndarray, np.ndarray] | None:
    """ORB features of a frame's background: points (in full-size pixels) and descriptors, or
    None where it has too few."""
    height, width = display.shape[:2]
    scale = min(1.0, settings.track_size / max(height, width))
    grey: np.ndarray = np.round(np.clip(np.asarray(display, np.float32).mean(axis=2), 0.0, 1.0) * 255.0)
    grey = grey.astype(np.uint8)
    mask: np.ndarray = background.astype(np.uint8) * 255
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA))
        mask = np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
    orb = cv2.ORB.create(nfeatures=settings.track_features, fastThreshold=5)
    keypoints, descriptors = orb.detectAndCompute(grey, mask)
    if descriptors is None or len(keypoints) < settings.track_inliers:
        return None
    points = np.array([k.pt for k in keypoints], np.float32) / scale
    return points, descriptors


def _register(
    onto: tuple[np.ndarray, np.ndarray],
    moved: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, ...],
    settings: CleanPlateSettings,
) -> np.ndarray | None:
    """The similarity (a pan, a tilt, a push-in, a roll; as a 3 × 3 matrix) taking ``moved``'s
    pixels onto ``onto``'s (both frames' features), or None where too few features agree.  Not a
    full homography: its perspective terms, fitted to the few features of a small or plain
    frame, wander (16 px of pan placed 30 px away on a test shot) where the similarity holds."""
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(moved[1], onto[1], k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < settings.track_inliers:
        return None
    source = moved[0][[m.queryIdx for m in good]]
    target = onto[0][[m.trainIdx for m in good]]
    scale = min(1.0, settings.track_size / max(shape[0], shape[1]))
    similarity, inliers = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=settings.track_tolerance / scale, maxIters=5000,
        confidence=0.999,
    )  # fmt: skip
    if similarity is None or inliers is None or int(inliers.sum()) < settings.track_inliers:
        return None
    return np.vstack([np.asarray(similarity, np.float64), [0.0, 0.0, 1.0]])


def _place(frame: int, display: np.ndarray, background: np.ndarray, tracking: Tracking) -> np.ndarray | None:
    """``frame``'s matrix into the tracked mosaic: a sample's own, or placed on the samples
    nearest it (the nearest that places it)."""
    if frame in tracking.to_mosaic:
        return tracking.to_mosaic[frame]
    features = _features(display, background, tracking.settings)
    if features is None:
        return None
    for sample in sorted(tracking.features, key=lambda s: (abs(s - frame), s))[:3]:
        onto = _register(tracking.features[sample], features, display.shape, tracking.settings)
        if onto is not None:
            return tracking.to_mosaic[sample] @ onto
    return None


def _chain(
    frames: list[int], images: list[np.ndarray], backgrounds: list[np.ndarray], settings: CleanPlateSettings
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray] | None]] | str:
    """Each sample's matrix into the middle sample's view, each placed on its neighbour
    towards the middle, and the samples' features; or why they cannot be placed."""
    features = [_features(image, background, settings) for image, background in zip(images, backgrounds, strict=True)]
    middle = len(images) // 2
    chain: list[np.ndarray | None] = [None] * len(images)
    chain[middle] = np.eye(3)
    for step in (1, -1):  # outwards from the middle sample
        for i in range(middle + step, len(images) if step > 0 else -1, step):
            a, b = features[i - step], features[i]
            onto = _register(a, b, images[i].shape, settings) if a is not None and b is not None else None
            previous = chain[i - step]
            if onto is None or previous is None:
                return (
                    f"the camera moves, and frames {frames[i - step]} and {frames[i]} share too few background "
                    "features to be placed on one another"
                )
            chain[i] = previous @ onto
    return [h for h in chain if h is not None], features


def _travel(matrices: list[np.ndarray], shape: tuple[int, ...]) -> float:
    """How far the frames' corners lie from the middle sample's, at most, in shares of the long side."""
    height, width = shape[:2]
    corners = _corners(height, width)
    moved = max(float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max()) for h in matrices)
    return moved / max(height, width)


def _edge_subjects(
    backgrounds: list[np.ndarray], priors: list[np.ndarray], corners: np.ndarray, settings: CleanPlateSettings
) -> list[np.ndarray]:
    """The samples' backgrounds less, near the frame's edges the world moves across (those whose
    place on the mosaic travels: ``corners`` (N, 4, 2), each sample's), what the prior sees faintly
    there (over ``track_edge_level``, grown as a subject is)."""
    height, width = backgrounds[0].shape
    long_side = max(height, width)
    travel = {  # how far each edge's mean position moves over the samples
        "top": np.ptp(corners[:, [0, 1], 1].mean(axis=1)), "bottom": np.ptp(corners[:, [2, 3], 1].mean(axis=1)),
        "left": np.ptp(corners[:, [0, 3], 0].mean(axis=1)), "right": np.ptp(corners[:, [1, 2], 0].mean(axis=1)),
    }  # fmt: skip
    reach = round(settings.track_edge * long_side)
    strip = np.zeros((height, width), bool)
    moves = {side: bool(distance > settings.track_still * long_side) for side, distance in travel.items()}
    if moves["top"]:
        strip[:reach] = True
    if moves["bottom"]:
        strip[height - reach :] = True
    if moves["left"]:
        strip[:, :reach] = True
    if moves["right"]:
        strip[:, width - reach :] = True
    if reach < 1 or not strip.any():
        return backgrounds
    faint = replace(settings, subject_level=settings.track_edge_level)
    return [
        background & ~(strip & ~_background(prior, (height, width), faint))
        for background, prior in zip(backgrounds, priors, strict=True)
    ]


def _tracked(
    frames: list[int],
    images: list[np.ndarray],
    backgrounds: list[np.ndarray],
    priors: list[np.ndarray],
    settings: CleanPlateSettings,
    radius: int,
    matrices: list[np.ndarray],
    features: list[tuple[np.ndarray, np.ndarray] | None],
) -> CleanPlate | str:
    """A moving camera's plate: the samples warped into the middle sample's view (a mosaic) by
    their ``matrices``, and their median taken there."""
    height, width = images[0].shape[:2]
    corners = _corners(height, width)
    placed = np.concatenate([cv2.perspectiveTransform(corners, h) for h in matrices])
    low, high = np.floor(placed.min(axis=(0, 1))), np.ceil(placed.max(axis=(0, 1)))
    mosaic_w, mosaic_h = int(high[0] - low[0]), int(high[1] - low[1])
    if mosaic_w * mosaic_h > settings.track_canvas * width * height:
        return (
            f"the camera moves too far for one plate (the frames span {mosaic_w * mosaic_h / (width * height):.1f}x "
            f"the frame, at most {settings.track_canvas})"
        )
    shift = np.array([[1.0, 0.0, -low[0]], [0.0, 1.0, -low[1]], [0.0, 0.0, 1.0]])
    to_mosaic = [shift @ h for h in matrices]
    size = (mosaic_w, mosaic_h)
    # Inside each frame by more than a window (no window of the residual reaches past its edge).
    inside = np.zeros((height, width), bool)
    inside[radius + 2 : height - radius - 2, radius + 2 : width - radius - 2] = True
    if settings.track_edge > 0:
        backgrounds = _edge_subjects(backgrounds, priors, placed.reshape(-1, 4, 2), settings)
    warped = [_Warped(image, matrix, size) for image, matrix in zip(images, to_mosaic, strict=True)]
    seen = [
        _Warped((background & inside).astype(np.uint8), matrix, size)
        for background, matrix in zip(backgrounds, to_mosaic, strict=True)
    ]
    covers = [_Warped(inside.astype(np.uint8), matrix, size) for matrix in to_mosaic]
    plate = _median(warped, seen, settings, radius, covers)
    if isinstance(plate, str):
        return plate
    if plate.residual > settings.max_residual:
        return (
            f"the camera moves and the background does not move as one picture (residual {plate.residual:.3f} over "
            f"{settings.max_residual}): parallax, a wide lens's keystone, or the light changes"
        )
    plate.frames = frames
    found = {frame: f for frame, f in zip(frames, features, strict=True) if f is not None}
    plate.tracking = Tracking(
        shape=(height, width), to_mosaic=dict(zip(frames, to_mosaic, strict=True)), features=found, settings=settings
    )
    return plate


@dataclass
class PlateMatch:
    """What one frame's view of the clean plate says (:func:`background_match`)."""

    #: (H, W) bool: known background for the refine; None where the frame is matted without
    #: the plate (``refused`` says why).
    known: np.ndarray | None
    #: The frame's own residual: the lower quartile of its background's windowed differences
    #: from the plate; NaN where none of its background was compared.
    own: float
    #: Why the frame is matted without the plate (a warning's words), or None.
    refused: str | None = None
    #: (H, W) bool: what the plate says is no background and the prior sees faintly (``differ``),
    #: shrunk by the window so its edge is still solved: subject for the refine with ``--clean-plate
    #: fill``; with ``auto``, what the matte leaves of it is reported.  None: none.
    subject: np.ndarray | None = None


def background_match(
    display: np.ndarray,
    plate: CleanPlate,
    prior: np.ndarray,
    settings: CleanPlateSettings | None = None,
    frame: int = 0,
) -> PlateMatch:
    """Where this frame shows the clean plate unchanged outside the prior's 0.5 contour (also
    inside it with ``settings.inside``): known background for the refine.  Refused where the
    frame as a whole differs from the plate, has another size, or cannot be placed on a tracked
    one (``frame`` is its number, which places a sample frame by its own matrix).  ``prior``
    (any size) is this frame's prior mask, whose background the residual is measured on; where
    its subjects cover whatever the plate saw, nothing is known and nothing is refused.  Also
    what differs from the plate where the prior sees a subject faintly outside its contour
    (``settings.differ``): the match's ``subject``, which ``--clean-plate fill`` fills and
    ``auto`` reports where the matte leaves it out."""
    settings = settings or SETTINGS
    background = _background(prior, display.shape[:2], settings)
    shape = plate.tracking.shape if plate.tracking is not None else plate.image.shape[:2]
    if display.shape[:2] != shape:
        return PlateMatch(None, float("nan"), f"the frame is {display.shape[1]}x{display.shape[0]}, the shot's "
                          f"clean plate {shape[1]}x{shape[0]}")  # fmt: skip
    view = plate.view(frame, display, background)
    if view is None:
        return PlateMatch(
            None, float("nan"), "the frame could not be placed on the shot's tracked clean plate (too few "
            "background features agree)"
        )  # fmt: skip
    image, seen_plate, spread = view
    radius = _radius(display.shape, settings)
    difference = _window_difference(display, image, radius)
    seen = ndimage.minimum_filter(seen_plate, size=2 * radius + 1)
    where = seen & background
    if not where.any():  # subjects cover whatever of the frame the plate saw: nothing to match
        return PlateMatch(np.zeros(display.shape[:2], bool), float("nan"))
    # The lower quartile, not the median: a flash or a bump moves every window, and the quartile
    # with them; a passer-by the prior does not call a subject covers part of the background and
    # moves the median (frames of the moving composite shots and the ends of ``chaplin.mp4`` were
    # refused by it) but not the quartile, and the match leaves his windows alone anyway.
    own = float(np.quantile(difference[where], 0.25))
    if own > settings.frame_residual * max(plate.residual, 1e-4):
        return PlateMatch(
            None, own, f"the background differs from the shot's clean plate as a whole (a quarter of it by "
            f"{own:.4f} or less, the plate's residual {plate.residual:.4f})"
        )  # fmt: skip
    level = max(settings.match * plate.residual, 2e-3)
    known = seen & (difference < level)
    full_prior = resize(np.clip(prior, 0.0, 1.0).astype(np.float32), *display.shape[:2])
    if not settings.inside:
        known &= full_prior < 0.5
    subject = None
    if settings.differ > 0:
        window = 2 * radius + 1
        floor = max(plate.residual, 1e-3) + settings.differ_spread * ndimage.uniform_filter(spread, size=window)
        differs = seen & (difference > settings.differ * floor) & (full_prior > settings.subject_level)
        # Where the plate's texture still shows through, what differs is translucent (hair, smoke)
        # or a shade (a cast shadow), not an opaque subject the prior dropped.
        if settings.through > 0 and differs.any():
            reach = max(1, round(settings.through * max(display.shape[:2])))
            rows, cols = np.nonzero(differs.any(axis=1))[0], np.nonzero(differs.any(axis=0))[0]
            # Only around what differs: every window centred on it lies inside the box.
            top, left = max(0, rows[0] - reach), max(0, cols[0] - reach)
            box = (slice(top, rows[-1] + reach + 1), slice(left, cols[-1] + reach + 1))
            differs[box] &= ~_shows_through(display[box], image[box], reach, plate.residual)
        # A window that straddles the subject's edge differs too: shrunk by it, the edge is solved.
        subject = ndimage.binary_erosion(differs, structure=np.ones((window, window), bool))
        # Inside the prior's contour its band already solves the edge (soft hair there differs
        # from the plate too, and is not opaque): only what the prior leaves outside is added.
        subject &= full_prior < 0.5
    return PlateMatch(known, own, subject=subject)
