"""Write the bundled sample shot: four scene-linear EXR frames with a moving subject.

The plate is a procedural composite (no third-party pixels), so it can ship inside the
package; its true alpha is written beside it for checking.  Re-run to regenerate:
``python scripts/make_sample.py``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import ndimage

from vfxmatte.io import color
from vfxmatte.io.exr import write_exr
from vfxmatte.io.frames import Plate, Window
from vfxmatte.train.synthetic import make_composite

OUT = Path(__file__).resolve().parents[1] / "vfxmatte" / "samples"
WIDTH, HEIGHT, FRAMES, FIRST = 480, 270, 4, 1001


def main() -> None:
    rng = np.random.default_rng(1002)  # a furry animal: strands and soft edges
    comp = make_composite(rng, (HEIGHT, WIDTH))
    background = color.convert(comp.background, color.NETWORK_SPACE, color.LINEAR_REC709)
    foreground = color.convert(comp.foreground, color.NETWORK_SPACE, color.LINEAR_REC709)
    for index in range(FRAMES):
        frame = FIRST + index
        shift = (0.0, 3.0 * index)  # the subject drifts right by 3 px a frame
        alpha = np.clip(ndimage.shift(comp.alpha, shift, order=1, mode="constant"), 0, 1)
        fg = np.stack([ndimage.shift(foreground[..., c], shift, order=1, mode="nearest") for c in range(3)], -1)
        image = fg * alpha[..., None] + background * (1 - alpha[..., None])
        window = Window(0, 0, WIDTH, HEIGHT)
        plate = Plate(
            rgb=image.astype(np.float32),
            data_window=window,
            display_window=window,
            path="sample",
            frame=frame,
            colorspace=color.LINEAR_REC709,
            fps=Fraction(24),
            timecode=f"01:00:00:{index:02d}",
        )
        rgb = {"R": image[..., 0], "G": image[..., 1], "B": image[..., 2]}
        write_exr(str(OUT / "plate" / f"plate.{frame:04d}.exr"), plate, rgb, {"comment": "vfxmatte sample plate"})
        write_exr(str(OUT / "alpha" / f"alpha.{frame:04d}.exr"), plate, {"Y": alpha}, {"comment": "true alpha"})


if __name__ == "__main__":
    main()
