"""The uncertainty pass: sparsification / AUSE, the combined map, `vfxmatte eval` on it, the review's keyframes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from vfxmatte.errors import InputError
from vfxmatte.evaluate import add_eval_parser, cmd_eval, evaluate
from vfxmatte.io import color
from vfxmatte.io.exr import write_exr
from vfxmatte.io.frames import Plate, Window
from vfxmatte.metrics import rank_correlation, sparsification
from vfxmatte.review import ReviewSettings, build_review
from vfxmatte.uncertainty import UncertaintyWeights, estimate

SMALL = ReviewSettings(thumb_size=64, preview_size=96, crop_size=48)


def _disc(height: int = 48, width: int = 64, cx: float = 40.0, radius: float = 12.0) -> np.ndarray:
    ys, xs = np.indices((height, width), dtype=np.float32)
    return np.clip((radius - np.hypot(xs - cx, ys - height / 2)) / 3.0 + 0.5, 0.0, 1.0).astype(np.float32)


# -- metrics ------------------------------------------------------------------------------


def test_sparsification_perfect_constant_random_and_inverted() -> None:
    rng = np.random.default_rng(0)
    gt = _disc()
    pred = np.clip(gt + rng.normal(0.0, 0.1, gt.shape) * (rng.random(gt.shape) < 0.2), 0, 1).astype(np.float32)
    error = (pred - gt) ** 2
    perfect = sparsification(pred, gt, error)
    assert perfect.ause == pytest.approx(0.0, abs=1e-12) and perfect.ratio == pytest.approx(0.0, abs=1e-9)
    assert perfect.curve[0] == pytest.approx(1.0) and perfect.oracle[-1] < 0.1
    constant = sparsification(pred, gt, np.zeros_like(gt))  # ties: random removal in expectation
    assert constant.ratio == pytest.approx(1.0, abs=1e-6) and all(c == pytest.approx(1.0) for c in constant.curve)
    random = sparsification(pred, gt, rng.random(gt.shape))
    assert 0.8 < random.ratio < 1.2
    assert sparsification(pred, gt, -error).ratio > 1.5  # most sure where it is most wrong
    assert perfect.mse == pytest.approx(float(error.mean()) * 1e3)


def test_sparsification_pools_a_shot_and_refuses_mismatches() -> None:
    gt = _disc()
    good, bad = gt.copy(), gt.copy()
    bad[:10, :10] = 1.0  # a confident wrong object, on one frame only
    maps = [np.zeros_like(gt), (bad != gt).astype(np.float32)]
    pooled = sparsification([good, bad], [gt, gt], maps)
    assert pooled.pixels == 2 * gt.size and pooled.ratio == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match="uncertainty map has shape"):
        sparsification(good, gt, np.zeros((3, 3)))
    with pytest.raises(InputError, match="as many predictions"):
        sparsification([good], [gt, gt], [maps[0]])
    assert rank_correlation([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert np.isnan(rank_correlation([1, 2], [1, 2]))


# -- the combined pass --------------------------------------------------------------------------


def test_a_confident_second_subject_is_uncertain_where_the_spread_is_not() -> None:
    lr_mean = _disc(cx=40.0)
    stray = _disc(cx=12.0, radius=6.0)  # a passer-by the whole ensemble agrees on
    lr_mean = np.maximum(lr_mean, stray)
    lr_std = np.where((lr_mean > 0.02) & (lr_mean < 0.98), 0.05, 0.0).astype(np.float32)
    prior = _disc(cx=40.0)  # the prior's subject is the large disc
    alpha = np.kron(lr_mean, np.ones((2, 2), np.float32))  # the full-resolution matte agrees
    result = estimate(lr_mean, lr_std, alpha, prior=prior)
    assert result.map.shape == alpha.shape and result.map.dtype == np.float32
    assert 0.0 <= result.map.min() and result.map.max() <= 1.0
    assert result.score == pytest.approx(float(result.map.mean()), rel=1e-6)
    stray_core = result.map[48, 24]  # the passer-by's centre, full resolution
    subject_core = result.map[48, 80]  # the subject's centre
    assert stray_core > subject_core + 0.1
    assert result.signals["stray"][24, 12] == 1.0 and result.signals["stray"][24, 40] == 0.0
    # The ensemble's spread alone ranks the two centres the same (zero): the new pass finds the error.
    gt = np.kron(_disc(cx=40.0), np.ones((2, 2), np.float32))
    spread_map = np.kron(lr_std, np.ones((2, 2), np.float32))
    assert sparsification(alpha, gt, result.map).ratio < 0.5 * sparsification(alpha, gt, spread_map).ratio


def test_subject_doubt_is_folded_in_and_checked() -> None:
    lr_mean = _disc()
    lr_std = np.zeros_like(lr_mean)
    alpha = lr_mean.copy()
    doubt = np.zeros_like(alpha)
    doubt[:, :16] = 1.0
    weights = UncertaintyWeights(subject=0.4)
    plain = estimate(lr_mean, lr_std, alpha, weights=weights)
    carried = estimate(lr_mean, lr_std, alpha, subject_doubt=doubt, weights=weights)
    assert np.allclose(carried.map[:, :16], plain.map[:, :16] + 0.4, atol=1e-6)
    assert np.array_equal(carried.map[:, 16:], plain.map[:, 16:]) and carried.score > plain.score
    with pytest.raises(ValueError, match="subject_doubt has shape"):
        estimate(lr_mean, lr_std, alpha, subject_doubt=np.zeros((4, 4), np.float32))


# -- vfxmatte eval ---------------------------------------------------------------------------


def _write_frames(directory: Path, gt: np.ndarray, errors: list[float], keyframe: list[float] | None = None) -> None:
    """Matte EXRs (A, uncertainty.Y, header score) whose error grows with ``errors``; GT PNGs beside."""
    height, width = gt.shape
    window = Window(0, 0, width, height)
    (directory / "gt").mkdir(parents=True, exist_ok=True)
    for index, size in enumerate(errors):
        frame = 1001 + index
        alpha = gt.copy()
        wrong = np.zeros_like(gt, dtype=bool)
        wrong[: int(size), : int(size)] = True
        alpha[wrong] = 1.0 - alpha[wrong]
        doubt = np.where(wrong, 0.5, 0.01).astype(np.float32)
        plate = Plate(np.zeros((height, width, 3), np.float32), window, window, "p", frame, color.LINEAR_REC709)
        attributes: dict[str, str | float | int] = {"vfxmatte:uncertainty": float(doubt.mean())}
        if keyframe is not None:
            attributes["vfxmatte:keyframe_doubt"] = keyframe[index]
            attributes["vfxmatte:params"] = json.dumps({"keyframes": [1001, 1005]})
        zeros = np.zeros_like(alpha)
        channels = {"R": zeros, "G": zeros, "B": zeros, "A": alpha, "uncertainty.Y": doubt}
        write_exr(str(directory / f"matte.{frame}.exr"), plate, channels, attributes)
        spec = oiio.ImageSpec(width, height, 1, "uint8")
        out = oiio.ImageOutput.create(str(directory / "gt" / f"gt.{frame}.png"))
        assert out is not None and out.open(str(directory / "gt" / f"gt.{frame}.png"), spec)
        assert out.write_image(np.rint(gt * 255).astype(np.uint8)[..., None]) and out.close()


def test_eval_reports_ause_per_image_pooled_and_the_header_rank(tmp_path: Path) -> None:
    gt = _disc()
    _write_frames(tmp_path, gt, [2, 14, 6, 10])
    report = evaluate(str(tmp_path / "matte.####.exr"), str(tmp_path / "gt" / "gt.####.png"))
    assert all(item.sparsification is not None for item in report.items)
    assert all(item.sparsification.ratio < 0.05 for item in report.items if item.sparsification)
    assert report.pooled is not None and report.pooled.ratio < 0.05
    assert report.pooled.pixels == 4 * gt.size
    assert report.score_rank == pytest.approx(1.0)
    data = report.as_dict()
    assert data["uncertainty"]["score_rank_correlation"] == pytest.approx(1.0)
    assert data["uncertainty"]["count"] == 4 and len(data["uncertainty"]["pooled"]["curve"]) == 100
    assert data["items"][0]["uncertainty"]["ause_ratio"] < 0.05
    assert "AUSE" in report.to_markdown() and "Rank correlation" in report.to_markdown()


def test_eval_cli_without_an_uncertainty_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _disc()
    _write_frames(tmp_path, gt, [3])
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    pred = str(tmp_path / "matte.1001.exr")
    assert cmd_eval(parser.parse_args(["eval", pred, str(tmp_path / "gt" / "gt.1001.png")])) == 0
    assert json.loads(capsys.readouterr().out)["uncertainty"]["pooled"]["ause_ratio"] < 0.05
    args = ["eval", pred, str(tmp_path / "gt" / "gt.1001.png"), "--uncertainty-channel", "none.Y"]
    assert cmd_eval(parser.parse_args(args)) == 0
    assert json.loads(capsys.readouterr().out)["uncertainty"] is None


# -- review: next keyframe ---------------------------------------------------------------------


def test_review_lists_the_next_keyframe_from_the_headers(tmp_path: Path) -> None:
    gt = _disc()
    # Keyframes 1001 and 1005 (in the params header): frames 1002-1004 lie in one stretch, so the
    # most doubtful of them is the one suggestion (vfxmatte.carry.next_keyframes, as matte --json).
    _write_frames(tmp_path / "carried", gt, [2, 14, 4], keyframe=[0.05, 0.4, 0.3])
    result = build_review(tmp_path / "carried" / "matte.####.exr", tmp_path / "review", settings=SMALL)
    assert result.next_keyframes == [1002] and result.flagged == [1002]
    record = json.loads(result.scores_json.read_text())
    assert record["next_keyframes"][0] == {"frame": 1002, "keyframe_doubt": pytest.approx(0.4)}
    assert {f["frame"]: f["keyframe_doubt"] for f in record["frames"]}[1003] == pytest.approx(0.3)
    page = result.index_html.read_text()
    section = page[page.index('<div id="next-keyframes">') : page.index("<h2>All frames")]
    assert 'class="key-row" data-frame="1002"' in section and 'data-frame="1003"' not in section
    # The crops of the flagged frame sit on its wrong (most uncertain) corner.
    crop = next(f for f in result.frames if f.frame == 1002).crops[0]
    assert crop["x"] < 14 and crop["y"] < 14

    _write_frames(tmp_path / "plain", gt, [2, 3, 4])
    plain = build_review(tmp_path / "plain" / "matte.####.exr", tmp_path / "review2", settings=SMALL)
    assert plain.next_keyframes == [] and json.loads(plain.scores_json.read_text())["next_keyframes"] == []
    assert "no carried guide" in plain.index_html.read_text()
