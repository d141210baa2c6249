"""Does the uncertainty pass find the errors?  Collect, fit and report (docs/BENCHMARKS.md).

Usage (from the repository root)::

    python scripts/bench_uncertainty.py collect ../shared/data/matting/alphamatting build/uncertainty/default
    python scripts/bench_uncertainty.py collect ../shared/data/matting/alphamatting build/uncertainty/guided \
        --guide trimap
    python scripts/bench_uncertainty.py collect ../shared/data/matting/alphamatting build/uncertainty/mask \
        --guide mask
    python scripts/bench_uncertainty.py fit build/uncertainty/default build/uncertainty/mask
    python scripts/bench_uncertainty.py report build/uncertainty/default build/uncertainty/guided \
        build/uncertainty/mask --update-docs

``collect`` mattes every image of a dataset folder through :func:`vfxmatte.pipeline.matte_plate`
(the CLI's code path) and stores, per image, what the uncertainty pass was handed (the LR
ensemble, the final matte, the prior's mask, the carried guide's doubt) and the ground truth.
``fit`` chooses the weights of :data:`vfxmatte.uncertainty.WEIGHTS` on one half of the items
(GT01–GT10) and scores them on the other (GT11–GT20), then the other way round, and prints
both tables and the weights fitted on all items.  ``report`` scores the seed-ensemble spread
(the pass before this one) and the combined pass per half with the weights each half was
*not* fitted on, writes the sparsification plot (docs/img/uncertainty_sparsification.png) and,
with ``--update-docs``, the marked block of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- uncertainty:begin -->", "<!-- uncertainty:end -->"
PLOT = REPO / "docs" / "img" / "uncertainty_sparsification.png"


# -- collect ----------------------------------------------------------------------------


def collect(dataset: str, out: Path, guide: str | None, limit: int | None, lr_size: int) -> None:
    from vfxmatte import pipeline
    from vfxmatte.bench import _coarse_mask, _save_png, scan_dataset
    from vfxmatte.config import MatteParams
    from vfxmatte.evaluate import read_matte
    from vfxmatte.io.exr import read_plate
    from vfxmatte.model.core import load_model

    model = load_model(device="cpu")
    params = MatteParams(lr_size=lr_size)
    out.mkdir(parents=True, exist_ok=True)
    captured: dict[str, Any] = {}
    estimate = pipeline.estimate_uncertainty

    def recording(lr_mean: np.ndarray, lr_std: np.ndarray, alpha: np.ndarray, **kwargs: Any) -> Any:
        captured.update(lr_mean=lr_mean, lr_std=lr_std, prior=kwargs.get("prior"), doubt=kwargs.get("subject_doubt"))
        return estimate(lr_mean, lr_std, alpha, **kwargs)

    pipeline.estimate_uncertainty = recording
    items = scan_dataset(dataset).items[:limit]
    for index, item in enumerate(items):
        plate = read_plate(item.image, index)
        run = params
        if guide == "trimap":
            run = replace(params, guide=str(item.trimap), guide_kind="trimap")
        elif guide == "mask":
            mask_path = out / f"{item.name}.mask.png"
            _save_png(mask_path, _coarse_mask(str(item.trimap)))
            run = replace(params, guide=str(mask_path), guide_kind="mask")
        captured.clear()
        matte = pipeline.matte_plate(model, plate, run)
        gt = np.asarray(read_matte(item.alpha, "ground truth", None), dtype=np.float32) / 255.0
        arrays = {
            "alpha": matte.alpha.astype(np.float32),
            "gt": gt,
            "lr_mean": captured["lr_mean"],
            "lr_std": captured["lr_std"],
        }
        if captured["prior"] is not None:
            arrays["prior"] = captured["prior"]
        if captured["doubt"] is not None:
            arrays["subject_doubt"] = captured["doubt"]
        np.savez_compressed(out / f"{item.name}.npz", **arrays)
        print(f"{item.name}: MSE x1e3 {float(np.mean((matte.alpha - gt) ** 2)) * 1e3:.2f}", flush=True)
    (out / "run.json").write_text(json.dumps({"dataset": dataset, "guide": guide, "lr_size": lr_size}) + "\n")


# -- fit and score ----------------------------------------------------------------------


@dataclass
class Item:
    name: str
    alpha: np.ndarray
    gt: np.ndarray
    lr_std: np.ndarray
    signals: dict[str, np.ndarray]  # LR, plus ``subject`` at full resolution


def load_items(folder: Path) -> list[Item]:
    from vfxmatte.uncertainty import lr_signals

    items = []
    for path in sorted(folder.glob("*.npz")):
        data = np.load(path)
        prior = data["prior"] if "prior" in data else None
        signals = lr_signals(data["lr_mean"], data["lr_std"], data["alpha"], prior)
        if "subject_doubt" in data:
            signals["subject"] = data["subject_doubt"]
        items.append(Item(path.stem, data["alpha"], data["gt"], data["lr_std"], signals))
    if not items:
        raise SystemExit(f"{folder}: no collected items (*.npz); run the collect step first")
    return items


def halves(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """GT01–GT10 and GT11–GT20 (the first and second half by name)."""
    middle = (len(items) + 1) // 2
    return items[:middle], items[middle:]


def design(item: Item, stride: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel signal columns (every ``stride``-th pixel) and the absolute error."""
    from vfxmatte.sampling import resize
    from vfxmatte.uncertainty import SIGNALS

    height, width = item.alpha.shape
    columns = []
    for name in SIGNALS:
        if name == "subject":
            full = item.signals.get("subject", np.zeros((height, width), np.float32))
        else:
            full = resize(item.signals[name], height, width)
        columns.append(full[::stride, ::stride].ravel())
    error = np.abs(item.alpha - item.gt)[::stride, ::stride].ravel()
    return np.stack(columns, axis=1), error


def fit(items: list[Item]) -> Any:
    """Non-negative least squares of the absolute error on the signals (each image weighs the same)."""
    from scipy.optimize import nnls

    from vfxmatte.uncertainty import SIGNALS, UncertaintyWeights

    rows, targets = [], []
    for item in items:
        x, y = design(item)
        scale = 1.0 / np.sqrt(len(y))
        rows.append(np.c_[x, np.ones(len(y))] * scale)
        targets.append(y * scale)
    solution, _ = nnls(np.concatenate(rows), np.concatenate(targets), maxiter=2000)
    values = dict(zip([*SIGNALS, "bias"], (round(float(v), 4) for v in solution), strict=True))
    return UncertaintyWeights(**values)


def spread_map(item: Item) -> np.ndarray:
    from vfxmatte.sampling import resize

    return np.clip(resize(item.lr_std, *item.alpha.shape), 0.0, None)


def combined_map(item: Item, weights: Any) -> np.ndarray:
    from vfxmatte.uncertainty import combine

    height, width = item.alpha.shape
    return combine(item.signals, height, width, item.signals.get("subject"), weights)


def score_items(items: list[Item], maps: list[np.ndarray]) -> dict[str, Any]:
    """Per-image sparsification, their mean ratio, the pooled one and the per-image rank correlation."""
    from vfxmatte.metrics import rank_correlation, sparsification

    per_image = [sparsification(i.alpha, i.gt, m) for i, m in zip(items, maps, strict=True)]
    pooled = sparsification([i.alpha for i in items], [i.gt for i in items], maps)
    mse = [float(np.mean((i.alpha - i.gt) ** 2)) for i in items]
    return {
        "names": [i.name for i in items],
        "ratios": [s.ratio for s in per_image],
        "mean_ratio": float(np.mean([s.ratio for s in per_image])),
        "pooled": pooled,
        "rank": rank_correlation([float(m.mean()) for m in maps], mse),
    }


def cross_fitted(items: list[Item]) -> tuple[list[Item], list[Item], Any, Any]:
    first, second = halves(items)
    return first, second, fit(first), fit(second)


def cmd_fit(folders: list[Path]) -> None:
    every: list[Item] = []
    for folder in folders:
        items = load_items(folder)
        every += items
        first, second, w_first, w_second = cross_fitted(items)
        for label, test, weights in (("GT01-10", first, w_second), ("GT11-20", second, w_first)):
            combined = score_items(test, [combined_map(i, weights) for i in test])
            spread = score_items(test, [spread_map(i) for i in test])
            print(
                f"{folder.name} {label}: AUSE/random spread {spread['mean_ratio']:.3f} -> combined "
                f"{combined['mean_ratio']:.3f} (pooled {spread['pooled'].ratio:.3f} -> "
                f"{combined['pooled'].ratio:.3f}); "
                f"rank {spread['rank']:.2f} -> {combined['rank']:.2f}"
            )
        print(f"  weights fitted on GT01-10: {w_first.as_dict()}\n  weights fitted on GT11-20: {w_second.as_dict()}")
    print(f"all folders, all items: {fit(every).as_dict()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="matte a dataset and store what the uncertainty pass sees")
    c.add_argument("dataset")
    c.add_argument("out", type=Path)
    c.add_argument("--guide", choices=("trimap", "mask"))
    c.add_argument("--limit", type=int)
    c.add_argument("--lr-size", type=int, default=512)
    f = sub.add_parser("fit", help="cross-fit the weights on the two halves")
    f.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.dataset, args.out, args.guide, args.limit, args.lr_size)
    elif args.command == "fit":
        cmd_fit(args.folders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
