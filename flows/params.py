"""The matte-shot parameters as one pydantic model: the contract the Nuke bridge submits against.

Unknown keys are refused, enums are closed, every path is confined to the configured roots
(:mod:`vfxmatte.security`) before anything is read or written, and every size is bounded: text
lengths, at most :data:`MAX_FRAMES_PER_RUN` frames and :data:`MAX_CHUNKS` chunks per run.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vfxmatte.config import CLEAN_PLATES, PRESETS, MatteParams, preset_params
from vfxmatte.errors import UsageError
from vfxmatte.io.sequence import parse_frame_range
from vfxmatte.security import MAX_PATH_LENGTH, check_text, confine

Preset = Literal["draft", "standard", "final"]
GuideKind = Literal["auto", "trimap", "mask", "scribble"]
#: The subject prior of runs without a trimap or scribble guide (``vfxmatte matte --prior``).
Prior = Literal["u2netp", "people", "none"]
#: Whether a trimap-free run uses the shot's clean plate (``--clean-plate``; tracked over a moving camera).
CleanPlate = Literal["auto", "fill", "off"]
assert set(PRESETS) == {"draft", "standard", "final"}, "flows.params.Preset must list vfxmatte.config.PRESETS"
assert get_args(CleanPlate) == CLEAN_PLATES, "flows.params.CleanPlate must list vfxmatte.config.CLEAN_PLATES"

#: Most frames one matte-shot run may do (about 70 minutes at 24 fps); split longer work into runs.
MAX_FRAMES_PER_RUN = 100_000
#: Most chunk tasks one run may create (frames / chunk_size).
MAX_CHUNKS = 10_000
MAX_NAME_LENGTH = 256  # colorspace and channel names


class MatteShotRequest(BaseModel):
    """One shot to matte (FLOW_CONTRACT: the ``matte-shot`` parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(
        min_length=1, max_length=MAX_PATH_LENGTH, description="sequence pattern (plate.####.exr) or movie path"
    )
    output: str = Field(
        min_length=1, max_length=MAX_PATH_LENGTH, description="output pattern (matte.####.exr) or directory"
    )
    frames: str | None = Field(None, max_length=1000, description="frames to do, e.g. 1001-1100 or 1001-1010,1020")
    preset: Preset = "standard"
    prompt: str | None = Field(None, max_length=500)
    guide: str | None = Field(None, max_length=MAX_PATH_LENGTH)
    guide_kind: GuideKind = "auto"
    guide_channel: str | None = Field(None, max_length=MAX_NAME_LENGTH)
    guide_frame: int | None = Field(
        None, ge=-(2**31), le=2**31 - 1, description="the single guide image was drawn on this frame (a keyframe)"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    colorspace: str | None = Field(None, max_length=MAX_NAME_LENGTH)
    overwrite: bool = False
    chunk_size: int = Field(24, ge=1, le=10_000)
    review: bool = True
    prior: Prior = Field("u2netp", description="subject prior without a guide: u2netp, people (shots of people), none")
    clean_plate: CleanPlate = Field(
        "auto",
        description="trimap-free: clear what still shows the shot's clean plate (auto); also fill what differs "
        "from it where the prior sees a subject faintly (fill); off",
    )

    @field_validator("input", "output", "guide")
    @classmethod
    def _confined(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "path")
        return None if value is None else confine(value, what=name)

    @field_validator("guide_channel", "colorspace", "prompt")
    @classmethod
    def _text(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "text")
        return value if not value else check_text(value, name, 500)  # "" keeps its old meaning: none

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: str | None) -> str | None:
        if value is not None:
            parse_frame_range(value)  # raises a one-line UsageError on a bad range
        return value

    @model_validator(mode="after")
    def _sizes(self) -> MatteShotRequest:
        if self.frames is not None:
            check_chunks(len(self.frame_list() or []), self.chunk_size)
        return self

    def frame_list(self) -> list[int] | None:
        return parse_frame_range(self.frames) if self.frames else None

    def matte_params(self) -> MatteParams:
        """MatteParams of the preset plus the request's overrides (guides only where the library has them)."""
        overrides: dict[str, object] = {
            "seed": self.seed, "prompt": self.prompt, "colorspace": self.colorspace, "prior": self.prior,
            "clean_plate": self.clean_plate,
        }
        known = {f.name for f in fields(MatteParams)}
        if self.guide is not None:
            if "guide" not in known:
                raise UsageError(f"guide {self.guide}: spatial guidance is not available in this vfxmatte build")
            overrides.update(guide=self.guide, guide_kind=self.guide_kind, guide_channel=self.guide_channel)
            if self.guide_frame is not None:
                overrides["guide_frame"] = self.guide_frame
        elif self.guide_frame is not None:
            raise UsageError(f"guide_frame {self.guide_frame}: needs a guide (the keyframe's guide image)")
        return preset_params(self.preset, **overrides)


def check_chunks(frames: int, chunk_size: int) -> None:
    """Refuse a run of more than :data:`MAX_FRAMES_PER_RUN` frames or :data:`MAX_CHUNKS` chunk tasks."""
    if frames > MAX_FRAMES_PER_RUN:
        raise UsageError(f"{frames} frames: more than {MAX_FRAMES_PER_RUN} in one run; split the shot")
    chunks = -(-frames // chunk_size)
    if chunks > MAX_CHUNKS:
        raise UsageError(
            f"chunk_size {chunk_size}: {frames} frames would make {chunks} chunks (at most {MAX_CHUNKS}); "
            "use a larger chunk_size"
        )
