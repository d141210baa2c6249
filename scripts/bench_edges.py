"""Edges on composite shots with known foreground colours: the comp, the fringe, the seams.

Usage::

    python scripts/bench_edges.py [--targets GT04,GT16] [--frames 2] [--width 640 --height 360]
                                  [--work build/edges] [--variants "prior band,auto band,roto mask"]
                                  [--band reach_outside=0.01 ...] [--json]

Each target (an alphamatting subject; GT01–GT10 is the tuning half, GT11–GT20 the report
half, :mod:`vfxmatte.composite_shot`) is composited over real footage by
:func:`vfxmatte.composite_shot.build_composite_shot`, whose truth files hold the exact alpha
and the foreground premultiplied by it (``estimate_foreground_ml`` on the photo and its true
alpha).  Every frame is matted trimap-free through :func:`vfxmatte.pipeline.matte_plate` (the
CLI's code path), once with the current default (``prior band``: the prior's core kept, its
edge solved) and once with the refine's automatic band from the LR ensemble (``auto band``,
the default before; the prior only starts the ensemble), and once guided by the target's
roto of the frame as a mask (``roto mask``: what a drawn or carried keyframe gives), and scored.
``--bars PX`` matte the shot between black pillarbox bars PX wide on either side (a 4:3 film in a
wider frame), scored on the picture only; the ``bars seen`` variant is the prior band with the
bars left in what the prior sees (:func:`vfxmatte.prior.picture_area` off: the code before).
``people prior`` is the prior band with ``--prior people`` (each subject completed above it by the
person network, :func:`vfxmatte.prior.complete_people`).
Scores:

* ``alpha MSE`` ×1e3 and ``SAD`` /1000 on the whole frame;
* ``comp`` MSE ×1e3 of the premultiplied RGB over a new background (linear light, RGB mean),
  ``pred.RGB + (1 - pred.A)·B`` against ``truth.RGB + (1 - truth.A)·B``, over a bright
  (linear 0.9) and a dark (0.02) grey: the test a compositor makes;
* ``fringe``: the mean predicted alpha on the ring 1–8 px outside the true subject (true alpha
  0) away from the distractor, and the comp MSE there over the bright grey (background colour
  carried in the RGB);
* ``between``: the mean predicted alpha where the target is absent but the distractor behind
  it is opaque (background seen between subjects); ``away MSE``: the alpha MSE ×1e3 where the
  distractor is absent (alpha < 0.01), the target's own error;
* ``outside``: the mean predicted alpha on the ring 1–24 px outside the true subject, away
  from the distractor; ``streak``: on that ring, where the predicted alpha exceeds 0.02, the
  mean vertical over the mean horizontal alpha gradient (horizontal streaks running off an
  edge give > 1; an isotropic spill about 1; NaN when fewer than 50 such pixels).  That ratio
  also reads the subject's shape and the spill's width: the true alpha of the GT04 shots blurred
  by σ 1, 1.5 and 3 px scores 2.14, 1.12 and 0.84 (a soft spill above a wide, flat top is all
  vertical gradient), and a ratio says nothing of how much there is.  ``across``: on the same
  ring, the mean alpha gradient across the way out from the subject (perpendicular to the
  gradient of the distance to it, smoothed by 1 px), ×1e3.  Spill that fades away from the edge
  has little of it; lines that run off the edge, and blotches of background texture, have it in
  proportion to their alpha; hair that reaches past the ring's inner edge has some too (the true
  alpha blurred by σ 1, 1.5 and 3 px: 0.24, 0.38 and 0.84 on the GT04 shots, 0.07, 0.18 and 0.82
  on GT16: the more of the strands a blur spreads into the ring, the more); ``across near`` and
  ``across far`` split it: within 6 px of the subject's soft parts (true alpha in (0.01, 0.9),
  hair tips), and the rest of the ring, where lines running off the edge are; ``across clear``
  is the part of ``across far`` more than 8 px from the distractor too (the ring is cut where
  the distractor is, but the distractor's own soft edge, which a matte that keeps both subjects
  spreads a little, lies just past that cut);
* ``edge comp``: the comp MSE ×1e3 (the mean of the bright and the dark grey) on the edge band
  only (true or predicted alpha fractional), away from the distractor: the foreground colour
  where it matters, less diluted by the whole frame's alpha errors;
* ``pair MSE`` ×1e3 against the target over the distractor (both subjects wanted, as for two
  people side by side); ``gap``: the mean predicted alpha on the background between them (the
  columns between the two subjects, the rows both span, truth 0; NaN while they overlap or
  under 50 such pixels);
* ``seam``: the mean gradient error (|∇pred − ∇truth|, central differences) on pixels within
  1 px of the old band solve's tile borders (every 320 px) that lie in the edge band (true or
  predicted alpha fractional, grown 4 px), divided by the same mean on the rest of the band
  (1.0: borders no worse than elsewhere).  The band is one system now; the ``tiled band``
  variant solves it by those tiles, as before, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
TILE = 320  # vfxmatte.hr.TileSettings().size


def _gradient(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = np.gradient(a.astype(np.float64))
    return np.asarray(gy), np.asarray(gx)


def score(alpha: np.ndarray, prem: np.ndarray, truth: np.ndarray, distractor: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring for one frame (``truth`` RGBA, premultiplied)."""
    t_alpha, t_prem = truth[..., 3], truth[..., :3]
    diff = alpha.astype(np.float64) - t_alpha
    out = {"alpha_mse": float(np.mean(diff**2) * 1e3), "sad": float(np.abs(diff).sum() / 1000.0)}
    comps = {}
    for name, level in (("bright", 0.9), ("dark", 0.02)):
        pred = prem + (1.0 - alpha[..., None]) * level
        true = t_prem + (1.0 - t_alpha[..., None]) * level
        comps[name] = (pred - true) ** 2
        out[f"comp_{name}_mse"] = float(np.mean(comps[name]) * 1e3)
    subject = t_alpha > 0
    ring = ndimage.binary_dilation(subject, iterations=8) & ~subject & (distractor < 0.01)
    out["fringe_alpha"] = float(alpha[ring].mean()) if ring.any() else 0.0
    out["fringe_comp_mse"] = float(comps["bright"][ring].mean() * 1e3) if ring.any() else 0.0
    between = (t_alpha == 0) & (distractor > 0.5)
    out["between_alpha"] = float(alpha[between].mean()) if between.any() else float("nan")
    away = distractor < 0.01
    out["away_mse"] = float(np.mean(diff[away] ** 2) * 1e3) if away.any() else float("nan")
    outer = ndimage.binary_dilation(subject, iterations=24) & ~subject & (distractor < 0.01)
    out["outside_alpha"] = float(alpha[outer].mean()) if outer.any() else 0.0
    spill = outer & (alpha > 0.02)
    ay, ax = _gradient(alpha)
    out["streak"] = (
        float(np.abs(ay[spill]).mean() / max(np.abs(ax[spill]).mean(), 1e-9)) if spill.sum() >= 50 else float("nan")
    )
    out["across"] = out["across_near"] = out["across_far"] = out["across_clear"] = 0.0
    if outer.any():
        away_y, away_x = _gradient(ndimage.gaussian_filter(ndimage.distance_transform_edt(~subject), 1.0))
        across = np.abs(ax * away_y - ay * away_x) / (np.hypot(away_y, away_x) + 1e-9)
        out["across"] = float(across[outer].mean() * 1e3)
        # Split: just past the subject's soft parts (hair tips, within 6 px of true alpha in
        # (0.01, 0.9)), where a matte's hair a little wider than the truth's reads as "across",
        # and the rest of the ring, where lines off the edge and blotches are.
        soft = ndimage.binary_dilation((t_alpha > 0.01) & (t_alpha < 0.9), iterations=6)
        second = ndimage.binary_dilation(distractor > 0.01, iterations=8)
        parts = (("near", outer & soft), ("far", outer & ~soft), ("clear", outer & ~soft & ~second))
        for part, where in parts:
            out[f"across_{part}"] = float(across[where].mean() * 1e3) if where.any() else float("nan")
    # Both subjects wanted (two people side by side): the truth is the target over the distractor.
    pair = t_alpha + distractor * (1.0 - t_alpha)
    out["pair_mse"] = float(np.mean((alpha.astype(np.float64) - pair) ** 2) * 1e3)
    out["gap_alpha"] = float("nan")
    t_cols, d_cols = np.flatnonzero((t_alpha > 0.5).any(0)), np.flatnonzero((distractor > 0.5).any(0))
    t_rows, d_rows = np.flatnonzero((t_alpha > 0.5).any(1)), np.flatnonzero((distractor > 0.5).any(1))
    if t_cols.size and d_cols.size:
        left, right = sorted(((t_cols[0], t_cols[-1]), (d_cols[0], d_cols[-1])))
        top, bottom = max(t_rows[0], d_rows[0]), min(t_rows[-1], d_rows[-1])
        gap = np.zeros_like(pair, dtype=bool)
        if right[0] - left[1] > 8 and bottom > top:  # apart by more than 8 px, side by side
            gap[top : bottom + 1, left[1] + 1 : right[0]] = True
        gap &= pair == 0
        if gap.sum() >= 50:
            out["gap_alpha"] = float(alpha[gap].mean())
    band = ((t_alpha > 0.01) & (t_alpha < 0.99)) | ((alpha > 0.01) & (alpha < 0.99))
    edge = band & (distractor < 0.01)
    out["edge_comp_mse"] = (
        float((comps["bright"][edge].mean() + comps["dark"][edge].mean()) / 2 * 1e3) if edge.any() else float("nan")
    )
    band = ndimage.binary_dilation(band, iterations=4)
    py, px = _gradient(alpha)
    ty, tx = _gradient(t_alpha)
    error = np.hypot(py - ty, px - tx)
    h, w = alpha.shape
    border = np.zeros((h, w), bool)
    for k in range(TILE, h, TILE):
        border[k - 2 : k + 1, :] = True
    for k in range(TILE, w, TILE):
        border[:, k - 2 : k + 1] = True
    on, off = band & border, band & ~border
    out["seam_ratio"] = float(error[on].mean() / error[off].mean()) if on.any() and off.any() else float("nan")
    return out


def pillarbox(shot: Any, bars: int, folder: Path) -> str:
    """The shot's plate frames written again between black bars ``bars`` px wide left and right."""
    from vfxmatte.composite_shot import frame_path, read_channels
    from vfxmatte.io import color
    from vfxmatte.io.exr import write_exr
    from vfxmatte.io.frames import Plate, Window

    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / "plate.####.exr")
    for frame in shot.frames:
        rgb = read_channels(frame_path(shot.plate, frame), ["R", "G", "B"])
        rgb = np.pad(rgb, ((0, 0), (bars, bars), (0, 0)))
        height, width = rgb.shape[:2]
        window = Window(0, 0, width, height)
        path = frame_path(pattern, frame)
        plate = Plate(rgb, window, window, path, frame, color.LINEAR_REC709)
        write_exr(path, plate, {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]}, {})
    return pattern


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    from vfxmatte import cleanplate, hr, prior, steady, temporal
    from vfxmatte.composite_shot import build_composite_shot, frame_path, read_channels
    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.io.exr import read_plate
    from vfxmatte.pipeline import load_run_model, matte_plate, matte_shot

    model = load_run_model(None, "cpu")
    params = MatteParams(temporal="off")
    original = hr.refine

    def auto_band(*a: Any, **k: Any) -> Any:
        k.pop("prior", None)
        return original(*a, **k)

    def with_band(settings: hr.PriorBandSettings) -> Any:
        def refine(*a: Any, **k: Any) -> Any:
            return original(*a, **{**k, "prior_band": settings})

        return refine

    def value(text: str) -> Any:
        if text in ("none", "true", "false"):
            return {"none": None, "true": True, "false": False}[text]
        try:
            return float(text)
        except ValueError:
            return text

    # Extra trimap-free variants: the prior band with other settings (--band reach_outside=0.01).
    bands = {
        f"prior band {spec}": with_band(hr.PriorBandSettings(**{
            key: value(text) for key, text in (item.split("=", 1) for item in spec.split(","))
        }))
        for spec in args.band
    }  # fmt: skip
    closed_form = hr.refine_closed_form

    def tiled_band(*a: Any, **k: Any) -> Any:
        # The band solved as before: 320 px tiles with cross-faded margins, not one system.
        def by_tiles(*b: Any, **c: Any) -> Any:
            if len(b) < 4 and c.get("tiles") is None:
                c["tiles"] = hr.TileSettings()
            return closed_form(*b, **c)

        hr.refine_closed_form = by_tiles
        try:
            return original(*a, **k)
        finally:
            hr.refine_closed_form = closed_form

    refines = {
        "prior band": original, "auto band": auto_band, "roto mask": original, "no zoom": original,
        "tiled band": tiled_band, "bars seen": original, "people prior": original, **bands,
    }  # fmt: skip
    variants = [v for v in args.variants.split(",") if v] + ([] if args.shot_bands else list(bands))

    results: dict[str, Any] = {}

    def frame_score(shot: Any, frame: int, alpha: np.ndarray, premultiplied: np.ndarray) -> dict[str, float]:
        if args.bars:  # scored on the picture between the bars
            alpha, premultiplied = alpha[:, args.bars : -args.bars], premultiplied[:, args.bars : -args.bars]
        truth = read_channels(frame_path(shot.truth, frame), ["R", "G", "B", "A"])
        distractor = read_channels(frame_path(shot.distractor_layer, frame), ["A"])[..., 0]
        return score(alpha, premultiplied, truth, distractor)

    def record(target: str, name: str, rows: list[dict[str, float]]) -> None:
        mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
        results.setdefault(target, {})[name] = mean
        print(target, name, json.dumps({k: round(v, 3) for k, v in mean.items()}), file=sys.stderr, flush=True)

    for target in args.targets.split(","):
        folder = Path(args.work) / target
        shot = build_composite_shot(
            folder, frames=args.frames, width=args.width, height=args.height, target=target,
            distractor=args.distractor if args.distractor != target else "GT14", seed=args.seed,
            camera=args.camera,
        )  # fmt: skip
        plate_pattern = shot.plate if not args.bars else pillarbox(shot, args.bars, folder / "bars")
        windows = [int(text) for text in args.windows.split(",") if text]
        jumps: list[float | None] = [float(text) for text in args.jumps.split(",") if text] or [None]
        trusts: list[float | None] = [float(text) for text in args.trust.split(",") if text] or [None]
        shot_bands: list[str | None] = [None, *(args.band if args.shot_bands else [])]
        follows: list[int | None] = [int(text) for text in args.follows.split(",") if text] or [None]
        cleans: list[str | None] = list(args.clean) or [None]
        for window, jump, trust, spec, follow, clean in (
            (w, j, t, b, f, c)
            for w in windows for j in jumps for t in trusts for b in shot_bands for f in follows for c in cleans
        ):  # fmt: skip
            # The whole shot through matte_shot (the CLI's run), so the prior can see its neighbours.
            shot_params = replace(MatteParams(), prior_window=window)
            name = f"shot, prior window {window}"
            if jump is not None:
                shot_params, name = replace(shot_params, prior_jump_iou=jump), f"{name}, prior-jump IoU {jump}"
            if trust is not None:
                name = f"{name}, flow trusted to {trust} px"
            if spec is not None:
                name = f"{name}, prior band {spec}"
            if follow is not None:
                name = f"{name}, at most {follow} frames follow"
            settings = cleanplate.SETTINGS
            if clean == "off":
                shot_params, name = replace(shot_params, clean_plate="off"), f"{name}, no clean plate"
            elif clean is not None:
                name = f"{name}, clean plate {clean}"
                fields = [item for item in clean.split(",") if item not in ("auto", "fill")]
                if clean.split(",")[0] == "fill":  # --clean-plate fill
                    shot_params = replace(shot_params, clean_plate="fill")
                if fields:
                    cleanplate.SETTINGS = cleanplate.CleanPlateSettings(**{
                        key: float(text) if "." in text else int(text)
                        for key, text in (item.split("=", 1) for item in fields)
                    })  # fmt: skip
            out = folder / name.replace(", ", "_").replace(" ", "-").replace("=", "-") / "m.####.exr"
            hr.refine = refines[f"prior band {spec}"] if spec is not None else original
            try:
                with steady.trusting(trust), temporal.following(follow):
                    summary = matte_shot(plate_pattern, str(out), shot_params, RunOptions(overwrite=True), model=model)
            finally:
                hr.refine, cleanplate.SETTINGS = original, settings
            print(target, name, "; ".join(summary.notes), file=sys.stderr)
            if summary.exit_code:
                raise SystemExit(f"{shot.plate}: the run failed: {summary.results}")
            followed = sorted({r.frame for r in summary.results for w in r.warnings if "prior's subject jumped" in w})
            rows = []
            for frame in shot.frames:
                matte = read_channels(frame_path(str(out), frame), ["R", "G", "B", "A"])
                rows.append(frame_score(shot, frame, matte[..., 3], matte[..., :3]))
            record(target, name, rows)
            print(target, name, "followed the previous matte on frames", followed or "none", file=sys.stderr)
        for variant in variants:
            rows = []
            run_params = replace(params, guide=shot.roto, guide_kind="mask") if variant == "roto mask" else params
            if variant == "people prior":  # --prior people: each subject completed by the person network
                run_params = replace(params, prior="people")
            for frame in shot.frames:
                plate = read_plate(frame_path(plate_pattern, frame), frame)
                hr.refine = refines[variant]
                zoom, area = prior.ZOOM, prior.picture_area
                if variant == "no zoom":  # the prior band without the prior's close looks
                    prior.ZOOM = prior.ZoomSettings(enabled=False)
                if variant == "bars seen":  # the prior and the band as before bars were cut off
                    prior.picture_area = hr.picture_area = lambda image: None
                try:
                    matte = matte_plate(model, plate, run_params)
                finally:
                    hr.refine, prior.ZOOM = original, zoom
                    prior.picture_area = hr.picture_area = area
                rows.append(frame_score(shot, frame, matte.alpha, matte.premultiplied))
            record(target, variant, rows)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="GT04,GT16")
    parser.add_argument("--distractor", default="GT14")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bars", type=int, default=0, help="matte between black pillarbox bars this many px wide (scored inside)"
    )
    parser.add_argument("--work", default=str(REPO / "build" / "edges"))
    parser.add_argument(
        "--variants",
        default="prior band,auto band,roto mask",
        help="base variants to run (also: no zoom, tiled band, bars seen, people prior)",
    )
    parser.add_argument(
        "--band",
        action="append",
        default=[],
        help="also run the prior band with other PriorBandSettings (reach_outside=0.01,radius=0.01)",
    )
    parser.add_argument(
        "--shot-bands",
        action="store_true",
        help="with --windows: run the whole-shot runs with each --band setting too (instead of frame by frame)",
    )
    parser.add_argument(
        "--windows",
        default="",
        help="also matte each shot as a shot (matte_shot, --temporal shared) with these --prior-window "
        "values, e.g. 0,3: the prior steadied over its neighbours (comma-separated frames either side)",
    )
    parser.add_argument(
        "--jumps",
        default="",
        help="with --windows: run each window with these --prior-jump-iou values too, e.g. 0,0.25,0.5 "
        "(default: the product's default only)",
    )
    parser.add_argument(
        "--trust",
        default="",
        help="with --windows: run each window with these forward-backward flow tolerances of the steadied "
        "prior too (vfxmatte.steady.TRUST_PX, px), e.g. 0.5,1,2",
    )
    parser.add_argument(
        "--follows",
        default="",
        help="with --windows and a --jumps value above 0: run with these bounds on the frames in a row that "
        "follow the previous matte (vfxmatte.temporal.MAX_FOLLOW), e.g. 1,2,4",
    )
    parser.add_argument(
        "--camera", choices=("moving", "locked"), default="moving",
        help="the composite shots' camera: moving (pans and pushes in; the default) or locked (a locked-off shot)",
    )
    parser.add_argument(
        "--clean", action="append", default=[], metavar="SPEC",
        help="with --windows: run the whole-shot runs with a clean plate setting each: off, auto (the default "
        "settings), fill (--clean-plate fill) or fields of vfxmatte.cleanplate.CleanPlateSettings, e.g. match=2.0 "
        "or fill,differ=3 (repeatable)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        keys = list(next(iter(next(iter(results.values())).values())))
        print("| target | variant | " + " | ".join(keys) + " |")
        print("|---|---|" + "---:|" * len(keys))
        for target, variants in results.items():
            for variant, mean in variants.items():
                print(f"| {target} | {variant} | " + " | ".join(f"{mean[k]:.3f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
