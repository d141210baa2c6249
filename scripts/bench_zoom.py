"""What the prior's close look (:meth:`vfxmatte.prior.SalientPrior.predict_subjects`) costs per frame.

Usage::

    python scripts/bench_zoom.py [MOVIE] [--frames 1001-1201x50] [--width 1920 --height 1080] [--rounds 2]

Each frame of ``MOVIE`` (default ``../shared/data/video/chaplin.mp4``, a real shot with two
people) is resized to ``--width``×``--height`` and matted trimap-free through
:func:`vfxmatte.pipeline.matte_plate` (the CLI's code path, CPU defaults) with the close look
and without it (``prior.ZOOM`` switched off), alternated in one run so both see the same
machine state, ``--rounds`` times each after a warm-up; and with ``--prior people`` (the person
network completing each subject, :meth:`vfxmatte.prior.SalientPrior.complete_subjects`).
Printed: seconds per frame for each, the prior's own seconds, and the crops looked at again per
frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("movie", nargs="?", default=str(REPO.parent / "shared" / "data" / "video" / "chaplin.mp4"))
    parser.add_argument("--frames", default="1001-1201x50")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from vfxmatte import prior
    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.io.frames import Plate
    from vfxmatte.io.sequence import parse_frame_range
    from vfxmatte.pipeline import load_run_model, matte_plate, open_shot
    from vfxmatte.sampling import resize

    if not Path(args.movie).is_file():
        print(f"{args.movie}: not found", file=sys.stderr)
        return 2
    params = MatteParams(temporal="off")
    model = load_run_model(None, "cpu")
    shot = open_shot(args.movie, parse_frame_range(args.frames), params, RunOptions())
    plates = []
    for plate in shot.plates(set()):
        if not isinstance(plate, Plate):
            continue
        rgb = np.stack([resize(plate.rgb[..., c], args.height, args.width) for c in range(3)], -1)
        window = replace(plate.data_window, width=args.width, height=args.height)
        plates.append(replace(plate, rgb=rgb.astype(np.float32), data_window=window, display_window=window))
    nets = [prior.load_prior("u2netp"), prior.load_prior("people")]
    modes = {
        "close look (default)": (prior.ZOOM, params),
        "plain prior": (prior.ZoomSettings(enabled=False), params),
        "--prior people": (prior.ZOOM, replace(params, prior="people")),
    }
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    prior_seconds: dict[str, list[float]] = {m: [] for m in modes}
    looks: dict[str, int] = {m: 0 for m in modes}
    default = prior.ZOOM
    try:
        matte_plate(model, plates[0], params)  # warm-up
        for _ in range(args.rounds):
            for mode, (zoom, run_params) in modes.items():
                prior.ZOOM = zoom
                before = sum(n.close_looks for n in nets if n is not None)
                for plate in plates:
                    start = time.perf_counter()
                    matte = matte_plate(model, plate, run_params)
                    seconds[mode].append(time.perf_counter() - start)
                    prior_seconds[mode].append(matte.prior_seconds)
                looks[mode] += sum(n.close_looks for n in nets if n is not None) - before
    finally:
        prior.ZOOM = default
    result = {
        mode: {
            "seconds_per_frame": float(np.mean(seconds[mode])),
            "prior_seconds_per_frame": float(np.mean(prior_seconds[mode])),
            "close_looks_per_frame": looks[mode] / (args.rounds * len(plates)),
        }
        for mode in modes
    }
    base = result["plain prior"]["seconds_per_frame"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(plates)} frames of {args.movie} at {args.width}x{args.height}, {args.rounds} rounds, CPU")
        print("| prior | s/frame | prior s/frame | crops/frame | vs plain |")
        print("|---|---:|---:|---:|---:|")
        for mode, r in result.items():
            print(
                f"| {mode} | {r['seconds_per_frame']:.2f} | {r['prior_seconds_per_frame']:.2f} | "
                f"{r['close_looks_per_frame']:.1f} | {r['seconds_per_frame'] / base - 1:+.1%} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
