"""Colour through OpenColorIO's built-in CG config.

The network sees a display-referred, sRGB-encoded image in [0, 1]; the composite
equation and the foreground estimate are solved in scene-linear light.  Plates keep their
own colour space end to end: an EXR stays in the primaries it came in, a display-referred
still or movie is linearised to Linear Rec.709 for the EXR it becomes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import PyOpenColorIO as ocio

from vfxmatte.errors import UsageError

CONFIG_URI = "ocio://cg-config-latest"
NETWORK_SPACE = "sRGB Encoded Rec.709 (sRGB)"
LINEAR_REC709 = "Linear Rec.709 (sRGB)"


@lru_cache(maxsize=1)
def _config() -> ocio.Config:
    return ocio.Config.CreateFromFile(CONFIG_URI)


def colorspace_names() -> list[str]:
    return [cs.getName() for cs in _config().getColorSpaces()]


def is_linear(colorspace: str) -> bool:
    """True when ``colorspace`` is scene-linear (ACES, ACEScg, Linear …)."""
    cs = _config().getColorSpace(colorspace)
    if cs is None:
        raise UsageError(f"unknown colour space {colorspace!r}; choose one of: {', '.join(colorspace_names())}")
    return bool(cs.getEncoding() == "scene-linear")


@lru_cache(maxsize=32)
def _processor(src: str, dst: str) -> ocio.CPUProcessor:
    config = _config()
    for name in (src, dst):
        if config.getColorSpace(name) is None:
            raise UsageError(f"unknown colour space {name!r}; choose one of: {', '.join(colorspace_names())}")
    return config.getProcessor(src, dst).getDefaultCPUProcessor()


def convert(rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
    """A converted float32 copy of an (H, W, 3) image."""
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    if src != dst:
        _processor(src, dst).applyRGB(out)
    return out


def linear_space(colorspace: str) -> str:
    """The scene-linear space the composite is solved in for a plate in ``colorspace``."""
    return colorspace if is_linear(colorspace) else LINEAR_REC709


def to_network(rgb: np.ndarray, colorspace: str) -> np.ndarray:
    """The display-referred sRGB image in [0, 1] the network sees."""
    return np.clip(convert(rgb, colorspace, NETWORK_SPACE), 0.0, 1.0)
