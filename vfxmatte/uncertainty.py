"""The uncertainty pass: where the matte is likely wrong, and how wrong a frame is likely to be.

The seed ensemble's spread (DESIGN §1) sees sampling noise at edges, not a wrong subject: a
passer-by or a second subject that every ensemble member agrees on is a confident error.
This pass combines the spread with cheap signals that do see those errors:

``spread``
    the LR ensemble's per-pixel standard deviation (×2, so it spans [0, 1]);
``solver``
    disagreement of the two solvers of the band: the full-resolution matte (closed-form
    refine, or the diffusion patches) against the LR ensemble's mean;
``prior``
    disagreement of the LR matte with the salient-object prior's mask (what the run was
    told the subject is);
``prior_doubt``
    the prior's own doubt, ``1 - |2p - 1|``: the mirrored prior averages two runs, so
    where the image and its mirror disagree on the subject this is high;
``edge``
    nearness to the final matte's edge (its fractional alpha, seen at the LR size),
    ``exp(-d / EDGE_RADIUS)`` in LR pixels: most alpha error lies in a band around the
    edge whatever the ensemble says, and where a guide's band put the edge is where the
    final matte has it, not the LR ensemble;
``stray``
    the matte's pieces other than its main subject (the component holding most of the
    prior's mass, or the largest), where a second subject or a passer-by ends up;
``subject``
    the carried guide's doubt (keyframe runs), when the run has one.

Meaning of ``uncertainty.Y``: **the estimated absolute alpha error at the pixel**, in
[0, 1]: a non-negative linear model of the signals above, fitted (least squares on the
absolute error) on one half of the subjects of alphamatting GT01–GT20 and checked on the
other (``scripts/bench_uncertainty.py``, docs/BENCHMARKS.md).  Two weight sets, one per
source of the subject: :data:`WEIGHTS` where the salient-object prior chose it (trimap-free
runs, mask guides) and :data:`WEIGHTS_GUIDED` where a guide did without the prior (a drawn
trimap, a guide carried from keyframes), whose prior signals are absent.  The frame's header score
``vfxmatte:uncertainty`` is the mean of that map over the frame: the estimated mean
absolute alpha error (MAD, unscaled), which ranks frames of a shot by their likely error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from vfxmatte.sampling import block_mean, resize

#: Nearness to the edge falls to 1/e this many LR pixels from it.
EDGE_RADIUS = 3.0
#: Alpha strictly between these is the matte's edge (as :func:`vfxmatte.pipeline.edge_band_uncertainty`).
EDGE_LOW, EDGE_HIGH = 0.02, 0.98
#: A matte component smaller than this share of the LR frame is noise, not a second subject.
STRAY_MIN_SHARE = 0.002

SIGNALS = ("spread", "solver", "prior", "prior_doubt", "edge", "stray", "subject")


@dataclass(frozen=True)
class UncertaintyWeights:
    """Weights of the linear model (absolute alpha error per unit of each signal)."""

    spread: float = 0.0
    solver: float = 0.0
    prior: float = 0.0
    prior_doubt: float = 0.0
    edge: float = 0.0
    stray: float = 0.0
    subject: float = 0.0
    bias: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Fitted by ``python scripts/bench_uncertainty.py fit`` on every collected run (docs/BENCHMARKS.md):
#: runs with the prior.  The seed spread gets no weight and the solver disagreement little: once the
#: prior's signals, the matte's edge and its stray pieces are in, they add little the fit can use (nor
#: did the share of the refine's solved band, tried as a signal and dropped at weight 0).
WEIGHTS = UncertaintyWeights(solver=0.0239, prior=0.2744, prior_doubt=0.0987, edge=0.0904, stray=0.8714, bias=0.0215)
#: The same for runs whose subject came from a guide without the prior (trimap, keyframes).
WEIGHTS_GUIDED = UncertaintyWeights(edge=0.0981, bias=0.0001)


def weights_for(prior: bool) -> UncertaintyWeights:
    """The fitted weights for a run with (``True``) or without the salient-object prior."""
    return WEIGHTS if prior else WEIGHTS_GUIDED


@dataclass
class UncertaintyPass:
    """One frame's uncertainty: the per-pixel map, its frame score and the signals behind it."""

    map: np.ndarray  # (H, W) float32 in [0, 1]: estimated absolute alpha error
    score: float  # mean of ``map``: the header's ``vfxmatte:uncertainty``
    signals: dict[str, np.ndarray] = field(default_factory=dict)  # (h, w) LR, except ``subject`` (H, W)


def _edge_nearness(lr_mean: np.ndarray) -> np.ndarray:
    edge = (lr_mean > EDGE_LOW) & (lr_mean < EDGE_HIGH)
    inside = lr_mean >= 0.5
    # The 0.5 crossing is an edge even where the matte steps straight from 0 to 1.
    edge |= inside ^ ndimage.binary_erosion(inside, border_value=1)
    if not edge.any():
        return np.zeros_like(lr_mean, dtype=np.float32)
    distance = ndimage.distance_transform_edt(~edge)
    return np.exp(-np.asarray(distance, dtype=np.float32) / EDGE_RADIUS)


def _stray(lr_mean: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    inside = lr_mean >= 0.5
    labels, count = ndimage.label(inside, structure=np.ones((3, 3), bool))
    stray = np.zeros(lr_mean.shape, dtype=np.float32)
    if count < 2:
        return stray
    index = np.arange(1, count + 1)
    area = np.asarray(ndimage.sum_labels(inside, labels, index), dtype=np.float64)
    mass = np.asarray(ndimage.sum_labels(prior, labels, index), dtype=np.float64) if prior is not None else area
    main = int(np.argmax(mass))
    for k in range(count):
        if k != main and area[k] >= STRAY_MIN_SHARE * inside.size:
            stray[labels == k + 1] = 1.0
    # The piece's soft edge belongs to it too.
    return np.maximum(stray, ndimage.grey_dilation(stray, size=(3, 3)) * (lr_mean > EDGE_LOW))


def _to_lr(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """The full-resolution matte at the LR size: an integer box reduction, then a small resample.

    Cheaper than one antialiased resize of the full frame (a third of the pass's time at 1080p).
    """
    factor = min(alpha.shape[0] // height, alpha.shape[1] // width)
    if factor >= 2:
        alpha = block_mean(alpha, factor)
    return np.clip(resize(alpha, height, width), 0.0, 1.0)


def lr_signals(
    lr_mean: np.ndarray, lr_std: np.ndarray, alpha: np.ndarray, prior: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every signal but ``subject`` at the LR size (h, w), each in [0, 1]; a missing prior gives zeros."""
    h, w = lr_mean.shape
    lr_alpha = _to_lr(alpha, h, w)
    zeros = np.zeros((h, w), dtype=np.float32)
    return {
        "spread": np.clip(2.0 * lr_std, 0.0, 1.0).astype(np.float32),
        "solver": np.abs(lr_alpha - lr_mean).astype(np.float32),
        "prior": np.abs(lr_mean - prior).astype(np.float32) if prior is not None else zeros,
        "prior_doubt": (1.0 - np.abs(2.0 * prior - 1.0)).astype(np.float32) if prior is not None else zeros,
        "edge": _edge_nearness(lr_alpha),
        "stray": _stray(lr_mean, prior),
    }


def combine(
    signals: dict[str, np.ndarray],
    height: int,
    width: int,
    subject_doubt: np.ndarray | None = None,
    weights: UncertaintyWeights = WEIGHTS,
) -> np.ndarray:
    """The weighted sum of the LR signals upsampled to (height, width), plus the subject's doubt, in [0, 1]."""
    lr_names = [name for name in SIGNALS if name != "subject" and name in signals]
    lr = sum((getattr(weights, name) * signals[name] for name in lr_names), start=0.0)
    lr = np.asarray(lr, dtype=np.float32) + np.float32(weights.bias)
    full = resize(lr, height, width)
    if subject_doubt is not None and weights.subject:
        full = full + np.float32(weights.subject) * subject_doubt.astype(np.float32)
    return np.clip(full, 0.0, 1.0).astype(np.float32)


def estimate(
    lr_mean: np.ndarray,
    lr_std: np.ndarray,
    alpha: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    subject_doubt: np.ndarray | None = None,
    weights: UncertaintyWeights | None = None,
) -> UncertaintyPass:
    """The uncertainty pass of one frame.

    ``lr_mean`` / ``lr_std`` (h, w): the LR ensemble; ``alpha`` (H, W): the final matte;
    ``prior`` (h, w): the salient-object prior's mask the run started from (None when no
    prior ran); ``subject_doubt`` (H, W) in [0, 1]: the carried guide's doubt (None without
    a carried guide); ``weights`` default to :func:`weights_for` the run's kind.
    """
    weights = weights or weights_for(prior is not None)
    height, width = alpha.shape
    signals = lr_signals(lr_mean, lr_std, alpha, prior)
    if subject_doubt is not None:
        if subject_doubt.shape != alpha.shape:
            raise ValueError(f"subject_doubt has shape {subject_doubt.shape}, the matte {alpha.shape}")
        signals["subject"] = np.clip(subject_doubt, 0.0, 1.0).astype(np.float32)
    uncertainty = combine(signals, height, width, signals.get("subject"), weights)
    score = float(uncertainty.mean(dtype=np.float64))
    return UncertaintyPass(map=uncertainty, score=score if math.isfinite(score) else 0.0, signals=signals)
