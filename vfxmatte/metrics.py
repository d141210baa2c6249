"""Alpha-matting metrics that follow the published evaluation code exactly.

Two conventions are implemented; pick the one of the tables you compare with.

*Whole image* (:func:`evaluate_whole`)
    The convention of ``core/evaluate.py`` in the P3M repository
    (``calculate_sad_mse_mad_whole_img``, ``compute_gradient_whole_image``,
    ``compute_connectivity_loss_whole_image``), which the "Matting by Generation"
    tables use: every pixel counts, no trimap.  (P3M's own trimap variant,
    ``calculate_sad_mse_mad``, is a third convention -- it pastes the trimap's known
    values into the prediction, sums SAD over the whole image and divides MSE / MAD by
    the unknown-pixel count -- and is not implemented here.)

*Unknown region* (:func:`evaluate_unknown`)
    The Deep Image Matting (DIM) evaluation code (Adobe's MATLAB
    ``compute_sad_loss.m``, ``compute_mse_loss.m``, ``compute_gradient_loss.m``,
    ``compute_connectivity_error.m``) as ported to Python in GCA-Matting's
    ``utils/evaluate.py`` (the GCA-Matting repository): only pixels whose trimap
    value is 128 ("unknown") are counted, but the gradient and connectivity maps are
    computed on the whole image first.

Scaling, as the papers print the numbers:

==========  ==========================================  ===========================
metric      whole image (P3M)                           unknown region (DIM / GCA)
==========  ==========================================  ===========================
SAD         sum |p - g| / 1000                          same, unknown pixels only
MSE         mean (p - g)^2 * 1e3                        same, unknown pixels only
MAD         mean |p - g| * 1e3                          same, unknown pixels only
Grad        scipy Gaussian derivative, sum / 10         unit-norm DIM kernel, / 1000
Conn        sum |phi_p - phi_g| / 1000                  same, unknown pixels only
==========  ==========================================  ===========================

The reference scripts return MSE and MAD unscaled; the ``1e3`` factor is the one the
paper tables apply when printing them.

Inputs.  A matte is a 2-D array (``(H, W)``, or ``(H, W, 1)`` which is squeezed).
Floating-point mattes must already lie in ``[0, 1]`` (clip network output first);
``uint8`` is divided by 255 and ``uint16`` by 65535, as the reference scripts divide
their 8-bit PNGs by 255; ``bool`` is read as 0 / 1.  Other integer types are refused
because their scale is ambiguous.  Arithmetic is float64 as in the references,
with float32 exactly where a reference uses it (P3M's gradient maps, the connectivity
level map).  A trimap is ``uint8`` with 0 = background, 128 = unknown,
255 = foreground (the reference test), a ``bool`` array that *is* the unknown mask,
or a ``uint16`` / float trimap whose unknown region is every pixel strictly between
pure background and pure foreground.  Bad inputs raise :class:`MetricsInputError`, a
``ValueError`` (and a :class:`vfxmatte.errors.InputError`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from vfxmatte.errors import InputError

__all__ = [
    "CONN_STEP",
    "GRAD_SIGMA",
    "TRIMAP_UNKNOWN",
    "Convention",
    "MattingScores",
    "MetricsInputError",
    "SPARSIFICATION_FRACTIONS",
    "Sparsification",
    "conn",
    "dtssd",
    "evaluate_unknown",
    "evaluate_whole",
    "grad",
    "mad",
    "mean_scores",
    "mse",
    "rank_correlation",
    "sad",
    "sparsification",
    "sparsification_of_errors",
    "squared_error",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Which reference a Grad / Conn call follows: ``"p3m"`` (P3M ``core/evaluate.py``,
#: whole image) or ``"dim"`` (DIM MATLAB code / GCA-Matting ``utils/evaluate.py``).
Convention = Literal["p3m", "dim"]

#: Trimap value of the unknown region in the DIM / GCA / P3M evaluation scripts.
TRIMAP_UNKNOWN = 128
#: Standard deviation of the Gaussian-derivative filters of both Grad variants.
GRAD_SIGMA = 1.4
#: Threshold step of the connectivity error (``0:0.1:1`` in every reference).
CONN_STEP = 0.1

_SAD_SCALE = 1e-3  # SAD and Conn are printed divided by 1000
_MEAN_SCALE = 1e3  # MSE and MAD are printed multiplied by 1000
_GRAD_SCALE_P3M = 0.1  # P3M compute_gradient_whole_image: np.sum(error_map) / 10
_GRAD_SCALE_DIM = 1e-3  # DIM evaluate.m / GCA compute_gradient_loss: / 1000
_CONN_PHI_MIN = 0.15  # phi = 1 - d * (d >= 0.15) in every reference
_DIM_KERNEL_EPSILON = 1e-2  # gaussgradient.m: kernel truncated where it falls below 1e-2
_DTSSD_SCALE_MEAN = 1e2  # RobustVideoMatting MetricDTSSD: * 1e2


class MetricsInputError(InputError, ValueError):
    """A matte, trimap or sequence handed to a metric cannot be evaluated."""


@dataclass(frozen=True)
class MattingScores:
    """The five still-image matting metrics, already scaled as the papers print them.

    ``sad`` and ``conn`` are divided by 1000, ``mse`` and ``mad`` multiplied by 1000,
    ``grad`` divided by 10 (whole image, P3M) or by 1000 (unknown region, DIM / GCA).
    """

    sad: float
    mse: float
    mad: float
    grad: float
    conn: float

    def as_dict(self) -> dict[str, float]:
        """Return the scores as ``{"sad": ..., "mse": ..., "mad": ..., "grad": ..., "conn": ...}``."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


# --------------------------------------------------------------------------- inputs


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _squeeze_2d(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise MetricsInputError(
            f"The {name} must be a single-channel 2-D array (H, W) or (H, W, 1), "
            f"but it has shape {_shape_text(array.shape)}."
        )
    if array.size == 0:
        raise MetricsInputError(f"The {name} is empty (shape {_shape_text(array.shape)}).")
    return array


def _as_alpha(value: npt.ArrayLike, name: str) -> FloatArray:
    """Validate one matte and return it as float64 in [0, 1]."""
    array = _squeeze_2d(np.asarray(value), name)
    dtype = array.dtype
    if dtype == np.uint8:
        return np.divide(array, 255.0, dtype=np.float64)
    if dtype == np.uint16:
        return np.divide(array, 65535.0, dtype=np.float64)
    if dtype == np.bool_:
        return array.astype(np.float64)
    if not np.issubdtype(dtype, np.floating):
        raise MetricsInputError(
            f"The {name} has dtype {dtype}; use floats in [0, 1], uint8 (0-255) or uint16 (0-65535)."
        )
    # No copy for float64 input: nothing below writes into the mattes.
    result = np.asarray(array, dtype=np.float64)
    low, high = float(np.min(result)), float(np.max(result))
    if math.isnan(low) or math.isnan(high):
        raise MetricsInputError(f"The {name} contains NaN values.")
    if low < 0.0 or high > 1.0:
        raise MetricsInputError(
            f"The {name} has values from {low:g} to {high:g}, outside [0, 1]; clip it to [0, 1] first."
        )
    return result


def _as_pair(pred: npt.ArrayLike, gt: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = _as_alpha(pred, "predicted matte")
    g = _as_alpha(gt, "ground-truth matte")
    if p.shape != g.shape:
        raise MetricsInputError(
            f"The predicted matte has shape {_shape_text(p.shape)} but the ground-truth matte has "
            f"shape {_shape_text(g.shape)}; they must be the same size."
        )
    return p, g


def _unknown_mask(trimap: npt.ArrayLike, shape: tuple[int, ...]) -> BoolArray:
    """Return the unknown region of a trimap as a boolean mask of ``shape``."""
    array = _squeeze_2d(np.asarray(trimap), "trimap")
    if array.shape != shape:
        raise MetricsInputError(
            f"The trimap has shape {_shape_text(array.shape)} but the mattes have shape "
            f"{_shape_text(shape)}; they must be the same size."
        )
    dtype = array.dtype
    if dtype == np.bool_:
        return array.copy()
    if dtype == np.uint8:
        return np.asarray(array == TRIMAP_UNKNOWN)
    if dtype == np.uint16:
        return np.asarray((array > 0) & (array < 65535))
    if np.issubdtype(dtype, np.floating):
        low, high = float(np.min(array)), float(np.max(array))
        if math.isnan(low) or math.isnan(high) or low < 0.0 or high > 1.0:
            raise MetricsInputError(
                "A float trimap must lie in [0, 1] (0 = background, 1 = foreground, in between = "
                "unknown); pass a uint8 trimap with 128 = unknown otherwise."
            )
        return np.asarray((array > 0.0) & (array < 1.0))
    raise MetricsInputError(
        f"The trimap has dtype {dtype}; use uint8 (0 / 128 / 255), uint16, float in [0, 1] or a "
        "boolean unknown mask."
    )


def _region(trimap: npt.ArrayLike | None, shape: tuple[int, ...]) -> BoolArray | None:
    return None if trimap is None else _unknown_mask(trimap, shape)


def _resolve(convention: Convention | None, region: BoolArray | None) -> Convention:
    if convention is None:
        return "p3m" if region is None else "dim"
    if convention not in ("p3m", "dim"):
        raise MetricsInputError(f"Unknown metric convention {convention!r}; use 'p3m' or 'dim'.")
    return convention


def _region_sum(error_map: np.ndarray, region: BoolArray | None) -> float:
    if region is None:
        return float(np.sum(error_map, dtype=np.float64))
    return float(np.sum(error_map[region], dtype=np.float64))


def _region_mean(error_map: np.ndarray, region: BoolArray | None) -> float:
    count = error_map.size if region is None else int(np.count_nonzero(region))
    if count == 0:
        return 0.0
    return _region_sum(error_map, region) / count


# --------------------------------------------------------------------------- kernels


def _sad(p: FloatArray, g: FloatArray, region: BoolArray | None) -> float:
    return _region_sum(np.abs(p - g), region) * _SAD_SCALE


def _mse(p: FloatArray, g: FloatArray, region: BoolArray | None) -> float:
    diff = p - g
    return _region_mean(diff * diff, region) * _MEAN_SCALE


def _mad(p: FloatArray, g: FloatArray, region: BoolArray | None) -> float:
    return _region_mean(np.abs(p - g), region) * _MEAN_SCALE


def _sad_mse_mad(p: FloatArray, g: FloatArray, region: BoolArray | None) -> tuple[float, float, float]:
    """:func:`_sad`, :func:`_mse` and :func:`_mad` (same values) sharing one difference image."""
    diff = np.subtract(p, g)
    squared = np.multiply(diff, diff)
    mse_value = _region_mean(squared, region) * _MEAN_SCALE
    del squared
    absolute = np.abs(diff, out=diff)
    total = _region_sum(absolute, region)
    count = absolute.size if region is None else int(np.count_nonzero(region))
    mad_value = total / count * _MEAN_SCALE if count else 0.0
    return total * _SAD_SCALE, mse_value, mad_value


@lru_cache(maxsize=4)
def _dim_gauss_factors(sigma: float) -> tuple[FloatArray, FloatArray]:
    """1-D factors of the DIM ``gaussgradient.m`` kernel, already unit-norm as a 2-D kernel.

    The MATLAB / GCA kernel is ``hx[i, j] = gauss(i - h) * dgauss(j - h)`` divided by
    its Frobenius norm, with ``h = ceil(sigma * sqrt(-2 * log(sqrt(2 pi) sigma eps)))``
    and ``eps = 1e-2`` (9 x 9 for sigma 1.4).  It is the outer product of a Gaussian
    (rows) and a Gaussian derivative (columns), and its norm is the product of their
    norms, so it is applied here as two 1-D convolutions.
    """
    half = math.ceil(
        sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * _DIM_KERNEL_EPSILON))
    )
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma**2
    norm = math.sqrt(float(np.sum(gauss**2)) * float(np.sum(dgauss**2)))
    return gauss / norm, dgauss


def _dim_gradient_magnitude(x: FloatArray) -> FloatArray:
    """``sqrt(gx^2 + gy^2)`` of DIM ``gaussgradient(x, 1.4)`` (replicate border, true convolution)."""
    gauss, dgauss = _dim_gauss_factors(GRAD_SIGMA)
    # hx varies along columns (x): smooth the rows with the Gaussian, differentiate the columns.
    gx = ndimage.convolve1d(
        ndimage.convolve1d(x, dgauss, axis=1, mode="nearest"), gauss, axis=0, mode="nearest"
    )
    gy = ndimage.convolve1d(
        ndimage.convolve1d(x, dgauss, axis=0, mode="nearest"), gauss, axis=1, mode="nearest"
    )
    return np.asarray(np.sqrt(gx * gx + gy * gy))


_TRANSPOSE_BLOCK = 64  # cache-friendly block size of :func:`_transpose`


def _transpose(x: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``x.T``, copied in square blocks (several times faster than
    ``np.ascontiguousarray(x.T)`` on large frames, which walks one array against its strides)."""
    height, width = x.shape
    out = np.empty((width, height), dtype=x.dtype)
    b = _TRANSPOSE_BLOCK
    for i in range(0, height, b):
        for j in range(0, width, b):
            out[j : j + b, i : i + b] = x[i : i + b, j : j + b].T
    return out


def _gauss_rows(x: np.ndarray, order: int) -> npt.NDArray[np.float32]:
    """One pass of ``gaussian_filter(x, 1.4, output=np.float32)`` along axis 1 (scipy defaults)."""
    out = ndimage.gaussian_filter1d(
        x, GRAD_SIGMA, axis=1, order=order, output=np.float32, mode="reflect", truncate=4.0
    )
    return np.asarray(out, dtype=np.float32)


def _p3m_gradient_magnitude(x: FloatArray) -> npt.NDArray[np.float32]:
    """P3M ``compute_gradient_whole_image``: scipy Gaussian derivatives, float32 output.

    Bit for bit ``ndimage.gaussian_filter(x, 1.4, order=[1, 0] / [0, 1], output=np.float32)``
    (the same 1-D passes in the same order, axis 0 first, with the float32 intermediate
    ``gaussian_filter`` keeps), but every pass runs along contiguous rows: the axis-0 passes
    are done on a transposed copy, which is what makes a 4K frame take a fraction of the time.
    """
    xt = _transpose(x)
    d0 = _transpose(_gauss_rows(xt, order=1))
    s0 = _transpose(_gauss_rows(xt, order=0))
    del xt
    dx = _gauss_rows(d0, order=0)
    del d0
    dy = _gauss_rows(s0, order=1)
    del s0
    np.multiply(dx, dx, out=dx)
    np.multiply(dy, dy, out=dy)
    np.add(dx, dy, out=dx)
    return np.asarray(np.sqrt(dx, out=dx), dtype=np.float32)


def _grad(p: FloatArray, g: FloatArray, region: BoolArray | None, convention: Convention) -> float:
    if convention == "p3m":
        diff32 = _p3m_gradient_magnitude(p) - _p3m_gradient_magnitude(g)
        return _region_sum(diff32 * diff32, region) * _GRAD_SCALE_P3M
    diff = _dim_gradient_magnitude(p) - _dim_gradient_magnitude(g)
    return _region_sum(diff * diff, region) * _GRAD_SCALE_DIM


def _largest_component(mask: BoolArray, column_major: bool) -> BoolArray | None:
    """Largest 4-connected *foreground* component of ``mask`` (None when it is empty).

    Ties go to the component met first in the scan order: row-major for P3M (skimage
    labels in raster order, ``np.argmax`` keeps the first), column-major for MATLAB
    (``bwconncomp`` scans linear indices, ``max`` keeps the first).
    """
    source = mask.T if column_major else mask
    labels, count = ndimage.label(source)  # default structure = 4-connectivity in 2-D
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # never the background label (GCA's argmax(bincount) can pick it)
    omega = labels == int(np.argmax(sizes))
    return np.asarray(omega.T if column_major else omega)


def _conn_error_map(p: FloatArray, g: FloatArray, convention: Convention, step: float) -> FloatArray:
    """``|phi_pred - phi_gt|`` of the DIM / P3M connectivity error, per pixel.

    Same result, value for value, as the references' loop (``l_map`` in float32, ``-1``
    for "no level yet", set to ``t_(i-1)`` for the unassigned pixels outside the largest
    component), computed with cheaper array passes: ``min(p, g) >= t`` is the
    intersection, a boolean ``alive`` is the unassigned set, and a counter of the
    thresholds each pixel survived indexes the level table at the end.  Each threshold
    is labelled inside the bounding box of the previous intersection only: the
    intersections are nested, so nothing outside can be foreground, and a box keeps the
    scan order (and so the tie-breaking) of the whole image.
    """
    thresholds = np.arange(0, 1 + step, step)  # as P3M and GCA: 0, 0.1, ..., 1.0
    never_dropped = thresholds.size
    # The levels as the references store them: float32 thresholds, 1 for never dropped.
    table = np.append(thresholds.astype(np.float32), np.float32(1.0)).astype(np.float64)
    both = np.minimum(p, g)  # (p >= t) & (g >= t)  <=>  min(p, g) >= t (no NaN: validated)
    index_type = np.uint8 if never_dropped <= 255 else np.uint16
    survived = np.zeros(p.shape, dtype=index_type)  # level index: the pixel gets table[survived]
    box: tuple[slice, slice] = (slice(0, p.shape[0]), slice(0, p.shape[1]))
    alive = np.ones(p.shape, dtype=np.bool_)  # unassigned pixels (l_map == -1) inside ``box``
    for i in range(1, thresholds.size):
        mask = both[box] >= thresholds[i]
        inner = _bounding_box(mask)
        omega = None if inner is None else _largest_component(mask[inner], convention == "dim")
        if omega is None or inner is None:
            if convention == "dim":
                # MATLAB: omega is all zero, so every unassigned pixel gets the previous threshold.
                alive[:] = False
            # P3M: `if len(size_vec) == 0: continue`; the pixels stay -1 and become 1 below.
            break  # the intersection only shrinks as the threshold rises
        # Unassigned pixels outside omega get t_(i-1): they simply stop counting.
        alive = np.logical_and(alive[inner], omega)
        box = (
            slice(box[0].start + inner[0].start, box[0].start + inner[0].stop),
            slice(box[1].start + inner[1].start, box[1].start + inner[1].stop),
        )
        del omega, mask
        np.add(survived[box], alive, out=survived[box], casting="unsafe")
        if not alive.any():
            break
    del both
    np.copyto(survived[box], never_dropped, where=alive)
    del alive
    levels = table.take(survived)
    del survived
    phi_p = _conn_phi(p, levels)
    phi_g = _conn_phi(g, levels)
    del levels
    np.subtract(phi_p, phi_g, out=phi_p)
    return np.asarray(np.abs(phi_p, out=phi_p))


def _bounding_box(mask: BoolArray) -> tuple[slice, slice] | None:
    """The smallest box holding every true pixel of ``mask`` (None when there is none)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _conn_phi(alpha: FloatArray, levels: FloatArray) -> FloatArray:
    """``phi = 1 - d * (d >= 0.15)``, ``d = alpha - l``, with one temporary array."""
    d = np.subtract(alpha, levels)
    low = d < _CONN_PHI_MIN  # phi = 1 - d * 0 = 1 there
    np.subtract(1.0, d, out=d)
    np.copyto(d, 1.0, where=low)
    return d


def _conn(
    p: FloatArray, g: FloatArray, region: BoolArray | None, convention: Convention, step: float
) -> float:
    if not 0.0 < step <= 1.0:
        raise MetricsInputError(f"The connectivity step must be in (0, 1], not {step!r}.")
    return _region_sum(_conn_error_map(p, g, convention, step), region) * _SAD_SCALE


# --------------------------------------------------------------------------- public API


def sad(pred: npt.ArrayLike, gt: npt.ArrayLike, trimap: npt.ArrayLike | None = None) -> float:
    """Sum of absolute differences / 1000.

    Whole image (``trimap=None``): P3M ``calculate_sad_mse_mad_whole_img``,
    ``np.sum(np.abs(predict - alpha)) / 1000``.  With a trimap: DIM
    ``compute_sad_loss.m`` / GCA ``compute_sad_loss``, the same sum over the unknown
    pixels (trimap == 128) only.
    """
    p, g = _as_pair(pred, gt)
    return _sad(p, g, _region(trimap, p.shape))


def mse(pred: npt.ArrayLike, gt: npt.ArrayLike, trimap: npt.ArrayLike | None = None) -> float:
    """Mean squared error x 1e3.

    Whole image: P3M ``calculate_sad_mse_mad_whole_img`` (sum over H*W pixels).  With a
    trimap: DIM ``compute_mse_loss.m`` / GCA ``compute_mse_loss``, mean over the unknown
    pixels.  The references return the unscaled mean; the x 1e3 is the tables' scale.
    An empty unknown region gives 0.0 (GCA's ``+ 1e-8`` denominator does the same;
    MATLAB would give NaN).
    """
    p, g = _as_pair(pred, gt)
    return _mse(p, g, _region(trimap, p.shape))


def mad(pred: npt.ArrayLike, gt: npt.ArrayLike, trimap: npt.ArrayLike | None = None) -> float:
    """Mean absolute difference x 1e3.

    Whole image: P3M ``calculate_sad_mse_mad_whole_img``.  With a trimap: the mean of
    ``|p - g|`` over the unknown pixels, i.e. the region SAD of the DIM / GCA code
    divided by the unknown-pixel count (the DIM MATLAB code has no MAD).  An empty
    unknown region gives 0.0.
    """
    p, g = _as_pair(pred, gt)
    return _mad(p, g, _region(trimap, p.shape))


def grad(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    trimap: npt.ArrayLike | None = None,
    *,
    convention: Convention | None = None,
) -> float:
    """Gradient error: squared difference of Gaussian-gradient magnitudes (sigma 1.4), summed.

    ``convention="p3m"`` (default without a trimap): P3M
    ``compute_gradient_whole_image`` -- derivatives from
    ``scipy.ndimage.gaussian_filter(x, 1.4, order=..., output=np.float32)`` (scipy's
    normalised Gaussian, ``reflect`` border), float32 maps, sum (accumulated in float64) / 10.

    ``convention="dim"`` (default with a trimap): DIM ``compute_gradient_loss.m`` /
    GCA ``compute_gradient_loss`` -- ``gaussgradient(x, 1.4)``, a 9 x 9
    Gaussian x Gaussian-derivative kernel scaled to unit Frobenius norm, true
    convolution with replicated borders, sum / 1000.  Inputs are used in [0, 1] as
    GCA does (``/ 255``); the MATLAB script instead stretches each matte with
    ``mat2gray`` (min-max), which only differs for mattes that do not reach both 0 and 1.

    With a trimap the magnitudes are computed on the whole image and the squared
    differences summed over the unknown pixels only.
    """
    p, g = _as_pair(pred, gt)
    region = _region(trimap, p.shape)
    return _grad(p, g, region, _resolve(convention, region))


def conn(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    trimap: npt.ArrayLike | None = None,
    *,
    convention: Convention | None = None,
    step: float = CONN_STEP,
) -> float:
    """Connectivity error / 1000 (DIM definition, thresholds ``0:step:1``, 4-connectivity).

    For each threshold ``t_i`` the largest 4-connected *foreground* component of
    ``(pred >= t_i) & (gt >= t_i)`` is found; pixels outside it that have no level yet
    get ``l = t_(i-1)``; pixels never dropped get ``l = 1``.  Then
    ``phi = 1 - d * (d >= 0.15)`` with ``d = alpha - l`` and the error is
    ``sum |phi_pred - phi_gt| / 1000``.  This is what the DIM MATLAB
    ``compute_connectivity_error.m`` (``bwconncomp(..., 4)``) and P3M
    ``compute_connectivity_loss_whole_image`` (``regionprops`` areas) do.  GCA's Python
    port (``getLargestCC``: ``argmax(bincount(labels))``) counts the background label
    too and picks it whenever the background is the largest region; that behaviour is
    deliberately *not* reproduced.

    The two conventions differ only in corner cases:

    * an empty intersection at some threshold -- ``"p3m"`` skips it (``continue``), so
      the remaining pixels end at ``l = 1``; ``"dim"`` follows MATLAB, whose empty
      ``omega`` gives every remaining pixel ``l = t_(i-1)``;
    * equally large components -- ``"p3m"`` keeps the first in row-major order,
      ``"dim"`` the first in MATLAB's column-major order.

    ``convention`` defaults to ``"p3m"`` without a trimap and ``"dim"`` with one.
    With a trimap the map is computed on the whole image and summed over the unknown
    pixels only.  Thresholds are ``np.arange(0, 1 + step, step)`` as in the Python
    references.
    """
    p, g = _as_pair(pred, gt)
    region = _region(trimap, p.shape)
    return _conn(p, g, region, _resolve(convention, region), step)


def evaluate_whole(pred: npt.ArrayLike, gt: npt.ArrayLike) -> MattingScores:
    """All five metrics on the whole image, P3M ``core/evaluate.py`` convention.

    SAD / 1000, MSE x 1e3, MAD x 1e3 (``calculate_sad_mse_mad_whole_img``), Grad / 10
    (``compute_gradient_whole_image``) and Conn / 1000
    (``compute_connectivity_loss_whole_image``), as in the "Matting by Generation" tables.
    """
    p, g = _as_pair(pred, gt)
    sad_value, mse_value, mad_value = _sad_mse_mad(p, g, None)
    return MattingScores(
        sad=sad_value,
        mse=mse_value,
        mad=mad_value,
        grad=_grad(p, g, None, "p3m"),
        conn=_conn(p, g, None, "p3m", CONN_STEP),
    )


def evaluate_unknown(pred: npt.ArrayLike, gt: npt.ArrayLike, trimap: npt.ArrayLike) -> MattingScores:
    """All five metrics on the trimap's unknown region, DIM / GCA-Matting convention.

    SAD / 1000, MSE x 1e3, MAD x 1e3 over the pixels with trimap == 128, Grad / 1000
    with the unit-norm DIM ``gaussgradient`` kernel and Conn / 1000 with the DIM MATLAB
    connectivity rule (see :func:`grad` and :func:`conn`).
    """
    p, g = _as_pair(pred, gt)
    region = _unknown_mask(trimap, p.shape)
    sad_value, mse_value, mad_value = _sad_mse_mad(p, g, region)
    return MattingScores(
        sad=sad_value,
        mse=mse_value,
        mad=mad_value,
        grad=_grad(p, g, region, "dim"),
        conn=_conn(p, g, region, "dim", CONN_STEP),
    )


def mean_scores(scores: Iterable[MattingScores]) -> MattingScores:
    """Per-metric arithmetic mean over images, as every reference script averages a test set."""
    items = list(scores)
    if not items:
        raise MetricsInputError("Cannot average an empty list of matting scores.")
    count = len(items)
    return MattingScores(
        sad=math.fsum(s.sad for s in items) / count,
        mse=math.fsum(s.mse for s in items) / count,
        mad=math.fsum(s.mad for s in items) / count,
        grad=math.fsum(s.grad for s in items) / count,
        conn=math.fsum(s.conn for s in items) / count,
    )


def dtssd(
    preds: Sequence[npt.ArrayLike],
    gts: Sequence[npt.ArrayLike],
    *,
    reduction: Literal["mean", "sum"] = "mean",
) -> float:
    """Temporal coherence error dtSSD of a matte sequence, averaged over frame pairs.

    For each pair of consecutive frames, ``e_t = (p_t - p_(t-1)) - (g_t - g_(t-1))``:

    * ``reduction="mean"`` (default): ``sqrt(mean_pixels(e_t^2)) * 1e2``, the
      RobustVideoMatting ``evaluation/evaluate_lr.py`` / ``evaluate_hr.py``
      ``MetricDTSSD`` (the RobustVideoMatting repository), whose scale the recent
      video-matting tables print;
    * ``reduction="sum"``: ``sqrt(sum_pixels(e_t^2))``, unscaled -- the original
      definition of the BMVC 2015 "Perceptually Motivated Benchmark for
      Video Matting" as coded in the TCVOM / VideoMatting108
      evaluation (``dtSSD``), which depends on the frame size.

    The result is the mean over the ``T - 1`` frame pairs.  (RVM's spreadsheet also
    stores a 0 for the first frame and averages it in, i.e. it reports
    ``(T - 1) / T`` of this value for a single clip.)  Frames are validated like the
    still-image metrics; the sequences must have equal lengths of at least two frames
    and equal frame sizes.
    """
    if reduction not in ("mean", "sum"):
        raise MetricsInputError(f"Unknown dtSSD reduction {reduction!r}; use 'mean' or 'sum'.")
    if len(preds) != len(gts):
        raise MetricsInputError(
            f"The predicted sequence has {len(preds)} frames but the ground truth has {len(gts)}."
        )
    if len(preds) < 2:
        raise MetricsInputError("dtSSD needs sequences of at least two frames.")
    errors: list[float] = []
    prev: tuple[FloatArray, FloatArray] | None = None
    for index, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
        try:
            p, g = _as_pair(pred, gt)
        except MetricsInputError as exc:
            raise MetricsInputError(f"Frame {index}: {exc}") from exc
        if prev is not None:
            if p.shape != prev[0].shape:
                raise MetricsInputError(
                    f"Frame {index} has shape {_shape_text(p.shape)} but frame {index - 1} has "
                    f"shape {_shape_text(prev[0].shape)}; all frames must be the same size."
                )
            e = (p - prev[0]) - (g - prev[1])
            ssd = float(np.sum(e * e))
            if reduction == "mean":
                errors.append(math.sqrt(ssd / e.size) * _DTSSD_SCALE_MEAN)
            else:
                errors.append(math.sqrt(ssd))
        prev = (p, g)
    return math.fsum(errors) / len(errors)


# --------------------------------------------------------------------------- uncertainty


#: Removed fractions of the sparsification curves (0, 1 %, …, 99 %).
SPARSIFICATION_FRACTIONS = np.round(np.arange(100) / 100.0, 2)


@dataclass(frozen=True)
class Sparsification:
    """How well an uncertainty map finds the errors (Ilg et al., ECCV 2018).

    Pixels are removed most-uncertain first; ``curve[i]`` is the mean squared alpha error
    of the pixels left after removing ``fractions[i]`` of them, divided by the mean
    squared error of all pixels (so every curve starts at 1).  ``oracle`` removes the
    truly worst pixels first; random removal keeps the error at 1 in expectation.
    ``ause`` is the area between ``curve`` and ``oracle`` (trapezoids over the fractions),
    ``ause_random`` that of random removal; ``ratio`` = ``ause / ause_random`` (0 is a
    perfect ranking, 1 is no better than chance).  Pixels the map ranks equal are removed
    as a group in expectation (each removes its group's mean error), so a constant map
    scores exactly the random curve.
    """

    fractions: tuple[float, ...]
    curve: tuple[float, ...]
    oracle: tuple[float, ...]
    ause: float
    ause_random: float
    mse: float  # x1e3, of the pixels the curves were computed over
    pixels: int

    @property
    def ratio(self) -> float:
        return self.ause / self.ause_random if self.ause_random > 0 else 0.0

    def as_dict(self, curves: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "ause": self.ause,
            "ause_random": self.ause_random,
            "ause_ratio": self.ratio,
            "mse": self.mse,
            "pixels": self.pixels,
        }
        if curves:
            out |= {"fractions": list(self.fractions), "curve": list(self.curve), "oracle": list(self.oracle)}
        return out


def _remaining_mean(error_sorted: np.ndarray, keys_sorted: np.ndarray | None, fractions: np.ndarray) -> np.ndarray:
    """Mean of what is left of ``error_sorted`` (worst-ranked first) after removing each fraction.

    ``keys_sorted`` (the ranking values in the same order) makes tied pixels share their
    group's mean error, the expectation over every order of the ties.
    """
    error = error_sorted
    if keys_sorted is not None and error.size:
        starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
        sums = np.add.reduceat(error, starts)
        counts = np.diff(np.r_[starts, error.size])
        error = np.repeat(sums / counts, counts)
    total = error.size
    tail = np.r_[np.cumsum(error[::-1])[::-1], 0.0]  # tail[k]: sum of error[k:]
    removed = np.minimum(np.floor(fractions * total).astype(np.int64), total - 1)
    return np.asarray(tail[removed] / (total - removed), dtype=np.float64)


def sparsification(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    uncertainty: npt.ArrayLike | Sequence[npt.ArrayLike],
    *,
    fractions: npt.ArrayLike = SPARSIFICATION_FRACTIONS,
) -> Sparsification:
    """Sparsification curve and AUSE of ``uncertainty`` against the squared alpha error.

    ``pred``, ``gt`` and ``uncertainty`` are one image each, or sequences of equally many
    frames (a shot: all pixels pooled, so the map must rank pixels across frames too).
    Mattes are read as the other metrics read them; the uncertainty is any real map of the
    same size (higher = less sure).
    """
    shot = isinstance(pred, (list, tuple))
    preds = list(pred) if shot else [pred]  # type: ignore[arg-type]
    gts = list(gt) if isinstance(gt, (list, tuple)) else [gt]
    maps = list(uncertainty) if isinstance(uncertainty, (list, tuple)) else [uncertainty]
    if not (len(preds) == len(gts) == len(maps)) or not preds:
        raise MetricsInputError(
            f"Sparsification needs as many predictions ({len(preds)}), ground truths ({len(gts)}) and "
            f"uncertainty maps ({len(maps)}), at least one."
        )
    errors, keys = [], []
    for index, (p_in, g_in, u_in) in enumerate(zip(preds, gts, maps, strict=True)):
        p, g = _as_pair(p_in, g_in)
        u = _squeeze_2d(np.asarray(u_in), "uncertainty").astype(np.float64)
        if u.shape != p.shape:
            raise MetricsInputError(
                f"Frame {index}: the uncertainty map has shape {_shape_text(u.shape)} but the matte has "
                f"shape {_shape_text(p.shape)}."
            )
        errors.append(((p - g) ** 2).ravel())
        keys.append(u.ravel())
    return sparsification_of_errors(np.concatenate(errors), np.concatenate(keys), fractions=fractions)


def squared_error(pred: npt.ArrayLike, gt: npt.ArrayLike) -> FloatArray:
    """Per-pixel squared alpha error (float64, mattes read as the other metrics read them)."""
    p, g = _as_pair(pred, gt)
    return (p - g) ** 2


def sparsification_of_errors(
    squared: npt.ArrayLike, uncertainty: npt.ArrayLike, *, fractions: npt.ArrayLike = SPARSIFICATION_FRACTIONS
) -> Sparsification:
    """:func:`sparsification` of per-pixel squared errors and uncertainties given as flat arrays."""
    error = np.asarray(squared, dtype=np.float64).ravel()
    key = np.asarray(uncertainty, dtype=np.float64).ravel()
    if error.size != key.size or not error.size:
        raise MetricsInputError(f"Sparsification needs as many errors ({error.size}) as uncertainties ({key.size}).")
    if not np.isfinite(key).all():
        raise MetricsInputError("The uncertainty map holds NaN or infinite values.")
    steps = np.asarray(fractions, dtype=np.float64)
    mean = float(error.mean())
    by_map = np.argsort(-key, kind="stable")
    oracle_order = np.sort(error)[::-1]
    if mean > 0:
        curve = _remaining_mean(error[by_map], key[by_map], steps) / mean
        oracle = _remaining_mean(oracle_order, None, steps) / mean
    else:  # a perfect matte: nothing to find
        curve = oracle = np.zeros_like(steps)
    ause = float(np.trapezoid(curve - oracle, steps))
    ause_random = float(np.trapezoid((1.0 if mean > 0 else 0.0) - oracle, steps))
    return Sparsification(
        fractions=tuple(float(f) for f in steps),
        curve=tuple(float(c) for c in curve),
        oracle=tuple(float(o) for o in oracle),
        ause=ause,
        ause_random=ause_random,
        mse=mean * _MEAN_SCALE,
        pixels=int(error.size),
    )


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long series (average ranks for ties).

    NaN when either series has fewer than three values or is constant.
    """
    from scipy.stats import spearmanr

    if len(a) != len(b):
        raise MetricsInputError(f"Rank correlation needs two series of equal length, not {len(a)} and {len(b)}.")
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(spearmanr(a, b).statistic)
