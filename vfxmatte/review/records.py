"""What a review is made of: its settings, its frames and its result."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vfxmatte.cleanplate import MISSED_NOTE
from vfxmatte.io import color

FrameStatus = Literal["generated", "cached", "failed"]


@dataclass(frozen=True)
class ReviewSettings:
    """Everything that changes the cached images (part of the cache key)."""

    thumb_size: int = 256  # long side of the grid thumbnails, pixels
    preview_size: int = 960  # long side of the large view
    crop_size: int = 240  # displayed size of one crop panel
    crops: int = 3  # most uncertain regions kept per frame
    heat_max: float = 0.25  # uncertainty (estimated alpha error) mapped to the top of the colour map


@dataclass
class FrameReview:
    """One frame on the page: its score, flag and the images made for it (relative paths)."""

    frame: int
    path: str
    score: float
    flagged: bool = False
    keyframe_doubt: float | None = None  # header vfxmatte:keyframe_doubt (runs with a carried guide)
    #: header vfxmatte:clean_plate_missed: the share the clean plate calls subject and the matte leaves out
    plate_missed: float | None = None
    width: int = 0
    height: int = 0
    colorspace: str = color.LINEAR_REC709
    images: dict[str, str] = field(default_factory=dict)  # comp/alpha/heat (+ _large)
    crops: list[dict[str, Any]] = field(default_factory=list)  # image, x, y, size, mean


@dataclass
class ReviewResult:
    """What :func:`build_review` wrote and found."""

    pattern: str
    directory: Path
    index_html: Path
    contact_sheet: Path
    scores_csv: Path
    scores_json: Path
    plot: Path
    threshold: float
    threshold_rule: str
    median: float
    frames: list[FrameReview]
    missing: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    generated: int = 0
    cached: int = 0
    next_keyframes: list[int] = field(default_factory=list)  # worst first; empty without a carried guide

    @property
    def flagged(self) -> list[int]:
        return [f.frame for f in self.frames if f.flagged]

    @property
    def missed(self) -> list[int]:
        """Frames whose matte leaves out more than ``MISSED_NOTE`` of the frame that the clean plate
        calls subject, the most first."""
        over = [f for f in self.frames if f.plate_missed is not None and f.plate_missed > MISSED_NOTE]
        return [f.frame for f in sorted(over, key=lambda f: (-(f.plate_missed or 0.0), f.frame))]

    def keyframe_rows(self) -> list[dict[str, object]]:
        doubt = {f.frame: f.keyframe_doubt for f in self.frames}
        return [{"frame": frame, "keyframe_doubt": doubt[frame]} for frame in self.next_keyframes]

    def as_dict(self) -> dict[str, object]:
        return {
            "pattern": self.pattern,
            "index_html": str(self.index_html),
            "contact_sheet": str(self.contact_sheet),
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "median": self.median,
            "flagged": self.flagged,
            "next_keyframes": self.keyframe_rows(),
            "missed": self.missed,
            "frames": [
                {
                    "frame": f.frame,
                    "score": f.score,
                    "flagged": f.flagged,
                    "keyframe_doubt": f.keyframe_doubt,
                    "clean_plate_missed": f.plate_missed,
                    "path": f.path,
                }
                for f in self.frames
            ],
            "missing": self.missing,
            "errors": self.errors,
            "images": {"generated": self.generated, "cached": self.cached},
        }


def default_review_dir(output_pattern: str | os.PathLike[str]) -> Path:
    """Where a shot's review goes by convention: ``<output dir>/review``."""
    text = os.fspath(output_pattern)
    directory = text if os.path.isdir(text) else os.path.dirname(text) or "."
    return Path(directory) / "review"
