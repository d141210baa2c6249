"""The bundled default model: complete, documented, and better than doing nothing on the bundled sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from tests.conftest import REPO, run_cli

MODEL = REPO / "vfxmatte" / "model" / "default"
SAMPLES = REPO / "vfxmatte" / "samples"


def _alpha(path: Path, channel: str = "A") -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    spec = buf.spec()
    index = list(spec.channelnames).index(channel)
    return np.asarray(buf.get_pixels(oiio.FLOAT))[..., index]


def test_bundled_model_folder_is_complete_and_records_its_provenance() -> None:
    meta = json.loads((MODEL / "vfxmatte.json").read_text())
    for key in ("command", "seed", "data", "final_loss"):
        assert key in meta, f"vfxmatte.json lacks {key}"
    assert "vfxmatte train" in meta["command"]
    weights = sorted(MODEL.rglob("*.safetensors"))
    assert len(weights) >= 2, "UNet and VAE weights must be safetensors"
    assert not list(MODEL.rglob("*.bin")) and not list(MODEL.rglob("*.pt")), "no pickled weights"
    total = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert total < 30 * 1024 * 1024
    assert (MODEL / "loss.csv").is_file() and (MODEL / "loss.png").is_file()


@pytest.mark.slow
def test_default_model_mattes_the_bundled_sample_better_than_nothing(tmp_path: Path) -> None:
    out = tmp_path / "matte.####.exr"
    code, stdout, stderr = run_cli(
        "matte", str(SAMPLES / "plate" / "plate.####.exr"), "-o", str(out), "--frames", "1001", "--json"
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["frames"]["written"] == [1001]
    pred = _alpha(tmp_path / "matte.1001.exr")
    truth = _alpha(SAMPLES / "alpha" / "alpha.1001.exr", channel=_alpha_channel(SAMPLES / "alpha" / "alpha.1001.exr"))
    mse = float(np.mean((pred - truth) ** 2))
    mse_zero = float(np.mean(truth**2))
    mse_half = float(np.mean((0.5 - truth) ** 2))
    # The model must find the subject: well below both trivial answers.
    assert mse < 0.5 * mse_zero, (mse, mse_zero)
    assert mse < 0.5 * mse_half, (mse, mse_half)
    unc = _alpha(tmp_path / "matte.1001.exr", channel="uncertainty.Y")
    assert np.isfinite(unc).all() and unc.min() >= 0


def _alpha_channel(path: Path) -> str:
    names = list(oiio.ImageInput.open(str(path)).spec().channelnames)
    return "A" if "A" in names else names[0]
