"""An alphamatting-layout dataset put between black bars, to measure frames with bars.

Usage::

    python scripts/bars_dataset.py OUT [--aspect 1.7778] [--source ../shared/data/matting/alphamatting]

Every image of ``SOURCE/{input,gt,trimap,trimap2}`` is padded with black (0) to the frame
``--aspect`` (width over height): pillarbox bars left and right where the image is narrower,
letterbox bars above and below where it is wider, split evenly.  The ground truth and the
trimaps are padded with 0 (background), so ``vfxmatte bench OUT --trimaps`` scores the whole
frame, bars included.  Evaluation only, as the source (its INDEX.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def pad_to_aspect(image: np.ndarray, aspect: float) -> np.ndarray:
    """``image`` (h, w[, c]) padded with 0 to width / height = ``aspect``, the bars split evenly."""
    h, w = image.shape[:2]
    if w / h < aspect:
        extra = round(h * aspect) - w
        pad = [(0, 0), (extra // 2, extra - extra // 2)]
    else:
        extra = round(w / aspect) - h
        pad = [(extra // 2, extra - extra // 2), (0, 0)]
    return np.pad(image, pad + [(0, 0)] * (image.ndim - 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--aspect", type=float, default=16 / 9)
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "matting" / "alphamatting"))
    args = parser.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    count = 0
    for folder in ("input", "gt", "trimap", "trimap2"):
        if not (source / folder).is_dir():
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / folder).glob("*.png")):
            Image.fromarray(pad_to_aspect(np.asarray(Image.open(path)), args.aspect)).save(out / folder / path.name)
            count += 1
    if not count:
        raise SystemExit(f"{source}: no images under input/, gt/, trimap/")
    print(f"{count} images padded to {args.aspect:.4g}:1 → {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
