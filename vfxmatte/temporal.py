"""Temporal stability for shots: which noise and which start each frame's LR ensemble gets.

Sampled independently, a diffusion matte flickers from frame to frame (the paper's stated
limitation).  Three modes (DESIGN §2):

* ``off`` — independent sampling: each frame's noise is drawn from ``(seed, frame)``.
* ``shared`` — one noise tensor (from ``seed``) for every frame of the shot.
* ``prev-latent`` — shared noise, and each frame starts per Eq. 6 from the previous
  frame's final LR latents (member ``i`` of the ensemble from member ``i``), noised to
  ``strength`` of the schedule (SDEdit-style): only ``strength x steps`` steps run.  With
  ``flow`` the previous latents are first warped by a dense optical flow between the two
  frames' LR images, so a moving subject does not drag its old matte along.

"The previous frame" is always the frame before this one *in the input* (the shot's
predecessor function), never merely the last one matted: a chunk of a shot, or a resumed
run, first mattes that frame for state only (warm-up), so a shot matted in chunks matches
one matted in a single run except that each chunk's warm-up frame starts from noise.
Frames are processed in ascending order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from vfxmatte.sampling import ensemble_noise

TemporalMode = Literal["off", "shared", "prev-latent"]
TEMPORAL_MODES: tuple[str, ...] = get_args(TemporalMode)


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
    strength: float = 0.5
    flow: bool = False
    seed: int = 0
    predecessor: Callable[[int], int | None] = previous_frame
    # The last frame matted (every mode but off) with its LR matte, which is followed where the
    # prior jumps, and for prev-latent its final LR latents (and LR image, for the flow).
    frame: int | None = field(default=None, init=False)
    matte: np.ndarray | None = field(default=None, init=False, repr=False)
    latents: torch.Tensor | None = field(default=None, init=False, repr=False)
    image: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def carries_latents(self) -> bool:
        return self.mode == "prev-latent"

    def needs_warmup(self, frame: int, done: set[int]) -> int | None:
        """The frame to matte for state only before ``frame``, when ``frame``'s predecessor is not done."""
        if not self.carries_latents:
            return None
        before = self.predecessor(frame)
        return before if before is not None and before not in done else None

    def inputs(
        self, frame: int, shape: tuple[int, int, int, int], image: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ensemble's noise (L, C, h, w) and, for ``prev-latent``, its clean start latents."""
        seeds, *member = shape
        seed = frame_seed(self.seed, frame) if self.mode == "off" else self.seed
        noise = ensemble_noise(tuple(member), seeds, seed)
        start = None
        if (
            self.carries_latents
            and self.latents is not None
            and self.frame is not None
            and self.frame == self.predecessor(frame)
            and tuple(self.latents.shape) == shape
        ):
            start = self.latents
            if self.flow and self.image is not None and self.image.shape == image.shape:
                start = warp_latents(start, estimate_flow(self.image, image))
        return noise, start

    def update(self, frame: int, latents: torch.Tensor, image: np.ndarray, matte: np.ndarray | None = None) -> None:
        """Remember ``frame``, its LR matte and, for prev-latent, its final LR latents (and LR image)."""
        if self.mode == "off":
            return
        self.frame, self.matte = frame, matte
        if self.carries_latents:
            self.latents = latents.detach().float().cpu()
            self.image = image if self.flow else None

    def previous_matte(self, frame: int, shape: tuple[int, int]) -> np.ndarray | None:
        """The LR matte of ``frame``'s predecessor when it was matted just before, at this LR size."""
        if self.matte is None or self.frame is None or self.frame != self.predecessor(frame):
            return None
        return self.matte if self.matte.shape == shape else None


# -- optical flow (pyramidal Lucas-Kanade, numpy/scipy) ----------------------------------


def _grey(image: np.ndarray) -> np.ndarray:
    rgb = np.asarray(image, dtype=np.float32)
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32) if rgb.ndim == 3 else rgb


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` looked up at ``x + flow(x)`` (bilinear, edges clamped)."""
    h, w = image.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ndimage.map_coordinates(image, [ys + flow[..., 1], xs + flow[..., 0]], order=1, mode="nearest")


def estimate_flow(
    previous: np.ndarray, current: np.ndarray, levels: int = 4, iterations: int = 3, window: float = 3.0
) -> np.ndarray:
    """Dense flow (h, w, 2) as (dx, dy) with ``current(x) ≈ previous(x + flow(x))``.

    Coarse-to-fine Lucas-Kanade with a Gaussian window: cheap at LR sizes (a few tens of
    milliseconds at 256 px) and without a dependency on OpenCV.
    """
    prev_grey, cur_grey = _grey(previous), _grey(current)
    contrast = max(float(np.std(prev_grey)), 1e-3)  # so the solver's damping is scale-free
    pyramid = [(prev_grey / contrast, cur_grey / contrast)]
    for _ in range(levels - 1):
        p, c = pyramid[-1]
        if min(p.shape) < 16:
            break
        pyramid.append((ndimage.zoom(ndimage.gaussian_filter(p, 1.0), 0.5, order=1),
                        ndimage.zoom(ndimage.gaussian_filter(c, 1.0), 0.5, order=1)))
    flow = np.zeros((*pyramid[-1][0].shape, 2), np.float32)
    for level, (p, c) in enumerate(reversed(pyramid)):
        if level:
            zoom = (p.shape[0] / flow.shape[0], p.shape[1] / flow.shape[1], 1)
            flow = ndimage.zoom(flow, zoom, order=1) * 2.0
        for _ in range(iterations):
            warped = _sample(p, flow)
            gy, gx = np.gradient((warped + c) * 0.5)
            gt = warped - c
            sxx, sxy, syy = (ndimage.gaussian_filter(a, window) for a in (gx * gx, gx * gy, gy * gy))
            sxt, syt = (ndimage.gaussian_filter(a, window) for a in (gx * gt, gy * gt))
            det = sxx * syy - sxy * sxy + 1e-6
            step = np.stack([-(syy * sxt - sxy * syt) / det, -(sxx * syt - sxy * sxt) / det], axis=-1)
            flow = flow + np.clip(step, -1.0, 1.0)
        flow = np.stack([ndimage.median_filter(flow[..., k], size=3) for k in range(2)], axis=-1)
    return flow.astype(np.float32)


def warp_latents(latents: torch.Tensor, flow: np.ndarray) -> torch.Tensor:
    """Previous-frame latents (L, C, h, w) resampled onto the current frame by an image-space flow."""
    _, _, h, w = latents.shape
    fy, fx = flow.shape[0] / h, flow.shape[1] / w
    small = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None]
    small = F.interpolate(small, size=(h, w), mode="area")[0] / torch.tensor([fx, fy]).view(2, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack([(2 * (xs + small[0] + 0.5) / w) - 1, (2 * (ys + small[1] + 0.5) / h) - 1], dim=-1)
    grid = grid[None].expand(latents.shape[0], -1, -1, -1).to(latents.device, latents.dtype)
    return F.grid_sample(latents, grid, mode="bilinear", padding_mode="border", align_corners=False)


def temporal_state(params: object, predecessor: Callable[[int], int | None] = previous_frame) -> TemporalState:
    """A fresh state for a run with :class:`vfxmatte.config.MatteParams` ``params``."""
    from vfxmatte.config import MatteParams

    assert isinstance(params, MatteParams)
    mode: TemporalMode = "prev-latent" if params.temporal == "prev-latent" else (
        "shared" if params.temporal == "shared" else "off"
    )
    return TemporalState(
        mode=mode,
        strength=params.temporal_strength,
        flow=params.temporal_flow,
        seed=params.seed,
        predecessor=predecessor,
    )
