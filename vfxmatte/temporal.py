"""Temporal stability for shots: which noise each frame's LR ensemble gets.

Sampled independently, a diffusion matte flickers from frame to frame (the paper's stated
limitation).  Two modes (DESIGN §2):

* ``off`` — independent sampling: each frame's noise is drawn from ``(seed, frame)``.
* ``shared`` — one noise tensor (from ``seed``) for every frame of the shot.

``shared`` also carries the previous frame's LR matte, which the prior-jump check
(``--prior-jump-iou``, off by default) follows when the salient-object prior jumps to another
object.  "The previous frame" is always the frame before
this one *in the input* (the shot's predecessor function), never merely the last one matted.
Frames are processed in ascending order.

A third mode, ``prev-latent`` (each frame started per Eq. 6 from the previous frame's LR
latents, optionally warped by optical flow), was removed: on the temporal benchmark it made
dtSSD 57–64 % worse than ``off`` and SAD 13–22x worse, because the previous latent replaced
the salient-object prior's start and carried the old matte along (docs/VIDEO.md).  A run or a
request that still names it gets a one-line usage error
(:data:`vfxmatte.config.REMOVED_TEMPORAL_MODES`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch

from vfxmatte.sampling import ensemble_noise

TemporalMode = Literal["off", "shared"]
TEMPORAL_MODES: tuple[str, ...] = get_args(TemporalMode)


#: The prior-jump check follows the previous matte for at most this many frames in a row.  Without
#: a limit, one jump locked a moving shot onto a stale matte: on a composite shot over real
#: footage (``scripts/bench_edges.py --frames 12``) every frame from the third on followed the
#: previous one and the alpha MSE grew from 48 to 326 ×1e-3 (docs/VIDEO.md).  Through the half-split
#: protocol (1, 2, 3, 4 and unbounded on prior-switch shots of each half) half A picks 1 and half
#: B 4, each the other's worst or worse than 2, so 2 stays (docs/VIDEO.md, "the prior-jump check").
MAX_FOLLOW = 2


@contextlib.contextmanager
def following(frames: int | None) -> Iterator[None]:
    """Run the block with :data:`MAX_FOLLOW` at ``frames`` (None: as it is), restored after: for
    the benchmarks that sweep it (as :func:`vfxmatte.steady.trusting` for the flow tolerance)."""
    global MAX_FOLLOW
    kept = MAX_FOLLOW
    MAX_FOLLOW = kept if frames is None else frames
    try:
        yield
    finally:
        MAX_FOLLOW = kept


def frame_seed(seed: int, frame: int) -> int:
    """A per-frame noise seed for ``off``: depends only on the run's seed and the frame number."""
    return int(np.random.SeedSequence([int(seed), int(frame) & 0xFFFFFFFF, 0x7E4]).generate_state(1)[0])


def previous_frame(frame: int) -> int | None:
    """The default predecessor: ``frame - 1`` (movies, where every number exists)."""
    return frame - 1


@dataclass
class TemporalState:
    """The state carried from frame to frame through :func:`vfxmatte.pipeline.matte_shot`."""

    mode: TemporalMode = "off"
    seed: int = 0
    predecessor: Callable[[int], int | None] = previous_frame
    # The last frame matted (shared) with its LR matte, which is followed where the prior jumps,
    # and its LR picture (uint8 RGB), which the optical flow that moves that matte follows.
    frame: int | None = field(default=None, init=False)
    matte: np.ndarray | None = field(default=None, init=False, repr=False)
    picture: np.ndarray | None = field(default=None, init=False, repr=False)
    # How many frames in a row have followed the previous matte instead of their prior.
    followed: int = field(default=0, init=False)

    def noise(self, frame: int, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """The ensemble's noise (L, C, h, w) for ``frame``."""
        seeds, *member = shape
        seed = frame_seed(self.seed, frame) if self.mode == "off" else self.seed
        return ensemble_noise(tuple(member), seeds, seed)

    def update(self, frame: int, matte: np.ndarray | None = None, picture: np.ndarray | None = None) -> None:
        """Remember ``frame``, its LR matte and its LR picture (``shared`` only: ``off`` keeps nothing)."""
        if self.mode == "off":
            return
        self.frame, self.matte, self.picture = frame, matte, picture

    def previous_matte(
        self, frame: int, shape: tuple[int, int], picture: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The LR matte of ``frame``'s predecessor when it was matted just before, at this LR size,
        moved onto ``frame`` by optical flow when both frames' pictures are known (a subject that
        moves is compared, and followed, where it is now, not where it was)."""
        if self.matte is None or self.frame is None or self.frame != self.predecessor(frame):
            return None
        if self.matte.shape != shape:
            return None
        if picture is None or self.picture is None or self.picture.shape != picture.shape:
            return self.matte
        from vfxmatte.carry import _flow_engine, _remap

        motion = _flow_engine()(picture, self.picture)  # this frame's pixel x is at x + motion(x) before
        return np.asarray(_remap(self.matte.astype(np.float32), motion), dtype=np.float32)

    def follow(self, jumped: bool) -> bool:
        """Whether a frame whose prior ``jumped`` follows the previous matte: at most
        :data:`MAX_FOLLOW` frames in a row, after which the prior is taken (a prior that disagrees
        for that long is the shot changing, and following on would lock the matte in place)."""
        follows = jumped and self.followed < MAX_FOLLOW
        self.followed = self.followed + 1 if follows else 0
        return follows


def temporal_state(params: object, predecessor: Callable[[int], int | None] = previous_frame) -> TemporalState:
    """A fresh state for a run with :class:`vfxmatte.config.MatteParams` ``params``."""
    from vfxmatte.config import MatteParams

    assert isinstance(params, MatteParams)
    mode: TemporalMode = "shared" if params.temporal == "shared" else "off"  # validated by MatteParams
    return TemporalState(mode=mode, seed=params.seed, predecessor=predecessor)
