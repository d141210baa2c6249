"""Model core: SD-folder conversion, conv_in expansion, safetensors only, reproducible sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from vfxmatte.errors import ModelError
from vfxmatte.model.core import convert_sd_folder, expand_conv_in, load_model
from vfxmatte.sampling import lr_ensemble, lr_shape, make_scheduler


def _tiny_sd_folder(root: Path, with_text: bool = True) -> Path:
    """A Stable-Diffusion-1.5-layout folder saved by the real classes, tiny configs."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
    )
    unet.save_pretrained(root / "unet", safe_serialization=True)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    (root / "scheduler").mkdir(parents=True)
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(
            {
                "_class_name": "PNDMScheduler",
                "beta_schedule": "scaled_linear",
                "beta_start": 0.00085,
                "beta_end": 0.012,
                "num_train_timesteps": 1000,
                "steps_offset": 1,
            }
        )
    )
    if with_text:
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

        vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
        for i, word in enumerate(["a</w>", "red</w>", "star</w>", "enhance</w>", "details</w>"]):
            vocab[word] = 3 + i
        tok_dir = root / "tokenizer"
        tok_dir.mkdir()
        (tok_dir / "vocab.json").write_text(json.dumps(vocab))
        (tok_dir / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=8)
        tokenizer.save_pretrained(tok_dir)
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=1,
                num_attention_heads=4,
                max_position_embeddings=8,
                eos_token_id=1,
                bos_token_id=0,
            )
        )
        text.save_pretrained(root / "text_encoder", safe_serialization=True)
    return root


def test_expand_conv_in_keeps_behaviour_at_step_zero() -> None:
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=8,
    )
    unet.conv_in = conv
    x = torch.randn(1, 4, 8, 8)
    before = unet.conv_in(x)
    expand_conv_in(unet)
    assert unet.conv_in.in_channels == 8 and unet.config.in_channels == 8
    image_latent = torch.randn(1, 4, 8, 8)
    after = unet.conv_in(torch.cat([x, image_latent], 1))
    torch.testing.assert_close(before, after)
    assert torch.count_nonzero(unet.conv_in.weight[:, 4:]) == 0
    torch.testing.assert_close(unet.conv_in.bias, conv.bias)


def test_convert_sd_folder_round_trip(tmp_path: Path) -> None:
    source = _tiny_sd_folder(tmp_path / "sd15")
    out = convert_sd_folder(source, tmp_path / "matting")
    info = json.loads((out / "vfxmatte.json").read_text())
    assert info["converted_from"] == "sd15" and info["hr_capable"] is False
    model = load_model(out)
    assert model.unet.conv_in.in_channels == 8
    assert model.text_encoder is not None and model.tokenizer is not None
    assert model.latent_factor == 2
    # The scheduler is always DDIM with trailing spacing, whatever the source folder held.
    scheduler = make_scheduler(model.scheduler_config)
    scheduler.set_timesteps(10)
    assert scheduler.config.timestep_spacing == "trailing" and int(scheduler.timesteps[0]) == 999
    states = model.encode_prompt("a red star", 2)
    assert states.shape == (2, 8, 32)
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    ensemble = lr_ensemble(model, image, steps=2, seeds=3, seed=5, prompt="a red star")
    assert ensemble.mattes.shape == (3, 16, 16)
    assert np.isfinite(ensemble.mattes).all() and ensemble.mattes.min() >= 0 and ensemble.mattes.max() <= 1


def test_sd_folder_loads_directly_with_expansion(tmp_path: Path) -> None:
    source = _tiny_sd_folder(tmp_path / "sd", with_text=False)
    model = load_model(source)
    assert model.unet.conv_in.in_channels == 8
    assert model.text_encoder is None
    with pytest.raises(Exception, match="no text encoder"):
        model.encode_prompt("a red star", 1)


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    source = _tiny_sd_folder(tmp_path / "sd", with_text=False)
    for file in (source / "unet").glob("*.safetensors"):
        torch.save({"weights": 1}, file.with_suffix(".bin"))
        file.unlink()
    with pytest.raises(ModelError, match=r"pickled weights .*diffusion_pytorch_model\.bin"):
        load_model(source)


def test_missing_and_malformed_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no unet/config.json"):
        load_model(tmp_path / "empty")


def test_ensemble_is_reproducible_and_batch_independent(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    image = np.random.default_rng(3).random((32, 48, 3)).astype(np.float32)
    a = lr_ensemble(model, image, steps=3, seeds=4, seed=11)
    b = lr_ensemble(model, image, steps=3, seeds=4, seed=11, batch_size=1)
    c = lr_ensemble(model, image, steps=3, seeds=4, seed=12)
    np.testing.assert_allclose(a.mattes, b.mattes, atol=1e-5)
    again = lr_ensemble(model, image, steps=3, seeds=4, seed=11)
    assert np.array_equal(a.mattes, again.mattes)
    assert not np.allclose(a.mattes, c.mattes)
    assert a.std.shape == (32, 48) and (a.std >= 0).all()
    np.testing.assert_allclose(a.mean, a.mattes.mean(0), atol=1e-6)


def test_lr_shape_keeps_aspect_and_multiples() -> None:
    assert lr_shape(1080, 1920, 512, 32) == (288, 512)
    assert lr_shape(2160, 4096, 512, 32) == (256, 512)
    h, w = lr_shape(100, 60, 512, 32)
    assert h % 32 == 0 and w % 32 == 0 and h > w
