"""`vfxmatte eval`: reading mattes and trimaps, pairing files / folders / sequences, the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from vfxmatte.errors import InputError, UsageError
from vfxmatte.evaluate import add_eval_parser, cmd_eval, evaluate, read_matte, read_trimap
from vfxmatte.metrics import dtssd, evaluate_unknown, evaluate_whole


def _write(path: Path, pixels: np.ndarray, fmt: str, channels: tuple[str, ...] | None = None, **windows: int) -> Path:
    """Write an image with OIIO; ``windows`` sets x, y, full_x, full_y, full_width, full_height."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], fmt)
    if channels is not None:
        spec.channelnames = channels
    for key, value in windows.items():
        setattr(spec, key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(pixels), out.geterror()
    assert out.close()
    return path


def _matte(seed: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    alpha = np.zeros(shape, np.uint8)
    alpha[6:18, 8:24] = 255
    alpha[4:20, 6:8] = rng.integers(0, 256, (16, 2), dtype=np.uint8)
    return alpha


def _grey_png(path: Path, alpha: np.ndarray) -> Path:
    """A grey matte stored as RGB, like the alphamatting.com GT PNGs."""
    return _write(path, np.repeat(alpha[:, :, None], 3, axis=2), "uint8")


def test_identical_pair_scores_zero(tmp_path: Path) -> None:
    alpha = _matte(0)
    a = _grey_png(tmp_path / "a.png", alpha)
    b = _write(tmp_path / "b.png", alpha, "uint8")  # single channel
    report = evaluate(str(a), str(b))
    assert len(report.items) == 1
    assert all(v == 0.0 for v in report.mean_whole.as_dict().values())
    assert report.mean_unknown is None
    assert report.complete


def test_different_pair_matches_the_metrics_module(tmp_path: Path) -> None:
    pred, gt = _matte(1), _matte(2)
    report = evaluate(str(_grey_png(tmp_path / "p.png", pred)), str(_grey_png(tmp_path / "g.png", gt)))
    assert report.items[0].whole == evaluate_whole(pred, gt)
    assert report.items[0].whole.sad > 0


def test_folders_pair_by_stem_and_report_the_unmatched(tmp_path: Path) -> None:
    for stem, seed in (("GT01", 1), ("GT02", 2), ("only_pred", 3)):
        _write(tmp_path / "pred" / f"{stem}.exr", _matte(seed).astype(np.float32) / 255.0, "float", ("Y",))
    for stem, seed in (("GT01", 1), ("GT02", 5), ("only_gt", 3)):
        _grey_png(tmp_path / "gt" / f"{stem}.png", _matte(seed))
    (tmp_path / "gt" / "notes.txt").write_text("not an image")
    report = evaluate(str(tmp_path / "pred"), str(tmp_path / "gt"))
    assert [item.name for item in report.items] == ["GT01", "GT02"]
    assert report.unmatched == {"pred": ["only_pred.exr"], "gt": ["only_gt.png"], "trimap": []}
    assert not report.complete
    assert report.items[0].whole.sad == pytest.approx(0.0, abs=1e-9)  # same matte, EXR vs PNG
    assert report.items[1].whole.sad > 0
    assert "only_pred.exr" in report.to_markdown()


def test_sequences_pair_by_frame_number_with_dtssd(tmp_path: Path) -> None:
    preds = {f: _matte(f) for f in (1001, 1002, 1003)}
    gts = {f: _matte(f + 10) for f in (1001, 1002, 1005)}
    for f, a in preds.items():
        _write(tmp_path / f"matte.{f:04d}.exr", a.astype(np.float32) / 255.0, "float", ("A",))
    for f, a in gts.items():
        _grey_png(tmp_path / "gt" / f"gt_{f}.png", a)
    report = evaluate(str(tmp_path / "matte.####.exr"), str(tmp_path / "gt" / "gt_%d.png"))
    assert report.kind == "sequence"
    assert [item.frame for item in report.items] == [1001, 1002]
    assert report.unmatched["pred"] == ["1003"] and report.unmatched["gt"] == ["1005"]
    expected = dtssd([preds[1001], preds[1002]], [gts[1001], gts[1002]])
    assert report.dtssd == pytest.approx(expected, rel=1e-6)  # float32 EXR vs uint8
    assert report.dtssd_pairs == 1
    assert report.as_dict()["dtssd"] == report.dtssd


def test_trimap_counts_only_unknown_pixels_and_102_is_unknown(tmp_path: Path) -> None:
    gt = np.zeros((20, 20), np.uint8)
    gt[:, 10:] = 255
    trimap = np.zeros((20, 20), np.uint8)
    trimap[:, 10:] = 255
    trimap[:, 8:12] = 102  # pymatting's lemur value for unknown
    pred = gt.copy()
    pred[0:5, 0:3] = 200  # an error in the known background
    pred[:, 9] = 51  # an error in the unknown band: 0 -> 0.2
    paths = [
        _grey_png(tmp_path / "p.png", pred),
        _grey_png(tmp_path / "g.png", gt),
        _write(tmp_path / "t.png", np.dstack([trimap] * 3 + [np.full_like(trimap, 255)]), "uint8"),
    ]
    report = evaluate(*(str(p) for p in paths))
    unknown = report.items[0].unknown
    assert unknown is not None
    assert unknown.sad == pytest.approx(20 * 0.2 / 1000, rel=1e-12)  # 20 rows of column 9 only
    assert unknown.mad == pytest.approx(20 * 0.2 / 80 * 1e3, rel=1e-12)  # 80 unknown pixels
    assert report.items[0].whole.sad == pytest.approx((15 * 200 / 255 + 20 * 0.2) / 1000, rel=1e-12)
    assert read_trimap(str(paths[2])).sum() == 80
    assert unknown == evaluate_unknown(pred, gt, trimap == 102)


def test_trimap_folder_pairs_by_stem_and_reports_missing_trimaps(tmp_path: Path) -> None:
    trimap = np.full((24, 32), 128, np.uint8)
    for stem in ("a", "b"):
        _grey_png(tmp_path / "pred" / f"{stem}.png", _matte(1))
        _grey_png(tmp_path / "gt" / f"{stem}.png", _matte(2))
    _write(tmp_path / "trimap" / "a.png", trimap, "uint8")
    report = evaluate(str(tmp_path / "pred"), str(tmp_path / "gt"), str(tmp_path / "trimap"))
    assert [item.trimap is not None for item in report.items] == [True, False]
    assert report.unmatched["trimap"] == ["b"] and not report.complete
    assert report.as_dict()["mean"]["unknown_count"] == 1
    assert report.mean_unknown == evaluate_unknown(_matte(1), _matte(2), trimap)  # all pixels unknown


def test_exr_prediction_uses_the_a_channel(tmp_path: Path) -> None:
    alpha = np.zeros((16, 16), np.float32)
    alpha[4:12, 4:12] = 1.0
    alpha[4:12, 3] = 0.5
    rgba_u = np.dstack([np.full_like(alpha, 0.7), alpha * 0.3, alpha * 0.2, alpha, np.full_like(alpha, 0.05)])
    pred = _write(tmp_path / "out.exr", rgba_u, "half", ("R", "G", "B", "A", "uncertainty.Y"))
    gt = _write(tmp_path / "gt.exr", alpha, "float", ("Y",))
    assert np.array_equal(read_matte(str(pred)), alpha)
    assert all(v == 0.0 for v in evaluate(str(pred), str(gt)).mean_whole.as_dict().values())
    assert evaluate(str(pred), str(gt), pred_channel="R").mean_whole.sad > 0
    with pytest.raises(InputError, match="out.exr: no channel 'Z'"):
        evaluate(str(pred), str(gt), pred_channel="Z")


def test_channel_rules_for_grey_colour_and_opaque_rgba(tmp_path: Path) -> None:
    alpha = _matte(4)
    grey_rgba = _write(tmp_path / "grey.png", np.dstack([alpha] * 3 + [np.full_like(alpha, 255)]), "uint8")
    assert np.array_equal(read_matte(str(grey_rgba)), alpha)  # opaque grey RGBA: the grey is the matte
    colour = np.dstack([alpha, 255 - alpha, alpha // 2])
    with pytest.raises(InputError, match=r"colour\.png: ground truth has colour channels R, G, B and no A"):
        read_matte(str(_write(tmp_path / "colour.png", colour, "uint8")), "ground truth", None)
    cutout = _write(tmp_path / "cutout.png", np.dstack([colour, alpha]), "uint8")
    assert np.array_equal(read_matte(str(cutout), "ground truth", None), alpha)  # RGB untouched by the alpha


def test_float_mattes_are_clipped_with_a_note(tmp_path: Path) -> None:
    alpha = np.linspace(-0.1, 1.1, 64, dtype=np.float32).reshape(8, 8)
    pred = _write(tmp_path / "p.exr", alpha, "float", ("A",))
    report = evaluate(str(pred), str(pred))
    assert report.mean_whole.sad == 0.0
    assert any("outside [0, 1] clipped" in note for note in report.notes)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    a = _grey_png(tmp_path / "small.png", _matte(0, (24, 32)))
    b = _grey_png(tmp_path / "large.png", _matte(0, (30, 32)))
    with pytest.raises(InputError) as caught:
        evaluate(str(a), str(b))
    message = str(caught.value)
    assert "small.png" in message and "large.png" in message and "32x24" in message and "32x30" in message
    assert "\n" not in message


def test_data_window_inside_the_display_window_is_aligned(tmp_path: Path) -> None:
    full = np.zeros((20, 30), np.float32)
    full[5:15, 10:20] = 1.0
    cropped = _write(
        tmp_path / "crop.exr", full[5:15, 10:20], "float", ("A",), x=10, y=5, full_width=30, full_height=20
    )
    gt = _write(tmp_path / "gt.exr", full, "float", ("Y",))
    assert evaluate(str(cropped), str(gt)).mean_whole.sad == 0.0


def test_pairing_kinds_must_agree(tmp_path: Path) -> None:
    file = _grey_png(tmp_path / "a.png", _matte(0))
    _grey_png(tmp_path / "dir" / "a.png", _matte(0))
    with pytest.raises(UsageError, match="cannot pair a file"):
        evaluate(str(file), str(tmp_path / "dir"))
    with pytest.raises(InputError, match="does not exist"):
        evaluate(str(tmp_path / "missing.png"), str(file))


def test_cmd_eval_prints_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    a = _grey_png(tmp_path / "a.png", _matte(0))
    b = _grey_png(tmp_path / "b.png", _matte(1))
    for default_or_flag in ([], ["--json"]):
        assert cmd_eval(parser.parse_args(["eval", str(a), str(b), *default_or_flag])) == 0
        record = json.loads(capsys.readouterr().out)  # JSON by default (DESIGN §4)
        assert record["count"] == 1 and record["mean"]["whole"]["sad"] > 0
    assert cmd_eval(parser.parse_args(["eval", str(a), str(b), "--markdown"])) == 0
    text = capsys.readouterr().out
    assert "P3M convention" in text
    assert "| item | MSE | MAD | SAD | Conn | Grad |" in text
    assert "| **mean (1)** |" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", str(a), str(b), "--json", "--markdown"])


def test_real_alphamatting_gt_against_itself(shared_data: Path) -> None:
    root = shared_data / "matting" / "alphamatting"
    gt, trimap = root / "gt" / "GT01.png", root / "trimap" / "GT01.png"
    report = evaluate(str(gt), str(gt), str(trimap))
    assert report.items[0].unknown is not None
    assert all(v == 0.0 for v in report.items[0].whole.as_dict().values())
    reader = oiio.ImageInput.open(str(trimap))
    assert reader is not None
    values = reader.read_image(0, 0, 0, 1, "uint8")
    reader.close()
    assert read_trimap(str(trimap)).sum() == np.count_nonzero(values == 128)
    assert read_matte(str(gt), "ground truth", None).dtype == np.uint8
