"""The closed-form matting Laplacian (Levin et al. 2008) over a trimap's unknown band only.

pymatting's ``cf_laplacian`` allocates 25 entries for *every* pixel of the image it is given
(some 3.3 GB at 4K), which is why the band used to be solved in 320 px tiles; tiles cut the
band's system at their borders, and where the band is wide the crops disagree there.  Here
only the rows of unknown pixels are built (25 entries each, radius-1 windows), so the whole
band is one system at any frame size: memory follows the band's area, not the frame's.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from numba import njit

RADIUS = 1  # 3×3 windows: pymatting's default, and what the band solve has always used
SPAN = 4 * RADIUS + 1  # a row's neighbours lie within ±2·RADIUS


@njit(
    ["void(f4[:, :, ::1], i4[:, ::1], f8, f8[:, :, ::1])", "void(f8[:, :, ::1], i4[:, ::1], f8, f8[:, :, ::1])"],
    cache=True,
    nogil=True,
)
def _band_rows(image: np.ndarray, index: np.ndarray, epsilon: float, values: np.ndarray) -> None:  # pragma: no cover
    """Accumulate ``L[i, i + (dy, dx)]`` into ``values[index[i], dy + 2r, dx + 2r]`` for every
    unknown pixel i (``index`` ≥ 0), summed over the windows that hold i (windows wholly inside
    the image, as pymatting's)."""
    h, w, _ = image.shape
    r = RADIUS
    size = 2 * r + 1
    area = size * size
    c = np.zeros((size, size, 3))
    for y in range(r, h - r):
        for x in range(r, w - r):
            touches = False
            for dy in range(size):
                for dx in range(size):
                    if index[y + dy - r, x + dx - r] >= 0:
                        touches = True
            if not touches:
                continue
            for ch in range(3):
                s = 0.0
                for dy in range(size):
                    for dx in range(size):
                        s += image[y + dy - r, x + dx - r, ch]
                for dy in range(size):
                    for dx in range(size):
                        c[dy, dx, ch] = image[y + dy - r, x + dx - r, ch] - s / area
            a00 = epsilon
            a01 = 0.0
            a02 = 0.0
            a11 = epsilon
            a12 = 0.0
            a22 = epsilon
            for dy in range(size):
                for dx in range(size):
                    a00 += c[dy, dx, 0] * c[dy, dx, 0]
                    a01 += c[dy, dx, 0] * c[dy, dx, 1]
                    a02 += c[dy, dx, 0] * c[dy, dx, 2]
                    a11 += c[dy, dx, 1] * c[dy, dx, 1]
                    a12 += c[dy, dx, 1] * c[dy, dx, 2]
                    a22 += c[dy, dx, 2] * c[dy, dx, 2]
            a00 /= area
            a01 /= area
            a02 /= area
            a11 /= area
            a12 /= area
            a22 /= area
            det = a00 * a12 * a12 + a01 * a01 * a22 + a02 * a02 * a11 - a00 * a11 * a22 - 2 * a01 * a02 * a12
            inv = 1.0 / det
            m00 = (a12 * a12 - a11 * a22) * inv
            m01 = (a01 * a22 - a02 * a12) * inv
            m02 = (a02 * a11 - a01 * a12) * inv
            m11 = (a02 * a02 - a00 * a22) * inv
            m12 = (a00 * a12 - a01 * a02) * inv
            m22 = (a01 * a01 - a00 * a11) * inv
            for dyi in range(size):
                for dxi in range(size):
                    row = index[y + dyi - r, x + dxi - r]
                    if row < 0:
                        continue
                    s0 = c[dyi, dxi, 0]
                    s1 = c[dyi, dxi, 1]
                    s2 = c[dyi, dxi, 2]
                    c0 = m00 * s0 + m01 * s1 + m02 * s2
                    c1 = m01 * s0 + m11 * s1 + m12 * s2
                    c2 = m02 * s0 + m12 * s1 + m22 * s2
                    for dyj in range(size):
                        for dxj in range(size):
                            temp = c0 * c[dyj, dxj, 0] + c1 * c[dyj, dxj, 1] + c2 * c[dyj, dxj, 2]
                            value = (1.0 if (dyi == dyj and dxi == dxj) else 0.0) - (1.0 + temp) / area
                            values[row, dyj - dyi + 2 * r, dxj - dxi + 2 * r] += value


@njit(
    "Tuple((i8[::1], i4[::1], f8[::1], f8[::1]))(f8[:, :, ::1], i4[:, ::1], i8[::1], i8[::1], f8[:, ::1])",
    cache=True,
)
def _band_csr(
    values: np.ndarray, index: np.ndarray, ys: np.ndarray, xs: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """CSR arrays of ``L_uu`` from :func:`_band_rows`' values (columns come out sorted, as the
    neighbours are visited in row-major order), and each row's pull from its known neighbours."""
    h, w = index.shape
    n = ys.shape[0]
    reach = 2 * RADIUS
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(n * SPAN * SPAN, dtype=np.int32)
    data = np.empty(n * SPAN * SPAN, dtype=np.float64)
    pull = np.zeros(n, dtype=np.float64)
    k = 0
    for i in range(n):
        for a in range(SPAN):
            ny = ys[i] + a - reach
            if ny < 0 or ny >= h:
                continue
            for b in range(SPAN):
                nx = xs[i] + b - reach
                if nx < 0 or nx >= w:
                    continue
                value = values[i, a, b]
                if value == 0.0:
                    continue
                j = index[ny, nx]
                if j >= 0:
                    indices[k] = j
                    data[k] = value
                    k += 1
                else:
                    pull[i] += value * known[ny, nx]
        indptr[i + 1] = k
    return indptr, indices[:k].copy(), data[:k].copy(), pull


def band_system(
    image: np.ndarray, unknown: np.ndarray, known_values: np.ndarray, epsilon: float
) -> tuple[scipy.sparse.csr_matrix, np.ndarray, np.ndarray]:
    """The matting Laplacian restricted to the band: ``(L_uu, L_uk·t_k, flat indices of the unknowns)``.

    ``image`` (H, W, 3) float32 or float64 (the sums are float64 either way), ``unknown`` (H, W)
    bool, ``known_values`` (H, W) the trimap's values (read only where not unknown).  ``L_uu``
    is (U, U) CSR over the unknown pixels in row-major order; the second item is the known
    pixels' pull on each unknown row.
    """
    full_w = unknown.shape[1]
    if not unknown.any():
        return scipy.sparse.csr_matrix((0, 0)), np.zeros(0), np.zeros(0, dtype=np.int64)
    # Only the band's bounding box matters (with the 2r a window reaches past its centre):
    # the rest of a 4K frame is never copied or indexed.
    rows_any, cols_any = np.flatnonzero(unknown.any(1)), np.flatnonzero(unknown.any(0))
    reach = 2 * RADIUS
    top, bottom = max(0, rows_any[0] - reach), min(unknown.shape[0], rows_any[-1] + reach + 1)
    left, right = max(0, cols_any[0] - reach), min(full_w, cols_any[-1] + reach + 1)
    unknown = unknown[top:bottom, left:right]
    known_values = known_values[top:bottom, left:right]
    crop = image[top:bottom, left:right]
    if crop.dtype not in (np.float32, np.float64):
        crop = crop.astype(np.float64)
    h, w = unknown.shape
    inner = np.flatnonzero(unknown.ravel())
    index = np.full((h, w), -1, dtype=np.int32)
    index.ravel()[inner] = np.arange(inner.size, dtype=np.int32)
    values = np.zeros((inner.size, SPAN, SPAN), dtype=np.float64)
    _band_rows(np.ascontiguousarray(crop), index, float(epsilon), values)
    ys, xs = np.divmod(inner, w)
    indptr, indices, data, pull = _band_csr(values, index, ys, xs, np.ascontiguousarray(known_values, dtype=np.float64))
    matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(inner.size, inner.size))
    return matrix, pull, (ys + top) * full_w + (xs + left)
