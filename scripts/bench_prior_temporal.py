#!/usr/bin/env python3
"""The prior in sequences: dtSSD and SAD with and without following the previous matte on a jump.

A per-frame salient-object prior can jump to another object: a passer-by, a bright sign.  This
script makes such a shot from a real photograph with ground truth (``../shared/data/matting``,
evaluation only): the subject is panned a few pixels per frame, and on some frames a second
object (another image's foreground, cut out by its own ground truth) crosses the background,
away from the subject.  The ground truth is the subject's alpha, panned the same way.

It mattes the shot twice with ``--temporal shared`` and the prior, once with the default jump
test (``--prior-jump-iou 0.5``: a frame whose prior disagrees with the previous matte follows that
matte) and once with it off (``0``: every frame starts from its own prior), and reports dtSSD
(temporal coherence against the ground truth's own motion), mean SAD, how many frames the prior
jumped on, and the prior's IoU with the ground truth per frame.

    .venv/bin/python scripts/bench_prior_temporal.py --subject GT04 --distractor GT13 --frames 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "matting" / "alphamatting"


def load(path: Path) -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    pixels = buf.get_pixels(oiio.FLOAT)
    if pixels is None or buf.has_error:
        raise SystemExit(f"{path}: cannot read: {buf.geterror()}")
    return np.asarray(pixels, np.float32)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    src = oiio.ImageBuf(image)
    dst = oiio.ImageBufAlgo.resize(src, roi=oiio.ROI(0, width, 0, height, 0, 1, 0, image.shape[2]))
    return np.clip(np.asarray(dst.get_pixels(oiio.FLOAT), np.float32), 0.0, 1.0)  # the filter overshoots


def make_shot(
    folder: Path, subject: str, distractor: str, frames: int, size: int, shift: int, scale: float
) -> tuple[str, list[np.ndarray], list[bool]]:
    """Write the shot as 8-bit sRGB PNGs; return its pattern, the ground truth per frame, where the distractor is."""
    image, alpha = load(DATA / "input" / f"{subject}.png")[..., :3], load(DATA / "gt" / f"{subject}.png")[..., :1]
    h, w = image.shape[:2]
    scale = size / max(h, w)
    width, height = round(w * scale), round(h * scale)
    margin = shift * frames
    image = resize(image, width + margin, height)
    alpha = resize(alpha, width + margin, height)[..., 0]
    other = load(DATA / "input" / f"{distractor}.png")[..., :3]
    other_alpha = load(DATA / "gt" / f"{distractor}.png")[..., :1]
    oh, ow = other.shape[:2]
    small = scale * height / oh
    dw, dh = round(ow * small), round(oh * small)
    other, other_alpha = resize(other, dw, dh), resize(other_alpha, dw, dh)
    folder.mkdir(parents=True, exist_ok=True)
    truths: list[np.ndarray] = []
    crossing: list[bool] = []
    for i in range(frames):
        x0 = i * shift
        frame = image[:, x0 : x0 + width].copy()
        truth = alpha[:, x0 : x0 + width].copy()
        present = frames // 3 <= i < frames // 3 + max(2, frames // 4)
        if present:
            # The distractor crosses a corner of the background, where the subject's alpha is 0.
            y, x = 0, width - dw if truth[:dh, width - dw :].mean() < truth[:dh, :dw].mean() else 0
            region = frame[y : y + dh, x : x + dw]
            region[:] = region * (1 - other_alpha) + other * other_alpha
            truth[y : y + dh, x : x + dw] *= 1 - other_alpha[..., 0]  # it occludes whatever it covers
        truths.append(truth)
        crossing.append(present)
        out = oiio.ImageBuf(np.clip(frame, 0, 1))
        if not out.write(str(folder / f"shot.{1001 + i}.png"), oiio.UINT8):
            raise SystemExit(f"cannot write the shot: {out.geterror()}")
    return str(folder / "shot.####.png"), truths, crossing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", default="GT04")
    parser.add_argument("--distractor", default="GT13")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=512, help="long side of the frames")
    parser.add_argument("--shift", type=int, default=3, help="pan in pixels per frame")
    parser.add_argument("--scale", type=float, default=0.7, help="distractor height / frame height")
    parser.add_argument("--hr", default="off", help="HR refinement of the runs (default off: the prior acts on LR)")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument(
        "--windows", default="", help="also --prior-window N runs (comma-separated N; jump test from --jumps)"
    )
    parser.add_argument(
        "--jumps", default="0.5", help="the --prior-jump-iou values of the --windows runs (comma-separated)"
    )
    parser.add_argument(
        "--trust", default="", help="also run the --windows runs with these flow tolerances (steady.TRUST_PX, px)"
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="run only the --windows runs (not the two without a window)"
    )
    parser.add_argument(
        "--follows", default="", help="also run the --windows runs with these vfxmatte.temporal.MAX_FOLLOW bounds"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: the alphamatting fixture is absent")

    from vfxmatte.config import MatteParams
    from vfxmatte.metrics import dtssd, sad
    from vfxmatte.pipeline import load_run_model, matte_shot
    from vfxmatte.prior import load_prior

    work = Path(tempfile.mkdtemp(prefix="bench-prior-temporal-"))
    pattern, truths, crossing = make_shot(work / "shot", args.subject, args.distractor, args.frames, args.size,
                                          args.shift, args.scale)
    model = load_run_model(args.model, "cpu")
    prior = load_prior("u2netp")
    assert prior is not None
    from vfxmatte.pipeline import mask_iou

    prior_iou: list[float] = []
    for i, truth in enumerate(truths):
        mask = prior.predict(np.clip(load(work / "shot" / f"shot.{1001 + i}.png")[..., :3], 0, 1))
        prior_iou.append(mask_iou(mask, truth))
    rows = {}
    variants: list[tuple[str, float, int, float | None, int | None]] = [
        ("follow the previous matte on a jump (0.5), no window", 0.5, 0, None, None),
        ("own prior every frame (0)", 0.0, 0, None, None),
    ]
    if args.no_baselines:
        variants = []
    trusts: list[float | None] = [float(text) for text in args.trust.split(",") if text] or [None]
    follows: list[int | None] = [int(text) for text in args.follows.split(",") if text] or [None]
    for n in (int(text) for text in args.windows.split(",") if text):
        for jump in (float(text) for text in args.jumps.split(",") if text):
            for trust in trusts:
                for follow in follows:
                    extra = "" if args.jumps == "0.5" else f", --prior-jump-iou {jump}"
                    extra += "" if trust is None else f", flow trusted to {trust} px"
                    extra += "" if follow is None else f", at most {follow} frames follow"
                    label = f"prior steadied over ±{n} frames (--prior-window {n}{extra})"
                    variants.append((label, jump, n, trust, follow))
    from vfxmatte import steady, temporal

    for label, jump, window, trust, follow in variants:
        out = work / f"out-{jump}-{window}-{trust}-{follow}"
        params = MatteParams(temporal="shared", prior_jump_iou=jump, hr=args.hr, prior_window=window)
        with steady.trusting(trust), temporal.following(follow):
            summary = matte_shot(pattern, str(out / "m.####.exr"), params, model=model)
        jumped = sorted({r.frame for r in summary.results for w in r.warnings if "prior's subject jumped" in w})
        mattes = [load(out / f"m.{1001 + i}.exr")[..., 3] for i in range(args.frames)]
        rows[label] = {
            "dtSSD": float(dtssd(mattes, truths)),
            "SAD": float(np.mean([sad(m, t) for m, t in zip(mattes, truths, strict=True)])),
            "jumped_frames": jumped,
        }
    print(f"Shot: {args.subject} panned {args.shift} px/frame, {args.frames} frames, long side {args.size}; "
          f"{args.distractor} crosses the background on frames "
          f"{[1001 + i for i, c in enumerate(crossing) if c]}; --temporal shared, --hr {args.hr}, bundled model.\n")
    print(f"Prior IoU with the ground truth per frame: {[round(v, 2) for v in prior_iou]}\n")
    print("| prior in the sequence | dtSSD | SAD (mean /1000) | frames that followed the previous matte |")
    print("|---|---:|---:|---|")
    for label, row in rows.items():
        print(f"| {label} | {row['dtSSD']:.3f} | {row['SAD']:.2f} | {row['jumped_frames'] or '—'} |")
    print("\n" + json.dumps({"prior_iou": prior_iou, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
