"""High-resolution refinement of the LR matte (DESIGN §1 HR path, §2 CPU refine).

Two ways from the LR ensemble (mean matte + uncertainty U) to a full-resolution matte:

``pymatting``
    An automatic trimap from the ensemble (confident background, confident foreground and
    an unknown band where U or the fractional alpha says so, dilated at full resolution),
    then closed-form matting solved only inside that band (one sparse system), and the
    foreground colour by ``estimate_foreground_ml`` on the band's tiles only.  The CPU
    default: real full-resolution edges with no diffusion pass at full resolution.  A
    trimap-free run with the salient-object prior solves the prior's edge band instead
    (:func:`prior_band_trimap`) and keeps the prior's confident core: on alphamatting
    GT01–GT20 the ensemble started from the prior scored worse than the prior itself.

``diffusion``
    The paper's path: candidate patches where U is high, on a regular grid in latent
    units; one full-frame noise tensor cropped per patch; at every DDIM step all patches
    are denoised (in memory-budgeted batches) and pasted back with feathered weights into
    the full latent ("collage", Eq. 5) before re-cropping; the start point is the noised
    latent of the upsampled LR matte (Eq. 6, :func:`vfxmatte.sampling.noised_start`).  The
    decoded patches are merged with the upsampled LR matte by the same feathered weights,
    so the join has no seam.  The UNet never sees the whole frame at full resolution.

:func:`tiled_diffusion` is the naive baseline (every tile, MultiDiffusion-style, pure noise
start) that ``scripts/bench_hr.py`` compares against; nothing on the product path uses it.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from scipy import ndimage

from vfxmatte.errors import UsageError
from vfxmatte.model.core import MattingModel
from vfxmatte.prior import picture_area
from vfxmatte.sampling import (
    decode_alpha,
    distance_to,
    encode_image,
    encode_prompt,
    make_scheduler,
    noised_start,
    resize,
)

HR_MODES = ("auto", "diffusion", "pymatting", "off")
#: The paper's fixed prompt for full-resolution patches (also its training prompt for small crops).
HR_PROMPT = "enhance details"
#: Trimap codes written to ``trimap.Y``: background, unknown band, foreground.
BACKGROUND, UNKNOWN, FOREGROUND = 0.0, 0.5, 1.0


def resolve_mode(mode: str, model: MattingModel) -> str:
    """``auto`` → ``diffusion`` on CUDA with a model marked ``hr_capable``, else ``pymatting``."""
    if mode not in HR_MODES:
        raise UsageError(f"--hr {mode}: choose one of {', '.join(HR_MODES)}")
    if mode != "auto":
        return mode
    if model.device.type == "cuda" and bool(model.info.get("hr_capable")):
        return "diffusion"
    return "pymatting"


# -- automatic trimap ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimapSettings:
    """Where the LR ensemble is not sure enough to be taken as it is.

    A pixel is unknown where the ensemble's std exceeds ``uncertainty`` or the mean alpha
    lies strictly between ``low`` and ``high``; the band is then grown by ``radius`` pixels
    at full resolution (default: one LR pixel's footprint, at least 2 px).
    """

    uncertainty: float = 0.05
    low: float = 0.02
    high: float = 0.98
    radius: int | None = None


@dataclass(frozen=True)
class PriorBandSettings:
    """Trimap-free runs with a salient-object prior: where the band solve may change the prior.

    The prior's confident core (mask ≥ ``high``: foreground, ≤ ``low``: background) is kept as
    it is; only its soft edge (between the two) near the prior's 0.5 contour (``reach`` inside
    it, ``reach_outside`` outside), grown by ``radius`` × the frame's long side, is solved by
    closed-form matting.  With ``agree`` the band is further limited to where the LR ensemble
    also sees an edge (:func:`auto_trimap`'s band), the prior's side of 0.5 taking the rest.
    ``guide`` picks the weak prior inside the band: the prior mask (``prior``) or the LR
    ensemble's mean (``lr``), at ``weight`` plus ``confident_weight`` where the prior is sure.
    Chosen by the half-split protocol of docs/BENCHMARKS.md (``scripts/tune_halves.py free
    --grid band``, ``--grid weight``, ``--grid confident``).
    """

    low: float = 0.1
    high: float = 0.9
    radius: float = 0.005
    agree: bool = False
    guide: str = "prior"
    #: The prior's weight at its 0.5 contour (λ of :func:`solve_closed_form`; 1e-2, the automatic
    #: band's, until it was chosen with ``confident_weight``).
    weight: float = 3e-3
    #: Soft prior inside the prior's 0.5 contour and farther than this (× the long side) from it
    #: is foreground, not solved: a subject's interior the prior is unsure of is not an edge (on
    #: film plates a person's body and face came out 60–80 % opaque).  None: solved.
    reach: float | None = 0.01
    #: The same outside the contour (soft prior below 0.5 that far out is background).  None, the
    #: default: a soft edge reaching far out (hair, fur) is solved; setting it removes the prior's
    #: stray soft lines away from the subject but cuts such hair off.  Both chosen on one half of
    #: GT01–GT20 and reported on the other (``scripts/tune_halves.py free --grid reach``).
    reach_outside: float | None = None
    #: How the band is solved: ``closed-form`` (tiled, the prior as the weak guide at ``weight``)
    #: or ``shared`` (shared matting over the whole frame, as for guides; ``guide`` and ``weight``
    #: unused).
    solver: str = "closed-form"
    #: The closed form's regulariser (Levin et al.'s epsilon) in this band: 1e-4, not the 1e-6 the
    #: automatic band uses, lets the weak prior lead a little more where the colours do not
    #: separate subject and background.  Chosen by the half-split protocol: SAD 10.72 / 31.28
    #: against 10.87 / 31.43 on GT01–10 / GT11–20, both halves picking it
    #: (``scripts/tune_halves.py free --grid epsilon``; docs/BENCHMARKS.md, with the composite
    #: shots it was checked on).
    epsilon: float = 1e-4
    #: The prior's weight where the prior is sure (mask near 0 or 1) rather than at its edge: the
    #: weight at a pixel is ``weight + confident_weight * (2|mask - 0.5|) ** confident_power``, so
    #: the colour model leads at the prior's contour and the prior leads where the band reaches into
    #: what the prior calls background or foreground (where the closed form otherwise carries alpha
    #: along the background's own edges: streaks).  None: ``weight`` everywhere.  Chosen with
    #: ``weight`` on one half and reported on the other (docs/BENCHMARKS.md, "the prior's weight
    #: in the band"): alphamatting SAD 10.70 / 30.87 against 10.72 / 31.02 at a flat 1e-2, and on
    #: the composite shots SAD and the streak ratio lower on both.
    confident_weight: float | None = 0.1
    confident_power: float = 4.0
    #: Coarse to fine: the band is also pulled, at this weight, towards its own solve at
    #: 1/``coarse_factor`` of the size (upsampled).  There a background's fine texture (a lawn's
    #: rows) is averaged into its mean colour, which separates it from the subject where the
    #: texture alone mimics it.  None: off.
    coarse: float | None = None
    coarse_factor: int = 2
    #: The coarse solve only takes alpha away: the band is solved once without it, then again
    #: pulled towards the coarse solve only where that is lower (streaks, not blurred edges).
    coarse_down: bool = False
    #: The coarse pull scaled by the prior's sureness ``(2|prior - 0.5|) ** coarse_sure`` (as
    #: ``confident_power``): where the prior says background, not at its soft edge.  None: flat.
    coarse_sure: float | None = None

    def weights(self, mask: np.ndarray) -> float | np.ndarray:
        """The prior's weight in the band: one number, or per pixel of ``mask`` (the prior at full size)."""
        if self.confident_weight is None:
            return self.weight
        sure = np.abs(2.0 * mask.astype(np.float32) - 1.0) ** self.confident_power
        return np.float32(self.weight) + np.float32(self.confident_weight) * sure

    def __post_init__(self) -> None:
        if self.solver not in ("closed-form", "shared"):
            raise UsageError(f"prior band solver {self.solver!r}: choose closed-form or shared")
        if self.coarse is not None and (self.coarse < 0 or self.coarse_factor <= 1):
            raise UsageError(
                f"prior band coarse pull {self.coarse} at 1/{self.coarse_factor}: a weight ≥ 0 at 1/2 or less"
            )


def solve_prior_band(
    display: np.ndarray,
    trimap: np.ndarray,
    mask: np.ndarray,
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    guide: np.ndarray,
    band: PriorBandSettings,
) -> np.ndarray:
    """The trimap-free band's closed-form solve (``band.solver == "closed-form"``): ``trimap`` from
    :func:`prior_band_trimap`, ``mask`` the prior at full size, ``guide`` the weak prior, at
    :meth:`PriorBandSettings.weights`, with the coarse pull (:func:`coarse_pull`) when it is set."""
    weights = band.weights(mask)
    fine = None
    if band.coarse is not None and band.coarse_down:
        fine = refine_closed_form(display, trimap, guide, epsilon=band.epsilon, prior_weight=weights)
    guide, weights = coarse_pull(display, mask, lr_mean, lr_std, guide, weights, band, fine)
    return refine_closed_form(display, trimap, guide, epsilon=band.epsilon, prior_weight=weights)


def coarse_pull(
    display: np.ndarray,
    prior: np.ndarray,
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    guide: np.ndarray,
    weights: float | np.ndarray,
    band: PriorBandSettings,
    fine: np.ndarray | None = None,
) -> tuple[np.ndarray, float | np.ndarray]:
    """The band's weak guide and its weight with :attr:`PriorBandSettings.coarse` folded in.

    The band (its prior ``prior`` at any size; ``lr_mean`` / ``lr_std`` the LR ensemble, for
    ``agree``) is solved at 1/``coarse_factor`` of ``display``'s size, upsampled, and added as a
    second quadratic pull: ``w (α - g)² + c (α - s)²`` is ``(w + c) (α - (w g + c s) / (w + c))²``
    up to a constant, so the solve keeps one guide.  ``fine``: the band's answer without the pull;
    given, the pull acts only where the coarse answer is lower (``coarse_down``).
    """
    if band.coarse is None:
        return guide, weights
    height, width = display.shape[:2]
    small_h = max(1, round(height / band.coarse_factor))
    small_w = max(1, round(width / band.coarse_factor))
    small_mask = np.clip(resize(prior, small_h, small_w), 0.0, 1.0)
    small_trimap = prior_band_trimap(small_mask, lr_mean, lr_std, small_h, small_w, band)
    small = refine_closed_form(
        resize(display, small_h, small_w), small_trimap, small_mask, epsilon=band.epsilon,
        prior_weight=band.weights(small_mask),
    )  # fmt: skip
    coarse = np.clip(resize(small, height, width), 0.0, 1.0)
    own = np.broadcast_to(np.asarray(weights, dtype=np.float32), guide.shape)
    pull = np.full(guide.shape, band.coarse, dtype=np.float32)
    if band.coarse_sure is not None:
        sure = np.clip(resize(prior, height, width), 0.0, 1.0)
        pull *= np.abs(2.0 * sure - 1.0) ** band.coarse_sure
    if fine is not None:  # only where the coarse solve is lower than the band's own answer
        pull[coarse >= fine] = 0.0
    total = own + pull
    return ((own * guide + pull * coarse) / total).astype(np.float32), total


def _contour_distance(inside: np.ndarray) -> np.ndarray:
    """Distance in px from each pixel to the nearest boundary between ``inside`` and the rest."""
    boundary = np.zeros(inside.shape, bool)
    boundary[:-1] |= inside[:-1] != inside[1:]
    boundary[1:] |= inside[:-1] != inside[1:]
    boundary[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    boundary[:, 1:] |= inside[:, :-1] != inside[:, 1:]
    return distance_to(boundary)


def prior_band_trimap(
    prior: np.ndarray,
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    height: int,
    width: int,
    settings: PriorBandSettings | None = None,
) -> np.ndarray:
    """(H, W) trimap (codes 0 / 0.5 / 1) that keeps the prior's confident core (see :class:`PriorBandSettings`).

    ``prior`` is the prior's soft mask at any size (the pipeline has it at the LR size); it
    is upsampled bilinearly to (``height``, ``width``).
    """
    settings = settings or PriorBandSettings()
    mask = np.clip(resize(prior, height, width), 0.0, 1.0)
    unknown = (mask > settings.low) & (mask < settings.high)
    if settings.reach is not None or settings.reach_outside is not None:
        inside = mask >= 0.5
        distance = _contour_distance(inside)
        long_side = max(height, width)
        if settings.reach is not None:
            unknown &= ~(inside & (distance > settings.reach * long_side))
        if settings.reach_outside is not None:
            unknown &= ~(~inside & (distance > settings.reach_outside * long_side))
    radius = max(1, round(settings.radius * max(height, width)))
    if unknown.any():
        unknown = ndimage.maximum_filter(unknown, size=2 * radius + 1)
    if settings.agree:
        unknown &= auto_trimap(lr_mean, lr_std, height, width, TrimapSettings(radius=radius)) == UNKNOWN
    trimap = np.where(mask >= 0.5, FOREGROUND, BACKGROUND).astype(np.float32)
    trimap[unknown] = UNKNOWN
    return trimap


#: How a guide's trimap band is solved in ``pymatting`` mode: ``shared`` (pymatting's
#: ``estimate_alpha_sm``, Gastal & Oliveira 2010, sampled over the whole frame) or
#: ``closed-form`` (the tiled closed-form solve with the LR matte as a weak prior).  Chosen by
#: the half-split protocol (docs/BENCHMARKS.md): unknown-region SAD on alphamatting GT01–GT10 /
#: GT11–GT20 4.06 / 3.65 for shared matting against 4.81 / 4.43 for pymatting's closed form.
GUIDED_SOLVER = "shared"
GUIDED_EPSILON = 1e-7  # closed-form regulariser inside a compositor's trimap band (pymatting's)
GUIDED_PRIOR = 1e-5  # weight of the LR matte inside it (1e-2 in the automatic band)


def auto_trimap(
    lr_mean: np.ndarray, lr_std: np.ndarray, height: int, width: int, settings: TrimapSettings | None = None
) -> np.ndarray:
    """(H, W) float32 trimap with codes 0 (background), 0.5 (unknown), 1 (foreground)."""
    settings = settings or TrimapSettings()
    unknown_lr = (lr_std > settings.uncertainty) | ((lr_mean > settings.low) & (lr_mean < settings.high))
    # Bilinear upsampling spreads each LR cell over its whole footprint: any coverage counts.
    unknown = resize(unknown_lr.astype(np.float32), height, width) > 1e-3
    scale = max(height / lr_mean.shape[0], width / lr_mean.shape[1])
    radius = settings.radius if settings.radius is not None else max(2, math.ceil(scale))
    if radius > 0 and unknown.any():
        unknown = ndimage.maximum_filter(unknown, size=2 * radius + 1)  # separable: fast at 4K
    alpha = resize(lr_mean, height, width)
    trimap = np.where(alpha >= 0.5, FOREGROUND, BACKGROUND).astype(np.float32)
    trimap[unknown] = UNKNOWN
    return trimap


# -- closed-form refinement inside the band ------------------------------------------------------


@dataclass(frozen=True)
class TileSettings:
    """Tiles for the foreground solve (and the old tiled band solve): ``size`` px written per
    tile, ``margin`` px of context."""

    size: int = 320
    margin: int = 16


def _tiles(height: int, width: int, tiles: TileSettings) -> Iterator[tuple[slice, slice, slice, slice]]:
    """(inner rows, inner cols, crop rows, crop cols) of every tile of the frame."""
    for y0 in range(0, height, tiles.size):
        for x0 in range(0, width, tiles.size):
            y1, x1 = min(height, y0 + tiles.size), min(width, x0 + tiles.size)
            cy0, cx0 = max(0, y0 - tiles.margin), max(0, x0 - tiles.margin)
            cy1, cx1 = min(height, y1 + tiles.margin), min(width, x1 + tiles.margin)
            yield slice(y0, y1), slice(x0, x1), slice(cy0, cy1), slice(cx0, cx1)


def _ramp(length: int, start: int, stop: int, total: int, margin: int) -> np.ndarray:
    """1-D weight over a crop [start, stop) of [0, total): 1 inside, falling to 0 over
    ``margin`` px towards a crop edge, except where that edge is the frame's own."""
    pos = np.arange(length, dtype=np.float32)
    weight = np.ones(length, dtype=np.float32)
    if margin > 0:
        if start > 0:
            weight = np.minimum(weight, (pos + 1.0) / (margin + 1.0))
        if stop < total:
            weight = np.minimum(weight, (length - pos) / (margin + 1.0))
    return weight


def solve_closed_form(
    image: np.ndarray,
    trimap: np.ndarray,
    prior: np.ndarray,
    epsilon: float = 1e-6,
    prior_weight: float | np.ndarray = 1e-2,
) -> np.ndarray:
    """Closed-form matting (Levin et al.) of an image or crop, anchored by the trimap and the LR prior.

    Minimises ``αᵀLα + λ·Σ_unknown (α - prior)²`` with the known pixels fixed, ``L`` being
    the matting Laplacian built only over the rows of unknown pixels
    (:func:`vfxmatte.band_laplacian.band_system`, pymatting's numbers).  The weak prior term
    keeps the system well posed where the band's known pixels are all background (or all
    foreground, or none), where plain closed-form matting would return a constant.  ``prior_weight``
    is λ, one number or one per pixel (the shape of ``trimap``).
    """
    from pymatting import cg, ichol, jacobi

    from vfxmatte.band_laplacian import band_system  # numba: compiled (or loaded) on first use

    is_unknown = (trimap == UNKNOWN).ravel()
    # The answer in float32 from the start: a float64 copy of a 4K trimap is 66 MB more peak.
    alpha = np.array(trimap, dtype=np.float32).ravel()
    if not is_unknown.any():
        return alpha.reshape(trimap.shape)
    system, pull, _ = band_system(image, is_unknown.reshape(trimap.shape), trimap, epsilon)
    prior_values = prior.ravel()[is_unknown].astype(np.float64)
    if isinstance(prior_weight, np.ndarray):
        weights = prior_weight.ravel()[is_unknown].astype(np.float64)
    else:
        weights = np.full(prior_values.shape, prior_weight, dtype=np.float64)
    system = (system + scipy.sparse.diags(weights, format="csr")).tocsr()
    rhs = weights * prior_values - pull
    least = float(weights.min())
    # A prior of 1e-3 or more (the trimap-free band's 3e-3 to 0.1) makes the system diagonally
    # dominant enough for the diagonal (Jacobi) preconditioner: a few hundred cheap iterations,
    # where an incomplete Cholesky factor of a 4K frame's band (1.3 M unknowns) took 18 s and
    # 1.5 GB to build.  A weaker prior (trimap guides) needs the factor, denser, and a tighter
    # tolerance.
    weak = least < 1e-3
    rtol = 1e-7 if weak else 1e-6

    def factor() -> object:
        # pymatting print()s a "PERFORMANCE WARNING" paragraph for every diagonal shift it has
        # to try; on stdout that would corrupt `--json` output, and the retry is routine here.
        with contextlib.redirect_stdout(io.StringIO()):
            return ichol(system, discard_threshold=1e-4 if weak else 1e-3)

    # pymatting raises ValueError when the conjugate gradient has not converged in maxiter
    # steps (seen where the weak prior is far from the answer): then the factor, then a direct
    # sparse solve of the same system, rather than failing the frame.
    attempts = [factor] if weak else [lambda: jacobi(system), factor]
    solution = None
    for make in attempts:
        try:
            solution = cg(system, rhs, x0=prior_values, M=make(), rtol=rtol, maxiter=4000)
            break
        except ValueError:
            continue
    if solution is None:
        solution = scipy.sparse.linalg.spsolve(system.tocsc(), rhs)
    alpha[is_unknown] = solution
    return np.clip(alpha, 0.0, 1.0, out=alpha).reshape(trimap.shape)


def refine_closed_form(
    image: np.ndarray,
    trimap: np.ndarray,
    prior: np.ndarray,
    tiles: TileSettings | None = None,
    epsilon: float = 1e-6,
    prior_weight: float | np.ndarray = 1e-2,
) -> np.ndarray:
    """Closed-form matting solved only inside the trimap's unknown band.

    ``image`` (H, W, 3) in [0, 1] (display-referred: the colour-line model and its
    ``epsilon`` are tuned for that), ``trimap`` from :func:`auto_trimap`, ``prior`` the
    upsampled LR matte.  By default the whole band is one system (its Laplacian has rows for
    the band's pixels only, so memory follows the band's area), so the answer has no tile
    borders to show.  ``tiles`` solves it tile by tile instead, each tile with ``margin`` px of
    context, the solutions cross-faded over the margins: the way it was solved before, kept
    for the ``tiled band`` variant of ``scripts/bench_edges.py`` to measure the seams against.
    """
    if tiles is None:
        return solve_closed_form(image, trimap, prior, epsilon, prior_weight)
    height, width = trimap.shape
    unknown = trimap == UNKNOWN
    alpha = trimap.copy()
    alpha[unknown] = prior[unknown]
    if not unknown.any():
        return alpha
    total = np.zeros((height, width), dtype=np.float32)
    weights = np.zeros((height, width), dtype=np.float32)
    for iy, ix, cy, cx in _tiles(height, width, tiles):
        if not unknown[iy, ix].any():
            continue
        crop_unknown = unknown[cy, cx]
        weight = prior_weight[cy, cx] if isinstance(prior_weight, np.ndarray) else prior_weight
        solved = solve_closed_form(
            np.ascontiguousarray(image[cy, cx], dtype=np.float64), trimap[cy, cx], prior[cy, cx], epsilon, weight
        )
        w = np.outer(
            _ramp(cy.stop - cy.start, cy.start, cy.stop, height, tiles.margin),
            _ramp(cx.stop - cx.start, cx.start, cx.stop, width, tiles.margin),
        )
        w = w * crop_unknown
        total[cy, cx] += w * solved
        weights[cy, cx] += w
    solved_mask = unknown & (weights > 0)
    alpha[solved_mask] = total[solved_mask] / weights[solved_mask]
    return np.clip(alpha, 0.0, 1.0)


def solve_shared(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Shared matting (pymatting's ``estimate_alpha_sm``) of the whole frame; known pixels keep their code.

    ``image`` (H, W, 3) display-referred in [0, 1], ``trimap`` codes 0 / 0.5 / 1.  Each unknown
    pixel's alpha comes from foreground / background samples gathered along rays to the
    nearest known pixels, so a wide band needs no tiles (no tile seams) and no LR prior.
    """
    from pymatting import estimate_alpha_sm

    codes = trimap.astype(np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        alpha = np.asarray(estimate_alpha_sm(np.ascontiguousarray(image, dtype=np.float64), codes), np.float32)
    known = trimap != UNKNOWN
    alpha[known] = trimap[known]
    return np.clip(alpha, 0.0, 1.0)


def foreground_by_tiles(linear: np.ndarray, alpha: np.ndarray, tiles: TileSettings | None = None) -> np.ndarray:
    """Foreground colour (Germer et al. 2021) solved only on tiles with fractional alpha.

    Where alpha is 1 the plate is the foreground; where it is 0 the foreground is never
    seen (premultiplied to zero) and keeps the plate's value.  Each solved tile gets
    ``2 × margin`` px of context so the colour it propagates comes from nearby opaque pixels.
    """
    from pymatting import estimate_foreground_ml

    tiles = tiles or TileSettings()
    context = TileSettings(tiles.size, 2 * tiles.margin)
    foreground = np.array(linear, dtype=np.float32, copy=True)
    fractional = (alpha > 1e-3) & (alpha < 0.999)
    for iy, ix, cy, cx in _tiles(alpha.shape[0], alpha.shape[1], context):
        if not fractional[iy, ix].any():
            continue
        crop = np.clip(linear[cy, cx], 0.0, None).astype(np.float32)
        scale = max(1.0, float(crop.max()))  # the solver clamps to [0, 1]; keep HDR highlights
        solved = np.asarray(estimate_foreground_ml(crop / scale, alpha[cy, cx].astype(np.float32)), np.float32)
        oy, ox = iy.start - cy.start, ix.start - cx.start
        inner = solved[oy : oy + iy.stop - iy.start, ox : ox + ix.stop - ix.start] * scale
        keep = fractional[iy, ix]
        foreground[iy, ix][keep] = inner[keep]
    return foreground


# -- diffusion patches (Eq. 5 / Eq. 6) -------------------------------------------------------


@dataclass(frozen=True)
class PatchSettings:
    """Candidate patches for the diffusion HR path, in latent cells.

    ``size`` defaults to the LR pass's latent size (the resolution the model is trained
    at); ``overlap`` cells are shared by grid neighbours and cross-faded.  A patch is a
    candidate where any latent cell's uncertainty exceeds ``threshold`` (or its alpha is
    fractional, with ``edges``) after dilating that mask by ``dilation`` cells.
    """

    size: int | None = None
    overlap: int = 8
    threshold: float = 0.05
    dilation: int = 2
    edges: bool = True
    batch: int | None = None
    lr_start: bool = True
    strength: float = 1.0


@dataclass
class PatchGrid:
    """A regular grid of square patches over a (padded) latent frame."""

    size: int
    stride: int
    rows: int
    cols: int

    @property
    def height(self) -> int:
        return self.size + (self.rows - 1) * self.stride

    @property
    def width(self) -> int:
        return self.size + (self.cols - 1) * self.stride

    def all_positions(self) -> list[tuple[int, int]]:
        return [(r * self.stride, c * self.stride) for r in range(self.rows) for c in range(self.cols)]


def make_grid(latent_height: int, latent_width: int, size: int, overlap: int) -> PatchGrid:
    """The smallest grid of ``size`` patches with ``overlap`` shared cells covering the frame.

    The frame is padded to the grid rather than the last patch squeezed against the edge:
    neighbours then always share exactly ``overlap`` cells and no two patches overlap
    heavily, so candidates never need merging.
    """
    if not 0 <= overlap < size:
        raise UsageError(f"patch overlap {overlap} must be between 0 and the patch size {size}")
    stride = size - overlap
    rows = 1 + max(0, math.ceil((latent_height - size) / stride))
    cols = 1 + max(0, math.ceil((latent_width - size) / stride))
    return PatchGrid(size=size, stride=stride, rows=rows, cols=cols)


def select_patches(grid: PatchGrid, uncertain: np.ndarray, dilation: int) -> list[tuple[int, int]]:
    """Grid patches that hold any uncertain cell of ``uncertain`` (grid-sized bool map)."""
    if dilation > 0 and uncertain.any():
        uncertain = ndimage.binary_dilation(uncertain, iterations=dilation)
    return [
        (top, left)
        for top, left in grid.all_positions()
        if uncertain[top : top + grid.size, left : left + grid.size].any()
    ]


def patch_weights(size: int, ramp: int) -> torch.Tensor:
    """(size, size) feathering: 1 inside, falling linearly to near 0 over ``ramp`` cells."""
    pos = torch.arange(size, dtype=torch.float32)
    edge = torch.minimum(pos + 1.0, size - pos) / float(max(1, ramp) + 1)
    line = edge.clamp(max=1.0)
    return line[:, None] * line[None, :]


def crop_patches(full: torch.Tensor, positions: list[tuple[int, int]], size: int) -> torch.Tensor:
    """(N, C, size, size) crops of a full (C, H, W) tensor."""
    return torch.stack([full[:, top : top + size, left : left + size] for top, left in positions])


def collage(
    patches: torch.Tensor,
    positions: list[tuple[int, int]],
    background: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste patches into a copy of ``background`` averaging overlaps by ``weights`` (Eq. 5).

    Returns the collage and the summed weight map (0 where no patch lies).
    """
    size = patches.shape[-1]
    total = torch.zeros_like(background, dtype=torch.float32)
    weight_sum = torch.zeros(background.shape[-2:], dtype=torch.float32, device=background.device)
    w = weights.to(background.device)
    for patch, (top, left) in zip(patches, positions, strict=True):
        # Patches may come from the model's device (the VAE on CUDA); the collage lives with the background.
        total[:, top : top + size, left : left + size] += patch.to(total.device, torch.float32) * w
        weight_sum[top : top + size, left : left + size] += w
    covered = weight_sum > 0
    out = background.clone().float()
    out[:, covered] = total[:, covered] / weight_sum[covered]
    return out.to(background.dtype), weight_sum


def _batch_size(model: MattingModel, pixels: int, requested: int | None) -> int:
    """Patches per UNet call: as given, or what half the free GPU memory (2 GiB on CPU) holds."""
    if requested:
        return max(1, requested)
    budget = 2 << 30
    if model.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(model.device)
        budget = free // 2
    # Activations of one patch: a few feature maps of the widest level at latent size.
    latent_cells = pixels // (model.latent_factor**2)
    width = max(int(c) for c in model.unet.config.block_out_channels)
    per_patch = latent_cells * width * 4 * 24
    return max(1, int(budget // max(1, per_patch)))


@dataclass
class DiffusionResult:
    alpha: np.ndarray  # (H, W) merged full-resolution matte
    positions: list[tuple[int, int]]  # selected patches (top, left) in latent cells
    grid: PatchGrid
    unet_evaluations: int  # patches × steps
    coverage: np.ndarray  # (H, W) in [0, 1]: how much of each pixel comes from the patches


def _pad_to(array: np.ndarray, height: int, width: int) -> np.ndarray:
    pad = [(0, height - array.shape[0]), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode="edge")


@torch.no_grad()
def _encode_patches(
    model: MattingModel, pixels: np.ndarray, positions: list[tuple[int, int]], size: int
) -> torch.Tensor:
    """Scaled latents of each patch's pixel crop (H, W, 3) in [0, 1] → (N, C, size, size)."""
    f = model.latent_factor
    out = []
    for top, left in positions:
        crop = pixels[top * f : (top + size) * f, left * f : (left + size) * f]
        tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None].float()
        out.append(encode_image(model, tensor)[0])
    return torch.stack(out)


def patch_noise(channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """One full-frame noise tensor (C, H, W) drawn on the CPU; patches crop theirs from it."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn((channels, height, width), generator=generator, dtype=torch.float32)


@torch.no_grad()
def diffuse_patches(
    model: MattingModel,
    image: np.ndarray,
    lr_alpha: np.ndarray,
    grid: PatchGrid,
    positions: list[tuple[int, int]],
    *,
    steps: int,
    seed: int,
    settings: PatchSettings,
    merge_with_lr: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> DiffusionResult:
    """The collage sampler (Eq. 5) over ``positions``, then the feathered merge.

    ``image`` (H, W, 3) display-referred in [0, 1] and ``lr_alpha`` (H, W) the upsampled LR
    matte, both at full resolution.
    """
    height, width = lr_alpha.shape
    f, size = model.latent_factor, grid.size
    if not positions:
        return DiffusionResult(lr_alpha.copy(), [], grid, 0, np.zeros_like(lr_alpha))
    pixels = _pad_to(image, grid.height * f, grid.width * f)
    lr_pixels = _pad_to(lr_alpha, grid.height * f, grid.width * f)
    channels = int(model.unet.config.out_channels)
    weights = patch_weights(size, settings.overlap)
    # Image latents and the Eq. 6 latent of the upsampled LR matte are encoded patch by patch,
    # then made one consistent full-frame latent by the same collage the sampler uses.
    empty = torch.zeros((channels, grid.height, grid.width), dtype=torch.float32)
    image_full, _ = collage(_encode_patches(model, pixels, positions, size), positions, empty, weights)
    noise_full = patch_noise(channels, grid.height, grid.width, seed)
    scheduler = make_scheduler(model.scheduler_config)
    scheduler.set_timesteps(steps, device="cpu")
    timesteps = scheduler.timesteps
    if settings.lr_start:
        lr_rgb = np.repeat(lr_pixels[..., None], 3, axis=2)
        lr_full, _ = collage(_encode_patches(model, lr_rgb, positions, size), positions, empty, weights)
        latent_full, timesteps = noised_start(scheduler, lr_full[None], noise_full[None], settings.strength)
        latent_full = latent_full[0]
    else:
        latent_full = noise_full * scheduler.init_noise_sigma
    image_patches = crop_patches(image_full, positions, size).to(model.device, model.dtype)
    batch = _batch_size(model, (size * f) ** 2, settings.batch)
    prompt = HR_PROMPT if model.text_encoder is not None else None
    condition = encode_prompt(model, prompt, batch)
    evaluations = 0
    for i, t in enumerate(timesteps):
        patches = crop_patches(latent_full, positions, size)
        stepped = torch.empty_like(patches)
        for first in range(0, len(positions), batch):
            chunk = patches[first : first + batch].to(model.device, model.dtype)
            n = chunk.shape[0]
            model_input = torch.cat([chunk, image_patches[first : first + n]], dim=1)
            eps = model.unet(model_input, t.to(model.device), encoder_hidden_states=condition[:n]).sample
            stepped[first : first + n] = scheduler.step(eps.cpu().float(), t, chunk.cpu().float()).prev_sample
            evaluations += n
        latent_full, _ = collage(stepped, positions, latent_full, weights)
        if on_step is not None:
            on_step(i)
    final = crop_patches(latent_full, positions, size)
    decoded = torch.cat(
        [
            decode_alpha(model, final[j : j + batch].to(model.device, model.dtype)).cpu()
            for j in range(0, len(final), batch)
        ]
    )
    pixel_positions = [(top * f, left * f) for top, left in positions]
    alpha, coverage = merge_patches(decoded, pixel_positions, lr_alpha, settings.overlap * f, merge_with_lr)
    return DiffusionResult(alpha, positions, grid, evaluations, coverage)


def merge_patches(
    decoded: torch.Tensor,
    positions: list[tuple[int, int]],
    lr_alpha: np.ndarray,
    ramp: int,
    merge_with_lr: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge decoded alpha patches (N, S, S) at pixel ``positions`` with the LR matte.

    Each patch's weight rises from 0 at its border to 1 over ``ramp`` px; patches are
    averaged by those weights and the result is cross-faded into ``lr_alpha`` by the summed
    weight (capped at 1), so neither patch borders nor the edge of the patched area show a
    step.  Neighbours share at least ``ramp`` px, so the summed weight is 1 wherever
    patches meet.  Returns the matte and the coverage (the patches' share per pixel).
    """
    height, width = lr_alpha.shape
    size = decoded.shape[-1]
    canvas_h = max(height, max(top for top, _ in positions) + size)
    canvas_w = max(width, max(left for _, left in positions) + size)
    hr_full, weight_sum = collage(
        decoded[:, None].float(), positions, torch.zeros((1, canvas_h, canvas_w)), patch_weights(size, ramp)
    )
    merged = hr_full[0, :height, :width].numpy()
    coverage = weight_sum[:height, :width].clamp(max=1.0).numpy()
    if merge_with_lr:
        alpha = coverage * merged + (1.0 - coverage) * lr_alpha
    else:
        alpha = np.where(coverage > 0, merged, lr_alpha)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32), coverage


def _uncertain_cells(
    grid: PatchGrid, lr_mean: np.ndarray, lr_std: np.ndarray, latent_hw: tuple[int, int], settings: PatchSettings
) -> np.ndarray:
    """Bool map over the padded latent grid: cells whose LR uncertainty (or alpha) asks for HR."""
    std = resize(lr_std, *latent_hw)
    uncertain = std > settings.threshold
    if settings.edges:
        mean = resize(lr_mean, *latent_hw)
        uncertain |= (mean > 0.02) & (mean < 0.98)
    padded = np.zeros((grid.height, grid.width), dtype=bool)  # the padding is never uncertain
    padded[: latent_hw[0], : latent_hw[1]] = uncertain
    return padded


def patch_size(model: MattingModel, lr_size: int, requested: int | None) -> int:
    """Patch side in latent cells: the LR pass's latent size, a multiple of the UNet's stride."""
    multiple = model.size_multiple // model.latent_factor
    size = requested or lr_size // model.latent_factor
    return max(multiple, (size // multiple) * multiple)


def refine_diffusion(
    model: MattingModel,
    image: np.ndarray,
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    *,
    steps: int,
    seed: int,
    lr_size: int,
    settings: PatchSettings | None = None,
) -> DiffusionResult:
    """Uncertainty-selected patches, collage sampling, merge with the upsampled LR matte."""
    settings = settings or PatchSettings()
    height, width = image.shape[:2]
    f = model.latent_factor
    latent_hw = (math.ceil(height / f), math.ceil(width / f))
    size = patch_size(model, lr_size, settings.size)
    grid = make_grid(*latent_hw, size, settings.overlap)
    positions = select_patches(grid, _uncertain_cells(grid, lr_mean, lr_std, latent_hw, settings), settings.dilation)
    lr_alpha = np.clip(resize(lr_mean, height, width), 0.0, 1.0)
    return diffuse_patches(model, image, lr_alpha, grid, positions, steps=steps, seed=seed, settings=settings)


def tiled_diffusion(
    model: MattingModel,
    image: np.ndarray,
    *,
    steps: int,
    seed: int,
    lr_size: int,
    settings: PatchSettings | None = None,
) -> DiffusionResult:
    """Naive baseline for the benchmark: every grid tile, pure-noise start, no LR merge."""
    base = settings or PatchSettings()
    settings = PatchSettings(size=base.size, overlap=base.overlap, batch=base.batch, lr_start=False)
    height, width = image.shape[:2]
    f = model.latent_factor
    size = patch_size(model, lr_size, settings.size)
    grid = make_grid(math.ceil(height / f), math.ceil(width / f), size, settings.overlap)
    blank = np.zeros((height, width), dtype=np.float32)
    return diffuse_patches(
        model, image, blank, grid, grid.all_positions(), steps=steps, seed=seed, settings=settings, merge_with_lr=False
    )


# -- one entry for the pipeline --------------------------------------------------------------


@dataclass
class Refined:
    alpha: np.ndarray
    foreground: np.ndarray | None = None  # unpremultiplied, linear; None: the caller estimates it
    trimap: np.ndarray | None = None
    notes: dict[str, float] = field(default_factory=dict)
    #: (top, bottom, left, right) of the picture inside black bars a trimap-free run cut off
    #: (:func:`vfxmatte.prior.picture_area`); None: no bars, or a guided run.
    picture: tuple[int, int, int, int] | None = None
    #: The share of the frame the clean plate made known background; None: no clean plate.
    known_share: float | None = None
    #: The share of the frame the clean plate made subject (``known_subject``); None: not asked.
    subject_share: float | None = None


def _impose(values: np.ndarray, subject: np.ndarray | None, known: np.ndarray | None) -> None:
    """In place: ``subject`` foreground (1) and ``known`` background (0) in an alpha or a trimap
    (whose codes are the same), for the modes that solve no band around them."""
    if subject is not None:
        values[subject] = FOREGROUND
    if known is not None:
        values[known] = BACKGROUND


def _bars(area: tuple[int, int, int, int] | None, height: int, width: int) -> np.ndarray | None:
    """(H, W) bool: the frame outside the picture ``area`` (the black bars), or None without one."""
    if area is None:
        return None
    top, bottom, left, right = area
    bars = np.ones((height, width), bool)
    bars[top:bottom, left:right] = False
    return bars


def refine(
    mode: str,
    model: MattingModel,
    linear: np.ndarray,
    display: np.ndarray,
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    *,
    steps: int,
    seed: int,
    lr_size: int,
    want_trimap: bool = False,
    guide_trimap: np.ndarray | None = None,
    scribbles: tuple[np.ndarray, np.ndarray] | None = None,
    prior: np.ndarray | None = None,
    prior_band: PriorBandSettings | None = None,
    guided_solver: str | None = None,
    known_background: np.ndarray | None = None,
    known_subject: np.ndarray | None = None,
) -> Refined:
    """Full-resolution matte for ``mode`` (already resolved: diffusion, pymatting or off).

    ``linear`` is the plate in scene-linear light (foreground colour), ``display`` the same
    plate display-referred in [0, 1] (what the model and the closed-form solver see).
    ``guide_trimap`` (codes 0 / 0.5 / 1: a drawn trimap, or one made of a coarse mask by
    :func:`vfxmatte.guide.mask_trimap`) replaces the automatic trimap; ``scribbles``
    (known, values) only overrides it where strokes were drawn.  ``prior`` (a trimap-free
    run's salient-object mask, any size) replaces the automatic trimap in ``pymatting`` mode by
    :func:`prior_band_trimap`: the prior's confident core is kept and only its edge is solved.
    On alphamatting GT01–GT20 the LR ensemble started from the prior scored worse than the
    prior itself on both halves (docs/BENCHMARKS.md): where the model cannot add, the refine
    must not let it subtract.  Trimap-free (``prior`` given), black bars around the picture
    (:func:`vfxmatte.prior.picture_area`) are background in every mode.  ``guided_solver``
    (default :data:`GUIDED_SOLVER`) picks how a guide trimap's band is solved: ``shared`` or
    ``closed-form``.  ``known_background`` ((H, W) bool, trimap-free only): where the frame shows
    the shot's clean plate unchanged (:func:`vfxmatte.cleanplate.background_match`, outside the
    prior's contour): background in every mode, as the bars are.  ``known_subject`` ((H, W) bool,
    trimap-free only): where the frame differs from the clean plate and the prior sees a subject
    faintly (:attr:`vfxmatte.cleanplate.PlateMatch.subject`): subject in every mode, its edge
    still solved.
    """
    height, width = linear.shape[:2]
    lr_alpha = np.clip(resize(lr_mean, height, width), 0.0, 1.0)
    # Trimap-free, black bars around the picture are no subject's: background in every mode (and,
    # with a clean plate, what still shows it: vfxmatte.cleanplate).
    picture = picture_area(display) if prior is not None and guide_trimap is None else None
    known = _bars(picture, height, width)
    share: float | None = None
    if prior is not None and guide_trimap is None and known_background is not None:
        known = known_background if known is None else known | known_background
        share = float(known_background.mean())
    subject = known_subject if prior is not None and guide_trimap is None else None
    if subject is not None and known is not None:
        subject = subject & ~known
    subject_share = float(subject.mean()) if subject is not None else None
    if mode == "off":
        _impose(lr_alpha, subject, known)
        trimap = auto_trimap(lr_mean, lr_std, height, width) if want_trimap else None
        if trimap is not None:
            _impose(trimap, subject, known)
        return Refined(
            alpha=lr_alpha, trimap=trimap, picture=picture, known_share=share, subject_share=subject_share
        )
    if guide_trimap is not None:
        # A guide's trimap is the whole answer to "where is the edge": its grey band is solved
        # in full, even where the LR ensemble was confident, and the LR matte only enters as
        # the weak prior inside it.
        trimap = guide_trimap.astype(np.float32)
    elif prior is not None and mode == "pymatting":
        band = prior_band or PriorBandSettings()
        mask = np.clip(resize(prior, height, width), 0.0, 1.0)
        if subject is not None:  # the subject's core: its edge is solved as the prior's is
            mask[subject] = 1.0
        trimap = prior_band_trimap(mask, lr_mean, lr_std, height, width, band)
        if known is not None:  # known background, not solved (the prior is under 0.5 there)
            mask[known], trimap[known] = 0.0, BACKGROUND
        if band.solver == "shared":
            alpha = solve_shared(display, trimap)
        else:
            guide = mask if band.guide == "prior" else lr_alpha
            alpha = solve_prior_band(display, trimap, mask, lr_mean, lr_std, guide, band)
        foreground = foreground_by_tiles(linear, alpha)
        return Refined(
            alpha=alpha, foreground=foreground, trimap=trimap, picture=picture, known_share=share,
            subject_share=subject_share,
        )  # fmt: skip
    else:
        trimap = auto_trimap(lr_mean, lr_std, height, width)
        if scribbles is not None:  # the strokes are known, the rest keeps the ensemble's own band
            known, values = scribbles
            trimap[known] = values[known]
    if mode == "pymatting":
        if guide_trimap is not None:
            # A drawn band can be wide and the LR matte inside it confidently wrong: shared
            # matting samples the band's own known pixels and ignores the LR matte; the
            # closed-form alternative lets the colour-line model lead (pymatting's epsilon), the
            # LR matte only breaking ties.  docs/BENCHMARKS.md has the measurements.
            if (guided_solver or GUIDED_SOLVER) == "shared":
                alpha = solve_shared(display, trimap)
            else:
                alpha = refine_closed_form(
                    display, trimap, lr_alpha, epsilon=GUIDED_EPSILON, prior_weight=GUIDED_PRIOR
                )
        else:
            alpha = refine_closed_form(display, trimap, lr_alpha)
        return Refined(alpha=alpha, foreground=foreground_by_tiles(linear, alpha), trimap=trimap)
    if mode == "diffusion":
        result = refine_diffusion(model, display, lr_mean, lr_std, steps=steps, seed=seed, lr_size=lr_size)
        alpha = result.alpha
        _impose(alpha, subject, known)
        _impose(trimap, subject, known)
        return Refined(
            alpha=alpha,
            foreground=foreground_by_tiles(linear, alpha),
            trimap=trimap,
            notes={"patches": float(len(result.positions)), "unet_evaluations": float(result.unet_evaluations)},
            picture=picture,
            known_share=share,
            subject_share=subject_share,
        )
    raise UsageError(f"--hr {mode}: choose one of {', '.join(HR_MODES)}")
