"""Alpha on the background seen between two subjects side by side, in mattes without ground truth.

Usage (from the repository root)::

    vfxmatte matte ../shared/data/video/chaplin.mp4 -o build/gap/m.####.exr --frames 1001-1201x50
    python scripts/measure_gap.py build/gap/m.####.exr --frames 1051,1151,1201

In each frame the two widest runs of columns where the matte is a subject (over 20 px with
alpha > 0.5 in the rows 8–72 % of the height, above the floor) are taken as the two subjects;
the gap is the columns between them, 6 px clear of each, over the rows both span.  Everything
there is background in a shot of two people standing apart (floor, kerb, their shadows), so
its mean alpha, and the share of its pixels over 0.1, are what a compositor would see as
background kept between them.  A frame whose subjects touch or overlap is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    out, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        if not flag and start is not None:
            out.append((start, i))
            start = None
    return out


def gap(alpha: np.ndarray) -> dict[str, object] | None:
    """The gap's mean alpha, share over 0.1 and box (x0, x1, y0, y1), or None without two subjects apart."""
    height = alpha.shape[0]
    upper = alpha[round(0.08 * height) : round(0.72 * height)]
    widest = sorted(_runs((upper > 0.5).sum(0) > 20), key=lambda r: r[1] - r[0], reverse=True)[:2]
    if len(widest) < 2:
        return None
    left, right = sorted(widest)
    x0, x1 = left[1] + 6, right[0] - 6
    if x1 - x0 < 1:
        return None
    rows = np.flatnonzero((alpha[:, left[0] : left[1]] > 0.5).any(1) & (alpha[:, right[0] : right[1]] > 0.5).any(1))
    if rows.size == 0:
        return None
    region = alpha[rows[0] : rows[-1] + 1, x0:x1]
    return {"mean": float(region.mean()), "over_0.1": float((region > 0.1).mean()),
            "box": [int(x0), int(x1), int(rows[0]), int(rows[-1] + 1)]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pattern", help="the mattes, #### for the frame number")
    parser.add_argument("--frames", required=True, help="comma-separated frame numbers")
    args = parser.parse_args(argv)
    from vfxmatte.composite_shot import read_channels

    for frame in (int(f) for f in args.frames.split(",")):
        path = args.pattern.replace("####", f"{frame:04d}")
        if not Path(path).is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
        print(json.dumps({"frame": frame, "gap": gap(read_channels(path, ["A"])[..., 0])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
