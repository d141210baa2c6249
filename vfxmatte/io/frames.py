"""Value objects shared by every reader and writer: windows and decoded plates."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Window:
    """An OpenEXR-style pixel window: origin (x, y) and size, y pointing down."""

    x: int
    y: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class HeaderAttribute:
    """One header attribute carried from input to output unchanged.

    ``type`` is an OpenImageIO TypeDesc string (``"float"``, ``"rational2i"``,
    ``"timecode"``, ``"string"``…); ``value`` is what OIIO's Python binding returns.
    """

    name: str
    type: str
    value: Any


@dataclass
class Plate:
    """One decoded frame of a shot, ready for matting.

    ``rgb`` holds the data window only, float32 (height, width, 3), finite
    (non-finite values were replaced; ``nonfinite`` counts them).  Its values are in
    ``colorspace`` (an OpenColorIO colour-space name of the built-in config).
    """

    rgb: np.ndarray
    data_window: Window
    display_window: Window
    path: str
    frame: int
    colorspace: str
    pixel_aspect: float = 1.0
    attributes: list[HeaderAttribute] = field(default_factory=list)
    fps: Fraction | None = None
    timecode: str | None = None
    nonfinite: int = 0
    warnings: list[str] = field(default_factory=list)
