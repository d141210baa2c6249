"""Shared fixtures: the real-file data folder and tiny models built by the real classes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_VAE = {"block_out_channels": [8, 16], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 4}
TINY_UNET = {
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "cross_attention_dim": 16,
    "attention_head_dim": 4,
    "norm_num_groups": 4,
}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: real-file fixtures unavailable")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, untrained but complete matting model folder (safetensors), seeded."""
    import torch

    from vfxmatte.model.build import build_model
    from vfxmatte.model.core import save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    model = build_model(TINY_VAE, TINY_UNET, path=folder)
    save_model(model, folder, {"name": "tiny-test"})
    return folder


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the real console entry point in a subprocess: (exit code, stdout, stderr)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "vfxmatte.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    return proc.returncode, proc.stdout, proc.stderr
