"""High-resolution refinement (vfxmatte.hr): collage, shared noise, patch selection, merge,
the closed-form band refine, the CLI switch and the 4K memory bound."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from tests.conftest import REPO, run_cli
from vfxmatte import guide, hr
from vfxmatte.model.core import load_model


def _disc(height: int, width: int, radius: float, softness: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(yy - height / 2, xx - width / 2) - radius
    return np.clip(0.5 - distance / (2 * softness), 0.0, 1.0).astype(np.float32)


def test_collage_of_constant_patches_reproduces_the_constant() -> None:
    grid = hr.make_grid(40, 56, size=16, overlap=4)
    positions = grid.all_positions()
    patches = torch.full((len(positions), 4, 16, 16), 0.37)
    out, weights = hr.collage(patches, positions, torch.zeros(4, grid.height, grid.width), hr.patch_weights(16, 4))
    assert bool((weights > 0).all())
    assert torch.allclose(out, torch.full_like(out, 0.37), atol=1e-6)


def test_collage_keeps_the_background_where_no_patch_lies() -> None:
    background = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 32, 32)
    out, weights = hr.collage(torch.ones(1, 2, 8, 8), [(4, 20)], background, hr.patch_weights(8, 2))
    assert torch.equal(out[:, :4], background[:, :4])
    assert torch.allclose(out[:, 4:12, 20:28], torch.ones(2, 8, 8))
    assert float(weights[:4].sum()) == 0.0


def test_overlapping_patches_receive_identical_noise() -> None:
    grid = hr.make_grid(50, 70, size=16, overlap=6)
    noise = hr.patch_noise(4, grid.height, grid.width, seed=3)
    positions = grid.all_positions()
    crops = hr.crop_patches(noise, positions, 16)
    (t0, l0), (t1, l1) = positions[0], positions[1]  # horizontal neighbours share 6 columns
    assert t0 == t1 and l1 - l0 == 10
    assert torch.equal(crops[0][:, :, 10:], crops[1][:, :, :6])
    below = positions[grid.cols]
    assert torch.equal(crops[0][:, 10:, :], hr.crop_patches(noise, [below], 16)[0][:, :6, :])
    # The same seed gives a patch the same noise whichever other patches are selected.
    again = hr.crop_patches(hr.patch_noise(4, grid.height, grid.width, seed=3), [positions[5]], 16)
    assert torch.equal(again[0], crops[5])


def test_grid_neighbours_share_exactly_the_overlap() -> None:
    grid = hr.make_grid(61, 130, size=16, overlap=4)
    assert grid.height >= 61 and grid.width >= 130
    assert grid.height - 12 < 61 and grid.width - 12 < 130  # the smallest grid that covers the frame
    assert {left for _, left in grid.all_positions()} == set(range(0, grid.width - 15, 12))


def test_a_patch_inside_a_solid_region_is_never_selected() -> None:
    # A large foreground disc: its edge is uncertain; its inside and the far background are solid.
    size = 96
    mean = _disc(size, size, radius=36.0)
    std = np.where((mean > 0.02) & (mean < 0.98), 0.2, 0.0).astype(np.float32)
    settings = hr.PatchSettings(size=16, overlap=4, dilation=1)
    grid = hr.make_grid(size, size, 16, 4)
    cells = hr._uncertain_cells(grid, mean, std, (size, size), settings)
    selected = hr.select_patches(grid, cells, settings.dilation)
    assert selected, "the disc's edge must select patches"
    for top, left in grid.all_positions():
        # The patch plus the dilation halo (in cells) is solid: it must not be selected.
        halo = mean[max(0, top - 1) : top + 17, max(0, left - 1) : left + 17]
        if halo.size and (bool((halo >= 0.999).all()) or bool((halo <= 0.001).all())):
            assert (top, left) not in selected
    assert (36, 36) in grid.all_positions() and float(mean[35:53, 35:53].min()) == 1.0
    assert (36, 36) not in selected  # the disc's inside
    assert (0, 0) not in selected  # the far background


def test_merge_has_no_step_across_patch_borders_or_into_the_lr_matte() -> None:
    # Two neighbouring patches that disagree completely (0 and 1), over an LR matte of 0.5.
    ramp, size = 8, 32
    decoded = torch.stack([torch.zeros(size, size), torch.ones(size, size)])
    positions = [(16, 16), (16, 16 + size - ramp)]
    lr = np.full((64, 96), 0.5, dtype=np.float32)
    alpha, coverage = hr.merge_patches(decoded, positions, lr, ramp)
    step = max(float(np.abs(np.diff(alpha, axis=0)).max()), float(np.abs(np.diff(alpha, axis=1)).max()))
    assert step <= 1.0 / (ramp + 1) + 1e-5
    assert float(coverage.max()) == pytest.approx(1.0)
    assert alpha[0, 0] == pytest.approx(0.5)
    assert alpha[32, 30] == pytest.approx(0.0) and alpha[32, 60] == pytest.approx(1.0)


def test_diffusion_refine_touches_only_patches_and_stays_continuous(tiny_model_dir: Path) -> None:
    torch.manual_seed(0)
    model = load_model(tiny_model_dir)
    height, width = 96, 160
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    # An LR ensemble that is solid except around one corner object.
    lr_mean = np.zeros((48, 80), dtype=np.float32)
    lr_mean[4:14, 4:14] = 1.0
    lr_mean[3, 4:14] = lr_mean[14, 4:14] = 0.5
    lr_std = np.where((lr_mean > 0) & (lr_mean < 1), 0.3, 0.0).astype(np.float32)
    result = hr.refine_diffusion(
        model, image, lr_mean, lr_std, steps=2, seed=0, lr_size=32, settings=hr.PatchSettings(overlap=4)
    )
    grid = result.grid
    assert 0 < len(result.positions) < grid.rows * grid.cols
    assert result.unet_evaluations == 2 * len(result.positions)
    lr_alpha = hr.resize(lr_mean, height, width)
    untouched = result.coverage == 0
    assert untouched.any()
    np.testing.assert_allclose(result.alpha[untouched], np.clip(lr_alpha[untouched], 0, 1), atol=1e-6)
    # Continuity at the edge of the patched area: the result departs from the LR matte by at
    # most the patches' share, and that share is one ramp increment next to untouched pixels.
    ramp = 4 * model.latent_factor
    assert bool((np.abs(result.alpha - np.clip(lr_alpha, 0, 1)) <= result.coverage + 1e-5).all())
    next_to_untouched = np.zeros_like(untouched)
    next_to_untouched[:, 1:] |= untouched[:, :-1]
    next_to_untouched[:, :-1] |= untouched[:, 1:]
    next_to_untouched[1:] |= untouched[:-1]
    next_to_untouched[:-1] |= untouched[1:]
    border = next_to_untouched & ~untouched
    assert border.any()
    assert float(result.coverage[border].max()) <= 1.0 / (ramp + 1) + 1e-6


def test_same_seed_same_patches(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    image = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    lr_mean = _disc(32, 32, 8.0)
    lr_std = np.full((32, 32), 0.1, dtype=np.float32)
    kwargs = {"steps": 2, "seed": 5, "lr_size": 32, "settings": hr.PatchSettings(overlap=4, batch=1)}
    a = hr.refine_diffusion(model, image, lr_mean, lr_std, **kwargs)  # type: ignore[arg-type]
    kwargs["settings"] = hr.PatchSettings(overlap=4, batch=3)
    b = hr.refine_diffusion(model, image, lr_mean, lr_std, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_allclose(a.alpha, b.alpha, atol=1e-5)  # batching does not change pixels


def test_auto_trimap_band_follows_uncertainty_and_edges() -> None:
    mean = _disc(64, 64, 20.0)
    std = np.zeros_like(mean)
    std[5, 5] = 0.5  # one uncertain LR pixel in the background
    trimap = hr.auto_trimap(mean, std, 256, 256, hr.TrimapSettings(radius=2))
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}
    assert trimap[128, 128] == 1.0 and trimap[250, 250] == 0.0
    assert trimap[22, 22] == 0.5  # the uncertain background pixel, upsampled ×4
    radius_px = 20.0 * 4
    assert trimap[128, int(128 + radius_px)] == 0.5  # the disc's edge


def test_closed_form_band_refine_recovers_a_sharp_edge() -> None:
    rng = np.random.default_rng(0)
    height = width = 160
    truth = _disc(height, width, 50.0, softness=0.8)
    fg_colour, bg_colour = np.array([0.9, 0.3, 0.2]), np.array([0.1, 0.4, 0.8])
    image = (truth[..., None] * fg_colour + (1 - truth[..., None]) * bg_colour).astype(np.float32)
    image += rng.normal(0, 0.003, image.shape).astype(np.float32)
    lr = hr.resize(truth, 40, 40)  # what an LR pass at a quarter of the size can see
    lr_std = np.zeros_like(lr)
    trimap = hr.auto_trimap(lr, lr_std, height, width)
    prior = np.clip(hr.resize(lr, height, width), 0, 1)
    refined = hr.refine_closed_form(np.clip(image, 0, 1), trimap, prior, hr.TileSettings(size=64, margin=12))
    band = trimap == 0.5
    assert np.abs(refined - truth)[band].sum() < 0.5 * np.abs(prior - truth)[band].sum()
    assert (refined[~band] == trimap[~band]).all()
    fg = hr.foreground_by_tiles(image, refined, hr.TileSettings(size=64, margin=12))
    edge = (truth > 0.3) & (truth < 0.7)
    assert np.abs(fg[edge] - fg_colour).mean() < 0.1


def test_the_priors_weight_in_the_band_can_be_set_per_pixel() -> None:
    """λ as a map: a constant map is the scalar's answer; a large λ on one side holds the prior there."""
    rng = np.random.default_rng(1)
    height = width = 64
    # Background texture of the subject's colour: the colour model alone carries alpha into it.
    truth = _disc(height, width, 20.0, softness=0.8)
    image = np.where(truth[..., None] > 0.5, 0.2, rng.choice([0.2, 0.8], (height, width, 1))).astype(np.float32)
    image = np.repeat(image, 3, axis=2)
    trimap = np.full((height, width), 0.5, np.float32)
    trimap[truth > 0.99], trimap[:, :2], trimap[:, -2:] = 1.0, 0.0, 0.0
    prior = np.clip(truth, 0, 1).astype(np.float32)
    scalar = hr.solve_closed_form(image, trimap, prior, 1e-4, 1e-2)
    mapped = hr.solve_closed_form(image, trimap, prior, 1e-4, np.full((height, width), 1e-2, np.float32))
    assert np.allclose(scalar, mapped, atol=1e-4)
    settings = hr.PriorBandSettings(weight=1e-2, confident_weight=10.0)
    weights = settings.weights(prior)
    assert isinstance(weights, np.ndarray) and weights.shape == prior.shape
    assert weights[0, 0] == pytest.approx(10.01) and weights[truth.shape[0] // 2, width // 2] == pytest.approx(10.01)
    held = hr.solve_closed_form(image, trimap, prior, 1e-4, weights)
    outside = (truth < 0.01) & (trimap == 0.5)
    assert np.abs(held - truth)[outside].mean() < 0.5 * np.abs(scalar - truth)[outside].mean()
    flat = hr.PriorBandSettings(confident_weight=None)
    assert flat.weights(prior) == flat.weight


def test_coarse_pull_averages_a_look_alike_texture_away() -> None:
    """The band also pulled towards its own solve at half size: off by default, and where it is set a
    background whose rows mimic the subject's colour gets less alpha carried into it."""
    rng = np.random.default_rng(2)
    height, width = 64, 96
    truth = np.zeros((height, width), np.float32)
    truth[:, :40] = 1.0
    rows = rng.choice([0.1, 0.7], size=(height, 1))  # rows of the subject's dark and of a light colour
    image = np.where(truth[..., None] > 0.5, 0.1, np.repeat(rows, width, axis=1)[..., None]).astype(np.float32)
    image = np.repeat(image, 3, axis=2)
    xs = np.arange(width, dtype=np.float32)
    prior = np.repeat(np.clip((44.0 - xs) / 8.0, 0.0, 1.0)[None], height, axis=0)  # soft, a little wide
    band = hr.PriorBandSettings()
    assert band.coarse is None
    guide, weights = hr.coarse_pull(image, prior, prior, prior, prior, band.weights(prior), band)
    assert guide is prior  # off: the guide and its weight as they were
    trimap = hr.prior_band_trimap(prior, prior, prior, height, width, band)
    plain = hr.refine_closed_form(image, trimap, guide, epsilon=band.epsilon, prior_weight=weights)
    pulled_band = hr.PriorBandSettings(coarse=1.0, coarse_down=True)
    fine = plain
    guide, weights = hr.coarse_pull(image, prior, prior, prior, prior, pulled_band.weights(prior), pulled_band, fine)
    assert isinstance(weights, np.ndarray) and weights.shape == prior.shape
    assert (guide <= np.maximum(prior, fine) + 1e-6).all()  # down only: never a pull above both
    pulled = hr.refine_closed_form(image, trimap, guide, epsilon=band.epsilon, prior_weight=weights)
    background = (truth == 0) & (trimap == hr.UNKNOWN)
    assert background.sum() > 100
    assert np.abs(pulled - truth)[background].mean() < 0.8 * np.abs(plain - truth)[background].mean()
    with pytest.raises(hr.UsageError, match="coarse pull"):
        hr.PriorBandSettings(coarse=0.1, coarse_factor=1)


def test_band_laplacian_is_pymattings_laplacian_restricted_to_the_band() -> None:
    from pymatting import cf_laplacian

    from vfxmatte.band_laplacian import band_system

    rng = np.random.default_rng(4)
    image = rng.random((40, 53, 3))
    trimap = np.zeros((40, 53), np.float32)
    trimap[10:30, 5:40] = 0.5
    trimap[15:25, 15:25] = 1.0
    trimap[0:2, 20:30] = 0.5  # unknown pixels on the image's own edges
    trimap[5:12, -2:] = 0.5
    unknown = trimap == 0.5
    full = cf_laplacian(image, epsilon=1e-6, radius=1, is_known=~unknown)
    flat = unknown.ravel()
    for dtype in (np.float64, np.float32):
        matrix, pull, indices = band_system(image.astype(dtype), unknown, trimap, 1e-6)
        np.testing.assert_array_equal(indices, np.flatnonzero(flat))
        expected = full[flat][:, flat]
        tolerance = 0.0 if dtype == np.float64 else 1e-3 * abs(expected).max()
        assert abs(matrix - expected).max() <= tolerance
        np.testing.assert_allclose(pull, full[flat][:, ~flat].dot(trimap.ravel()[~flat]), atol=max(tolerance, 1e-12))


def test_band_is_one_system_without_tile_seams() -> None:
    """A wide band over a colour ramp: the whole-band solve is the exact minimiser and shows no
    step where tiles would meet; the old tiled solve breaks the ramp at its tile borders."""
    import scipy.sparse
    import scipy.sparse.linalg
    from pymatting import cf_laplacian

    rng = np.random.default_rng(3)
    height, width = 96, 160
    ramp = np.linspace(0, 1, width)[None, :, None]
    image = ramp * np.array([0.9, 0.3, 0.2]) + (1 - ramp) * np.array([0.1, 0.4, 0.8])
    image = np.clip(image + rng.normal(0, 0.003, (height, width, 3)), 0, 1)
    trimap = np.full((height, width), 0.5, np.float32)
    trimap[:, :6], trimap[:, -6:] = 1.0, 0.0
    prior = np.full((height, width), 0.5, np.float32)
    whole = hr.refine_closed_form(image, trimap, prior, prior_weight=1e-4)
    tiled = hr.refine_closed_form(image, trimap, prior, hr.TileSettings(size=40, margin=4), prior_weight=1e-4)

    unknown = (trimap == 0.5).ravel()
    laplacian = cf_laplacian(image, epsilon=1e-6, radius=1, is_known=~unknown.reshape(height, width))
    # The exact minimiser, for the weak prior (factor-preconditioned) and the trimap-free band's
    # 1e-2 (diagonal-preconditioned).
    for weight, solved in ((1e-4, whole), (1e-2, hr.refine_closed_form(image, trimap, prior, prior_weight=1e-2))):
        system = (laplacian[unknown][:, unknown] + weight * scipy.sparse.identity(int(unknown.sum()))).tocsc()
        rhs = weight * prior.ravel()[unknown] - laplacian[unknown][:, ~unknown].dot(trimap.ravel()[~unknown])
        exact = np.clip(scipy.sparse.linalg.spsolve(system, rhs), 0, 1)
        assert np.abs(solved.ravel()[unknown] - exact).max() < 1e-3, weight

    def seam(alpha: np.ndarray) -> float:
        """Mean step across the tile borders over the mean step between other columns."""
        steps = np.abs(np.diff(alpha, axis=1))[:, 8:-8]
        border = np.isin(np.arange(8, width - 9), [39, 79, 119])
        return float(steps[:, border].mean() / steps[:, ~border].mean())

    assert seam(whole) < 1.0 and seam(tiled) > 1.2


def test_closed_form_solve_falls_back_to_a_direct_solve_when_cg_does_not_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pymatting

    rng = np.random.default_rng(2)
    size = 48
    truth = _disc(size, size, 15.0, softness=0.8)
    image = (truth[..., None] * np.array([0.9, 0.3, 0.2]) + (1 - truth[..., None]) * np.array([0.1, 0.4, 0.8]))
    image = np.clip(image + rng.normal(0, 0.003, image.shape), 0, 1)
    trimap = np.where(truth > 0.99, 1.0, np.where(truth < 0.01, 0.0, 0.5)).astype(np.float32)
    trimap = np.where(ndimage.maximum_filter(trimap == 0.5, size=5), 0.5, trimap).astype(np.float32)
    prior = np.zeros_like(truth)  # a weak prior far from the answer
    converged = hr.solve_closed_form(image, trimap, prior)

    def no_convergence(*args: object, **kwargs: object) -> np.ndarray:
        raise ValueError("Conjugate gradient descent did not converge within 4000 iterations")

    monkeypatch.setattr(pymatting, "cg", no_convergence)
    fallback = hr.solve_closed_form(image, trimap, prior)
    np.testing.assert_allclose(fallback, converged, atol=2e-3)
    assert np.abs(fallback - truth)[trimap == 0.5].mean() < 0.1


def test_trimap_guide_band_is_solved_even_where_the_lr_matte_is_confidently_wrong() -> None:
    rng = np.random.default_rng(1)
    size = 128
    truth = _disc(size, size, 40.0, softness=0.8)
    fg_colour, bg_colour = np.array([0.9, 0.8, 0.2]), np.array([0.1, 0.2, 0.7])
    image = (truth[..., None] * fg_colour + (1 - truth[..., None]) * bg_colour).astype(np.float32)
    image = np.clip(image + rng.normal(0, 0.003, image.shape).astype(np.float32), 0, 1)
    # The LR ensemble agrees (std 0) on a disc far too small: its auto band misses the edge.
    lr_mean = hr.resize(_disc(size, size, 25.0, softness=0.8), 32, 32)
    lr_std = np.zeros_like(lr_mean)
    yy, xx = np.mgrid[0:size, 0:size]
    distance = np.hypot(yy - size / 2, xx - size / 2)
    values = np.where(distance < 30, 1.0, np.where(distance > 50, 0.0, 0.5)).astype(np.float32)
    known = values != 0.5
    ring = (distance > 36) & (distance < 38)  # inside the true disc, outside the LR one and its band

    def run(is_trimap: bool) -> np.ndarray:
        refined = hr.refine(
            "pymatting", None, image, image, lr_mean, lr_std, steps=1, seed=0, lr_size=32,  # type: ignore[arg-type]
            guide_trimap=np.where(known, values, 0.5) if is_trimap else None,
            scribbles=None if is_trimap else (known, values),
        )  # fmt: skip
        return refined.alpha

    trimap_guided = run(True)
    assert np.abs(trimap_guided - truth).mean() < 0.02
    assert trimap_guided[ring].min() > 0.9
    assert (trimap_guided[known] == values[known]).all()
    # Scribble semantics keep the ensemble's own (wrong) band away from the strokes.
    assert run(False)[ring].mean() < 0.1
    # A loose roto (a disc of radius 50 around the true 40) becomes a trimap whose band holds the
    # true edge; it is solved there in full, against the LR prior (0 on the ring).
    roto = (distance < 50).astype(np.float32)
    mask_codes = guide.mask_trimap(roto, inside=16, outside=4)
    refined = hr.refine(
        "pymatting", None, image, image, lr_mean, lr_std, steps=1, seed=0, lr_size=32,  # type: ignore[arg-type]
        want_trimap=True, guide_trimap=mask_codes,
    )  # fmt: skip
    assert refined.trimap is not None and (refined.trimap[(distance > 35) & (distance < 53)] == 0.5).all()
    assert refined.alpha[ring].min() > 0.9
    assert np.abs(refined.alpha - truth).mean() < 0.02


def test_trimap_free_refine_keeps_the_priors_core_where_the_ensemble_subtracts() -> None:
    """Where the LR ensemble loses part of the subject the prior found, the prior's confident
    core stays; only the prior's soft edge is solved, and there the image's edge wins."""
    rng = np.random.default_rng(2)
    size = 128
    truth = _disc(size, size, 40.0, softness=0.8)
    fg_colour, bg_colour = np.array([0.9, 0.7, 0.3]), np.array([0.15, 0.25, 0.6])
    image = (truth[..., None] * fg_colour + (1 - truth[..., None]) * bg_colour).astype(np.float32)
    image = np.clip(image + rng.normal(0, 0.003, image.shape).astype(np.float32), 0, 1)
    prior = hr.resize(_disc(size, size, 38.0, softness=4.0), 32, 32)  # right subject, soft and a bit small
    lr_mean = np.zeros((32, 32), np.float32)
    lr_mean[:, :16] = hr.resize(truth, 32, 32)[:, :16]  # the ensemble lost the right half, confidently
    lr_std = np.zeros_like(lr_mean)
    refined = hr.refine(
        "pymatting", None, image, image, lr_mean, lr_std, steps=1, seed=0, lr_size=32,  # type: ignore[arg-type]
        prior=prior, want_trimap=True,
    )  # fmt: skip
    trimap = hr.prior_band_trimap(prior, lr_mean, lr_std, size, size)
    assert refined.trimap is not None and (refined.trimap == trimap).all()
    core = trimap == 1.0  # the prior ≥ 0.9, less the band grown into it
    assert core[:, 70:].any() and (refined.alpha[core] == 1.0).all()
    prior_error = np.abs(np.clip(hr.resize(prior, size, size), 0, 1) - truth).mean()
    assert np.abs(refined.alpha - truth).mean() < 0.5 * prior_error
    # Without the prior the automatic band of the (wrong) ensemble loses the right half.
    auto = hr.refine("pymatting", None, image, image, lr_mean, lr_std, steps=1, seed=0, lr_size=32)  # type: ignore[arg-type]
    assert auto.alpha[core & (np.arange(size)[None, :] > 80)].mean() < 0.1


def test_prior_band_trimap_grows_the_soft_edge_by_a_share_of_the_long_side() -> None:
    prior = np.zeros((50, 100), np.float32)
    prior[:, 40:60] = 0.5  # a soft stripe
    prior[:, 60:] = 1.0
    settings = hr.PriorBandSettings(radius=0.02, reach=None)
    trimap = hr.prior_band_trimap(prior, prior, np.zeros_like(prior), 100, 200, settings)
    row = trimap[50]
    # The stripe, 79-120 at 2x (its bilinear ramps included), grown by 4 px (2 % of 200).
    assert (row[:75] == 0.0).all() and (row[75:125] == 0.5).all() and (row[125:] == 1.0).all()


def test_prior_band_trimap_keeps_soft_interior_away_from_the_contour() -> None:
    """A subject the prior is only 70 % sure of inside, and a faint shadow off to one side: inside
    the prior's 0.5 contour only the band within ``reach`` of it is solved, the rest is foreground;
    outside, ``reach_outside`` (off by default) does the same towards the background."""
    prior = np.zeros((200, 200), np.float32)
    prior[40:160, 40:160] = 0.7  # the subject's soft interior
    prior[170:180, 10:190] = 0.3  # a shadow, far below the subject's edge
    trimap = hr.prior_band_trimap(prior, prior, np.zeros_like(prior), 200, 200, hr.PriorBandSettings(reach=0.05))
    assert trimap[100, 100] == 1.0  # the interior, 60 px from the edge: foreground
    assert trimap[100, 40] == 0.5 and trimap[100, 50] == 0.5  # within 10 px of the edge: solved
    assert trimap[175, 100] == 0.5  # the shadow, outside: still solved by default
    both = hr.prior_band_trimap(
        prior, prior, np.zeros_like(prior), 200, 200, hr.PriorBandSettings(reach=0.05, reach_outside=0.05)
    )
    assert both[100, 100] == 1.0 and both[100, 40] == 0.5 and both[175, 100] == 0.0  # the shadow: background
    before = hr.prior_band_trimap(prior, prior, np.zeros_like(prior), 200, 200, hr.PriorBandSettings(reach=None))
    assert before[100, 100] == 0.5 and before[175, 100] == 0.5


def test_trimap_guided_solve_prints_nothing_on_stdout(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pymatting print()s a warning for every diagonal shift its incomplete Cholesky tries; on
    GT14 with its trimap (the weak guided prior) it needs one.  stdout carries `--json`."""
    import OpenImageIO as oiio

    folder = shared_data / "matting" / "alphamatting"
    image = np.asarray(oiio.ImageBuf(str(folder / "input" / "GT14.png")).get_pixels(oiio.FLOAT))[..., :3]
    codes = np.asarray(oiio.ImageBuf(str(folder / "trimap" / "GT14.png")).get_pixels(oiio.FLOAT))[..., 0]
    known = (codes <= 0.1) | (codes >= 0.9)
    values = np.where(codes >= 0.9, 1.0, 0.0).astype(np.float32)
    lr = np.zeros((64, 64), np.float32)
    for solver in ("closed-form", "shared"):
        refined = hr.refine(
            "pymatting", None, image, image, lr, lr, steps=1, seed=0, lr_size=64,  # type: ignore[arg-type]
            guide_trimap=np.where(known, values, 0.5), guided_solver=solver,
        )  # fmt: skip
        assert refined.alpha.shape == codes.shape
        assert (refined.alpha[known] == values[known]).all()
        assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_cli_hr_modes_and_trimap_pass(tiny_model_dir: Path, tmp_path: Path) -> None:
    import OpenImageIO as oiio

    # A small linear EXR of a soft disc: quick enough for three CLI runs.
    truth = _disc(96, 128, 30.0)
    rgb = truth[..., None] * np.array([0.8, 0.4, 0.2], np.float32) + (1 - truth[..., None]) * 0.1
    plate = tmp_path / "plate.1001.exr"
    spec = oiio.ImageSpec(128, 96, 3, oiio.HALF)
    out_file = oiio.ImageOutput.create(str(plate))
    assert out_file.open(str(plate), spec) and out_file.write_image(rgb.astype(np.float32)) and out_file.close()
    frames = [plate]
    out = {}
    for mode in ("pymatting", "diffusion"):
        target = tmp_path / mode / "m.####.exr"
        code, stdout, stderr = run_cli(
            "matte", str(frames[0]), "-o", str(target), "--model", str(tiny_model_dir), "--steps", "2",
            "--seeds", "2", "--lr-size", "64", "--hr", mode, "--write-trimap", "--json", "--quiet",
        )  # fmt: skip
        assert code == 0, stderr
        written = json.loads(stdout)["frames"]["written"]
        path = Path(str(target).replace("####", f"{written[0]:04d}"))
        image = oiio.ImageBuf(str(path))
        names = list(image.spec().channelnames)
        assert "trimap.Y" in names
        params = json.loads(image.spec().get_string_attribute("vfxmatte:params"))
        assert params["hr"] == mode
        out[mode] = image.get_pixels(oiio.FLOAT)[..., names.index("A")]
        trimap = image.get_pixels(oiio.FLOAT)[..., names.index("trimap.Y")]
        assert set(np.unique(np.round(trimap * 2) / 2)) <= {0.0, 0.5, 1.0}
    assert not np.array_equal(out["pymatting"], out["diffusion"])
    code, _, stderr = run_cli("matte", str(frames[0]), "-o", str(tmp_path / "x"), "--hr", "sharp")
    assert code == 2 and "--hr" in stderr


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    from vfxmatte import hr
    from vfxmatte.model.core import load_model
    height, width = 2160, 3840
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.clip(0.5 - (np.hypot(yy - 1080, xx - 1920) - 700) / 3.0, 0, 1).astype(np.float32)
    rng = np.random.default_rng(0)
    linear = (truth[..., None] * np.array([0.8, 0.5, 0.3], np.float32)
              + (1 - truth[..., None]) * np.array([0.1, 0.2, 0.5], np.float32))
    linear += rng.normal(0, 0.002, linear.shape).astype(np.float32)
    del yy, xx
    lr_mean = hr.resize(truth, 288, 512)
    lr_std = np.zeros_like(lr_mean)
    model = load_model(sys.argv[1])
    started = time.perf_counter()
    refined = hr.refine(sys.argv[2], model, linear, np.clip(linear, 0, 1), lr_mean, lr_std,
                        steps=1, seed=0, lr_size=512, want_trimap=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds,
                      "band": float((refined.trimap == 0.5).mean()), "shape": list(refined.alpha.shape)}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pymatting", "diffusion"])
def test_4k_frame_within_memory_bound(tiny_model_dir: Path, mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(tiny_model_dir), mode],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2160, 3840]
    assert 0 < report["band"] < 0.1
    assert report["peak_mb"] < 6 * 1024, report


def test_prior_band_can_be_solved_by_shared_matting() -> None:
    size = 96
    truth = _disc(size, size, 30.0, softness=0.8)
    image = (truth[..., None] * np.array([0.9, 0.6, 0.1]) + (1 - truth[..., None]) * np.array([0.1, 0.2, 0.6]))
    image = np.clip(image, 0, 1).astype(np.float32)
    prior = np.clip(_disc(size, size, 27.0, softness=4.0), 0, 1).astype(np.float32)  # soft, a little small
    lr = hr.resize(prior, 24, 24)
    band = hr.PriorBandSettings(solver="shared")
    refined = hr.refine(
        "pymatting", None, image, image, lr, np.zeros_like(lr), steps=1, seed=0, lr_size=24,  # type: ignore[arg-type]
        prior=prior, prior_band=band,
    )  # fmt: skip
    trimap = hr.prior_band_trimap(prior, lr, np.zeros_like(lr), size, size, band)
    assert refined.trimap is not None and (refined.trimap == trimap).all()
    np.testing.assert_array_equal(refined.alpha, hr.solve_shared(image, trimap))
    unknown = trimap == hr.UNKNOWN
    assert np.abs(refined.alpha - truth)[unknown].mean() < np.abs(prior - truth)[unknown].mean()


def test_prior_band_is_solved_at_its_own_epsilon() -> None:
    size = 96
    truth = _disc(size, size, 30.0, softness=0.8)
    rng = np.random.default_rng(5)
    image = (truth[..., None] * np.array([0.9, 0.6, 0.1]) + (1 - truth[..., None]) * np.array([0.1, 0.2, 0.6]))
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)
    prior = np.clip(_disc(size, size, 27.0, softness=4.0), 0, 1).astype(np.float32)
    lr = hr.resize(prior, 24, 24)
    assert hr.PriorBandSettings().epsilon == 1e-4  # the protocol's pick (docs/BENCHMARKS.md)
    alphas = []
    for epsilon in (1e-6, 1e-4):
        band = hr.PriorBandSettings(epsilon=epsilon)
        refined = hr.refine(
            "pymatting", None, image, image, lr, np.zeros_like(lr), steps=1, seed=0, lr_size=24,  # type: ignore[arg-type]
            prior=prior, prior_band=band,
        )  # fmt: skip
        trimap = hr.prior_band_trimap(prior, lr, np.zeros_like(lr), size, size, band)
        weights = band.weights(np.clip(hr.resize(prior, size, size), 0.0, 1.0))  # per pixel by default
        np.testing.assert_array_equal(
            refined.alpha, hr.refine_closed_form(image, trimap, prior, epsilon=epsilon, prior_weight=weights)
        )
        alphas.append(refined.alpha)
    assert not np.array_equal(alphas[0], alphas[1])


def test_trimap_free_plate_solves_only_the_priors_edge(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """matte_plate without a guide hands the prior's mask to the refine: the written trimap is
    the prior's band, and outside it the matte is the prior's side of 0.5 whatever the ensemble says."""
    from vfxmatte import pipeline
    from vfxmatte.config import MatteParams
    from vfxmatte.io.frames import Plate, Window

    seen: dict[str, np.ndarray] = {}
    real_prior = pipeline._run_prior

    def prior_spy(*args: object) -> tuple[np.ndarray, float]:
        mask, seconds = real_prior(*args)  # type: ignore[arg-type]
        seen["mask"] = mask
        return mask, seconds

    monkeypatch.setattr(pipeline, "_run_prior", prior_spy)
    truth = _disc(64, 96, 20.0)
    image = (truth[..., None] * np.array([0.9, 0.5, 0.1]) + (1 - truth[..., None]) * 0.05).astype(np.float32)
    window = Window(0, 0, 96, 64)
    params = MatteParams(steps=2, seeds=2, lr_size=64, hr="pymatting", write_trimap=True, temporal="off")
    model = load_model(tiny_model_dir)
    matte = pipeline.matte_plate(model, Plate(image, window, window, "mem", 1001, "ACES - ACEScg"), params)
    assert matte.trimap is not None
    expected = hr.prior_band_trimap(seen["mask"], seen["mask"], np.zeros_like(seen["mask"]), 64, 96)
    assert (matte.trimap == expected).all()
    known = expected != hr.UNKNOWN
    assert (matte.alpha[known] == expected[known]).all()


def test_black_bars_are_known_background_in_the_trimap_free_band() -> None:
    # A subject whose prior runs into a pillarbox bar: the band is not solved into the bar.
    height, width = 60, 120
    display = np.zeros((height, width, 3), np.float32)
    display[:, 20:100] = 0.6
    display[30:60, 20:50] = 0.04  # a dark coat touching the bar's edge, as dark as the bar
    prior = np.zeros((height, width), np.float32)
    prior[30:60, 14:50] = 1.0  # the prior's edge blurred into the bar
    lr = np.zeros((height // 2, width // 2), np.float32)
    refined = hr.refine(
        "pymatting", None, display, display, lr, lr, steps=1, seed=0, lr_size=64,  # type: ignore[arg-type]
        want_trimap=True, prior=prior,
    )  # fmt: skip
    assert refined.trimap is not None
    assert (refined.trimap[:, :20] == hr.BACKGROUND).all() and (refined.trimap[:, 100:] == hr.BACKGROUND).all()
    assert (refined.alpha[:, :20] == 0).all()
    assert float(refined.alpha[35:55, 25:45].mean()) > 0.9
    assert refined.picture == (0, 60, 20, 100)  # what the header reports (vfxmatte:picture)
    # Without the refine (--hr off) the LR matte is the answer: the bars are background there too.
    lr_matte = np.ones((height // 2, width // 2), np.float32)
    off = hr.refine(
        "off", None, display, display, lr_matte, lr, steps=1, seed=0, lr_size=64,  # type: ignore[arg-type]
        want_trimap=True, prior=prior,
    )  # fmt: skip
    assert (off.alpha[:, :20] == 0).all() and (off.alpha[:, 100:] == 0).all() and (off.alpha[:, 20:100] == 1).all()
    assert off.trimap is not None and (off.trimap[:, :20] == hr.BACKGROUND).all()
