"""Choose defaults on one half of alphamatting GT01–GT20, report them on the other (docs/BENCHMARKS.md).

Usage::

    python scripts/tune_halves.py cache [--dataset DIR] [--work build/tuning]
    python scripts/tune_halves.py free [--work build/tuning]
    python scripts/tune_halves.py guided [--work build/tuning]

``cache`` runs the real pipeline (:func:`vfxmatte.pipeline.matte_plate`, the CLI's code path)
once per image, trimap-free and trimap-guided, and stores what reaches the full-resolution
refine (the plate, the LR ensemble's mean and spread, the prior's mask), plus the raw
single-run U²-Netp mask and the ground truth, as ``WORK/cache/<name>.npz``.  The other
sub-commands replay only the last stages from that cache, so a sweep costs the refine, not
the diffusion ensemble.

``free`` and ``guided`` score every candidate on each half (A = GT01–GT10, B = GT11–GT20),
pick the best on one half by the named criterion, and print it scored on the other half:
the tuning protocol of docs/BENCHMARKS.md.  Nothing here changes a default; the defaults in
the code are what the protocol picked, and the product's own ``vfxmatte bench --images``
numbers are the ones the documentation reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "matting" / "alphamatting"
DEFAULT_WORK = REPO / "build" / "tuning"
HALVES = {"A": [f"GT{i:02d}" for i in range(1, 11)], "B": [f"GT{i:02d}" for i in range(11, 21)]}


def _capture(params: Any, model: Any, plate: Any) -> dict[str, np.ndarray]:
    """Run matte_plate and keep what it hands to hr.refine (and the prior's mask)."""
    from vfxmatte import hr, pipeline

    seen: dict[str, np.ndarray] = {}
    original_refine, original_prior = hr.refine, pipeline._run_prior

    def refine(
        mode: str,
        model: Any,
        linear: np.ndarray,
        display: np.ndarray,
        lr_mean: np.ndarray,
        lr_std: np.ndarray,
        **kwargs: Any,
    ) -> Any:
        seen.update(linear=linear, display=display, lr_mean=lr_mean, lr_std=lr_std)
        if kwargs.get("guide_trimap") is not None:
            seen["guide_trimap"] = kwargs["guide_trimap"]
        return hr.Refined(alpha=np.clip(hr.resize(lr_mean, *linear.shape[:2]), 0.0, 1.0))

    def run_prior(name: str, display: np.ndarray, lr_h: int, lr_w: int, **kwargs: Any) -> tuple[np.ndarray, float]:
        mask, seconds = original_prior(name, display, lr_h, lr_w, **kwargs)
        seen["prior_lr"] = mask
        return mask, seconds

    hr.refine = refine
    pipeline._run_prior = run_prior
    try:
        pipeline.matte_plate(model, plate, params)
    finally:
        hr.refine = original_refine
        pipeline._run_prior = original_prior
    return seen


def _light(model: Any, plate: Any, trimap_path: str, prior: Any) -> dict[str, np.ndarray]:
    """What the prior-band refine and the trimap solvers need, without the LR ensemble:
    the display plate, the prior at the LR size and the guide trimap, computed as matte_plate does."""
    from vfxmatte import guide as guidance
    from vfxmatte.config import MatteParams
    from vfxmatte.io import color
    from vfxmatte.sampling import lr_shape

    params = MatteParams()
    space = color.linear_space(plate.colorspace)
    linear = color.convert(plate.rgb, plate.colorspace, space)
    height, width = linear.shape[:2]
    lr_h, lr_w = lr_shape(height, width, min(params.lr_size, max(height, width)), model.size_multiple)
    display = color.to_network(linear, space)
    spatial = guidance.load_guide(trimap_path, "trimap", plate.data_window, plate.display_window, None)
    codes = guidance.refine_trimap(spatial, params.mask_band)
    assert codes is not None
    return {
        "linear": linear,
        "display": display,
        "prior_lr": prior.predict(display, size=(lr_h, lr_w)),
        "raw": prior.predict(display, mirror=False),
        "mirrored": prior.predict(display, mirror=True),
        "guide_trimap": codes,
    }


def cmd_cache(args: argparse.Namespace) -> int:
    from vfxmatte.bench import find_dataset
    from vfxmatte.config import MatteParams
    from vfxmatte.evaluate import read_matte, read_trimap
    from vfxmatte.io.exr import read_plate
    from vfxmatte.pipeline import load_run_model
    from vfxmatte.prior import load_prior

    model = load_run_model(None, "cpu")
    prior = load_prior("u2netp")
    assert prior is not None
    out = Path(args.work) / "cache"
    out.mkdir(parents=True, exist_ok=True)
    strengths = [float(s) for s in args.strengths.split(",")]
    for index, item in enumerate(find_dataset(args.dataset)):
        target = out / f"{item.name}.npz"
        if target.exists() and not args.overwrite:
            continue
        plate = read_plate(item.image, index)
        gt = read_matte(item.alpha, "ground truth", None)
        gt = gt.astype(np.float32) / (255.0 if gt.dtype == np.uint8 else 65535.0 if gt.dtype == np.uint16 else 1.0)
        arrays: dict[str, np.ndarray] = {"gt": gt, "unknown_region": read_trimap(str(item.trimap))}
        if args.light:
            arrays.update(_light(model, plate, str(item.trimap), prior))
            np.savez(target, **arrays)  # type: ignore[arg-type]
            print(f"{item.name} cached (light)", file=sys.stderr, flush=True)
            continue
        base = MatteParams(temporal="off", hr="pymatting")
        for s in strengths:
            seen = _capture(replace(base, prior_strength=s), model, plate)
            arrays[f"lr_mean_{s:g}"], arrays[f"lr_std_{s:g}"] = seen["lr_mean"], seen["lr_std"]
            arrays.update(linear=seen["linear"], display=seen["display"], prior_lr=seen["prior_lr"])
        guided = _capture(replace(base, guide=str(item.trimap), guide_kind="trimap"), model, plate)
        arrays.update(guided_mean=guided["lr_mean"], guided_std=guided["lr_std"], guide_trimap=guided["guide_trimap"])
        display = arrays["display"]
        arrays["raw"] = prior.predict(display, mirror=False)
        arrays["mirrored"] = prior.predict(display, mirror=True)
        np.savez(target, **arrays)  # type: ignore[arg-type]
        print(f"{item.name} cached", file=sys.stderr, flush=True)
    return 0


# --------------------------------------------------------------------------- replay


def _load(work: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(work / "cache" / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def _whole(alpha: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(MSE ×1e3, SAD /1000) on the whole image (P3M convention)."""
    diff = np.clip(alpha, 0.0, 1.0).astype(np.float64) - gt
    return float(np.mean(diff**2) * 1e3), float(np.abs(diff).sum() / 1000.0)


def _unknown_sad(alpha: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    return float(np.abs(np.clip(alpha, 0.0, 1.0).astype(np.float64) - gt)[region].sum() / 1000.0)


def _protocol(scores: dict[str, dict[str, list[float]]], key: int, label: str) -> list[str]:
    """Per-candidate means per half; the pick on each half reported on the other."""
    lines = [f"| candidate | A {label} | B {label} | all |", "|---|---:|---:|---:|"]
    scores = {n: v for n, v in scores.items() if all(v[h] for h in HALVES)} or scores
    means: dict[str, dict[str, float]] = {}
    for name, per_half in scores.items():
        means[name] = {h: float(np.mean([v[key] for v in per_half[h]])) for h in HALVES}  # type: ignore[index]
        means[name]["all"] = float(np.mean([v[key] for h in HALVES for v in per_half[h]]))  # type: ignore[index]
        lines.append(f"| {name} | {means[name]['A']:.2f} | {means[name]['B']:.2f} | {means[name]['all']:.2f} |")
    for tune, report in (("A", "B"), ("B", "A")):
        best = min(means, key=lambda n: means[n][tune])
        lines.append(
            f"tuned on {tune}: {best} ({means[best][tune]:.2f}), reported on {report}: {means[best][report]:.2f}"
        )
    return lines


def _replay(
    work: Path,
    candidates: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]],
    score: Callable[[np.ndarray, dict[str, np.ndarray]], tuple[float, ...]],
) -> dict[str, dict[str, list[Any]]]:
    results: dict[str, dict[str, list[Any]]] = {n: {h: [] for h in HALVES} for n in candidates}
    per_image: dict[str, dict[str, tuple[float, ...]]] = {}
    for half, names in HALVES.items():
        for name in names:
            if not (work / "cache" / f"{name}.npz").exists():
                print(f"{name}: not cached, left out", file=sys.stderr)
                continue
            data = _load(work, name)
            per_image[name] = {}
            for cand, make in candidates.items():
                value = score(make(data), data)
                results[cand][half].append(value)
                per_image[name][cand] = value
            print(
                name,
                json.dumps({k: [round(x, 2) for x in v] for k, v in per_image[name].items()}),
                file=sys.stderr,
                flush=True,
            )
    return results


def prior_trimap(prior: np.ndarray, low: float, high: float, radius: int) -> np.ndarray:
    """Trimap codes from a soft mask: background ≤ low, foreground ≥ high, the rest grown by radius px."""
    from scipy import ndimage

    from vfxmatte import hr

    unknown = (prior > low) & (prior < high)
    if radius > 0 and unknown.any():
        unknown = ndimage.maximum_filter(unknown, size=2 * radius + 1)
    trimap = np.where(prior >= 0.5, hr.FOREGROUND, hr.BACKGROUND).astype(np.float32)
    trimap[unknown] = hr.UNKNOWN
    return trimap


def colour_ambiguity(image: np.ndarray, trimap: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) in [0, 1): how little the known colours near each pixel separate foreground from background.

    Within a Gaussian of ``sigma`` × the long side, the trimap's known foreground and background
    each have a mean colour and a spread (the summed per-channel variance); the ambiguity is
    ``spread / (spread + |mean_F - mean_B|²)``: near 0 where the two sides are distinct, smooth
    colours (a colour line the closed form can follow), near 1 where their difference is lost in
    their own texture.  0 where either side has no known pixel within reach.  Computed on a
    grid of about 4 px per sigma and upsampled: cheap at 4K.
    """
    import cv2

    from vfxmatte.sampling import resize

    height, width = trimap.shape
    sigma_px = max(sigma * max(height, width), 1.0)
    factor = max(1.0, sigma_px / 4.0)  # about 4 grid px per sigma: the statistics are smooth
    small_h, small_w = max(1, round(height / factor)), max(1, round(width / factor))
    small_sigma = sigma_px / max(height / small_h, width / small_w)
    colours = np.asarray(image, dtype=np.float32)
    sides = []
    for code in (1.0, 0.0):  # the trimap's foreground, then its background
        known = (trimap == code).astype(np.float32)[..., None]
        # Known weight, colour and squared colour: seven channels, shrunk and blurred four at a time.
        parts = []
        for part in (np.concatenate([known, colours * known], axis=-1), colours**2 * known):
            if (small_h, small_w) != (height, width):
                part = cv2.resize(part, (small_w, small_h), interpolation=cv2.INTER_AREA)
            parts.append(cv2.GaussianBlur(part, (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT))
        stack = np.concatenate(parts, axis=-1)
        weight = stack[..., 0]
        mean = stack[..., 1:4] / np.maximum(weight, 1e-6)[..., None]
        square = stack[..., 4:7] / np.maximum(weight, 1e-6)[..., None]
        spread = np.clip(square - mean**2, 0.0, None).sum(-1)
        sides.append((weight, mean, spread))
    (w_f, mean_f, spread_f), (w_b, mean_b, spread_b) = sides
    spread = spread_f + spread_b
    ambiguity = spread / (spread + ((mean_f - mean_b) ** 2).sum(-1) + 1e-6)
    ambiguity[(w_f < 1e-3) | (w_b < 1e-3)] = 0.0
    return np.clip(resize(ambiguity, height, width), 0.0, 1.0)


def free_candidates(grid: str) -> dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    from vfxmatte import hr
    from vfxmatte.sampling import resize

    def up(a: np.ndarray, d: dict[str, np.ndarray]) -> np.ndarray:
        return np.clip(resize(a, *d["gt"].shape), 0.0, 1.0)

    def current(d: dict[str, np.ndarray]) -> np.ndarray:
        m, s = d["lr_mean_0.3"], d["lr_std_0.3"]
        return hr.refine_closed_form(d["display"], hr.auto_trimap(m, s, *d["gt"].shape), up(m, d))

    cands: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
        "raw u2netp": lambda d: d["raw"],
        "mirrored prior": lambda d: d["mirrored"],
        "prior at LR, upsampled": lambda d: up(d["prior_lr"], d),
        "default (0.3, auto band)": current,
    }

    def lr_mean(strength: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        return lambda d: up(d[f"lr_mean_{strength}"], d)

    for s in ("0.15", "0.3", "0.5"):
        cands[f"LR mean {s}"] = lr_mean(s)
    if grid == "stages":
        return cands
    band_grids = ("prior", "mirror", "reach", "outside", "epsilon", "weight", "confident")
    if grid in (*band_grids, "ambiguous", "sharpen", "coarse", "reachcolour"):
        from vfxmatte.hr import PriorBandSettings, prior_band_trimap

        def band(
            settings: PriorBandSettings,
            ambiguous: float | None = None,
            sigma: float = 0.03,
            outside: bool = False,
            sharpen: float | None = None,
        ) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
            """The default band's solve; with ``ambiguous`` the prior's weight plus ``ambiguous ·
            ambiguity²`` (:func:`colour_ambiguity` over ``sigma``), only
            outside the prior's contour with ``outside``; with ``sharpen`` the prior it is pulled
            towards steepened about 0.5 (outside the contour only with ``outside``).  Tried, not
            in the product (docs/BENCHMARKS.md, "colour ambiguity")."""

            def run(d: dict[str, np.ndarray]) -> np.ndarray:
                h, w = d["gt"].shape
                trimap = prior_band_trimap(d["prior_lr"], d["prior_lr"], d["prior_lr"] * 0, h, w, settings)
                mask = up(d["prior_lr"], d)
                weights = settings.weights(mask)
                where = (mask < 0.5) if outside else np.ones(mask.shape, bool)
                if ambiguous is not None:
                    extra = ambiguous * colour_ambiguity(d["display"], trimap, sigma) ** 2 * where
                    weights = (weights + extra).astype(np.float32)
                target = mask
                if sharpen is not None:
                    steep = np.clip(0.5 + sharpen * (mask - 0.5), 0.0, 1.0)
                    target = np.where(where, steep, mask).astype(np.float32)
                return hr.refine_closed_form(
                    d["display"], trimap, target, epsilon=settings.epsilon, prior_weight=weights
                )

            return run

        def colour_reach(k: int, margin: float) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
            """The default band, but the soft interior the reach makes foreground stays in the band
            where its colour is nearer the prior's sure background (k-means palette of ``k``
            colours) than ``margin`` × its distance to the sure foreground's palette."""
            from scipy.cluster.vq import kmeans2

            settings = PriorBandSettings()

            def palette(pixels: np.ndarray) -> np.ndarray:
                rng = np.random.default_rng(0)
                pick = pixels[rng.choice(len(pixels), min(len(pixels), 20000), replace=False)]
                centres, _ = kmeans2(pick.astype(np.float64), k, seed=0, minit="++")
                return centres.astype(np.float32)

            def nearest(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
                return np.sqrt(((pixels[:, None, :] - centres[None]) ** 2).sum(-1)).min(1)

            def run(d: dict[str, np.ndarray]) -> np.ndarray:
                h, w = d["gt"].shape
                trimap = prior_band_trimap(d["prior_lr"], d["prior_lr"], d["prior_lr"] * 0, h, w, settings)
                mask = up(d["prior_lr"], d)
                soft = (trimap == hr.FOREGROUND) & (mask < settings.high)
                image = d["display"].astype(np.float32)
                sure_bg, sure_fg = mask <= settings.low, mask >= settings.high
                if soft.any() and sure_bg.sum() > k and sure_fg.sum() > k:
                    px = image[soft]
                    near_bg = nearest(px, palette(image[sure_bg])) < margin * nearest(px, palette(image[sure_fg]))
                    spared = np.zeros_like(soft)
                    spared[soft] = near_bg
                    trimap = trimap.copy()
                    trimap[spared] = hr.UNKNOWN
                return hr.refine_closed_form(
                    d["display"], trimap, mask, epsilon=settings.epsilon, prior_weight=settings.weights(mask)
                )

            return run

        def texture_reach(level: float) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
            """The default band, but the soft interior the reach makes foreground stays in the band
            where the picture is textured (luminance standard deviation over a window of 1 % of
            the long side above ``level``): strands of hair with the background between them,
            not a face or a coat."""
            from scipy import ndimage

            settings = PriorBandSettings()

            def run(d: dict[str, np.ndarray]) -> np.ndarray:
                h, w = d["gt"].shape
                trimap = prior_band_trimap(d["prior_lr"], d["prior_lr"], d["prior_lr"] * 0, h, w, settings)
                mask = up(d["prior_lr"], d)
                soft = (trimap == hr.FOREGROUND) & (mask < settings.high)
                luma = d["display"].astype(np.float32).mean(axis=2)
                size = 2 * max(1, round(0.01 * max(h, w))) + 1
                mean = ndimage.uniform_filter(luma, size)
                std = np.sqrt(np.maximum(ndimage.uniform_filter(luma * luma, size) - mean**2, 0.0))
                trimap = trimap.copy()
                trimap[soft & (std > level)] = hr.UNKNOWN
                return hr.refine_closed_form(
                    d["display"], trimap, mask, epsilon=settings.epsilon, prior_weight=settings.weights(mask)
                )

            return run

        keep = ("raw u2netp", "mirrored prior", "prior at LR, upsampled")
        cands = {k: v for k, v in cands.items() if k in keep}
        if grid == "mirror":

            def single(d: dict[str, np.ndarray]) -> np.ndarray:
                h, w = d["gt"].shape
                trimap = prior_band_trimap(d["raw"], d["raw"], d["raw"] * 0, h, w)
                return hr.refine_closed_form(d["display"], trimap, d["raw"], prior_weight=PriorBandSettings().weight)

            cands["prior band (default), mirrored prior"] = band(PriorBandSettings())
            cands["prior band (default), single-run prior"] = single
            return cands
        if grid == "outside":
            # Rules tried against the prior's faint lines along set edges (floor, kerb) and its
            # half-sure blobs outside its contour; none beat the default on either half.
            def rule_band(rule: str, size: float) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
                def run(d: dict[str, np.ndarray]) -> np.ndarray:
                    from scipy import ndimage

                    from vfxmatte.sampling import distance_to

                    if "lr_mean_0.3" not in d:
                        raise SystemExit("--grid outside needs the LR ensemble: run `cache` without --light")
                    h, w = d["gt"].shape
                    settings = PriorBandSettings()
                    trimap = prior_band_trimap(d["prior_lr"], d["prior_lr"], d["prior_lr"] * 0, h, w, settings)
                    mask, long_side = up(d["prior_lr"], d), max(h, w)
                    outer = (mask < 0.5) & (trimap == hr.UNKNOWN)

                    def solve(guide: np.ndarray) -> np.ndarray:  # the default band's solve of ``trimap``
                        return hr.refine_closed_form(
                            d["display"], trimap, guide, epsilon=settings.epsilon, prior_weight=settings.weight
                        )

                    if rule == "shared":  # the same band solved by shared matting (whole frame, no tiles)
                        return hr.solve_shared(d["display"], trimap)
                    if rule == "guide":  # the weak prior outside the contour scaled by size
                        guide = np.where(mask >= 0.5, mask, mask * size).astype(np.float32)
                        return solve(guide)
                    if rule == "adds":  # where the LR ensemble sees the subject the prior misses: solved
                        extra = (mask < 0.5) & (up(d["lr_mean_0.3"], d) >= size)
                        radius = max(1, round(settings.radius * long_side))
                        extra = ndimage.maximum_filter(extra, size=2 * radius + 1) if extra.any() else extra
                        trimap[extra & (trimap == hr.BACKGROUND)] = hr.UNKNOWN
                        return solve(mask)
                    if rule == "clip":  # a black point: alpha below size outside the contour → 0
                        alpha = solve(mask)
                        alpha[(mask < 0.5) & (alpha < size)] = 0.0
                        return alpha
                    if rule == "isolated":  # soft regions holding no pixel ≥ 0.5 (blobs apart) → background
                        labels, count = ndimage.label(mask > settings.low)
                        peaks = np.asarray(ndimage.maximum(mask, labels, index=np.arange(1, count + 1)))
                        apart = np.concatenate([[False], peaks < 0.5])[labels]
                        trimap[apart & (trimap == hr.UNKNOWN)] = hr.BACKGROUND
                        return solve(mask)
                    if rule == "thick":  # soft prior far from the prior's confident background
                        drop = outer & (distance_to(mask <= settings.low) > size * long_side)
                    else:  # soft prior the LR ensemble does not see, 1 % or more from the contour
                        near = ndimage.binary_dilation(mask >= 0.5, iterations=round(0.01 * long_side))
                        drop = outer & ~near & (up(d["lr_mean_0.3"], d) <= settings.low)
                        if rule == "thin":  # ... and thinner than 2 × size × the long side
                            k = 2 * max(1, round(size * long_side)) + 1
                            drop &= ndimage.grey_opening(mask, size=(k, k)) <= settings.low
                    trimap[drop] = hr.BACKGROUND
                    return solve(mask)

                return run

            cands["prior band (default)"] = band(PriorBandSettings())
            cands["prior band, unless the LR ensemble misses it"] = rule_band("support", 0.0)
            for size in (0.005, 0.01):
                cands[f"prior band, unless thinner than {size:g} and the LR misses it"] = rule_band("thin", size)
            for size in (0.01, 0.02, 0.04):
                cands[f"prior band, unless farther than {size:g} from the background"] = rule_band("thick", size)
            cands["prior band solved by shared matting"] = rule_band("shared", 0.0)
            for scale in (0.0, 0.5):
                cands[f"prior band, weak prior outside the contour × {scale:g}"] = rule_band("guide", scale)
            for level in (0.3, 0.5, 0.7):
                cands[f"prior band, and where the LR mean is {level:g} or more"] = rule_band("adds", level)
            cands["prior band, soft blobs apart from any subject → background"] = rule_band("isolated", 0.0)
            for point in (0.02, 0.05, 0.1):
                cands[f"prior band, alpha under {point:g} outside the contour → 0"] = rule_band("clip", point)
            return cands
        if grid == "epsilon":  # the closed form's regulariser in the band (1e-6 before)
            for epsilon in (1e-7, 1e-6, 1e-5, 3e-5, 1e-4, 2e-4, 4e-4, 1e-3):
                cands[f"prior band, epsilon {epsilon:g}"] = band(PriorBandSettings(epsilon=epsilon))
            return cands
        if grid == "weight":  # the prior's weight inside the band (the automatic band's 1e-2 until now)
            for weight in (3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0):
                flat = PriorBandSettings(weight=weight, confident_weight=None)
                cands[f"prior band, prior weight {weight:g}"] = band(flat)
            return cands
        if grid == "confident":  # the prior's weight grows where the prior is sure (PriorBandSettings)
            cands["prior band, flat weight 0.01 (before)"] = band(PriorBandSettings(weight=1e-2, confident_weight=None))
            for base in (3e-3, 1e-2):
                for strong in (0.1, 0.3, 1.0):
                    for power in (2.0, 4.0, 8.0):
                        settings = PriorBandSettings(weight=base, confident_weight=strong, confident_power=power)
                        cands[f"prior band, weight {base:g} + {strong:g}·sure^{power:g}"] = band(settings)
            return cands
        if grid == "ambiguous":  # the prior's weight grows where colour cannot separate the two sides
            cands["prior band (default)"] = band(PriorBandSettings())
            for outside in (False, True):
                where = " outside the contour" if outside else ""
                for sigma in (0.01, 0.03):
                    for strong in (0.1, 0.3, 1.0, 3.0):
                        name = f"prior band, + {strong:g}·ambiguity² over {sigma:g}{where}"
                        cands[name] = band(PriorBandSettings(), strong, sigma, outside)
            return cands
        if grid == "coarse":  # the band also pulled towards its own solve at 1/factor of the size

            def coarse_band(
                factor: int, strength: float, down: bool = False, sure: float | None = None
            ) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
                settings = PriorBandSettings(coarse=strength, coarse_factor=factor, coarse_down=down, coarse_sure=sure)

                def run(d: dict[str, np.ndarray]) -> np.ndarray:  # hr.refine's trimap-free band
                    h, w = d["gt"].shape
                    lr_mean, lr_std = d["prior_lr"], d["prior_lr"] * 0
                    trimap = prior_band_trimap(lr_mean, lr_mean, lr_std, h, w, settings)
                    mask = up(d["prior_lr"], d)
                    return hr.solve_prior_band(d["display"], trimap, mask, lr_mean, lr_std, mask, settings)

                return run

            cands["prior band (default)"] = band(PriorBandSettings())
            for factor in (2, 4):
                for strength in (0.01, 0.03, 0.1, 0.3):
                    cands[f"prior band, + {strength:g} towards its solve at 1/{factor}"] = coarse_band(factor, strength)
            for strength in (0.03, 0.1, 0.3, 1.0):
                name = f"prior band, + {strength:g} towards its solve at 1/2 where that is lower"
                cands[name] = coarse_band(2, strength, down=True)
            for strength in (0.1, 0.3, 1.0):
                for sure in (1.0, 4.0):
                    name = f"prior band, + {strength:g}·sure^{sure:g} towards its solve at 1/2 where that is lower"
                    cands[name] = coarse_band(2, strength, down=True, sure=sure)
            return cands
        if grid == "sharpen":  # the band pulled towards a steepened prior
            cands["prior band (default)"] = band(PriorBandSettings())
            for outside in (False, True):
                where = " outside the contour" if outside else ""
                for sharpen in (1.5, 2.0, 3.0):
                    cands[f"prior band, prior steepened ×{sharpen:g}{where}"] = band(
                        PriorBandSettings(), sharpen=sharpen, outside=outside
                    )
                    for strong in (1.0, 3.0):
                        cands[f"prior band, prior steepened ×{sharpen:g}, + {strong:g}·ambiguity² over 0.01{where}"] = (
                            band(PriorBandSettings(), strong, 0.01, outside, sharpen)
                        )
            return cands
        if grid == "reachcolour":  # the reach spares soft interior whose colour is the background's
            cands["prior band (default)"] = band(PriorBandSettings())
            cands["prior band, any distance"] = band(PriorBandSettings(reach=None))
            for k in (8, 16):
                for margin in (1.0, 0.7):
                    cands[f"reach spares background colours, k {k}, margin {margin:g}"] = colour_reach(k, margin)
            for level in (0.03, 0.06, 0.1):
                cands[f"reach spares textured interior, local std over {level:g}"] = texture_reach(level)
            return cands
        if grid == "reach":
            cands["prior band, any distance"] = band(PriorBandSettings(reach=None))
            for reach in (0.01, 0.02, 0.04, 0.08):
                cands[f"prior band, reach inside {reach:g}"] = band(PriorBandSettings(reach=reach))
            for outside in (0.01, 0.02, 0.04, 0.08):
                settings = PriorBandSettings(reach=0.01, reach_outside=outside)
                cands[f"prior band, reach inside 0.01, outside {outside:g}"] = band(settings)
            return cands
        for radius in (0.005, 0.01, 0.02):
            settings = PriorBandSettings(radius=radius)
            cands[f"prior band r{radius:g}"] = band(settings)
        return cands

    def core_band(
        radius_frac: float, source: str, weight: float, agree: bool
    ) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        def run(d: dict[str, np.ndarray]) -> np.ndarray:
            h, w = d["gt"].shape
            prior = up(d["prior_lr"], d)
            radius = max(1, round(radius_frac * max(h, w)))
            trimap = prior_trimap(prior, 0.1, 0.9, radius)
            if agree:
                m, s = d["lr_mean_0.3"], d["lr_std_0.3"]
                ensemble_band = hr.auto_trimap(m, s, h, w, hr.TrimapSettings(radius=radius)) == hr.UNKNOWN
                narrow = (trimap == hr.UNKNOWN) & ~ensemble_band
                trimap[narrow] = np.where(prior[narrow] >= 0.5, hr.FOREGROUND, hr.BACKGROUND)
            guide = prior if source == "prior" else up(d["lr_mean_0.3"], d)
            return hr.refine_closed_form(d["display"], trimap, guide, prior_weight=weight)

        return run

    for frac in (0.005, 0.01, 0.02):
        for source in ("prior", "lr"):
            for agree in (False, True):
                name = f"core+band r{frac:g} {source}{' agree' if agree else ''}"
                cands[name] = core_band(frac, source, 1e-2, agree)
    return cands


def cmd_free(args: argparse.Namespace) -> int:
    work = Path(args.work)
    results = _replay(work, free_candidates(args.grid), lambda a, d: _whole(a, d["gt"]))
    print("\n".join(_protocol(results, 0, "MSE")))
    print("\n".join(_protocol(results, 1, "SAD")))
    return 0


GUIDED_SOLVERS = ("current", "cf", "knn", "rw", "sm", "lkm")


def _guided_solve(solver: str, d: dict[str, np.ndarray]) -> np.ndarray:
    """One trimap solver on the cached plate and guide trimap (codes 0 / 0.5 / 1)."""
    import pymatting

    from vfxmatte import hr
    from vfxmatte.sampling import resize

    image = np.ascontiguousarray(d["display"], dtype=np.float64)
    trimap = d["guide_trimap"].astype(np.float64)
    if solver.endswith("@mask"):
        # The mask guide's trimap: the drawn trimap's pixels >= 0.5 as a coarse mask (as `bench --guide-as mask`).
        from vfxmatte import guide as guidance

        solver = solver.removesuffix("@mask")
        trimap = guidance.mask_trimap((d["guide_trimap"] >= 0.5).astype(np.float32)).astype(np.float64)
        d = {**d, "guide_trimap": trimap.astype(np.float32)}
    if solver == "current":
        lr = np.clip(resize(d["guided_mean"], *trimap.shape), 0.0, 1.0)
        return hr.refine_closed_form(
            d["display"],
            d["guide_trimap"],
            lr,
            epsilon=hr.GUIDED_EPSILON,
            prior_weight=hr.GUIDED_PRIOR,
        )
    if solver == "lr":
        return np.clip(resize(d["guided_mean"], *trimap.shape), 0.0, 1.0)
    estimate = getattr(pymatting, f"estimate_alpha_{solver}")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return np.clip(np.asarray(estimate(image, trimap), dtype=np.float32), 0.0, 1.0)


def cmd_guided_cache(args: argparse.Namespace) -> int:
    """Every solver's alpha per image, as ``WORK/guided/<name>.npz`` (the slow part of ``guided``)."""
    import time

    work = Path(args.work)
    (work / "guided").mkdir(parents=True, exist_ok=True)
    solvers = args.solvers.split(",")
    for names in HALVES.values():
        for name in names:
            target = work / "guided" / f"{name}.npz"
            have: dict[str, np.ndarray] = {}
            if target.exists():
                with np.load(target) as data:
                    have = {k: data[k] for k in data.files}
            todo = [s for s in solvers if s not in have]
            if not todo or not (work / "cache" / f"{name}.npz").exists():
                continue
            d = _load(work, name)
            if "guided_mean" not in d:
                todo = [s for s in todo if s.removesuffix("@mask") not in ("current", "lr")]
            for solver in todo:
                started = time.perf_counter()
                have[solver] = _guided_solve(solver, d)
                have[f"{solver}_seconds"] = np.array(time.perf_counter() - started)
            np.savez(target, **have)  # type: ignore[arg-type]
            print(f"{name}: {', '.join(todo)}", file=sys.stderr, flush=True)
    return 0


def cmd_guided(args: argparse.Namespace) -> int:
    """Unknown-region SAD / MSE of each solver and of per-pixel combinations, per half."""
    work = Path(args.work)
    combos: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}

    def one(solver: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        return lambda g: g[solver]

    def pooled(parts: list[str], how: Callable[..., Any]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        return lambda g: np.asarray(how([g[p] for p in parts], axis=0))

    for solver in args.solvers.split(","):
        combos[solver] = one(solver)
    for pair in args.combos.split(",") if args.combos else []:
        parts = pair.split("+")
        combos["mean(" + "+".join(parts) + ")"] = pooled(parts, np.mean)
        combos["median(" + "+".join(parts) + ")"] = pooled(parts, np.median)
    results: dict[str, dict[str, list[Any]]] = {n: {h: [] for h in HALVES} for n in combos}
    for half, names in HALVES.items():
        for name in names:
            if not (work / "guided" / f"{name}.npz").exists():
                print(f"{name}: not cached, left out", file=sys.stderr)
                continue
            d = _load(work, name)
            with np.load(work / "guided" / f"{name}.npz") as data:
                g = {k: data[k] for k in data.files}
            lacking = [s for s in args.solvers.split(",") if s not in g]
            if lacking:
                print(f"{name}: no {', '.join(lacking)} yet, left out", file=sys.stderr)
                continue
            region = d["unknown_region"]
            row = {}
            for cand, make in combos.items():
                alpha = make(g)
                diff = np.clip(alpha, 0, 1).astype(np.float64) - d["gt"]
                value = (_unknown_sad(alpha, d["gt"], region), float(np.mean(diff[region] ** 2) * 1e3))
                results[cand][half].append(value)
                row[cand] = round(value[0], 2)
            print(name, json.dumps(row), file=sys.stderr, flush=True)
    print("\n".join(_protocol(results, 0, "SAD")))
    print("\n".join(_protocol(results, 1, "MSE")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache")
    p.add_argument("--dataset", default=str(DEFAULT_DATA))
    p.add_argument("--strengths", default="0.3,0.15,0.5")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--light", action="store_true", help="no LR ensemble: what the prior band and the solvers need")
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("free")
    p.add_argument(
        "--grid",
        default="stages",
        choices=(
            "stages",
            "band",
            "prior",
            "mirror",
            "reach",
            "reachcolour",
            "outside",
            "epsilon",
            "weight",
            "confident",
            "ambiguous",
            "sharpen",
            "coarse",
        ),
    )
    p.set_defaults(func=cmd_free)
    p = sub.add_parser("guided-cache")
    p.add_argument("--solvers", default=",".join(GUIDED_SOLVERS))
    p.set_defaults(func=cmd_guided_cache)
    p = sub.add_parser("guided")
    p.add_argument("--solvers", default=",".join(GUIDED_SOLVERS))
    p.add_argument("--combos", default="cf+knn,current+knn,current+cf+knn")
    p.set_defaults(func=cmd_guided)
    for p in sub.choices.values():
        p.add_argument("--work", default=str(DEFAULT_WORK))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
