"""The uncertainty review: a static HTML page, a contact sheet and the per-frame scores.

``build_review`` reads the multichannel EXRs ``vfxmatte matte`` writes (premultiplied
``R G B``, ``A``, ``uncertainty.Y``, header ``vfxmatte:uncertainty``) and writes, into one
folder that opens from disk with no server::

    index.html          thumbnails (comp over a checkerboard, alpha, uncertainty heat map),
                        the score plot with the flag threshold, the flagged frames with
                        crops of their most uncertain regions, a large view on click
    contact_sheet.png   every frame's comp and heat map, flagged frames outlined
    scores.csv/.json    the per-frame scores (the header values), flags and threshold
    plot.png            the score plot
    thumbs/             cached images and ``manifest.json``

Thumbnails are display-referred: the comp is made in linear light and converted to sRGB
with OpenColorIO.  Heat maps use matplotlib's perceptually uniform ``inferno`` on a fixed
scale (``heat_max``) so frames compare with each other.  Images are cached per frame and
regenerated only when the EXR's size or modification time (or the render settings) change,
so re-running the review on a long shot costs a directory listing and a page write.

Flag threshold: by default ``threshold_factor`` (1.5) × the shot's median score, so a frame
is flagged when its edge band is markedly less certain than the rest of the shot whatever
the model's overall calibration; an absolute ``threshold`` overrides it.
"""

from vfxmatte.review.build import build_review, choose_threshold, resolve_pattern
from vfxmatte.review.cli import add_review_parser, cmd_review
from vfxmatte.review.images import (
    alpha_display,
    comp_display,
    heat_display,
    read_score,
    render_frame,
    uncertain_regions,
)
from vfxmatte.review.records import FrameReview, ReviewResult, ReviewSettings, default_review_dir

__all__ = [
    "FrameReview",
    "ReviewResult",
    "ReviewSettings",
    "add_review_parser",
    "alpha_display",
    "build_review",
    "choose_threshold",
    "cmd_review",
    "comp_display",
    "default_review_dir",
    "heat_display",
    "read_score",
    "render_frame",
    "resolve_pattern",
    "uncertain_regions",
]
