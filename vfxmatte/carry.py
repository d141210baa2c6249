"""Keyframe guides carried through a shot: the artist's subject, held from a few drawn frames.

An artist has a roto (a mask) or a trimap on one or a few *keyframes*, not on every frame.
This module turns those into one guide per frame (DESIGN §2, "the artist's subject"):

1. :func:`plan_guides` decides what ``--guide`` means for a run: a guide on every frame
   (``per-frame``), one image for every frame of a locked-off shot (``static``), or keyframes
   (a sequence whose files cover only some frames, or one image with ``--guide-frame N``).
2. :func:`carry_shot` carries each keyframe's subject to the frames around it with dense
   optical flow (OpenCV's DIS) between consecutive frames, at a working size of
   ``CARRY_SIZE`` px.  Each step fits the subject's motion as a similarity transform (RANSAC on
   the flow of the subject's core, where the flow follows the subject and not the background seen
   through hair) and moves the *keyframe's own* mask by the composed motion, so it never blurs or
   creeps; warping the previous frame's mask pixel by pixel was measured and dropped
   (scripts/bench_carry.py).  Forward–backward inconsistency (occlusion, uncovered background) and
   non-rigid motion (consistent flow that does not follow the subject's motion) near the subject
   add to a per-pixel *doubt*, which also grows a little per frame along the edge (distance from
   the keyframe).  The shot is cut at every keyframe: a frame between two keyframes is carried
   from both sides and the two are blended per pixel, each side weighted by its distance and by
   how well it tracked; frames before the first or after the last keyframe are carried from that
   one only.  A frame's carried guide therefore depends only on the keyframes around it and the
   frames between them, so a chunked or resumed run carries exactly what a single run does.
3. :meth:`CarriedSubject.to_guide` makes the frame's guide: a trimap whose unknown band follows
   the carried edge, ``CARRY_BAND`` of the long side wide where the carry is sure and up to three
   times wider where it doubts (plus a keyframe trimap's own carried band).  The pipeline solves it
   like a drawn trimap (Eq. 8 start, band solve); the doubt goes to the uncertainty pass and, per
   frame, to the header ``vfxmatte:keyframe_doubt`` and :func:`next_keyframes`.

Only ``mask`` and ``trimap`` keyframes are carried; scribbles fix only the strokes drawn on
their own frame and are refused as keyframes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vfxmatte import guide as guidance
from vfxmatte.errors import InputError, UsageError
from vfxmatte.io import color
from vfxmatte.io.frames import Plate, Window
from vfxmatte.sampling import distance_to, resize

#: Long side (px) of the frames the subject is carried on: DIS flow "medium" takes about
#: 0.05 s per direction at 640×360 on one core of the 2-core reference machine.
CARRY_SIZE = 640
#: Half-width of the unknown band around a carried edge where the carry is sure, as a fraction of
#: the frame's long side (≥ 4 px); it widens to three times this where the carry doubts.  Chosen by
#: scripts/bench_carry.py on each half of the composite shots (the narrowest band whose known
#: trimap pixels stay right on every shot of the half): 0.01 on both halves.
CARRY_BAND = 0.01
#: Doubt added per frame of distance from a keyframe, near the subject's edge.
DOUBT_PER_FRAME = 0.015

GuideMode = Literal["per-frame", "static", "keyframes"]


@dataclass
class GuidePlan:
    """What ``--guide`` means for a run (see the module docstring)."""

    mode: GuideMode
    pattern: str
    files: dict[int, str]  # keyframe (or, per-frame, every frame) → its guide file
    static_path: str | None = None

    @property
    def keyframes(self) -> list[int]:
        return sorted(self.files) if self.mode == "keyframes" else []

    def path_for(self, frame: int) -> str:
        if self.static_path is not None:
            return self.static_path
        return self.files[frame]


def plan_guides(pattern: str, guide_frame: int | None, frames: list[int], shot_frames: list[int]) -> GuidePlan:
    """Resolve ``--guide`` (and ``--guide-frame``) for the frames to matte.

    ``frames`` are the frames this run mattes, ``shot_frames`` every frame of the shot that can be
    read (keyframes outside ``frames`` still count: the frames between are read, not written).
    """
    from vfxmatte.io.sequence import FrameSequence, format_ranges

    sequence = FrameSequence.parse(pattern)
    span = f"{format_ranges(shot_frames)}" if shot_frames else "none"
    if guide_frame is not None:
        if not sequence.is_single:
            raise UsageError(f"{pattern}: --guide-frame takes one guide image, not a sequence pattern")
        if guide_frame not in shot_frames:
            raise InputError(f"{pattern}: --guide-frame {guide_frame} is outside the shot (frames {span})")
    if sequence.is_single:
        on_disk = sequence.frames_on_disk()
        if not on_disk:
            raise InputError(f"{pattern}: guide file does not exist")
        path = sequence.path(on_disk[0])
        if guide_frame is None:
            return GuidePlan("static", pattern, {}, static_path=path)  # one image guides every frame
        return GuidePlan("keyframes", pattern, {guide_frame: path})
    present = sequence.frames_on_disk()
    if not present:
        raise InputError(f"{pattern}: no guide files match the pattern")
    # A guide on every frame of the shot is matched frame by frame.  Decided on the whole shot, not on
    # the frames this run mattes, so a chunk of a shot is guided the way a single run guides it.
    present_set, in_shot = set(present), set(shot_frames)
    if all(f in present_set for f in [*shot_frames, *frames]):
        return GuidePlan("per-frame", pattern, {f: sequence.path(f) for f in frames})
    reachable = [f for f in present if f in in_shot]
    if not reachable:
        raise InputError(
            f"{pattern}: no keyframe within reach of frames {format_ranges(frames)}: the guide files are frames "
            f"{format_ranges(present)}, the shot holds frames {span}"
        )
    return GuidePlan("keyframes", pattern, {f: sequence.path(f) for f in reachable})


# -- the carried subject -----------------------------------------------------------------------


@dataclass
class CarriedSubject:
    """One frame's subject at the carry's working size, with how sure the carry is of it."""

    mask: np.ndarray  # (h, w) float32 in [0, 1]: 1 subject, 0 not
    band: np.ndarray  # (h, w) float32 in [0, 1]: a keyframe trimap's own unknown band, carried
    doubt: np.ndarray  # (h, w) float32 in [0, 1]: 0 drawn on this frame … 1 nothing known
    keyframe: bool = False
    trimap: np.ndarray | None = None  # a trimap keyframe's own trimap at full size (keyframes only)

    def score(self) -> float:
        """How much a new keyframe would help this frame: mean doubt near the subject (0 on keyframes)."""
        near = _near_subject(self.mask, _band_px(CARRY_BAND, self.mask.shape) * 3)
        doubt = self.doubt.astype(np.float32)
        return float(doubt[near].mean()) if near.any() else float(doubt.mean())

    def full_doubt(self, height: int, width: int) -> np.ndarray:
        return np.clip(resize(self.doubt.astype(np.float32), height, width), 0.0, 1.0).astype(np.float32)

    def to_guide(
        self, height: int, width: int, carry_band: float = CARRY_BAND, doubt: np.ndarray | None = None
    ) -> guidance.Guide:
        """The frame's trimap guide at full size (codes 0 / 0.5 / 1), band from the edge and the doubt
        (``doubt``: :meth:`full_doubt` at this size, when the caller has it already)."""
        if self.trimap is not None:
            trimap = self.trimap
        else:
            mask = resize(self.mask.astype(np.float32), height, width)
            if doubt is None:
                doubt = self.full_doubt(height, width)
            inner = mask > 0.5
            base = float(_band_px(carry_band, (height, width)))
            reach = base * (1.0 + 2.0 * doubt)  # px from the carried edge that stay unknown
            if inner.any() and not inner.all():
                # Distance to the carried edge: inside, to the nearest outside pixel; outside, to the subject.
                distance = np.where(inner, distance_to(~inner), distance_to(inner))
                unknown = distance <= reach
            else:
                unknown = np.zeros(inner.shape, dtype=bool)
            unknown |= resize(self.band.astype(np.float32), height, width) > 0.5
            trimap = np.where(unknown, 0.5, np.where(inner, 1.0, 0.0)).astype(np.float32)
        unknown_mask = np.abs(trimap - 0.5) < 0.25
        return guidance.Guide("trimap", trimap, unknown_mask, [])


def _band_px(fraction: float, shape: tuple[int, ...]) -> int:
    return max(guidance.MASK_MIN_PX, round(fraction * max(shape[:2])))


def _near_subject(mask: np.ndarray, radius: int) -> np.ndarray:
    """The subject (mask > 0.5) grown by ``radius`` px."""
    return np.asarray(distance_to(mask > 0.5) <= radius)


def _edge_zone(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of the mask's 0.5 edge."""
    inner = mask > 0.5
    return np.asarray((distance_to(inner) <= radius) & (distance_to(~inner) <= radius))


# -- keyframes ---------------------------------------------------------------------------------


def working_shape(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, CARRY_SIZE / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


def load_keyframe(path: str, kind: str, plate: Plate, channel: str | None) -> CarriedSubject:
    """A keyframe's guide registered to its plate and checked, as the carry's starting subject."""
    values, opacity, data, display = guidance.read_guide_image(path, channel)
    _check_maps(path, data, display, plate)
    registered = guidance.register(values, data, display, plate.data_window, plate.display_window)
    opacity_registered = (
        guidance.register(opacity, data, display, plate.data_window, plate.display_window)
        if opacity is not None
        else None
    )
    interpreted = guidance.interpret(registered, kind, opacity_registered, source=path)
    height, width = registered.shape
    h, w = working_shape(height, width)
    if interpreted.kind == "scribble":
        raise UsageError(
            f"{path}: scribbles cannot be carried from a keyframe; draw a mask or a trimap on keyframes, "
            "or scribbles on every frame"
        )
    if interpreted.kind == "mask":
        inside = registered > 0.5
        if not inside.any():
            raise InputError(f"{path}: the keyframe mask is empty (no pixel above 0.5); draw the subject")
        if inside.all():
            raise InputError(f"{path}: the keyframe mask covers the whole frame; draw the subject's outline")
        mask = np.clip(resize(inside.astype(np.float32), h, w), 0.0, 1.0)
        band = np.zeros((h, w), np.float32)
        trimap = None
    else:
        if not (interpreted.values >= 0.75).any() and not interpreted.unknown.any():
            raise InputError(f"{path}: the keyframe trimap marks no subject (no white or grey pixel)")
        subject = np.where(interpreted.unknown, 0.5, interpreted.values).astype(np.float32)
        mask = np.clip(resize(subject, h, w), 0.0, 1.0)
        band = np.clip(resize(interpreted.unknown.astype(np.float32), h, w), 0.0, 1.0)
        trimap = np.where(interpreted.unknown, 0.5, interpreted.values).astype(np.float32)
    return CarriedSubject(mask, band, np.zeros((h, w), np.float32), keyframe=True, trimap=trimap)


def _check_maps(path: str, data: Window, display: Window, plate: Plate) -> None:
    """A keyframe must map onto the plate: the same display aspect, a data window inside its display."""
    pd = plate.display_window
    guide_aspect, plate_aspect = display.width / display.height, pd.width / pd.height
    if abs(guide_aspect / plate_aspect - 1.0) > 0.01:
        raise InputError(
            f"{path}: the keyframe ({display.width}x{display.height}) does not map onto the plate "
            f"{os.path.basename(plate.path)} ({pd.width}x{pd.height}): display aspect {guide_aspect:.3f} "
            f"vs {plate_aspect:.3f}"
        )
    overlap_w = min(data.x + data.width, display.x + display.width) - max(data.x, display.x)
    overlap_h = min(data.y + data.height, display.y + display.height) - max(data.y, display.y)
    if overlap_w <= 0 or overlap_h <= 0:
        raise InputError(f"{path}: the keyframe's data window lies outside its display window; nothing maps")


# -- carrying ----------------------------------------------------------------------------------


def carry_image(plate: Plate) -> np.ndarray:
    """The plate as the carry sees it: display-referred RGB, uint8, at the working size.

    Reduced first (area average, in the plate's own colour space), converted after: the colour
    transforms cost ten times more at full resolution, and tracking needs no exact filtering.
    """
    import cv2

    h, w = working_shape(*plate.rgb.shape[:2])
    small = np.asarray(cv2.resize(plate.rgb, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
    linear_space = color.linear_space(plate.colorspace)
    linear = color.convert(small, plate.colorspace, linear_space)
    display = np.clip(color.to_network(linear, linear_space), 0.0, 1.0)
    return np.asarray(np.round(display * 255.0), dtype=np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    """Luma of a carry image (uint8), what the flow sees."""
    import cv2

    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


@dataclass
class _Flows:
    forward: np.ndarray  # (h, w, 2): frame a's pixel x is at x + forward(x) in frame b
    backward: np.ndarray  # (h, w, 2): frame b's pixel x came from x + backward(x) in frame a


def _flow_engine() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(dis.calc(_grey(a), _grey(b), None), dtype=np.float32)

    return flow


def _remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` looked up at ``x + flow(x)`` (bilinear, edges replicated)."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.asarray(
        cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    )


def _similarity(mask: np.ndarray, flow: np.ndarray, core_px: int) -> np.ndarray:
    """The subject's motion between two frames as a similarity transform (2×3), fitted with RANSAC to
    the flow of the subject's core (its mask eroded by ``core_px``): the solid inside, where the flow
    follows the subject itself and not the background seen through hair or a transparent edge."""
    import cv2

    inner = mask > 0.5
    core = distance_to(~inner) > core_px
    ys, xs = np.nonzero(core if np.count_nonzero(core) >= 50 else inner)
    if len(ys) == 0:
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    stride = max(1, len(ys) // 4000)  # every n-th pixel: deterministic, so chunks carry alike
    ys, xs = ys[::stride], xs[::stride]
    source = np.stack([xs, ys], axis=1).astype(np.float32)
    target = source + flow[ys, xs]
    model = None
    if len(ys) >= 3:
        model, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=1.5)
    if model is None:
        dx, dy = np.median(target - source, axis=0)
        return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return np.asarray(model, dtype=np.float64)


def _warp(image: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``image`` moved by a 2×3 transform (its pixel x lands at transform·x)."""
    import cv2

    h, w = image.shape[:2]
    return np.asarray(cv2.warpAffine(image, transform, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))


@dataclass
class _Track:
    """A keyframe's subject followed frame by frame: the keyframe's own mask moved by the composed
    motion (no resampling of a resampled mask, so nothing blurs or creeps), and the doubt."""

    key: CarriedSubject
    transform: np.ndarray  # 3×3: keyframe pixel → this frame's pixel
    subject: CarriedSubject


def _step(track: _Track, towards: np.ndarray, back: np.ndarray) -> _Track:
    """Carry a track from one frame (the source) to the next one in the carry's direction (the target).

    ``back`` maps source pixels into the target (x + back(x)): the subject's motion is fitted to it;
    ``towards`` maps target pixels to the source: the forward–backward check and the non-rigid check
    use it.
    """
    mask = track.subject.mask
    reach = _band_px(CARRY_BAND, mask.shape) * 3
    motion = _similarity(mask, back, core_px=max(2, reach // 3))
    step = np.vstack([motion, [0.0, 0.0, 1.0]])
    transform = step @ track.transform
    moved_mask = np.clip(_warp(track.key.mask, transform[:2]), 0.0, 1.0)
    moved_band = np.clip(_warp(track.key.band, transform[:2]), 0.0, 1.0)
    doubt = _warp(track.subject.doubt, motion)
    # Forward–backward consistency (Sundaram et al. 2010): a target pixel that maps to the source and
    # back lands where it started unless it was occluded (or uncovered) or the flow failed there.
    back_at = _remap(back, towards)
    mismatch = np.sum((towards + back_at) ** 2, axis=-1)
    tolerance = 0.01 * (np.sum(towards**2, axis=-1) + np.sum(back_at**2, axis=-1)) + 0.5
    inconsistent = np.clip((mismatch - tolerance) / (4.0 * tolerance), 0.0, 1.0)
    # Non-rigid motion: where the flow holds (consistent) but does not follow the subject's overall
    # motion, a limb or a fold moves on its own and the moved mask may miss it.
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    inverse = np.linalg.inv(step)
    source_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    source_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    deviation = np.hypot(towards[..., 0] - (source_x - xs), towards[..., 1] - (source_y - ys))
    deforming = np.clip((deviation - 1.0) / 3.0, 0.0, 1.0) * (1.0 - inconsistent)
    failed = np.maximum(inconsistent, deforming)
    # Doubt near the subject: failures there, plus distance from the keyframe at its edge.
    near = _near_subject(moved_mask, reach).astype(np.float32)
    edge = _edge_zone(moved_mask, reach).astype(np.float32)
    doubt = 1.0 - (1.0 - doubt) * (1.0 - failed * near) * (1.0 - DOUBT_PER_FRAME * edge)
    subject = CarriedSubject(
        moved_mask.astype(np.float32), moved_band.astype(np.float32), np.clip(doubt, 0.0, 1.0).astype(np.float32)
    )
    return _Track(track.key, transform, subject)


def _blend(earlier: CarriedSubject, later: CarriedSubject, from_earlier: int, from_later: int) -> CarriedSubject:
    """A frame carried from the keyframes on both sides: each weighted by its distance and how well
    it tracked; where the two disagree, the frame's doubt rises."""
    w_e = (1.0 - earlier.doubt) / from_earlier + 1e-3
    w_l = (1.0 - later.doubt) / from_later + 1e-3
    total = w_e + w_l
    mask = (w_e * earlier.mask + w_l * later.mask) / total
    band = (w_e * earlier.band + w_l * later.band) / total
    both = (w_e * earlier.doubt + w_l * later.doubt) / total
    # Two independent carries that agree are surer than either; disagreement is doubt.
    agreed = both * np.minimum(earlier.doubt, later.doubt) ** 0.5
    doubt = np.clip(agreed + np.abs(earlier.mask - later.mask), 0.0, 1.0)
    return CarriedSubject(mask.astype(np.float32), band.astype(np.float32), doubt.astype(np.float32))


@dataclass
class CarryResult:
    """Every frame's carried subject, and what the carrying cost."""

    subjects: dict[int, CarriedSubject]
    keyframes: list[int]
    seconds: float = 0.0
    frames_read: int = 0
    notes: list[str] = field(default_factory=list)


def carry_span(frames: Iterable[int], keyframes: list[int], ordered: list[int]) -> list[int]:
    """The frames the carry must read to reach ``frames``: each one's stretch between keyframes."""
    import bisect

    position = {frame: i for i, frame in enumerate(ordered)}
    keyed = sorted(k for k in keyframes if k in position)
    needed: set[int] = set()
    for frame in frames:
        if frame not in position:
            continue
        i = bisect.bisect_right(keyed, frame)
        first = position[keyed[i - 1]] if i > 0 else position[frame]
        j = bisect.bisect_left(keyed, frame)
        last = position[keyed[j]] if j < len(keyed) else position[frame]
        needed.update(ordered[first : last + 1])
    return sorted(needed, key=position.__getitem__)


def _compact(subject: CarriedSubject) -> CarriedSubject:
    """A carried subject kept for later (half floats: a long shot holds one per frame)."""
    return CarriedSubject(
        subject.mask.astype(np.float16), subject.band.astype(np.float16), subject.doubt.astype(np.float16),
        subject.keyframe, subject.trimap,
    )


def _expand(subject: CarriedSubject) -> CarriedSubject:
    return CarriedSubject(
        subject.mask.astype(np.float32), subject.band.astype(np.float32), subject.doubt.astype(np.float32),
        subject.keyframe, subject.trimap,
    )


def carry_shot(
    plan: GuidePlan,
    kind: str,
    channel: str | None,
    frames: Iterable[int],
    ordered: list[int],
    read: Callable[[list[int]], Iterator[Plate | int]],
) -> CarryResult:
    """Carry the plan's keyframes to ``frames``.

    ``ordered`` lists every readable frame of the shot in order (the carry steps from one to the
    next); ``read(frames)`` yields those frames' plates in order, or the frame number of one that
    cannot be read (the carry steps over it).  The frames are read once, in order: the forward carry
    runs as they arrive; the flows the backward carry needs (those before the last keyframe) are kept
    in half floats, about 1.8 MB per frame at the working size.
    """
    started = time.perf_counter()
    keyframes = plan.keyframes
    wanted = set(frames) & set(ordered)
    span = carry_span(wanted, keyframes, ordered)
    last_key = max((k for k in keyframes if k in set(span)), default=None)
    result = CarryResult({}, keyframes)
    keyed: dict[int, CarriedSubject] = {}
    flows: dict[int, _Flows] = {}  # frame → flows between the frame read before it and this one
    readable: list[int] = []
    forward: dict[int, tuple[CarriedSubject, int]] = {}  # wanted frame → (carried from the keyframe before, distance)
    flow = _flow_engine()
    size: tuple[int, int] | None = None
    previous_image: np.ndarray | None = None
    track: _Track | None = None
    distance = 0
    before_last_key = last_key is not None
    for item in read(span):
        if isinstance(item, int):
            result.notes.append(f"frame {item}: unreadable; the keyframe carry stepped over it")
            continue
        image = carry_image(item)
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            continue  # a frame of another size fails on its own in the matting loop
        result.frames_read += 1
        frame = item.frame
        pair: _Flows | None = None
        if previous_image is not None:
            pair = _Flows(forward=flow(previous_image, image), backward=flow(image, previous_image))
            if before_last_key:
                flows[frame] = _Flows(pair.forward.astype(np.float16), pair.backward.astype(np.float16))
        previous_image = image
        readable.append(frame)
        if frame in plan.files:
            keyed[frame] = load_keyframe(plan.files[frame], kind, item, channel)
            track, distance = _Track(keyed[frame], np.eye(3), keyed[frame]), 0
        elif track is not None and pair is not None:
            track = _step(track, towards=pair.backward, back=pair.forward)
            distance += 1
        if track is not None and frame in wanted:
            forward[frame] = (_compact(track.subject), distance)
        if frame == last_key:
            before_last_key = False
    missing = [k for k in keyframes if k in set(span) and k not in keyed]
    if missing:
        raise InputError(f"{plan.files[missing[0]]}: keyframe {missing[0]}'s plate frame cannot be read")
    backward: dict[int, tuple[CarriedSubject, int]] = {}
    track, distance = None, 0
    for following, frame in zip([None, *readable[::-1][:-1]], readable[::-1], strict=True):
        if frame in keyed:
            track, distance = _Track(keyed[frame], np.eye(3), keyed[frame]), 0
        elif track is not None and following is not None:
            stored = flows.pop(following)  # between this frame and the following one
            track = _step(
                track, towards=stored.forward.astype(np.float32), back=stored.backward.astype(np.float32)
            )
            distance += 1
        if track is not None and frame in wanted:
            backward[frame] = (_compact(track.subject), distance)
    for frame in readable:
        if frame not in wanted:
            continue
        if frame in keyed:
            result.subjects[frame] = keyed[frame]
        elif frame in forward and frame in backward:
            (early, d_e), (late, d_l) = forward[frame], backward[frame]
            result.subjects[frame] = _compact(_blend(_expand(early), _expand(late), d_e, d_l))
        elif frame in forward:
            result.subjects[frame] = forward[frame][0]
        elif frame in backward:
            result.subjects[frame] = backward[frame][0]
    result.seconds = time.perf_counter() - started
    return result


def check_keyframes(
    plan: GuidePlan, kind: str, channel: str | None, read: Callable[[list[int]], Iterator[Plate | int]]
) -> None:
    """Load every keyframe with its plate, so a bad one (empty, not mapping onto the plate, unreadable)
    fails before any chunk of a run starts; the carry itself checks only the keyframes it reaches."""
    if plan.mode != "keyframes":
        return
    seen: set[int] = set()
    for item in read(plan.keyframes):
        if isinstance(item, int):
            raise InputError(f"{plan.files[item]}: keyframe {item}'s plate frame cannot be read")
        load_keyframe(plan.files[item.frame], kind, item, channel)
        seen.add(item.frame)
    if missing := [k for k in plan.keyframes if k not in seen]:
        raise InputError(f"{plan.files[missing[0]]}: keyframe {missing[0]}'s plate frame cannot be read")


def next_keyframes(
    scores: dict[int, float], keyframes: list[int], count: int = 3, threshold: float = 0.25
) -> list[int]:
    """Frames where a new keyframe would help most, most doubtful first, at most ``count``: one per
    stretch of frames whose doubt passes ``threshold``.  Between two keyframes, the stretch's most
    doubtful frame (it splits the stretch where the two carries meet); before the first or after the
    last keyframe, the frame nearest the keyframe where the doubt passes twice ``threshold`` — where the
    carry starts to fail, so the new keyframe carries on over the rest — else the most doubtful one."""
    ordered = sorted(keyframes)
    stretches: dict[int, list[tuple[int, float]]] = {}
    for frame, score in sorted(scores.items()):
        if frame not in keyframes:
            stretches.setdefault(sum(1 for k in ordered if k < frame), []).append((frame, score))
    picks: list[tuple[float, int]] = []
    for stretch, members in stretches.items():
        doubtful = [(frame, score) for frame, score in members if score >= threshold]
        if not doubtful:
            continue
        frame, score = max(doubtful, key=lambda item: item[1])
        open_ended = stretch == 0 or stretch == len(ordered)
        failing = [(f, s) for f, s in doubtful if s >= 2 * threshold]
        if open_ended and failing:
            # After the last keyframe the carry fails going forward; before the first, going backward.
            frame, score = failing[0] if stretch == len(ordered) else failing[-1]
        picks.append((score, frame))
    return [frame for _, frame in sorted(picks, reverse=True)[:count]]
