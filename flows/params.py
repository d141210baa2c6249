"""The matte-shot parameters as one pydantic model: the contract the Nuke bridge submits against.

Unknown keys are refused, enums are closed, and every path is confined to the configured roots
(:mod:`vfxmatte.security`) before anything is read or written.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vfxmatte.config import PRESETS, MatteParams, preset_params
from vfxmatte.errors import UsageError
from vfxmatte.io.sequence import parse_frame_range
from vfxmatte.security import confine

Preset = Literal["draft", "standard", "final"]
GuideKind = Literal["auto", "trimap", "mask", "scribble"]
assert set(PRESETS) == {"draft", "standard", "final"}, "flows.params.Preset must list vfxmatte.config.PRESETS"


class MatteShotRequest(BaseModel):
    """One shot to matte (FLOW_CONTRACT: the ``matte-shot`` parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(min_length=1, description="sequence pattern (plate.####.exr) or movie path")
    output: str = Field(min_length=1, description="output pattern (matte.####.exr) or directory")
    frames: str | None = Field(None, description="frames to do, e.g. 1001-1100 or 1001-1010,1020")
    preset: Preset = "standard"
    prompt: str | None = Field(None, max_length=500)
    guide: str | None = None
    guide_kind: GuideKind = "auto"
    guide_channel: str | None = None
    seed: int = Field(0, ge=0, le=2**31 - 1)
    colorspace: str | None = None
    overwrite: bool = False
    chunk_size: int = Field(24, ge=1, le=10_000)
    review: bool = True

    @field_validator("input", "output", "guide")
    @classmethod
    def _confined(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "path")
        return None if value is None else confine(value, what=name)

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: str | None) -> str | None:
        if value is not None:
            parse_frame_range(value)  # raises a one-line UsageError on a bad range
        return value

    def frame_list(self) -> list[int] | None:
        return parse_frame_range(self.frames) if self.frames else None

    def matte_params(self) -> MatteParams:
        """MatteParams of the preset plus the request's overrides (guides only where the library has them)."""
        overrides: dict[str, object] = {"seed": self.seed, "prompt": self.prompt, "colorspace": self.colorspace}
        known = {f.name for f in fields(MatteParams)}
        if self.guide is not None:
            if "guide" not in known:
                raise UsageError(f"guide {self.guide}: spatial guidance is not available in this vfxmatte build")
            overrides.update(guide=self.guide, guide_kind=self.guide_kind, guide_channel=self.guide_channel)
        return preset_params(self.preset, **overrides)
