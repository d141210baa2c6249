"""Spatial guidance (vfxmatte.guide): guide kinds parsed from real files, Eq. 8, bad guides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from vfxmatte import guide
from vfxmatte.config import MatteParams
from vfxmatte.errors import InputError, UsageError
from vfxmatte.io.frames import Window
from vfxmatte.model.core import load_model
from vfxmatte.sampling import make_scheduler, noised_start


def _write(path: Path, pixels: np.ndarray, channels: list[str], fmt: str = "half") -> Path:
    h, w = pixels.shape[:2]
    spec = oiio.ImageSpec(w, h, len(channels), fmt)
    spec.channelnames = tuple(channels)
    if len(channels) == 4 or "A" in channels:
        spec.alpha_channel = channels.index("A")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_image(pixels.astype(np.float32)) and out.close()
    return path


WINDOW = Window(0, 0, 32, 24)


def test_trimap_png_parsed_with_tolerance(tmp_path: Path) -> None:
    trimap = np.zeros((24, 32), np.float32)
    trimap[:, 12:20] = 102 / 255  # pymatting's lemur uses 102, not 128
    trimap[:, 20:] = 1.0
    path = _write(tmp_path / "t.png", np.repeat(trimap[..., None], 3, axis=2), ["R", "G", "B"], "uint8")
    g = guide.load_guide(str(path), "auto", WINDOW, WINDOW)
    assert g.kind == "trimap"
    assert g.unknown[:, 12:20].all() and not g.unknown[:, :12].any() and not g.unknown[:, 20:].any()
    assert (g.values[:, 20:] == 1).all() and (g.values[:, :12] == 0).all()


def test_exr_alpha_is_a_mask_and_channel_can_be_named(tmp_path: Path) -> None:
    rgba = np.zeros((24, 32, 5), np.float32)
    rgba[4:20, 4:16, 3] = 1.0  # alpha: a roto shape
    rgba[:, 16:, 4] = 1.0  # another channel
    path = _write(tmp_path / "roto.exr", rgba, ["R", "G", "B", "A", "other.Y"])
    g = guide.load_guide(str(path), "auto", WINDOW, WINDOW)
    assert g.kind == "mask" and g.unknown.all()
    assert g.values[10, 8] == 1.0 and g.values[0, 0] == 0.0
    named = guide.load_guide(str(path), "mask", WINDOW, WINDOW, channel="other.Y")
    assert named.values[0, 20] == 1.0 and named.values[0, 0] == 0.0
    with pytest.raises(InputError, match="no channel 'nope'"):
        guide.load_guide(str(path), "mask", WINDOW, WINDOW, channel="nope")


def test_scribbles_with_transparency(tmp_path: Path) -> None:
    rgba = np.zeros((24, 32, 4), np.float32)
    rgba[2:6, 2:30, :] = 1.0  # a white stroke (opaque)
    rgba[18:22, 2:30, 3] = 1.0  # a black stroke (opaque)
    path = _write(tmp_path / "s.png", rgba, ["R", "G", "B", "A"], "uint8")
    g = guide.load_guide(str(path), "auto", WINDOW, WINDOW)
    assert g.kind == "scribble"
    assert not g.unknown[3, 10] and g.values[3, 10] == 1.0
    assert not g.unknown[20, 10] and g.values[20, 10] == 0.0
    assert g.unknown[10, 10]  # transparent: unscribbled


def test_guide_registered_to_the_plate_display_window(tmp_path: Path) -> None:
    half = np.zeros((12, 16), np.float32)
    half[:, 8:] = 1.0  # right half foreground, at half resolution
    path = _write(tmp_path / "m.exr", np.repeat(half[..., None], 3, axis=2), ["R", "G", "B"])
    plate_data = Window(4, 2, 20, 16)  # a data window inside the 32x24 display
    g = guide.load_guide(str(path), "mask", plate_data, WINDOW)
    assert g.values.shape == (16, 20)
    assert g.values[0, 11] == 0.0 and g.values[0, 12] == 1.0  # display x = 16 is data x = 12


def test_eq8_start_point_equals_the_formula(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    values = np.zeros((32, 32), np.float32)
    values[:, 16:] = 1.0
    unknown = np.zeros((32, 32), bool)
    unknown[:, 12:20] = True
    g = guide.Guide("trimap", values, unknown, [])
    clean = guide.guided_start(model, g, 32, 32, seeds=2)
    f = model.latent_factor
    from vfxmatte.sampling import encode_image

    c_s = encode_image(model, torch.from_numpy(np.repeat(values[None], 3, axis=0))[None])
    m = torch.zeros(1, 1, 32 // f, 32 // f)
    m[..., 12 // f : 20 // f] = 1.0
    expected = (1 - m) * c_s
    assert torch.allclose(clean[0:1], expected, atol=1e-6) and torch.equal(clean[0], clean[1])
    scheduler = make_scheduler(model.scheduler_config)
    scheduler.set_timesteps(4)
    noise = torch.randn_like(clean)
    start, timesteps = noised_start(scheduler, clean, noise, 1.0)
    abar = scheduler.alphas_cumprod[int(timesteps[0])]
    # Eq. 8 in the variance-exploding scale, times sqrt(ᾱ_T): the scheduler's scale.
    eq8 = torch.sqrt((1 - abar) / abar) * noise + (1 - m) * c_s
    assert torch.allclose(start, torch.sqrt(abar) * eq8, atol=1e-5)


def test_a_mask_guide_is_where_sampling_starts(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coarse mask starts the LR ensemble at the prior's strength: from the prior kept inside
    the mask (the real U²-Netp), or with ``--prior none`` from the mask itself."""
    from vfxmatte import pipeline
    from vfxmatte.config import MatteParams
    from vfxmatte.io.frames import Plate
    from vfxmatte.sampling import resize

    model = load_model(tiny_model_dir)
    mask = np.zeros((48, 64), np.float32)
    mask[10:40, 8:30] = 1.0
    path = _write(tmp_path / "roto.exr", np.dstack([mask, mask, mask, mask]), ["R", "G", "B", "A"])
    seen: dict[str, object] = {}
    real_ensemble, real_within = pipeline.lr_ensemble, guide.prior_within_mask

    def ensemble_spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return real_ensemble(*args, **kwargs)  # type: ignore[arg-type]

    def within_spy(prior: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        seen["coarse"] = real_within(prior, coarse)
        return seen["coarse"]  # type: ignore[return-value]

    monkeypatch.setattr(pipeline, "lr_ensemble", ensemble_spy)
    monkeypatch.setattr(guide, "prior_within_mask", within_spy)
    window = Window(0, 0, 64, 48)
    image = np.full((48, 64, 3), 0.05, np.float32)
    image[12:38, 10:28] = (0.9, 0.5, 0.1)  # the subject, inside the roto
    for prior in ("none", "u2netp"):
        seen.clear()
        params = MatteParams(steps=2, seeds=2, lr_size=64, hr="off", guide=str(path), guide_kind="mask", prior=prior)
        matte = pipeline.matte_plate(model, Plate(image, window, window, "mem", 1001, "ACES - ACEScg"), params)
        coarse = np.clip(resize(mask, 48, 64), 0, 1) if prior == "none" else seen["coarse"]
        assert seen["strength"] == params.prior_strength
        expected = pipeline.mask_latents(model, coarse, 2)  # type: ignore[arg-type]
        assert torch.allclose(seen["start"], expected, atol=1e-6)  # type: ignore[arg-type]
        assert (matte.prior_seconds > 0) == (prior == "u2netp")


def test_prior_within_mask_keeps_the_prior_inside_and_falls_back_to_the_mask() -> None:
    mask = np.zeros((40, 40), np.float32)
    mask[5:25, 5:25] = 1.0
    prior = np.zeros_like(mask)
    prior[8:20, 8:20] = 1.0  # the subject, inside the roto
    prior[30:38, 30:38] = 1.0  # another object, outside it
    kept = guide.prior_within_mask(prior, mask)
    assert kept[8:20, 8:20].min() == 1.0 and kept[30:38, 30:38].max() == 0.0
    elsewhere = np.zeros_like(mask)
    elsewhere[30:38, 30:38] = 1.0  # the prior found only the other object: follow the mask
    assert np.array_equal(guide.prior_within_mask(elsewhere, mask), mask)


def test_mask_trimap_has_its_band_around_the_masks_edge_and_keeps_a_core() -> None:
    mask = np.zeros((60, 80), np.float32)
    mask[10:50, 10:70] = 1.0
    codes = guide.mask_trimap(mask, inside=6, outside=3)
    assert set(np.unique(codes)) == {0.0, 0.5, 1.0}
    assert codes[30, 40] == 1.0 and codes[5, 40] == 0.0 and codes[0, 0] == 0.0  # core, far outside
    assert codes[10, 40] == 0.5 and codes[15, 40] == 0.5 and codes[7, 40] == 0.5  # on, inside, outside the edge
    assert codes[17, 40] == 1.0 and codes[6, 40] == 0.0  # past the band on either side
    # Defaults: MASK_INSIDE / MASK_OUTSIDE of the long side (at least 4 px).
    assert np.array_equal(guide.mask_trimap(mask), guide.mask_trimap(mask, inside=5, outside=4))
    # A thin mask keeps a foreground core: the inside depth is capped at half its thickness.
    thin = np.zeros((60, 80), np.float32)
    thin[28:34, 10:70] = 1.0
    assert (guide.mask_trimap(thin, inside=20) == 1.0).any()
    assert not guide.mask_trimap(np.zeros((8, 8), np.float32)).any()
    assert (guide.mask_trimap(np.ones((8, 8), np.float32)) == 0.5).all()
    assert guide.mask_outside_radius((1080, 1920)) == 19 and guide.mask_outside_radius((60, 80)) == 4
    # --mask-band sets the inside depth as a fraction of the long side (0.15 · 160 = 24 px; 8 px).
    big = np.zeros((120, 160), np.float32)
    big[10:110, 10:150] = 1.0
    roto = guide.Guide("mask", big, np.ones(big.shape, dtype=bool), [])
    wide, narrow = guide.refine_trimap(roto, 0.15), guide.refine_trimap(roto, 0.05)
    assert wide is not None and narrow is not None
    assert wide[30, 80] == 0.5 and narrow[30, 80] == 1.0 and wide[40, 80] == 1.0
    with pytest.raises(UsageError, match="--mask-band"):
        MatteParams(mask_band=0.0)


def test_bad_guides(tmp_path: Path) -> None:
    known = np.repeat(np.where(np.arange(32) < 16, 0.0, 1.0)[None].repeat(24, 0)[..., None], 3, axis=2)
    all_known = _write(tmp_path / "k.png", known, ["R", "G", "B"], "uint8")
    with pytest.raises(UsageError, match="no unknown"):
        guide.load_guide(str(all_known), "trimap", WINDOW, WINDOW)
    grey = _write(tmp_path / "g.png", np.full((24, 32, 3), 0.5, np.float32), ["R", "G", "B"], "uint8")
    g = guide.load_guide(str(grey), "trimap", WINDOW, WINDOW)
    assert g.unknown.all() and "all unknown" in g.warnings[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(InputError, match="broken.png"):
        guide.load_guide(str(broken), "auto", WINDOW, WINDOW)
    with pytest.raises(InputError, match="does not cover frames 1003"):
        _write(tmp_path / "seq.1001.png", known, ["R", "G", "B"], "uint8")
        _write(tmp_path / "seq.1002.png", known, ["R", "G", "B"], "uint8")
        guide.guide_frames(str(tmp_path / "seq.####.png"), [1001, 1002, 1003])
    with pytest.raises(UsageError, match="--guide-kind"):
        guide.interpret(np.zeros((2, 2), np.float32), "lasso")


def test_mask_excluding_an_object_removes_it() -> None:
    alpha = np.zeros((40, 80), np.float32)
    alpha[10:30, 5:25] = 1.0  # object A
    alpha[10:30, 55:75] = 1.0  # object B
    mask = np.zeros_like(alpha)
    mask[8:32, 2:28] = 1.0  # a rough roto of A only
    out = guide.apply_to_matte(alpha, guide.Guide("mask", mask, np.ones(alpha.shape, bool), []), clamp_known=False)
    assert out[10:30, 55:75].max() == 0.0 and out[10:30, 5:25].min() == 1.0


@pytest.mark.slow
def test_cli_trimap_guide_clamps_known_and_bad_guide_exits_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    truth = (np.hypot(yy - 24, xx - 32) < 14).astype(np.float32)
    plate = _write(tmp_path / "plate.1001.exr", np.repeat(truth[..., None], 3, axis=2) * 0.7 + 0.1, ["R", "G", "B"])
    trimap = np.where(np.hypot(yy - 24, xx - 32) < 11, 1.0, 0.0)
    trimap[(np.hypot(yy - 24, xx - 32) >= 11) & (np.hypot(yy - 24, xx - 32) < 17)] = 0.5
    guide_path = _write(tmp_path / "trimap.png", np.repeat(trimap[..., None], 3, axis=2), ["R", "G", "B"], "uint8")
    out = tmp_path / "out" / "m.####.exr"
    code, _, stderr = run_cli(
        "matte", str(plate), "-o", str(out), "--model", str(tiny_model_dir), "--steps", "2", "--seeds", "2",
        "--lr-size", "64", "--hr", "pymatting", "--guide", str(guide_path), "--guide-kind", "trimap",
        "--clamp-known", "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    written = next((tmp_path / "out").glob("*.exr"))
    image = oiio.ImageBuf(str(written))
    alpha = image.get_pixels(oiio.FLOAT)[..., list(image.spec().channelnames).index("A")]
    assert (alpha[trimap == 1.0] == 1.0).all() and (alpha[trimap == 0.0] == 0.0).all()
    known = np.repeat(np.where(xx < 32, 0.0, 1.0)[..., None], 3, axis=2)
    bad = _write(tmp_path / "allknown.png", known, ["R", "G", "B"], "uint8")
    code, _, stderr = run_cli(
        "matte", str(plate), "-o", str(tmp_path / "bad" / "m.####.exr"), "--model", str(tiny_model_dir),
        "--guide", str(bad), "--guide-kind", "trimap", "--quiet",
    )  # fmt: skip
    assert code == 2 and "allknown.png" in stderr and "no unknown" in stderr, stderr
