"""Matting models: diffusers folders in, an 8-channel conditional UNet out.

A model is a diffusers-style folder (``unet/``, ``vae/``, optional ``text_encoder/`` and
``tokenizer/``, ``scheduler/``) plus ``vfxmatte.json`` with its training facts.  Any
Stable-Diffusion-style folder (1.5 / 2.1 layout) loads: its 4-channel ``conv_in`` is
widened to 8 so the image latent can be concatenated to the noisy alpha latent.
Weights are read from safetensors only — a folder holding pickled weights is refused — and
only into fixed classes (no ``trust_remote_code``, no custom pipelines), so nothing in a model
folder's JSON can make the loader import code.  When ``VFXMATTE_MODEL_ROOTS`` is set, a model
folder outside it (other than the bundled model) is refused; the flows always check it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No code path may reach a model hub: every folder is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging

from vfxmatte.errors import ModelError, UsageError
from vfxmatte.security import MODEL_ROOTS_ENV, confine_model

MODEL_INFO = "vfxmatte.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# diffusers' advice about optional speed-ups is noise on a compositor's terminal.
diffusers_logging.set_verbosity_error()


@dataclass
class MattingModel:
    """The pieces of a loaded matting model and the facts about it."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler_config: dict[str, Any]
    path: Path
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)
    text_encoder: Any = None
    tokenizer: Any = None

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell (8 for Stable Diffusion's VAE)."""
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def size_multiple(self) -> int:
        """LR sizes are rounded to this so every UNet level divides evenly."""
        return self.latent_factor * int(2 ** (len(self.unet.config.block_out_channels) - 1))

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def describe(self) -> str:
        """``name sha256`` as recorded in each output header."""
        return f"{self.name} sha256:{self.sha256}"

    @torch.no_grad()
    def encode_prompt(self, prompt: str | None, batch: int) -> torch.Tensor:
        """Cross-attention states for ``prompt`` (the empty prompt when None).

        A model without a text encoder attends to one zero token, which its training
        used too, so the conditioning is a fixed learned constant.
        """
        if self.text_encoder is None or self.tokenizer is None:
            if prompt:
                raise UsageError(f"model {self.name} has no text encoder; --prompt needs one")
            dim = int(self.unet.config.cross_attention_dim)
            return torch.zeros(batch, 1, dim, device=self.device, dtype=self.dtype)
        states = text_states(self.text_encoder, self.tokenizer, [prompt or ""], self.device)
        return states.to(self.dtype).expand(batch, -1, -1)


def text_states(text_encoder: Any, tokenizer: Any, prompts: list[str], device: torch.device) -> torch.Tensor:
    """CLIP's last hidden states (B, max_length, width) for ``prompts``; differentiable (training uses it).

    Prompts are padded to the tokenizer's ``model_max_length`` as Stable Diffusion does, so
    the UNet always attends to the same number of tokens; the empty prompt is the null condition.
    """
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return text_encoder(tokens.input_ids.to(device))[0]


def expand_conv_in(unet: UNet2DConditionModel, in_channels: int = 8) -> UNet2DConditionModel:
    """Widen ``conv_in`` so the image latent can be concatenated after the noisy latent.

    The channels already there keep their weights and the bias is kept; the new ones
    start at zero, so the network behaves exactly as before at step 0 (DESIGN §1).
    Input order: ``cat([z_t, z(x)])``.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ModelError(f"conv_in already has {old.in_channels} input channels (> {in_channels})")
    new = torch.nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
    ).to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        if old.bias is not None and new.bias is not None:
            new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise UsageError(f"--device {name}: choose auto, cpu, cuda[:N] or mps")
    return torch.device(name)


def weights_sha256(path: Path) -> str:
    """One digest over every safetensors file of a model folder (names and bytes)."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*.safetensors")):
        digest.update(file.relative_to(path).as_posix().encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _check_weights(part: Path) -> None:
    """``part`` (``unet/``…) has safetensors weights, and a shard index names only safetensors files beside it."""
    if not any(part.glob("*.safetensors")):
        pickled = [p.name for p in part.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        reason = (
            f"holds pickled weights ({', '.join(pickled)}); convert them to safetensors"
            if pickled
            else ("holds no .safetensors weights")
        )
        raise ModelError(f"{part}: {reason}")
    for index in part.glob("*.safetensors.index.json"):
        # The loaders join each shard name to the folder: "/elsewhere/x.bin" or "../x.bin" would leave it.
        try:
            if index.stat().st_size > 16 * 1024 * 1024:
                raise ValueError("larger than 16 MiB")
            shards = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelError(f"{index}: not a readable shard index: {exc}") from None
        for shard in shards:
            if not (isinstance(shard, str) and shard.endswith(".safetensors") and os.path.basename(shard) == shard):
                raise ModelError(f"{index}: shard {str(shard)[:100]!r} is not a .safetensors file in {part.name}/")


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise ModelError(f"{path}: model folder does not exist")
    for part in ("unet", "vae"):
        if not (path / part / "config.json").is_file():
            raise ModelError(f"{path}: not a diffusers model folder (no {part}/config.json)")
        _check_weights(path / part)
    if (path / "text_encoder" / "config.json").is_file():
        _check_weights(path / "text_encoder")


def load_model(
    path: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MattingModel:
    """Load a matting model (or a Stable Diffusion folder, converted on the fly)."""
    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if path is not None and os.environ.get(MODEL_ROOTS_ENV, "").strip():
        confine_model(folder)
    _check_folder(folder)
    try:  # use_safetensors=True: a folder with only pickled weights fails instead of being unpickled
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True, local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"{folder}: cannot load the model: {' '.join(str(exc).split())[:300]}") from exc
    expand_conv_in(unet)
    text_encoder = tokenizer = None
    if (folder / "text_encoder" / "config.json").is_file() and (folder / "tokenizer").is_dir():
        from transformers import CLIPTextModel

        from vfxmatte.train.text import load_tokenizer

        try:
            text_encoder = CLIPTextModel.from_pretrained(
                folder / "text_encoder", use_safetensors=True, local_files_only=True
            )
            tokenizer = load_tokenizer(folder / "tokenizer")
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: cannot load the text encoder: {' '.join(str(exc).split())[:300]}") from exc
    scheduler_config: dict[str, Any] = {}
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    if scheduler_file.is_file():
        scheduler_config = json.loads(scheduler_file.read_text())
    info: dict[str, Any] = {}
    if (folder / MODEL_INFO).is_file():
        info = json.loads((folder / MODEL_INFO).read_text())
    device = torch.device(device)
    for module in (unet, vae, text_encoder):
        if module is not None:
            module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return MattingModel(
        unet=unet,
        vae=vae,
        scheduler_config=scheduler_config,
        path=folder,
        sha256=weights_sha256(folder),
        info=info,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def save_model(model: MattingModel, path: str | os.PathLike[str], info: dict[str, Any] | None = None) -> Path:
    """Write a model folder (safetensors weights, configs, ``vfxmatte.json``)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.unet.save_pretrained(folder / "unet", safe_serialization=True)
    model.vae.save_pretrained(folder / "vae", safe_serialization=True)
    if model.text_encoder is not None and model.tokenizer is not None:
        model.text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
        model.tokenizer.save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir(exist_ok=True)
    from vfxmatte.sampling import scheduler_config

    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(scheduler_config(model.scheduler_config), indent=2) + "\n"
    )
    record = dict(model.info)
    record.update(info or {})
    (folder / MODEL_INFO).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder


def convert_sd_folder(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
    """Turn a Stable Diffusion folder into a matting model folder (conv_in 4 → 8)."""
    src = Path(source)
    model = load_model(src)
    # Not matting-trained yet: fine-tuning (`vfxmatte train`) decides whether it is HR-capable.
    info = {"name": Path(destination).name, "converted_from": src.name, "hr_capable": False}
    return save_model(model, destination, info)
