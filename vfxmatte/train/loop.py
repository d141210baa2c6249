"""`vfxmatte train CONFIG`: train (or fine-tune) a matting model.

Two stages, both deterministic for a given config seed:

1. **VAE** (fresh models only) — a small ``AutoencoderKL`` learns to reconstruct image
   crops *and* alpha crops (alpha repeated to three channels, DESIGN §1); its latent scale
   is then set so latents have unit variance, as Stable Diffusion's ``scaling_factor`` does.
   A run with ``init`` (a Stable Diffusion or matting model folder) keeps that folder's VAE.
2. **UNet** — ε-prediction MSE (Eq. 7) on the alpha latent, conditioned on the image
   latent by channel concatenation and on a prompt through cross-attention; AdamW, EMA
   weights, gradient accumulation, optional mixed precision and gradient checkpointing on
   CUDA.  With a ``text`` block a fresh model gets a tiny CLIP text encoder trained
   together with the UNet; a real SD folder's CLIP stays frozen.  Views come from
   :mod:`vfxmatte.train.data` (multi-scale patches, captions, the latent bank).

Every run writes the resolved config (``train_config.json``), a CSV loss log and its plot
beside its model, and checkpoints (``checkpoint_every``) that ``--resume`` continues
bit-for-bit; the checkpoints are removed once the finished model folder is saved.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import random
import shutil
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
from vfxmatte.model.core import MattingModel, load_model, resolve_device, save_model, text_states, weights_sha256
from vfxmatte.sampling import make_scheduler, to_model_range
from vfxmatte.train.checkpoint import CHECKPOINTS, latest_checkpoint, load_checkpoint, save_checkpoint
from vfxmatte.train.data import Item, LatentBank, Sampler, build_bank, item_source
from vfxmatte.train.text import build_text_encoder, build_tokenizer, caption_words


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
    #: A Stable Diffusion or matting model folder to fine-tune (its VAE and CLIP are kept).
    init: str | None = None
    #: A fresh model's tiny CLIP text encoder: {"layers", "heads", "max_length", "train"}; None: no text.
    text: dict[str, Any] | None = None
    #: Side of every training view in pixels (None: the data's ``size``).
    train_size: int | None = None
    #: Multi-scale patches: {"views", "full_fraction", "patch_zoom", "patch_max_fraction"}; None: full images.
    patches: dict[str, Any] | None = None
    #: Probability that a full view's caption is replaced by the empty (null) prompt.
    prompt_dropout: float = 0.1
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0
    keep_checkpoints: int = 2

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


def _step_seed(*key: int) -> int:
    """A 63-bit seed from a key such as (run seed, stage, step, micro-step): no state to carry."""
    return int(np.random.SeedSequence(list(key)).generate_state(2, np.uint64)[0] >> np.uint64(1))


class _Log:
    def __init__(self, path: Path, rows: list[tuple[str, int, float]] | None = None) -> None:
        self.path = path
        self.rows: list[tuple[str, int, float]] = list(rows or [])

    def add(self, stage: str, step: int, loss: float) -> None:
        self.rows.append((stage, step, loss))

    def write(self) -> None:
        with open(self.path / "loss.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["stage", "step", "loss"])
            writer.writerows(self.rows)
        _plot(self.rows, self.path / "loss.png")

    def final(self, stage: str) -> float | None:
        losses = [r[2] for r in self.rows if r[0] == stage][-50:]
        return float(np.mean(losses)) if losses else None


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


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """What both stages share: the config, the model, where to write, how far to go."""

    config: TrainConfig
    model: MattingModel
    out: Path
    device: torch.device
    log: _Log
    stop_after: int | None = None
    resume: dict[str, Any] | None = None  # state.json of the checkpoint resumed from
    resume_dir: Path | None = None

    def autocast(self) -> Any:
        precision = self.config.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)


def _check_precision(config: TrainConfig, device: torch.device) -> None:
    if config.precision not in ("fp32", "bf16", "fp16"):
        raise UsageError(f"precision {config.precision!r}: choose fp32, bf16 or fp16")
    if config.precision != "fp32" and device.type != "cuda":
        raise UsageError(f"precision {config.precision}: mixed precision needs a CUDA device (device is {device})")


def _crop(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    side = min(size, h, w)
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return x[y0 : y0 + side, x0 : x0 + side]


def _to_tensor(crops: list[np.ndarray], size: int) -> torch.Tensor:
    out = []
    for crop in crops:
        t = torch.from_numpy(np.ascontiguousarray(crop)).float() / 255.0
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        if t.shape[-1] != size:
            t = F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        out.append(t.expand(3, -1, -1))
    return torch.stack(out)


def train_vae(run: _Run, items: list[Item]) -> None:
    """Stage 1: the VAE reconstructs image crops and alpha crops (one latent space, DESIGN §1)."""
    config, vae = run.config, run.model.vae
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=1e-4)
    start = 0
    if run.resume is not None and run.resume_dir is not None and run.resume["stage"] == "vae":
        load_checkpoint(run.resume_dir, {"vae": vae}, optimizer)
        start = int(run.resume["step"])
    steps = config.vae_steps
    bar = tqdm(range(start, steps), desc="vae", file=sys.stderr, mininterval=5, initial=start, total=steps)
    for step in bar:
        lr = config.vae_lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        rng = np.random.default_rng([config.seed, 3, step])
        index = rng.integers(0, len(items), config.vae_batch)
        half = config.vae_batch // 2
        # Half the batch images, half alpha mattes: one latent space serves both (DESIGN §1).
        crops = [_crop(items[i].image, config.vae_crop, rng) for i in index[:half]]
        crops += [_crop(items[i].union, config.vae_crop, rng) for i in index[half:]]
        x = _to_tensor(crops, min(config.vae_crop, *(c.shape[0] for c in crops)))
        flips = torch.from_numpy(rng.random(len(crops)) < 0.5)
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        x = to_model_range(x).to(run.device)
        generator = torch.Generator(device=run.device).manual_seed(_step_seed(config.seed, 3, step))
        with run.autocast():
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=generator)).sample.float()
        loss_rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = loss_rec + config.kl_weight * posterior.kl().float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        run.log.add("vae", step, float(loss_rec.detach()))
        done = step + 1
        if _due(config, done, steps) or (run.stop_after is not None and done >= steps):
            _save(run, "vae", done, {"vae": vae}, optimizer)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        k = min(32, len(items))
        sample = [_crop(items[i].image, config.vae_crop, np.random.default_rng([config.seed, 4, i])) for i in range(k)]
        sample += [_crop(items[i].union, config.vae_crop, np.random.default_rng([config.seed, 4, i])) for i in range(k)]
        x = _to_tensor(sample, min(config.vae_crop, *(c.shape[0] for c in sample)))
        latents = vae.encode(to_model_range(x).to(run.device)).latent_dist.mode()
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


def _due(config: TrainConfig, done: int, total: int) -> bool:
    return bool(config.checkpoint_every) and done % config.checkpoint_every == 0 and done < total


def _save(
    run: _Run,
    stage: str,
    done: int,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
) -> None:
    run.log.write()
    record = {"log": run.log.rows, "scaling_factor": run.model.scaling_factor, **(extra or {})}
    save_checkpoint(run.out, stage=stage, step=done, modules=modules, optimizer=optimizer, extra=record,
                    keep=run.config.keep_checkpoints)


def _bank(run: _Run, count: int, read: Callable[[int], Item]) -> LatentBank:
    config, model = run.config, run.model
    size = config.train_size or int(config.data.get("size", 256))
    if size % model.size_multiple:
        raise UsageError(f"train_size {size} must be a multiple of {model.size_multiple} for this model")

    @torch.no_grad()
    def encode(x: torch.Tensor) -> torch.Tensor:
        with run.autocast():
            latent = model.vae.encode(to_model_range(x).to(run.device, model.vae.dtype)).latent_dist.mode()
        return (latent.float() * model.scaling_factor).cpu()

    bar = tqdm(total=count, desc="encoding views", file=sys.stderr, mininterval=5, leave=False)
    bank = build_bank(count, read, encode, size=size, patches=config.patches, seed=config.seed,
                      progress=lambda _: bar.update(1))
    bar.close()
    return bank


def train_unet(run: _Run, bank: LatentBank) -> None:
    """Stage 2: ε-prediction (Eq. 7) on alpha latents, image latent concatenated, text by cross-attention."""
    config, model = run.config, run.model
    unet = model.unet.to(run.device).train().requires_grad_(True)
    text = model.text_encoder
    train_text = text is not None and bool((config.text or {}).get("train", config.init is None))
    if text is not None:
        text.to(run.device).train(train_text).requires_grad_(train_text)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if train_text:
            enable = getattr(text, "activation_checkpointing_enable", None) or text.gradient_checkpointing_enable
            enable()
    trained: dict[str, torch.nn.Module] = {"unet": unet}
    if train_text:
        trained["text"] = text
    ema = {name: copy.deepcopy(m).eval().requires_grad_(False) for name, m in trained.items()}
    params = [p for m in trained.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2)
    scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
    start = 0
    if run.resume is not None and run.resume_dir is not None and run.resume["stage"] == "unet":
        modules = {**trained, **{f"ema_{k}": v for k, v in ema.items()}}
        state = load_checkpoint(run.resume_dir, modules, optimizer)
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
    alphas_cumprod = make_scheduler(model.scheduler_config).alphas_cumprod.to(run.device)
    timesteps = int(model.scheduler_config.get("num_train_timesteps", 1000))
    patches = config.patches or {}
    sampler = Sampler(bank, config.seed, float(patches.get("full_fraction", 0.5)) if patches else 1.0,
                      config.prompt_dropout if text is not None else 1.0)
    steps, batch = config.unet_steps, config.unet_batch
    warmup = max(1, steps // 50)
    end = steps if run.stop_after is None else min(steps, run.stop_after)
    bar = tqdm(range(start, end), desc="unet", file=sys.stderr, mininterval=5, initial=start, total=steps)
    for step in bar:
        lr = config.unet_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(config.accumulate):
            drawn = sampler.batch((step * config.accumulate + micro) * batch, batch)
            z0 = drawn.alpha_latents.to(run.device)
            generator = torch.Generator().manual_seed(_step_seed(config.seed, 5, step, micro))
            noise = torch.randn(z0.shape, generator=generator).to(run.device)
            t = torch.randint(0, timesteps, (batch,), generator=generator).to(run.device)
            abar = alphas_cumprod[t].view(-1, 1, 1, 1)
            zt = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
            with run.autocast():
                if text is None:
                    condition = torch.zeros(batch, 1, int(unet.config.cross_attention_dim), device=run.device)
                else:
                    with torch.set_grad_enabled(train_text):
                        condition = text_states(text, model.tokenizer, drawn.prompts, run.device)
                model_input = torch.cat([zt, drawn.image_latents.to(run.device)], 1)
                eps = unet(model_input, t, encoder_hidden_states=condition).sample
            loss = F.mse_loss(eps.float(), noise) / config.accumulate  # Eq. 7
            scaler.scale(loss).backward()
            total += float(loss.detach())
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, module in trained.items():
                for p_ema, p in zip(ema[name].parameters(), module.parameters(), strict=True):
                    p_ema.lerp_(p, 1 - decay)
        run.log.add("unet", step, total)
        done = step + 1
        if _due(config, done, steps) or done == end < steps:
            modules = {"vae": model.vae, **trained, **{f"ema_{k}": v for k, v in ema.items()}}
            _save(run, "unet", done, modules, optimizer, {"scaler": scaler.state_dict() if scaler.is_enabled() else {}})
    bar.close()
    if config.gradient_checkpointing:
        unet.disable_gradient_checkpointing()
    model.unet = ema["unet"]
    if train_text:
        model.text_encoder = ema["text"]


def _build(config: TrainConfig, out: Path) -> MattingModel:
    if config.init:
        model = load_model(config.init)
        model.path = out
        model.info = {k: v for k, v in model.info.items() if k in ("name", "converted_from")}
        return model
    model = build_model(config.vae, config.unet, path=out)
    if config.text is not None:
        max_length = int(config.text.get("max_length", 16))
        model.tokenizer = build_tokenizer(caption_words([]), max_length)
        model.text_encoder = build_text_encoder(
            config.text, len(model.tokenizer), int(model.unet.config.cross_attention_dim)
        ).eval()
    return model


def train(
    config: TrainConfig,
    command: str = "",
    *,
    resume: bool = False,
    stop_after: int | None = None,
) -> Path:
    """Run the stages and save the model folder at ``config.output``.

    ``resume`` continues from the latest checkpoint in ``OUTPUT/checkpoints`` (bit-for-bit:
    the same weights as a run that was never interrupted, on the same device and threads).
    ``stop_after`` writes a checkpoint and stops after that many UNet steps (job slots, tests).
    """
    _seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    _check_precision(config, device)
    out = Path(config.output)
    resolved = json.dumps(config.__dict__, indent=2, sort_keys=True) + "\n"
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None and not resume:
        raise UsageError(f"{out}: holds checkpoints of an earlier run; pass --resume or choose another output")
    if resume and checkpoint is not None:
        stored = (out / "train_config.json").read_text() if (out / "train_config.json").is_file() else ""
        if stored != resolved:
            raise UsageError(f"{out}: the config differs from the one the checkpoints were trained with")
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(resolved)
    state = json.loads((checkpoint / "state.json").read_text()) if resume and checkpoint is not None else None
    log = _Log(out, [(str(r[0]), int(r[1]), float(r[2])) for r in state["log"]] if state else None)
    started = time.time()
    model = _build(config, out)
    run = _Run(config, model, out, device, log, stop_after, state, checkpoint if state else None)
    model.vae.to(device)
    count, read = item_source(config.data, config.seed)
    if config.init is None and config.vae_steps > 0:
        items = [read(i) for i in tqdm(range(count), desc="reading data", file=sys.stderr, mininterval=5, leave=False)]
        if state is None or checkpoint is None or state["stage"] == "vae":
            train_vae(run, items)
        else:
            model.vae.register_to_config(scaling_factor=float(state["scaling_factor"]))
            load_checkpoint(checkpoint, {"vae": model.vae}, None)
        model.vae.eval().requires_grad_(False)
        read = items.__getitem__
        log.write()
    if stop_after is not None and config.unet_steps > 0 and stop_after <= 0:
        return out
    bank = _bank(run, count, read)
    train_unet(run, bank)
    log.write()
    if stop_after is not None and stop_after < config.unet_steps:
        return out
    model.vae.eval().requires_grad_(False)
    info = {
        "name": config.name,
        "command": command,
        "seed": config.seed,
        "data": {**config.data, "note": _data_note(config.data)},
        "init": config.init,
        "train_size": config.train_size or int(config.data.get("size", 256)),
        "recipe": {
            "multi_scale_patches": config.patches,
            "prompt_dropout": config.prompt_dropout,
            "bank": {"views": len(bank.patch), "patches": int(sum(bank.patch)), "captions": len(bank.captions)},
        },
        "text_encoder": None
        if model.text_encoder is None
        else {
            "layers": int(model.text_encoder.config.num_hidden_layers),
            "width": int(model.text_encoder.config.hidden_size),
            "vocabulary": len(model.tokenizer),
            "trained": bool((config.text or {}).get("train", config.init is None)),
        },
        "latent_space": {
            "vae_block_out_channels": list(model.vae.config.block_out_channels),
            "downsampling": model.latent_factor,
            "scaling_factor": model.scaling_factor,
        },
        "hr_capable": False,
        "train_seconds": round(time.time() - started, 1),
        "final_loss": {"vae": log.final("vae"), "unet": log.final("unet")},
    }
    for module in (model.unet, model.text_encoder):
        if module is not None:
            module.to("cpu").eval().requires_grad_(False)
    model.vae.to("cpu")
    save_model(model, out, info)
    model.sha256 = weights_sha256(out)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)  # the model folder is the deliverable
    return out


def _data_note(data: dict[str, Any]) -> str:
    if data.get("kind", "synthetic") == "synthetic":
        return "procedural composites from vfxmatte.train.synthetic; no third-party images"
    return f"image/alpha pairs read from {data.get('root')}"
