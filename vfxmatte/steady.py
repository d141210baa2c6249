"""The salient-object prior steadied over neighbouring frames (``--prior-window``).

U²-Netp looks at each frame on its own, and on real footage its answer flickers: on
``chaplin.mp4`` a second man is found on three frames out of twenty and lost between them, a
stone pillar comes and goes as a grey ghost, a head is found on one frame and lost on the next
(docs/VIDEO.md).  Trimap-free, the matte is the prior's core with its edge solved, so every such
blip is a blip in the matte.

Here each frame's prior is replaced by the per-pixel median of its own mask and those of the
``radius`` frames on either side (near the shot's ends the window is shifted inwards, so it
always holds ``2·radius + 1`` frames), each moved onto this frame by dense optical flow (the
same DIS flow the keyframe carry uses).  Whatever the prior sees on fewer than ``radius + 1`` of
the ``2·radius + 1`` frames (a blip) is dropped; whatever it sees on most of them is kept, moved
with the picture, also on the frames it missed.  Where a neighbour's flow fails a
forward-backward check, that neighbour has no vote at the pixel.  The median keeps a value one
of the frames had, so a steady subject's edge is not blurred by averaging.

Each frame's steady mask depends only on the frames around it (their positions in the input's
frame order), never on what was matted before, so a chunked or resumed run gets the same masks
as a single run.  The neighbours are read by a second pass over the input that runs
``radius`` frames ahead of the matting (:func:`steady_masks` is a generator; memory holds
``2·radius + 1`` small masks and pictures, not plates).
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from vfxmatte.carry import _flow_engine, _remap

#: Forward-backward flow error (px at the picture's size) above which a neighbour's mask is not
#: trusted at a pixel.  0.5–16 px went through the half-split protocol (docs/VIDEO.md): a laxer
#: check scores the target alone better and the background between two subjects worse, the halves
#: disagree, and 1 px stays.
TRUST_PX = 1.0


@contextlib.contextmanager
def trusting(px: float | None) -> Iterator[None]:
    """Run the block with :data:`TRUST_PX` at ``px`` (None: as it is), restored after: for the
    benchmarks that sweep it (``scripts/bench_edges.py``, ``scripts/bench_prior_temporal.py``)."""
    global TRUST_PX
    kept = TRUST_PX
    TRUST_PX = kept if px is None else px
    try:
        yield
    finally:
        TRUST_PX = kept


@dataclass
class Seen:
    """One frame as the steadying sees it: the prior's mask (LR size) and the picture the flow
    follows (uint8 RGB, any smaller size: the flow is scaled to the mask)."""

    frame: int
    mask: np.ndarray
    picture: np.ndarray


def window(frame: int, ordered: list[int], radius: int) -> list[int]:
    """``frame`` and the ``radius`` frames on either side of it in ``ordered`` (the input's frames).

    Near the first or last frame the window keeps its ``2·radius + 1`` frames by reaching further
    in: a median of fewer, or of an even number of masks, would let two frames out of four (an
    average of the middle two) leave a half-opaque ghost.
    """
    at = bisect.bisect_left(ordered, frame)
    if at == len(ordered) or ordered[at] != frame:
        return [frame]
    start = min(max(0, at - radius), max(0, len(ordered) - (2 * radius + 1)))
    return ordered[start : start + 2 * radius + 1]


def frames_to_read(wanted: Iterable[int], ordered: list[int], radius: int) -> list[int]:
    """Every frame some wanted frame's window needs, in order."""
    needed: set[int] = set()
    for frame in wanted:
        needed.update(window(frame, ordered, radius))
    return sorted(needed)


def steady(own: Seen, neighbours: list[Seen], flow: Callable[[Seen, Seen], np.ndarray]) -> np.ndarray:
    """The per-pixel median of ``own``'s mask and the neighbours' masks moved onto ``own`` by
    ``flow(a, b)`` (a's pixel x is at x + flow(x) in b)."""
    import cv2

    # A frame of another size (a resolution change the matting refuses) has no vote.
    neighbours = [n for n in neighbours if n.mask.shape == own.mask.shape and n.picture.shape == own.picture.shape]
    if not neighbours:
        return own.mask
    h, w = own.mask.shape
    ph, pw = own.picture.shape[:2]
    stack = [own.mask]
    for other in neighbours:
        motion = flow(own, other)  # own's pixel x is at x + motion(x) in other
        # Where the flow back does not return to the start (occlusions, a walking figure's limbs,
        # the background between two subjects that move apart, which a smooth flow smears), the
        # neighbour has no vote: the frames whose flow holds there decide.
        back = _remap(flow(other, own), motion)
        trusted = np.hypot(*(motion + back).transpose(2, 0, 1)) <= TRUST_PX
        if (ph, pw) != (h, w):
            motion = np.asarray(cv2.resize(motion, (w, h), interpolation=cv2.INTER_LINEAR))
            motion[..., 0] *= w / pw
            motion[..., 1] *= h / ph
            trusted = np.asarray(cv2.resize(trusted.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)) > 0
        stack.append(np.where(trusted, _remap(other.mask, motion), np.nan).astype(np.float32))
    votes = np.stack(stack)
    # An even number of votes: the frame's own mask votes twice (a tie is not averaged into a ghost).
    even = np.count_nonzero(~np.isnan(votes), axis=0) % 2 == 0
    votes = np.concatenate([votes, np.where(even, own.mask, np.nan)[None].astype(np.float32)])
    return np.asarray(np.nanmedian(votes, axis=0), dtype=np.float32)


def steady_masks(
    seen: Iterator[Seen | int], wanted: list[int], ordered: list[int], radius: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, steady mask)`` for every wanted frame, in order, each as soon as its window has
    been read from ``seen`` (frames in order; an int is a frame that could not be read, left out
    of its neighbours' windows).  A wanted frame that could not be read itself is not yielded."""
    engine = _flow_engine()
    flows: dict[tuple[int, int], np.ndarray] = {}  # every pair is in two windows: each flow once

    def flow(a: Seen, b: Seen) -> np.ndarray:
        key = (a.frame, b.frame)
        if key not in flows:
            flows[key] = engine(a.picture, b.picture)
        return flows[key]

    held: dict[int, Seen] = {}
    pending = sorted(set(wanted))
    last = -(1 << 62)  # the latest frame read (the input comes in order)

    def ready(frame: int) -> bool:
        return max(window(frame, ordered, radius)) <= last

    def emit() -> Iterator[tuple[int, np.ndarray]]:
        while pending and ready(pending[0]):
            frame = pending.pop(0)
            if frame in held:
                others = [held[f] for f in window(frame, ordered, radius) if f != frame and f in held]
                yield frame, steady(held[frame], others, flow)
            # Frames before the next pending frame's window are needed by no window any more.
            first = window(pending[0], ordered, radius)[0] if pending else last
            for f in [f for f in held if f < first]:
                del held[f]
            for key in [key for key in flows if min(key) < first]:
                del flows[key]

    for item in seen:
        if not isinstance(item, int):
            held[item.frame] = item
        last = max(last, item if isinstance(item, int) else item.frame)
        yield from emit()
    last = 1 << 62  # the input is over: what was not read is not coming
    yield from emit()
