"""`vfxmatte review`: the command line over :func:`build_review`."""

from __future__ import annotations

import json
from typing import Any

from vfxmatte.errors import UsageError
from vfxmatte.review.build import build_review
from vfxmatte.review.records import FrameStatus, ReviewSettings


def add_review_parser(sub: Any) -> Any:
    """Register ``vfxmatte review`` on an argparse subparsers object."""
    p = sub.add_parser(
        "review",
        help="HTML review page, contact sheet and per-frame scores of a shot's matte EXRs",
        description="Write a static review page (opens from disk) of the mattes vfxmatte wrote: thumbnails, "
        "the per-frame uncertainty plot, flagged frames with their most uncertain regions.  A frame is flagged "
        "when its score exceeds --threshold, or by default --threshold-factor × the shot's median score.",
    )
    p.add_argument("output", help="the matte EXRs: a pattern such as out/plate.####.exr, or their folder")
    p.add_argument("-o", "--out-dir", help="review folder (default: <output dir>/review)")
    p.add_argument("--threshold", type=float, help="flag frames whose score exceeds this absolute value")
    p.add_argument(
        "--threshold-factor", type=float, default=1.5, help="flag above this × the shot median (default 1.5)"
    )
    p.add_argument("--heat-max", type=float, default=0.25, help="uncertainty at the top of the heat map (0.25)")
    p.add_argument("--thumb-size", type=int, default=256, help="long side of thumbnails in pixels (256)")
    p.add_argument("--preview-size", type=int, default=960, help="long side of the large view in pixels (960)")
    p.add_argument("--jobs", type=int, default=1, help="frames rendered in parallel processes (default 1)")
    p.add_argument("--json", action="store_true", help="print the scores and paths as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cmd_review(args: Any) -> int:
    """Run ``vfxmatte review``; exit 0, or 1 when some frames could not be read."""
    import sys

    for name in ("heat_max", "thumb_size", "preview_size"):
        if getattr(args, name) <= 0:
            raise UsageError(f"review: --{name.replace('_', '-')} must be positive")
    settings = ReviewSettings(thumb_size=args.thumb_size, preview_size=args.preview_size, heat_max=args.heat_max)
    bar: Any = None
    if not args.quiet and not args.json:
        from tqdm import tqdm

        bar = tqdm(unit="frame", file=sys.stderr, dynamic_ncols=True)

    def on_frame(frame: int, status: FrameStatus) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{frame} {status}")
            bar.update(1)

    try:
        result = build_review(
            args.output,
            args.out_dir,
            threshold=args.threshold,
            threshold_factor=args.threshold_factor,
            settings=settings,
            jobs=args.jobs,
            on_frame=on_frame,
        )
    finally:
        if bar is not None:
            bar.close()
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"{len(result.frames)} frames, {len(result.flagged)} flagged "
            f"(threshold {result.threshold:.5f}: {result.threshold_rule}); "
            f"images {result.generated} generated, {result.cached} cached → {result.index_html}"
        )
    return 1 if result.errors else 0
