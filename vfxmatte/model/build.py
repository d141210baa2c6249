"""Fresh model architectures: the bundled CPU model and tiny test configurations.

No pretrained VAE can be had offline, so the bundled model brings its own small
``AutoencoderKL`` (×8 downsampling, no attention at any level so memory stays linear in
the frame size) and a small 8-channel ``UNet2DConditionModel`` over its latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL, UNet2DConditionModel

from vfxmatte.model.core import MattingModel
from vfxmatte.sampling import scheduler_config

DEFAULT_VAE: dict[str, Any] = {
    "block_out_channels": [16, 32, 64, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
}
DEFAULT_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}


def build_vae(config: dict[str, Any] | None = None) -> AutoencoderKL:
    cfg = {**DEFAULT_VAE, **(config or {})}
    levels = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg["block_out_channels"]),
        layers_per_block=cfg["layers_per_block"],
        latent_channels=cfg["latent_channels"],
        norm_num_groups=cfg["norm_num_groups"],
        sample_size=cfg.get("sample_size", 256),
        scaling_factor=cfg.get("scaling_factor", 1.0),
        mid_block_add_attention=False,
    )


def build_unet(config: dict[str, Any] | None = None, latent_channels: int = 4) -> UNet2DConditionModel:
    """An 8-input-channel UNet; cross-attention only at the coarsest level (cheap on CPU)."""
    cfg = {**DEFAULT_UNET, **(config or {})}
    levels = len(cfg["block_out_channels"])
    return UNet2DConditionModel(
        sample_size=cfg.get("sample_size", 32),
        in_channels=2 * latent_channels,
        out_channels=latent_channels,
        block_out_channels=tuple(cfg["block_out_channels"]),
        down_block_types=("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
        layers_per_block=cfg["layers_per_block"],
        cross_attention_dim=cfg["cross_attention_dim"],
        attention_head_dim=cfg["attention_head_dim"],
        norm_num_groups=cfg["norm_num_groups"],
    )


def build_model(
    vae_config: dict[str, Any] | None = None,
    unet_config: dict[str, Any] | None = None,
    path: str | Path = "untrained",
) -> MattingModel:
    vae = build_vae(vae_config)
    unet = build_unet(unet_config, latent_channels=int(vae.config.latent_channels))
    return MattingModel(
        unet=unet,
        vae=vae,
        scheduler_config=scheduler_config(),
        path=Path(path),
        sha256="untrained",
        info={"name": Path(path).name},
    )
