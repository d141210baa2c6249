"""Tests for vfxmatte.metrics: hand-computed cases and literal transcriptions of the references.

The ``_ref_*`` helpers below transcribe the reference evaluation code loop for loop
(P3M ``core/evaluate.py``, GCA-Matting ``utils/evaluate.py``, the DIM MATLAB scripts,
RobustVideoMatting ``evaluation/evaluate_lr.py``) so that the vectorised implementation
is checked against an independent derivation.  skimage's ``label``/``regionprops`` are
replaced by ``scipy.ndimage.label`` (also raster-order labels, 4-connectivity) plus the
same size/argmax logic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
from scipy.ndimage import gaussian_filter

from vfxmatte import metrics
from vfxmatte.errors import InputError
from vfxmatte.metrics import (
    MattingScores,
    MetricsInputError,
    conn,
    dtssd,
    evaluate_unknown,
    evaluate_whole,
    grad,
    mad,
    mean_scores,
    mse,
    sad,
)

# --------------------------------------------------------------------------- reference transcriptions


def _ref_gauss(x: float, sigma: float) -> float:
    return float(np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi)))


def _ref_dgauss(x: float, sigma: float) -> float:
    return -x * _ref_gauss(x, sigma) / sigma**2


def _ref_gaussgradient(im: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """GCA-Matting utils/evaluate.py ``gaussgradient`` (port of DIM gaussgradient.m)."""
    epsilon = 1e-2
    halfsize = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    size = 2 * halfsize + 1
    hx = np.zeros((size, size))
    for i in range(0, size):
        for j in range(0, size):
            u = [i - halfsize, j - halfsize]
            hx[i, j] = _ref_gauss(u[0], sigma) * _ref_dgauss(u[1], sigma)
    hx = hx / np.sqrt(np.sum(np.abs(hx) * np.abs(hx)))
    hy = hx.transpose()
    gx = scipy.ndimage.convolve(im, hx, mode="nearest")
    gy = scipy.ndimage.convolve(im, hy, mode="nearest")
    return gx, gy


def _ref_gca_gradient_loss(pred: np.ndarray, target: np.ndarray, trimap: np.ndarray) -> float:
    """GCA ``compute_gradient_loss`` (inputs 0-255, divided by 255 inside)."""
    pred = pred / 255.0
    target = target / 255.0
    pred_x, pred_y = _ref_gaussgradient(pred, 1.4)
    target_x, target_y = _ref_gaussgradient(target, 1.4)
    pred_amp = np.sqrt(pred_x**2 + pred_y**2)
    target_amp = np.sqrt(target_x**2 + target_y**2)
    error_map = (pred_amp - target_amp) ** 2
    loss = np.sum(error_map[trimap == 128])
    return float(loss / 1000.0)


def _ref_p3m_gradient_whole_image(pd: np.ndarray, gt: np.ndarray) -> float:
    """P3M ``compute_gradient_whole_image``."""
    pd_x = gaussian_filter(pd, sigma=1.4, order=[1, 0], output=np.float32)
    pd_y = gaussian_filter(pd, sigma=1.4, order=[0, 1], output=np.float32)
    gt_x = gaussian_filter(gt, sigma=1.4, order=[1, 0], output=np.float32)
    gt_y = gaussian_filter(gt, sigma=1.4, order=[0, 1], output=np.float32)
    pd_mag = np.sqrt(pd_x**2 + pd_y**2)
    gt_mag = np.sqrt(gt_x**2 + gt_y**2)
    error_map = np.square(pd_mag - gt_mag)
    return float(np.sum(error_map) / 10)


def _ref_p3m_connectivity_whole_image(pd: np.ndarray, gt: np.ndarray, step: float = 0.1) -> float:
    """P3M ``compute_connectivity_loss_whole_image`` (regionprops -> label sizes in label order)."""
    h, w = pd.shape
    thresh_steps = np.arange(0, 1.1, step)
    l_map = -1 * np.ones((h, w), dtype=np.float32)
    for i in range(1, thresh_steps.size):
        pd_th = pd >= thresh_steps[i]
        gt_th = gt >= thresh_steps[i]
        label_image, n = scipy.ndimage.label(pd_th & gt_th)
        size_vec = np.array([np.sum(label_image == k) for k in range(1, n + 1)])
        if len(size_vec) == 0:
            continue
        max_id = np.argmax(size_vec)
        coords = np.argwhere(label_image == max_id + 1)
        omega = np.zeros((h, w), dtype=np.float32)
        omega[coords[:, 0], coords[:, 1]] = 1
        flag = (l_map == -1) & (omega == 0)
        l_map[flag == 1] = thresh_steps[i - 1]
    l_map[l_map == -1] = 1
    d_pd = pd - l_map
    d_gt = gt - l_map
    phi_pd = 1 - d_pd * (d_pd >= 0.15).astype(np.float32)
    phi_gt = 1 - d_gt * (d_gt >= 0.15).astype(np.float32)
    return float(np.sum(np.abs(phi_pd - phi_gt)) / 1000)


def _ref_dim_connectivity(pred: np.ndarray, target: np.ndarray, trimap: np.ndarray, step: float) -> float:
    """DIM ``compute_connectivity_error.m`` followed by evaluate.m's ``/ 1000``.

    ``bwconncomp(.., 4)`` lists components in MATLAB's linear (column-major) order, each
    with its linear indices; ``[~, max_id] = max(size_vec)`` keeps the first maximum and
    an empty list leaves ``omega`` all zero.  Thresholds as the Python ports build them;
    levels rounded to float32 as MATLAB's single-precision arithmetic rounds them.
    """
    dimy, dimx = pred.shape
    thresh_steps = np.arange(0, 1 + step, step)
    l_map = np.ones(pred.shape) * (-1)
    for ii in range(1, thresh_steps.size):
        both = (pred >= thresh_steps[ii]) & (target >= thresh_steps[ii])
        labels_cm, n = scipy.ndimage.label(both.T)  # label in column-major scan order
        pixel_idx_list = [np.flatnonzero(labels_cm.ravel() == k) for k in range(1, n + 1)]
        size_vec = [idx.size for idx in pixel_idx_list]
        omega_cm = np.zeros(dimy * dimx)
        if size_vec:
            max_id = int(np.argmax(size_vec))
            omega_cm[pixel_idx_list[max_id]] = 1
        omega = omega_cm.reshape(dimx, dimy).T
        flag = (l_map == -1) & (omega == 0)
        l_map[flag] = np.float32(thresh_steps[ii - 1])
    l_map[l_map == -1] = 1
    pred_d = pred - l_map
    target_d = target - l_map
    pred_phi = 1 - pred_d * (pred_d >= 0.15)
    target_phi = 1 - target_d * (target_d >= 0.15)
    loss = np.sum(np.abs(pred_phi - target_phi) * (trimap == 128))
    return float(loss / 1000)


def _ref_gca_connectivity(pred: np.ndarray, target: np.ndarray, trimap: np.ndarray, step: float) -> float:
    """GCA ``compute_connectivity_error`` with ``getLargestCC`` = ``argmax(bincount(labels))``."""
    thresh_steps = list(np.arange(0, 1 + step, step))
    l_map = np.ones_like(pred, dtype=float) * -1
    for i in range(1, len(thresh_steps)):
        pred_alpha_thresh = (pred >= thresh_steps[i]).astype(int)
        target_alpha_thresh = (target >= thresh_steps[i]).astype(int)
        labels, _ = scipy.ndimage.label(pred_alpha_thresh * target_alpha_thresh)
        omega = (labels == np.argmax(np.bincount(labels.flat))).astype(int)
        flag = ((l_map == -1) & (omega == 0)).astype(int)
        l_map[flag == 1] = thresh_steps[i - 1]
    l_map[l_map == -1] = 1
    pred_d = pred - l_map
    target_d = target - l_map
    pred_phi = 1 - pred_d * (pred_d >= 0.15).astype(int)
    target_phi = 1 - target_d * (target_d >= 0.15).astype(int)
    loss = np.sum(np.abs(pred_phi - target_phi)[trimap == 128])
    return float(loss / 1000.0)


def _ref_p3m_sad_mse_mad_whole_img(predict: np.ndarray, alpha: np.ndarray) -> tuple[float, float, float]:
    pixel = predict.shape[0] * predict.shape[1]
    sad_diff = np.sum(np.abs(predict - alpha)) / 1000
    mse_diff = np.sum((predict - alpha) ** 2) / pixel
    mad_diff = np.sum(np.abs(predict - alpha)) / pixel
    return float(sad_diff), float(mse_diff), float(mad_diff)


def _ref_gca_sad_mse(pred: np.ndarray, target: np.ndarray, trimap: np.ndarray) -> tuple[float, float]:
    """GCA ``compute_sad_loss`` and ``compute_mse_loss`` (inputs 0-255)."""
    error_map = np.abs((pred - target) / 255.0)
    sad_loss = np.sum(error_map * (trimap == 128)) / 1000
    mse_map = (pred - target) / 255.0
    mse_loss = np.sum((mse_map**2) * (trimap == 128)) / (np.sum(trimap == 128) + 1e-8)
    return float(sad_loss), float(mse_loss)


def _ref_rvm_dtssd(
    pred_t: np.ndarray, pred_tm1: np.ndarray, true_t: np.ndarray, true_tm1: np.ndarray
) -> float:
    """RobustVideoMatting ``MetricDTSSD``."""
    d = ((pred_t - pred_tm1) - (true_t - true_tm1)) ** 2
    return float(np.sqrt(np.sum(d) / true_t.size) * 1e2)


# --------------------------------------------------------------------------- fixtures


def _smooth_random(rng: np.random.Generator, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    """Random matte with soft edges and several blobs, values spread over [0, 1]."""
    field = gaussian_filter(rng.standard_normal(shape), sigma)
    field = (field - field.min()) / (field.max() - field.min())
    return np.clip((field - 0.3) * 2.5, 0.0, 1.0)


def _trimap_from(gt: np.ndarray) -> np.ndarray:
    trimap = np.full(gt.shape, 128, dtype=np.uint8)
    trimap[gt <= 0.02] = 0
    trimap[gt >= 0.98] = 255
    return trimap


@pytest.fixture(scope="module")
def pair8() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8-bit prediction, ground truth and trimap (as the reference scripts read PNGs)."""
    rng = np.random.default_rng(1234)
    gt = np.round(_smooth_random(rng, (48, 64)) * 255).astype(np.uint8)
    noise = gaussian_filter(rng.standard_normal((48, 64)), 1.0) * 60
    pred = np.clip(gt.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)
    return pred, gt, _trimap_from(gt / 255.0)


# --------------------------------------------------------------------------- hand-computed cases


def test_identical_mattes_score_zero_everywhere() -> None:
    rng = np.random.default_rng(0)
    gt = _smooth_random(rng, (32, 40))
    trimap = _trimap_from(gt)
    assert np.count_nonzero(trimap == 128) > 0
    for scores in (evaluate_whole(gt, gt), evaluate_unknown(gt, gt, trimap)):
        assert scores.as_dict() == {"sad": 0.0, "mse": 0.0, "mad": 0.0, "grad": 0.0, "conn": 0.0}


def test_constant_offset_gives_exact_sad_mse_mad() -> None:
    # Multiples of 1/8 plus 1/8 are exact in binary, so the sums are exact too.
    gt = (np.arange(6 * 8).reshape(6, 8) % 8) / 8.0  # 0 .. 7/8
    pred = gt + 0.125
    n = gt.size
    assert sad(pred, gt) == pytest.approx(0.125 * n / 1000, rel=0, abs=0)
    assert mse(pred, gt) == 0.015625 * 1e3
    assert mad(pred, gt) == 0.125 * 1e3
    scores = evaluate_whole(pred, gt)
    assert (scores.sad, scores.mse, scores.mad) == (0.125 * n / 1000, 15.625, 125.0)


def test_uint8_and_uint16_inputs_are_normalised() -> None:
    gt8 = np.full((4, 5), 100, dtype=np.uint8)
    pred8 = np.full((4, 5), 125, dtype=np.uint8)
    expected = 25 / 255
    assert sad(pred8, gt8) == pytest.approx(expected * 20 / 1000, rel=1e-12)
    assert mad(pred8, gt8) == pytest.approx(expected * 1e3, rel=1e-12)
    gt16 = gt8.astype(np.uint16) * 257
    pred16 = pred8.astype(np.uint16) * 257
    assert mse(pred16, gt16) == pytest.approx(expected**2 * 1e3, rel=1e-12)
    assert evaluate_whole(pred8, gt8) == evaluate_whole(pred8 / 255.0, gt8 / 255.0)


def test_single_wrong_pixel() -> None:
    gt = np.zeros((8, 8))
    pred = gt.copy()
    pred[3, 4] = 1.0
    assert sad(pred, gt) == 1 / 1000
    assert mse(pred, gt) == pytest.approx(1 / 64 * 1e3, rel=1e-15)
    assert mad(pred, gt) == pytest.approx(1 / 64 * 1e3, rel=1e-15)

    trimap = np.zeros((8, 8), dtype=np.uint8)
    trimap[3, 3:7] = 128  # four unknown pixels, one of them wrong
    assert sad(pred, gt, trimap) == 1 / 1000
    assert mse(pred, gt, trimap) == 1 / 4 * 1e3
    assert mad(pred, gt, trimap) == 1 / 4 * 1e3
    trimap[3, 4] = 0  # the wrong pixel is now known background: not counted
    assert sad(pred, gt, trimap) == 0.0
    assert mse(pred, gt, trimap) == 0.0


def test_connectivity_hand_computed() -> None:
    # Row [1, 1, 0, 1]: the largest component of pred & gt is {0, 1} at every threshold,
    # so pixels 2 and 3 drop at t = 0.1 (l = 0) and pixels 0 and 1 never drop (l = 1).
    # d_pred = [0, 0, 0, 1] -> phi_pred = [1, 1, 1, 0]; d_gt = [0, 0, 1, 1] -> phi_gt = [1, 1, 0, 0].
    pred = np.array([[1.0, 1.0, 0.0, 1.0]])
    gt = np.ones((1, 4))
    assert conn(pred, gt) == 1 / 1000
    assert conn(pred, gt, convention="dim") == 1 / 1000
    # Only pixel 2 differs; an unknown region without it sees no error.
    trimap = np.array([[128, 128, 255, 128]], dtype=np.uint8)
    assert conn(pred, gt, trimap) == 0.0
    assert conn(pred, gt, np.full((1, 4), 128, dtype=np.uint8)) == 1 / 1000


def test_connectivity_takes_the_largest_foreground_component_not_the_background() -> None:
    # Foreground {0, 1} (2 px) is smaller than the background (3 px).  DIM / P3M: pixel 0
    # drops at t = 1.0 (l = 0.9), pixel 1 never drops (l = 1): every d < 0.15, error 0.
    # GCA's argmax(bincount(labels)) picks the background and gets l = 0 for both, so
    # phi_pred[0] = 1 - 0.9 = 0.1 and phi_gt[0] = 0: error 0.1 / 1000.
    pred = np.array([[0.9, 1.0, 0.0, 0.0, 0.0]])
    gt = np.array([[1.0, 1.0, 0.0, 0.0, 0.0]])
    everywhere = np.full(pred.shape, 128, dtype=np.uint8)
    assert conn(pred, gt) == 0.0
    assert conn(pred, gt, everywhere) == 0.0
    assert _ref_gca_connectivity(pred, gt, everywhere, 0.1) == pytest.approx(0.1 / 1000, abs=1e-12)


def test_connectivity_empty_intersection_follows_each_reference() -> None:
    # pred is 0 everywhere: pred & gt is empty from t = 0.1 on.  P3M `continue`s, so l = 1
    # and every phi is 1 (error 0); MATLAB's empty omega gives l = 0, phi_gt = 1 - 0.5.
    pred = np.zeros((2, 2))
    gt = np.full((2, 2), 0.5)
    assert conn(pred, gt, convention="p3m") == 0.0
    assert _ref_p3m_connectivity_whole_image(pred, gt) == 0.0
    assert conn(pred, gt, convention="dim") == pytest.approx(4 * 0.5 / 1000, rel=1e-15)
    everywhere = np.full((2, 2), 128, dtype=np.uint8)
    assert _ref_dim_connectivity(pred, gt, everywhere, 0.1) == pytest.approx(2 / 1000, rel=1e-15)


def test_connectivity_ties_follow_the_scan_order_of_each_reference() -> None:
    # Two single-pixel components tie for t <= 0.5: A (top right, pred = gt = 1) and
    # B (bottom left, pred 0.6, gt 0.5).  Row-major (P3M) keeps A, so B drops at t = 0.1,
    # l_B = 0: phi_pred = 0.4, phi_gt = 0.5 -> 0.1.  Column-major (MATLAB) keeps B until
    # t = 0.6, l_B = 0.5: both d < 0.15 -> 0; A then drops with d = 1 on both sides -> 0.
    pred = np.zeros((3, 3))
    gt = np.zeros((3, 3))
    pred[0, 2] = gt[0, 2] = 1.0
    pred[2, 0], gt[2, 0] = 0.6, 0.5
    assert conn(pred, gt, convention="p3m") == pytest.approx(0.1 / 1000, rel=1e-6)
    assert conn(pred, gt, convention="dim") == 0.0
    everywhere = np.full((3, 3), 128, dtype=np.uint8)
    assert _ref_p3m_connectivity_whole_image(pred, gt) == pytest.approx(0.1 / 1000, rel=1e-6)
    assert _ref_dim_connectivity(pred, gt, everywhere, 0.1) == 0.0


def test_gradient_hand_cases() -> None:
    flat = np.full((12, 12), 0.25)
    shifted = np.full((12, 12), 0.75)
    # A constant image has no gradient, whatever its level and the border handling.
    assert grad(shifted, flat) == 0.0
    assert grad(shifted, flat, convention="dim") == 0.0
    step = np.zeros((12, 12))
    step[:, 6:] = 1.0
    assert grad(step, flat) > 0.0
    assert grad(step, flat, convention="dim") > 0.0


def test_trimap_variants_count_only_unknown_pixels() -> None:
    rng = np.random.default_rng(7)
    gt = _smooth_random(rng, (40, 48))
    trimap = _trimap_from(gt)
    unknown = trimap == 128
    assert 0 < np.count_nonzero(unknown) < gt.size

    # Errors only inside the known region: the unknown-region SAD / MSE / MAD stay 0.
    pred = gt.copy()
    pred[~unknown] = 1.0 - pred[~unknown]
    scores = evaluate_unknown(pred, gt, trimap)
    assert (scores.sad, scores.mse, scores.mad) == (0.0, 0.0, 0.0)
    assert evaluate_whole(pred, gt).sad > 0.0

    # Errors only inside the unknown region: same SAD, MSE averaged over unknown pixels only.
    pred = gt.copy()
    pred[unknown] = np.clip(pred[unknown] + 0.05, 0, 1)
    diff = pred - gt
    n_unknown = np.count_nonzero(unknown)
    assert sad(pred, gt, trimap) == pytest.approx(sad(pred, gt), rel=1e-12)
    assert mse(pred, gt, trimap) == pytest.approx(np.sum(diff**2) / n_unknown * 1e3, rel=1e-12)
    assert mad(pred, gt, trimap) == pytest.approx(np.sum(np.abs(diff)) / n_unknown * 1e3, rel=1e-12)
    assert mse(pred, gt) == pytest.approx(np.sum(diff**2) / gt.size * 1e3, rel=1e-12)

    # A boolean mask and a float trimap give the same region as the uint8 trimap.
    float_trimap = np.where(trimap == 128, 0.5, trimap / 255.0)
    assert evaluate_unknown(pred, gt, unknown) == evaluate_unknown(pred, gt, trimap)
    assert evaluate_unknown(pred, gt, float_trimap) == evaluate_unknown(pred, gt, trimap)


def test_empty_unknown_region_scores_zero() -> None:
    gt = np.zeros((5, 5))
    pred = np.ones((5, 5))
    scores = evaluate_unknown(pred, gt, np.zeros((5, 5), dtype=np.uint8))
    assert scores.as_dict() == {"sad": 0.0, "mse": 0.0, "mad": 0.0, "grad": 0.0, "conn": 0.0}


# --------------------------------------------------------------------------- input checks


def test_shape_mismatch_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*shape \(5, 4\)"):
        sad(np.zeros((4, 5)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="trimap has shape"):
        evaluate_unknown(np.zeros((4, 5)), np.zeros((4, 5)), np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        evaluate_whole(np.zeros((4, 5, 3)), np.zeros((4, 5, 3)))


def test_invalid_values_raise() -> None:
    ok = np.zeros((3, 3))
    with pytest.raises(ValueError, match="outside"):
        mse(np.full((3, 3), 1.5), ok)
    with pytest.raises(ValueError, match="NaN"):
        mse(np.full((3, 3), np.nan), ok)
    with pytest.raises(ValueError, match="dtype int32"):
        mse(np.zeros((3, 3), dtype=np.int32), ok)
    with pytest.raises(ValueError, match="float trimap"):
        sad(ok, ok, np.full((3, 3), 128.0))
    with pytest.raises(ValueError, match="convention"):
        grad(ok, ok, convention="gca")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        sad(np.zeros((2, 2)), np.zeros((3, 3)))
    assert issubclass(MetricsInputError, ValueError)


def test_single_channel_3d_arrays_are_accepted() -> None:
    rng = np.random.default_rng(3)
    gt = _smooth_random(rng, (16, 16))
    pred = np.clip(gt + 0.1, 0, 1)
    assert evaluate_whole(pred[:, :, None], gt[:, :, None]) == evaluate_whole(pred, gt)


# --------------------------------------------------------------------------- agreement with references


def test_whole_image_matches_p3m_reference(pair8: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred8, gt8, _ = pair8
    predict, alpha = pred8 / 255.0, gt8 / 255.0
    ref_sad, ref_mse, ref_mad = _ref_p3m_sad_mse_mad_whole_img(predict, alpha)
    ref_grad = _ref_p3m_gradient_whole_image(predict, alpha)
    ref_conn = _ref_p3m_connectivity_whole_image(predict, alpha)
    scores = evaluate_whole(pred8, gt8)
    assert ref_conn > 0.0 and ref_grad > 0.0
    assert scores.sad == pytest.approx(ref_sad, rel=1e-12)
    assert scores.mse == pytest.approx(ref_mse * 1e3, rel=1e-12)
    assert scores.mad == pytest.approx(ref_mad * 1e3, rel=1e-12)
    assert scores.grad == pytest.approx(ref_grad, rel=1e-5)  # reference sums in float32
    assert scores.conn == pytest.approx(ref_conn, rel=1e-12)


def test_unknown_region_matches_dim_gca_reference(pair8: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred8, gt8, trimap = pair8
    p, g = pred8.astype(np.float64), gt8.astype(np.float64)  # the GCA scripts pass 0-255 floats
    ref_sad, ref_mse = _ref_gca_sad_mse(p, g, trimap)
    ref_grad = _ref_gca_gradient_loss(p, g, trimap)
    ref_conn = _ref_dim_connectivity(p / 255.0, g / 255.0, trimap, 0.1)
    unknown = trimap == 128
    ref_mad = float(np.sum(np.abs(p - g)[unknown]) / 255.0 / np.count_nonzero(unknown))
    scores = evaluate_unknown(pred8, gt8, trimap)
    assert ref_grad > 0.0 and ref_conn > 0.0
    assert scores.sad == pytest.approx(ref_sad, rel=1e-12)
    assert scores.mse == pytest.approx(ref_mse * 1e3, rel=1e-9)  # GCA adds 1e-8 to the count
    assert scores.mad == pytest.approx(ref_mad * 1e3, rel=1e-12)
    assert scores.grad == pytest.approx(ref_grad, rel=1e-10)
    assert scores.conn == pytest.approx(ref_conn, rel=1e-12)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_float_inputs_match_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = _smooth_random(rng, (36, 44), sigma=1.5)
    pred = np.clip(gt + gaussian_filter(rng.standard_normal(gt.shape), 1.0) * 0.3, 0, 1)
    trimap = _trimap_from(gt)
    everywhere = np.full(gt.shape, 128, dtype=np.uint8)
    assert conn(pred, gt) == pytest.approx(_ref_p3m_connectivity_whole_image(pred, gt), rel=1e-12)
    assert conn(pred, gt, trimap) == pytest.approx(_ref_dim_connectivity(pred, gt, trimap, 0.1), rel=1e-12)
    assert conn(pred, gt, convention="dim") == pytest.approx(
        _ref_dim_connectivity(pred, gt, everywhere, 0.1), rel=1e-12
    )
    assert grad(pred, gt) == pytest.approx(_ref_p3m_gradient_whole_image(pred, gt), rel=1e-5)
    assert grad(pred, gt, trimap) == pytest.approx(
        _ref_gca_gradient_loss(pred * 255.0, gt * 255.0, trimap), rel=1e-10
    )


def test_dim_kernel_factors_rebuild_the_reference_kernel() -> None:
    gauss, dgauss = metrics._dim_gauss_factors(1.4)
    hx = np.outer(gauss, dgauss)
    sigma, halfsize = 1.4, 4
    ref = np.zeros((9, 9))
    for i in range(9):
        for j in range(9):
            ref[i, j] = _ref_gauss(i - halfsize, sigma) * _ref_dgauss(j - halfsize, sigma)
    ref = ref / np.sqrt(np.sum(ref * ref))
    assert hx.shape == (9, 9)
    np.testing.assert_allclose(hx, ref, rtol=1e-12, atol=1e-15)
    assert np.sum(hx * hx) == pytest.approx(1.0, rel=1e-12)


# --------------------------------------------------------------------------- dtSSD


def test_dtssd_static_and_matching_sequences_are_zero() -> None:
    rng = np.random.default_rng(5)
    frame = _smooth_random(rng, (12, 16))
    assert dtssd([frame] * 4, [frame] * 4) == 0.0
    # A constant per-pixel error is not a temporal error either.
    assert dtssd([np.clip(frame + 0.1, 0, 1)] * 3, [frame] * 3) == 0.0
    moving = [_smooth_random(rng, (12, 16)) for _ in range(4)]
    assert dtssd(moving, moving) == 0.0
    assert dtssd(moving, moving, reduction="sum") == 0.0


def test_dtssd_known_flicker() -> None:
    gt = np.full((4, 4), 0.5)
    flicker = gt.copy()
    flicker[1, 2] = 1.0  # one pixel jumps by 0.5 and back
    preds, gts = [gt, flicker, gt], [gt, gt, gt]
    # Each pair: one pixel with e = +-0.5 -> sqrt(0.25 / 16) * 100 = 12.5; sum form: 0.5.
    assert dtssd(preds, gts) == 12.5
    assert dtssd(preds, gts, reduction="sum") == 0.5
    # Whole-frame flicker of 0.125 on every other pair: mean of [12.5, 12.5, 0] = 25 / 3.
    lifted = np.full((4, 4), 0.625)
    assert dtssd([gt, lifted, gt, gt], [gt] * 4) == pytest.approx(25 / 3, rel=1e-15)


def test_dtssd_matches_rvm_reference() -> None:
    rng = np.random.default_rng(21)
    gts = [_smooth_random(rng, (20, 24)) for _ in range(5)]
    preds = [np.clip(g + 0.05 * rng.standard_normal(g.shape), 0, 1) for g in gts]
    per_pair = [_ref_rvm_dtssd(preds[t], preds[t - 1], gts[t], gts[t - 1]) for t in range(1, 5)]
    assert dtssd(preds, gts) == pytest.approx(sum(per_pair) / 4, rel=1e-12)


def test_dtssd_rejects_bad_sequences() -> None:
    frame = np.zeros((4, 4))
    with pytest.raises(ValueError, match="3 frames"):
        dtssd([frame] * 3, [frame] * 2)
    with pytest.raises(ValueError, match="at least two"):
        dtssd([frame], [frame])
    with pytest.raises(ValueError, match="Frame 1 has shape"):
        dtssd([frame, np.zeros((5, 5))], [frame, np.zeros((5, 5))])
    with pytest.raises(ValueError, match="Frame 0"):
        dtssd([frame, frame], [np.zeros((3, 3)), frame])


# --------------------------------------------------------------------------- aggregation


def test_mean_scores_and_as_dict() -> None:
    a = MattingScores(sad=1.0, mse=2.0, mad=3.0, grad=4.0, conn=5.0)
    b = MattingScores(sad=3.0, mse=4.0, mad=5.0, grad=6.0, conn=7.0)
    assert mean_scores([a, b]) == MattingScores(sad=2.0, mse=3.0, mad=4.0, grad=5.0, conn=6.0)
    assert mean_scores(iter([a])) == a
    assert a.as_dict() == {"sad": 1.0, "mse": 2.0, "mad": 3.0, "grad": 4.0, "conn": 5.0}
    with pytest.raises(ValueError, match="empty"):
        mean_scores([])


def test_metric_functions_agree_with_evaluate(pair8: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred, gt, trimap = pair8
    whole = evaluate_whole(pred, gt)
    assert whole == MattingScores(
        sad=sad(pred, gt), mse=mse(pred, gt), mad=mad(pred, gt), grad=grad(pred, gt), conn=conn(pred, gt)
    )
    unknown = evaluate_unknown(pred, gt, trimap)
    assert unknown == MattingScores(
        sad=sad(pred, gt, trimap),
        mse=mse(pred, gt, trimap),
        mad=mad(pred, gt, trimap),
        grad=grad(pred, gt, trimap),
        conn=conn(pred, gt, trimap),
    )
    assert math.isfinite(whole.grad) and whole.grad != unknown.grad
