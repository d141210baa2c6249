"""Time ``vfxmatte review`` on a synthetic shot of large matte EXRs: first run and cached re-run.

    python scripts/bench_review.py --frames 8 --width 3840 --height 2160

Writes the frames (the output EXR contract of DESIGN §5, through ``write_exr``) into a
temporary folder, runs :func:`vfxmatte.review.build_review` twice and prints the timings
as a Markdown table row.  Per-frame cost scales linearly; the cached re-run only stats files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vfxmatte.io import color
from vfxmatte.io.exr import write_exr
from vfxmatte.io.frames import Plate, Window
from vfxmatte.review import build_review


def write_frames(directory: Path, frames: int, width: int, height: int) -> Path:
    rng = np.random.default_rng(0)
    ys, xs = np.indices((height, width), dtype=np.float32)
    for index in range(frames):
        frame = 1001 + index
        radius = np.hypot(xs - width * (0.45 + 0.01 * (index % 10)), ys - height / 2) / min(width, height)
        alpha = np.clip((0.3 - radius) * 40.0 + rng.normal(0.0, 0.05, (height, width)), 0.0, 1.0).astype(np.float32)
        uncertainty = (alpha * (1.0 - alpha) * (0.3 + 0.1 * (index % 3))).astype(np.float32)
        plate = Plate(
            rgb=np.zeros((height, width, 3), np.float32),
            data_window=Window(0, 0, width, height),
            display_window=Window(0, 0, width, height),
            path=str(directory / f"plate.{frame}.exr"),
            frame=frame,
            colorspace=color.LINEAR_REC709,
        )
        channels = {"R": alpha * 0.5, "G": alpha * 0.3, "B": alpha * 0.2, "A": alpha, "uncertainty.Y": uncertainty}
        attributes: dict[str, str | float | int] = {
            "vfxmatte:uncertainty": float(uncertainty[alpha > 0.02].mean()),
            "vfxmatte:colorspace": color.LINEAR_REC709,
        }
        write_exr(str(directory / f"matte.{frame}.exr"), plate, channels, attributes)
    return directory / "matte.####.exr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vfxmatte-bench-review-") as tmp:
        pattern = write_frames(Path(tmp), args.frames, args.width, args.height)
        started = time.perf_counter()
        first = build_review(pattern, Path(tmp) / "review", jobs=args.jobs)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        again = build_review(pattern, Path(tmp) / "review", jobs=args.jobs)
        warm = time.perf_counter() - started
        assert first.generated == args.frames and again.cached == args.frames
        size = sum(p.stat().st_size for p in (Path(tmp) / "review").rglob("*") if p.is_file())
    print("| frames | size | jobs | first run | per frame | cached re-run | review folder |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.frames} | {args.width}×{args.height} | {args.jobs} | {cold:.1f} s | {cold / args.frames:.2f} s "
        f"| {warm:.2f} s | {size / 1e6:.1f} MB |"
    )


if __name__ == "__main__":
    main()
