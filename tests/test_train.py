"""Training: layered configs, data sources, multi-scale views, text conditioning, resume, SD fine-tuning."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfxmatte.errors import UsageError
from vfxmatte.model.core import convert_sd_folder, load_model, save_model
from vfxmatte.sampling import encode_prompt, lr_ensemble
from vfxmatte.train.data import Item, MatteTarget, Sampler, build_bank, find_pairs, item_source
from vfxmatte.train.loop import TrainConfig, _build, train
from vfxmatte.train.text import DETAIL_PROMPT, build_tokenizer, caption_words, load_tokenizer

REPO = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "base": str(REPO / "configs" / "tiny.json"),
    "data": {"count": 6, "size": 64, "multi_object_fraction": 0.5},
    "text": {"layers": 1, "heads": 2, "max_length": 10},
    "train_size": 32,
    "patches": {"views": 2, "full_fraction": 0.5},
    "vae_steps": 2,
    "unet_steps": 4,
    "threads": 1,
}


def _config(tmp_path: Path, name: str = "run", **overrides: Any) -> TrainConfig:
    raw = {**TINY, "output": str(tmp_path / name), **overrides}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(raw))
    return TrainConfig.load(path)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for part in ("unet", "vae", "text_encoder"):
        for file in sorted((folder / part).glob("*.safetensors")):
            out.update({f"{part}.{k}": v for k, v in load_file(str(file)).items()})
    return out


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import OpenImageIO as oiio

    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.ndim == 2:  # OIIO's Python write_image misreads 2-D arrays: give it (H, W, 1)
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    out.open(str(path), oiio.ImageSpec(pixels.shape[1], pixels.shape[0], channels, "uint8"))
    out.write_image(np.ascontiguousarray(pixels))
    out.close()


def _fake_p3m(root: Path, count: int = 3, size: tuple[int, int] = (40, 56)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        alpha = np.zeros(size, np.uint8)
        alpha[8:30, 10 + i : 40] = 255
        alpha[30:34, 10:40] = 128
        _write_png(root / "train" / "blurred_image" / f"p_{i:03d}.jpg", image)
        _write_png(root / "train" / "mask" / f"p_{i:03d}.png", alpha)
    (root / "train" / "mask" / "orphan.png").write_bytes((root / "train" / "mask" / "p_000.png").read_bytes())
    return root


# --------------------------------------------------------------------------- configs


def test_layered_config_and_resolved_copy(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.unet["block_out_channels"] == [16, 32]  # from tiny.json
    assert config.unet["layers_per_block"] == 1  # from default.json under it
    assert config.data == {"kind": "synthetic", "count": 6, "size": 64, "multi_object_fraction": 0.5}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": TINY["base"], "output": "x", "unet_stepz": 3}))
    with pytest.raises(UsageError, match="unknown config keys: unet_stepz"):
        TrainConfig.load(bad)


def test_mixed_precision_needs_cuda(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="mixed precision needs a CUDA device"):
        train(_config(tmp_path, precision="fp16"))
    with pytest.raises(UsageError, match="choose fp32, bf16 or fp16"):
        train(_config(tmp_path, precision="half"))


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_training_writes_a_complete_model(tmp_path: Path) -> None:
    config = _config(tmp_path, gradient_checkpointing=True)
    out = train(config, command="vfxmatte train tiny")
    for name in ("loss.csv", "loss.png", "train_config.json", "vfxmatte.json", "tokenizer/tokenizer.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    assert json.loads((out / "train_config.json").read_text()) == config.__dict__
    with open(out / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["stage"] for r in rows].count("vae") == 2 and [r["stage"] for r in rows].count("unet") == 4
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    info = json.loads((out / "vfxmatte.json").read_text())
    assert info["text_encoder"]["trained"] is True and info["train_size"] == 32
    assert info["recipe"]["bank"]["patches"] == 6 * 2
    model = load_model(out)
    assert model.text_encoder is not None and model.tokenizer is not None
    assert not any(p.requires_grad for p in model.unet.parameters())


@pytest.mark.slow
def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    straight = train(_config(tmp_path, "straight", checkpoint_every=2))
    config = _config(tmp_path, "interrupted", checkpoint_every=2)
    train(config, stop_after=3)
    checkpoints = sorted(p.name for p in (tmp_path / "interrupted" / "checkpoints").iterdir())
    assert checkpoints == ["unet-0000002", "unet-0000003", "vae-0000002"]
    with pytest.raises(UsageError, match="pass --resume"):
        train(config)
    changed = _config(tmp_path, "interrupted", checkpoint_every=2, unet_lr=1e-3)
    with pytest.raises(UsageError, match="config differs"):
        train(changed, resume=True)
    resumed = train(config, resume=True)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and len(a) > 50
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = (straight / "loss.csv").read_text()
    assert rows == (resumed / "loss.csv").read_text()


@pytest.mark.slow
def test_loss_decreases_on_a_fixed_batch(tmp_path: Path) -> None:
    """One item, full views only, a fixed prompt: the ε-loss must fall well below its start."""
    config = _config(
        tmp_path,
        data={"count": 1, "size": 32, "multi_object_fraction": 0.0},
        train_size=32,
        patches=None,
        prompt_dropout=0.0,
        vae_steps=1,
        unet_steps=60,
        unet_batch=8,
        unet_lr=3e-3,
    )
    out = train(config)
    with open(out / "loss.csv") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle) if r["stage"] == "unet"]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])


@pytest.mark.slow
def test_p3m_layout_trains(tmp_path: Path) -> None:
    root = _fake_p3m(tmp_path / "P3M-10k")
    pairs = find_pairs("p3m", str(root))
    assert [Path(i).name for i, _ in pairs] == ["p_000.jpg", "p_001.jpg", "p_002.jpg"]
    assert find_pairs("p3m", str(root / "train")) == pairs
    count, read = item_source({"kind": "p3m", "root": str(root)}, seed=0)
    item = read(1)
    assert count == 3 and item.image.shape == (40, 56, 3) and item.image.dtype == np.uint8
    assert item.union[20, 20] == 255 and item.union[32, 20] == 128 and item.union[0, 0] == 0
    assert item.targets[0].captions == ()
    with pytest.raises(UsageError, match="not the P3M-10K layout"):
        find_pairs("p3m", str(tmp_path))
    out = train(_config(tmp_path, data={"kind": "p3m", "root": str(root)}, vae_steps=2, unet_steps=2))
    assert json.loads((out / "vfxmatte.json").read_text())["data"]["kind"] == "p3m"


def test_folder_layout_pairs_by_stem(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for stem in ("a", "b"):
        _write_png(tmp_path / "ds" / "image" / f"{stem}.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    _write_png(tmp_path / "ds" / "alpha" / "b.png", np.full((20, 20), 200, np.uint8))
    assert [Path(p).name for p, _ in find_pairs("folder", str(tmp_path / "ds"))] == ["b.png"]
    with pytest.raises(UsageError, match="needs an image folder"):
        find_pairs("folder", str(tmp_path))


# --------------------------------------------------------------------------- views and sampling


def _item(captions: list[tuple[str, ...]]) -> Item:
    image = np.full((48, 64, 3), 100, np.uint8)
    targets = []
    for k, caps in enumerate(captions):
        alpha = np.zeros((48, 64), np.uint8)
        alpha[10:30, 5 + 20 * k : 20 + 20 * k] = 255
        targets.append(MatteTarget(alpha, caps))
    union = np.max(np.stack([t.alpha for t in targets]), axis=0)
    return Item(image, union, targets)


def test_bank_and_sampler_pick_captions_patches_and_null_prompts() -> None:
    items = [_item([("the red star", "the object on the left"), ("the blue ring",)]), _item([("the subject",)])]
    calls: list[tuple[int, ...]] = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x[:, :1].clone()  # a stand-in "latent": the pixels themselves

    bank = build_bank(2, items.__getitem__, encode, size=16, patches={"views": 2}, seed=0)
    assert len(bank.items) == 2 and all(len(v) == 3 for v in bank.items)
    assert all(shape[1:] == (3, 16, 16) for shape in calls)
    assert bank.captions == ["the blue ring", "the object on the left", "the red star", "the subject"]
    sampler = Sampler(bank, seed=3, full_fraction=0.5, prompt_dropout=0.2)
    seen = set()
    for m in range(400):
        view, matte, prompt = sampler.sample(m)
        assert sampler.sample(m) == (view, matte, prompt)  # a pure function of (seed, m)
        if bank.patch[view]:
            assert prompt == DETAIL_PROMPT and matte == bank.union[view]
        elif prompt == "":
            assert matte == bank.union[view]
        else:
            assert any(mid == matte and prompt in caps for mid, caps in bank.choices[view])
        seen.add(prompt)
    assert {"", DETAIL_PROMPT, "the red star", "the blue ring", "the subject"} <= seen
    # The left object's own matte is what "the object on the left" selects.
    full = bank.items[0][0]
    left = next(mid for mid, caps in bank.choices[full] if "the object on the left" in caps)
    assert bank.mattes[left][0, 7, 2] > 0.9 and bank.mattes[left][0, 7, 8] < 0.1  # full view: x 8..56 → 0..16
    never = Sampler(bank, seed=3, full_fraction=1.0, prompt_dropout=1.0)
    assert {never.sample(m)[2] for m in range(50)} == {""}


def test_synthetic_items_carry_object_captions() -> None:
    count, read = item_source({"kind": "synthetic", "count": 4, "size": 64, "multi_object_fraction": 1.0}, seed=2)
    item = read(0)
    assert count == 4 and len(item.targets) >= 2
    assert all(t.captions for t in item.targets)
    np.testing.assert_array_equal(item.union, np.max(np.stack([t.alpha for t in item.targets]), axis=0))


# --------------------------------------------------------------------------- text


def test_tokenizer_round_trips_through_the_model_folder(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(caption_words(["the glittering star"]), max_length=10)
    ids = tokenizer("The Red  star.").input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the red star"
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer("the zorblax star").input_ids[2] == tokenizer.unk_token_id
    assert tokenizer("glittering").input_ids[1] != tokenizer.unk_token_id
    padded = tokenizer("", padding="max_length", max_length=10).input_ids
    assert padded == [tokenizer.bos_token_id] + [tokenizer.eos_token_id] * 9
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    again = load_tokenizer(tmp_path / "tokenizer")
    for text in ("the object on the left", "enhance details", "the second object from the right"):
        assert again(text).input_ids == tokenizer(text).input_ids
    assert again.model_max_length == 10 and len(again) == len(tokenizer)


def test_prompt_encoding_shapes_and_reload_reproducibility(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _config(tmp_path)
    model = _build(config, tmp_path / "m")
    states = encode_prompt(model, "the red star", 3)
    assert states.shape == (3, 10, 16)
    assert encode_prompt(model, None).shape == encode_prompt(model, "").shape == (1, 10, 16)
    torch.testing.assert_close(encode_prompt(model, None), encode_prompt(model, ""))
    assert not torch.allclose(encode_prompt(model, "the red star"), encode_prompt(model, "the blue ring"))
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    first = lr_ensemble(model, image, steps=2, seeds=2, seed=9, prompt="the red star")
    second = lr_ensemble(again, image, steps=2, seeds=2, seed=9, prompt="the red star")
    np.testing.assert_array_equal(first.mattes, second.mattes)
    other = lr_ensemble(again, image, steps=2, seeds=2, seed=9, prompt="the object on the left")
    assert not np.array_equal(first.mattes, other.mattes)
    bare = _build(_config(tmp_path, text=None), tmp_path / "bare")
    assert encode_prompt(bare, None, 2).shape == (2, 1, 16)
    with pytest.raises(UsageError, match="no text encoder"):
        encode_prompt(bare, "the red star")


# --------------------------------------------------------------------------- fine-tuning an SD folder


@pytest.mark.slow
def test_fine_tune_a_stable_diffusion_folder(tmp_path: Path) -> None:
    from test_model import _tiny_sd_folder

    converted = convert_sd_folder(_tiny_sd_folder(tmp_path / "sd15"), tmp_path / "matting")
    root = _fake_p3m(tmp_path / "P3M-10k", size=(48, 48))
    config = _config(
        tmp_path,
        "finetuned",
        init=str(converted),
        data={"kind": "p3m", "root": str(root)},
        text=None,
        train_size=16,
        patches={"views": 1, "full_fraction": 0.5},
        unet_steps=3,
        accumulate=2,
        gradient_checkpointing=True,
    )
    out = train(config)
    before, after = _weights(converted), _weights(out)
    assert before.keys() == after.keys()
    for key in before:
        if key.startswith(("vae.", "text_encoder.")):  # the pretrained VAE and CLIP stay frozen
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["unet.conv_in.weight"], after["unet.conv_in.weight"])
    info = json.loads((out / "vfxmatte.json").read_text())
    assert info["init"] == str(converted) and info["text_encoder"]["trained"] is False
    model = load_model(out)
    assert model.unet.conv_in.in_channels == 8 and model.latent_factor == 2
    ensemble = lr_ensemble(model, np.random.default_rng(0).random((16, 16, 3)).astype(np.float32), steps=2, seeds=2)
    assert np.isfinite(ensemble.mattes).all()
