"""Schedulers and the low-resolution seed ensemble (DESIGN §1, LR path).

The LR matte is the mean of L DDIM samples drawn with different noise; the per-pixel
standard deviation of those samples is the uncertainty map U.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from vfxmatte.model.core import MattingModel

#: Stable Diffusion's training schedule; few-step sampling needs "trailing" spacing and
#: must not use zero-terminal-SNR betas (Eq. 6 divides by σ_T).
_SD_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def scheduler_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    merged = dict(_SD_SCHEDULE)
    merged.update({k: v for k, v in (config or {}).items() if not k.startswith("_")})
    merged.update(timestep_spacing="trailing", rescale_betas_zero_snr=False, prediction_type="epsilon")
    return merged


def make_scheduler(config: dict[str, Any] | None = None) -> DDIMScheduler:
    return DDIMScheduler.from_config(scheduler_config(config))


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0


def encode_prompt(model: MattingModel, prompt: str | None, batch: int = 1) -> torch.Tensor:
    """Cross-attention states (batch, tokens, width) for ``prompt``; None or "" is the null condition.

    Models with a CLIP text encoder encode the prompt padded to the tokenizer's length (the
    empty prompt is the condition their training dropped captions to); a model without one
    attends to a single zero token and refuses a non-empty prompt.
    """
    return model.encode_prompt(prompt, batch)


@torch.no_grad()
def encode_image(model: MattingModel, image: torch.Tensor) -> torch.Tensor:
    """Image (B, 3, H, W) in [0, 1] → scaled latent (mode of the posterior: deterministic)."""
    posterior = model.vae.encode(to_model_range(image).to(model.device, model.dtype)).latent_dist
    return posterior.mode() * model.scaling_factor


@torch.no_grad()
def decode_alpha(model: MattingModel, latents: torch.Tensor) -> torch.Tensor:
    """Scaled alpha latents (B, C, h, w) → alpha (B, H, W) in [0, 1] (channel mean, DESIGN §1)."""
    decoded = model.vae.decode(latents / model.scaling_factor).sample
    return ((decoded.float().mean(dim=1) + 1.0) / 2.0).clamp(0.0, 1.0)


@torch.no_grad()
def denoise(
    model: MattingModel,
    latents: torch.Tensor,
    image_latent: torch.Tensor,
    condition: torch.Tensor,
    scheduler: DDIMScheduler,
    on_step: Callable[[int], None] | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the DDIM loop from ``latents`` (already at the first timestep's noise level).

    ``timesteps`` (default: all of the scheduler's) is a tail of the schedule for a
    partial run that starts from a noised clean latent (see :func:`noised_start`).
    """
    for i, t in enumerate(scheduler.timesteps if timesteps is None else timesteps):
        model_input = torch.cat([latents, image_latent], dim=1)
        eps = model.unet(model_input, t, encoder_hidden_states=condition).sample
        latents = scheduler.step(eps, t, latents).prev_sample
        if on_step is not None:
            on_step(i)
    return latents


@dataclass
class Ensemble:
    """The LR seed ensemble of one frame."""

    mattes: np.ndarray  # (L, h, w) float32, one matte per seed
    latents: torch.Tensor  # (L, C, h/f, w/f) final alpha latents, kept for HR refinement
    image_latent: torch.Tensor  # (1, C, h/f, w/f)

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.mattes.mean(axis=0), dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(self.mattes.std(axis=0), dtype=np.float32)


def ensemble_noise(shape: tuple[int, ...], seeds: int, seed: int) -> torch.Tensor:
    """L noise tensors from one seed, drawn on the CPU so every device gets the same numbers."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn((seeds, *shape), generator=generator, dtype=torch.float32)


def noised_start(
    scheduler: DDIMScheduler, clean: torch.Tensor, noise: torch.Tensor, strength: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start a DDIM run from a clean latent instead of pure noise (Eq. 6, SDEdit-style).

    Eq. 6, ``z_T = sqrt((1-σ_T)/σ_T)·ε + ẑ0``, is the forward process written in the
    variance-exploding scale; in the scheduler's own scale that is ``add_noise(ẑ0, ε, t)``.
    ``strength`` in (0, 1] is the fraction of the schedule that is run: 1 noises to the
    first timestep, 0.5 starts half-way down and runs half the steps.  Returns the start
    latents and the timesteps still to run (at least one).
    """
    count = len(scheduler.timesteps)
    skip = min(count - 1, max(0, int(round(count * (1.0 - strength)))))
    timesteps = scheduler.timesteps[skip:]
    return scheduler.add_noise(clean, noise, timesteps[:1]), timesteps


@torch.no_grad()
def lr_ensemble(
    model: MattingModel,
    image: np.ndarray,
    *,
    steps: int = 10,
    seeds: int = 4,
    seed: int = 0,
    batch_size: int | None = None,
    prompt: str | None = None,
    noise: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    strength: float = 1.0,
) -> Ensemble:
    """Sample ``seeds`` mattes of a network-space image (h, w, 3) in [0, 1].

    ``h`` and ``w`` must be multiples of ``model.size_multiple``.  All seeds run in one
    batch unless ``batch_size`` splits them (to fit memory); the result does not depend
    on the batching, because each member's noise is fixed up front.  ``noise`` (L, C,
    h/f, w/f) replaces the noise drawn from ``seed``; ``start`` (same shape) are clean
    latents to start from at ``strength`` (:func:`noised_start`), e.g. the previous
    frame's for video.
    """
    h, w = image.shape[:2]
    if h % model.size_multiple or w % model.size_multiple:
        raise ValueError(f"LR image {w}x{h} is not a multiple of {model.size_multiple}")
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    image_latent = encode_image(model, pixels)
    c = int(model.unet.config.out_channels)
    shape = (seeds, c, h // model.latent_factor, w // model.latent_factor)
    if noise is None:
        noise = ensemble_noise(shape[1:], seeds, seed)
    for name, given in (("noise", noise), ("start", start)):
        if given is not None and tuple(given.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(given.shape)}, the ensemble needs {shape}")
    batch_size = batch_size or seeds
    finals = []
    for first in range(0, seeds, batch_size):
        chunk = noise[first : first + batch_size].to(model.device, model.dtype)
        scheduler = make_scheduler(model.scheduler_config)
        scheduler.set_timesteps(steps, device=model.device)
        timesteps: torch.Tensor | None = None
        if start is None:
            latents = chunk * scheduler.init_noise_sigma
        else:
            clean = start[first : first + batch_size].to(model.device, model.dtype)
            latents, timesteps = noised_start(scheduler, clean, chunk, strength)
        condition = encode_prompt(model, prompt, chunk.shape[0])
        finals.append(
            denoise(
                model,
                latents,
                image_latent.expand(chunk.shape[0], -1, -1, -1),
                condition,
                scheduler,
                timesteps=timesteps,
            )
        )
    latents = torch.cat(finals)
    mattes = torch.cat([decode_alpha(model, latents[i : i + batch_size]) for i in range(0, seeds, batch_size)])
    return Ensemble(mattes=mattes.cpu().numpy().astype(np.float32), latents=latents, image_latent=image_latent)


def lr_shape(height: int, width: int, lr_size: int, multiple: int) -> tuple[int, int]:
    """LR (h, w): the long side near ``lr_size``, both multiples of ``multiple``, aspect kept."""
    scale = lr_size / max(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W) or (H, W, C) float32: area averaging down, bilinear up (a copy at the same size)."""
    if array.shape[:2] == (height, width):
        return np.array(array, dtype=np.float32)  # what bilinear at scale 1 gives, without the pass
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensor = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    down = height < tensor.shape[2] and width < tensor.shape[3]
    if down:
        out = F.interpolate(tensor, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    else:
        out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    result = out[0, 0] if array.ndim == 2 else out[0].permute(1, 2, 0)
    return result.contiguous().numpy()


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor``×``factor`` blocks of (H, W[, C]) float32 (a ragged last row / column is dropped)."""
    h, w = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
    blocks = array[:h, :w].reshape(h // factor, factor, w // factor, factor, *array.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest ``mask`` pixel (0 on it; inf when there is none)."""
    import cv2

    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return np.asarray(cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE))
