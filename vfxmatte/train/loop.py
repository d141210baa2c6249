"""`vfxmatte train CONFIG`: train the bundled model's VAE and UNet on synthetic composites.

Two stages, both deterministic for a given config seed:

1. **VAE** — a small ``AutoencoderKL`` learns to reconstruct images *and* alpha mattes
   (alpha repeated to three channels, DESIGN §1); its latent scale is then set so latents
   have unit variance, as Stable Diffusion's ``scaling_factor`` does.
2. **UNet** — ε-prediction MSE (Eq. 7) on the alpha latent, conditioned on the image
   latent by channel concatenation; AdamW, EMA weights, gradient accumulation.

Every run writes the resolved config, a CSV loss log and a loss plot beside its model.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vfxmatte.errors import UsageError
from vfxmatte.model.build import build_model
from vfxmatte.model.core import MattingModel, save_model, weights_sha256
from vfxmatte.sampling import make_scheduler, to_model_range


@dataclass
class TrainConfig:
    """Resolved training parameters (a JSON file; ``base`` names a file to layer on)."""

    output: str
    seed: int = 0
    device: str = "cpu"
    data: dict[str, Any] = field(default_factory=lambda: {"kind": "synthetic", "count": 2000, "size": 256})
    vae: dict[str, Any] = field(default_factory=dict)
    unet: dict[str, Any] = field(default_factory=dict)
    vae_steps: int = 1500
    vae_batch: int = 8
    vae_lr: float = 1e-3
    vae_crop: int = 128
    kl_weight: float = 1e-6
    unet_steps: int = 4000
    unet_batch: int = 16
    unet_lr: float = 5e-4
    accumulate: int = 1
    ema_decay: float = 0.999
    threads: int = 0
    name: str = "vfxmatte-default"

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        raw = _load_layered(Path(path))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UsageError(f"{path}: unknown config keys: {', '.join(unknown)}")
        if "output" not in raw:
            raise UsageError(f"{path}: the config needs an 'output' folder")
        return cls(**raw)


def _load_layered(path: Path, depth: int = 0) -> dict[str, Any]:
    if depth > 8:
        raise UsageError(f"{path}: 'base' chain is too deep (a cycle?)")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: config file does not exist") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    base = raw.pop("base", None)
    if base is None:
        return dict(raw)
    merged = _load_layered((path.parent / base).resolve(), depth + 1)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _pool(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, S, S) and alphas (N, 1, S, S) as uint8, generated once per run."""
    from vfxmatte.train.synthetic import CompositeDataset

    data = config.data
    if data.get("kind", "synthetic") != "synthetic":
        raise UsageError(f"data kind {data.get('kind')!r} is not supported yet (use 'synthetic')")
    dataset = CompositeDataset(
        int(data.get("count", 2000)),
        size=int(data.get("size", 256)),
        seed=config.seed,
        multi_object_fraction=float(data.get("multi_object_fraction", 0.0)),
    )
    images, alphas = [], []
    for i in tqdm(range(len(dataset)), desc="generating composites", file=sys.stderr, leave=False):
        item = dataset[i]
        images.append(np.round(item.image * 255).astype(np.uint8).transpose(2, 0, 1))
        alphas.append(np.round(item.alpha * 255).astype(np.uint8)[None])
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(alphas))


def _batch(
    pool: torch.Tensor,
    index: torch.Tensor,
    flips: torch.Tensor,
    crop: int | None = None,
    offset: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    x = pool[index]
    if crop is not None:
        x = x[:, :, offset[0] : offset[0] + crop, offset[1] : offset[1] + crop]
    x = x.float() / 255.0
    return torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[str, int, float]] = []

    def add(self, stage: str, step: int, loss: float) -> None:
        self.rows.append((stage, step, loss))

    def write(self) -> None:
        with open(self.path / "loss.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["stage", "step", "loss"])
            writer.writerows(self.rows)
        _plot(self.rows, self.path / "loss.png")


def _plot(rows: list[tuple[str, int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({r[0] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(5 * max(1, len(stages)), 3.2))
    axes = np.atleast_1d(axes)
    for ax, stage in zip(axes, stages, strict=False):
        steps = np.array([r[1] for r in rows if r[0] == stage])
        losses = np.array([r[2] for r in rows if r[0] == stage])
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps, losses, alpha=0.25, color="tab:blue")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(f"{stage} loss")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_vae(model: MattingModel, images: torch.Tensor, alphas: torch.Tensor, config: TrainConfig, log: _Log) -> None:
    vae = model.vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(config.seed + 1)
    n = images.shape[0]
    for step in tqdm(range(config.vae_steps), desc="vae", file=sys.stderr, mininterval=5):
        lr = config.vae_lr * 0.5 * (1 + math.cos(math.pi * step / config.vae_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, n, (config.vae_batch,), generator=generator)
        flips = torch.rand(config.vae_batch, generator=generator) < 0.5
        # Half the batch images, half alpha mattes: one latent space serves both (DESIGN §1).
        half = config.vae_batch // 2
        crop = min(config.vae_crop, images.shape[-1])
        oy, ox = (int(v) for v in torch.randint(0, images.shape[-1] - crop + 1, (2,), generator=generator))
        x = torch.cat(
            [
                _batch(images, index[:half], flips[:half], crop, (oy, ox)),
                _batch(alphas, index[half:], flips[half:], crop, (oy, ox)).repeat(1, 3, 1, 1),
            ]
        )
        x = to_model_range(x)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        loss_rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = loss_rec + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        log.add("vae", step, float(loss_rec.detach()))
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        k = min(32, images.shape[0])
        keep = torch.zeros(k, dtype=torch.bool)
        sample = torch.cat(
            [_batch(images, torch.arange(k), keep), _batch(alphas, torch.arange(k), keep).repeat(1, 3, 1, 1)]
        )
        latents = vae.encode(to_model_range(sample)).latent_dist.mode()
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


@torch.no_grad()
def _encode_pool(model: MattingModel, pool: torch.Tensor, repeat: bool) -> torch.Tensor:
    """Scaled latents (mode of the posterior) of a uint8 pool, both horizontal flips."""
    out = []
    for start in range(0, pool.shape[0], 32):
        x = pool[start : start + 32].float() / 255.0
        if repeat:
            x = x.repeat(1, 3, 1, 1)
        both = torch.cat([x, x.flip(-1)])
        out.append(model.vae.encode(to_model_range(both)).latent_dist.mode() * model.scaling_factor)
    latents = torch.cat(out)
    return latents


def train_unet(
    model: MattingModel, images: torch.Tensor, alphas: torch.Tensor, config: TrainConfig, log: _Log
) -> torch.nn.Module:
    image_latents = _encode_pool(model, images, repeat=False)
    alpha_latents = _encode_pool(model, alphas, repeat=True)
    unet = model.unet.train().requires_grad_(True)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr, weight_decay=1e-2)
    scheduler = make_scheduler(model.scheduler_config)
    alphas_cumprod = scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(config.seed + 2)
    n = image_latents.shape[0]
    steps = config.unet_steps
    warmup = max(1, steps // 50)
    for step in tqdm(range(steps), desc="unet", file=sys.stderr, mininterval=5):
        lr = config.unet_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(config.accumulate):
            index = torch.randint(0, n, (config.unet_batch,), generator=generator)
            z0 = alpha_latents[index]
            cond_latent = image_latents[index]
            noise = torch.randn(z0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (config.unet_batch,), generator=generator)
            abar = alphas_cumprod[t].view(-1, 1, 1, 1)
            zt = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
            condition = torch.zeros(config.unet_batch, 1, int(unet.config.cross_attention_dim))
            eps = unet(torch.cat([zt, cond_latent], 1), t, encoder_hidden_states=condition).sample
            loss = F.mse_loss(eps, noise) / config.accumulate  # Eq. 7
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        log.add("unet", step, total)
    return ema


def train(config: TrainConfig, command: str = "", progress: Callable[[str], None] | None = None) -> Path:
    """Run both stages and save the model folder at ``config.output``."""
    _seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(config.__dict__, indent=2, sort_keys=True) + "\n")
    log = _Log(out)
    started = time.time()
    images, alphas = _pool(config)
    model = build_model(config.vae, config.unet, path=out)
    train_vae(model, images, alphas, config, log)
    log.write()
    model.unet = train_unet(model, images, alphas, config, log)
    log.write()
    info = {
        "name": config.name,
        "command": command,
        "seed": config.seed,
        "data": {**config.data, "note": "procedural composites from vfxmatte.train.synthetic; no third-party images"},
        "latent_space": {
            "vae_block_out_channels": list(model.vae.config.block_out_channels),
            "downsampling": model.latent_factor,
            "scaling_factor": model.scaling_factor,
        },
        "hr_capable": False,
        "train_seconds": round(time.time() - started, 1),
        "final_loss": {
            "vae": float(np.mean([r[2] for r in log.rows if r[0] == "vae"][-50:])),
            "unet": float(np.mean([r[2] for r in log.rows if r[0] == "unet"][-50:])),
        },
    }
    save_model(model, out, info)
    model.sha256 = weights_sha256(out)
    return out
