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
        captured.update(
            lr_mean=lr_mean,
            lr_std=lr_std,
            prior=kwargs.get("prior"),
            doubt=kwargs.get("subject_doubt"),
        )
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


def collect_shot(
    out: Path, target: str, distractor: str, frames: int, width: int, height: int, keyframes: list[int], seed: int
) -> None:
    """A composite shot over real footage (:mod:`vfxmatte.composite_shot`) matted by ``matte_shot``.

    Without ``keyframes`` the run is the trimap-free default; with them, the roto of those
    frames only is the guide (``--guide-kind mask``), carried to the frames between.
    """
    import shutil

    from vfxmatte import pipeline
    from vfxmatte.composite_shot import build_composite_shot, frame_path
    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.model.core import load_model

    shot = build_composite_shot(
        out / "shot", frames=frames, width=width, height=height, target=target, distractor=distractor, seed=seed
    )
    params = MatteParams()
    if keyframes:
        keys = out / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        for frame in keyframes:
            shutil.copy(frame_path(shot.roto, shot.frames[frame]), keys / f"roto.{shot.frames[frame]:04d}.png")
        params = replace(params, guide=str(keys / "roto.####.png"), guide_kind="mask")
    captured: list[int] = []
    estimate = pipeline.estimate_uncertainty

    def recording(lr_mean: np.ndarray, lr_std: np.ndarray, alpha: np.ndarray, **kwargs: Any) -> Any:
        # Frames are matted in order, one call each: save each as it comes (a long run can be cut short).
        frame = shot.frames[len(captured)]
        captured.append(frame)
        arrays = {"lr_mean": lr_mean, "lr_std": lr_std, "alpha": alpha, "gt": shot.true_alpha(frame)}
        if kwargs.get("prior") is not None:
            arrays["prior"] = kwargs["prior"]
        if kwargs.get("subject_doubt") is not None:
            arrays["subject_doubt"] = kwargs["subject_doubt"]
        np.savez_compressed(out / f"{target}.{frame}.npz", **arrays)
        mse = float(np.mean((alpha - arrays["gt"]) ** 2)) * 1e3
        print(f"{target} frame {frame}: MSE x1e3 {mse:.2f}", flush=True)
        return estimate(lr_mean, lr_std, alpha, **kwargs)

    pipeline.estimate_uncertainty = recording
    run = {"target": target, "distractor": distractor, "frames": frames, "size": [width, height]}
    (out / "run.json").write_text(json.dumps(run | {"keyframes": keyframes}) + "\n")
    summary = pipeline.matte_shot(
        shot.plate,
        str(out / "matte" / "m.####.exr"),
        params,
        RunOptions(device="cpu", overwrite=True),
        model=load_model(device="cpu"),
    )
    if summary.exit_code != 0 or len(captured) != len(shot.frames):
        raise SystemExit(f"{out}: the matte run failed: {summary.as_dict()}")


# -- cost -------------------------------------------------------------------------------


def spread_pass(lr_mean: np.ndarray, lr_std: np.ndarray, alpha: np.ndarray, **_: Any) -> Any:
    """The pass before this one: the ensemble's spread upsampled, scored in the edge band."""
    from vfxmatte.pipeline import edge_band_uncertainty
    from vfxmatte.sampling import resize
    from vfxmatte.uncertainty import UncertaintyPass

    height, width = alpha.shape
    spread = np.clip(resize(lr_std, height, width), 0.0, None)
    return UncertaintyPass(map=spread, score=edge_band_uncertainty(lr_mean, lr_std))


def cost(frames: int, rounds: int) -> str:
    """Seconds per 1080p frame of the CPU default with the old and the new pass, alternated in one run."""
    import tempfile
    import time

    sys.path.insert(0, str(REPO / "scripts"))
    from bench_cpu import _plate_files

    from vfxmatte import pipeline
    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.model.core import load_model
    from vfxmatte.uncertainty import estimate

    model = load_model(device="cpu")
    timings: dict[str, list[float]] = {"spread": [], "combined": []}
    pass_seconds: dict[str, list[float]] = {"spread": [], "combined": []}
    with tempfile.TemporaryDirectory(prefix="vfxmatte-uncertainty-cost-") as tmp:
        pattern = _plate_files(Path(tmp), 1920, 1080, frames + 1)
        for round_index in range(rounds + 1):
            for name, function in (("spread", spread_pass), ("combined", estimate)):

                def timed(*args: Any, _f: Any = function, _n: str = name, **kwargs: Any) -> Any:
                    started = time.perf_counter()
                    result = _f(*args, **kwargs)
                    pass_seconds[_n].append(time.perf_counter() - started)
                    return result

                pipeline.estimate_uncertainty = timed
                out = str(Path(tmp) / f"{name}{round_index}" / "m.####.exr")
                wanted = [1001] if round_index == 0 else list(range(1002, 1002 + frames))
                started = time.perf_counter()
                summary = pipeline.matte_shot(pattern, out, MatteParams(), RunOptions(device="cpu"), wanted, model)
                if summary.exit_code != 0:
                    raise SystemExit(f"cost run failed: {summary.as_dict()}")
                if round_index:  # round 0 warms up (JIT, allocator)
                    timings[name].append((time.perf_counter() - started) / frames)
                else:
                    pass_seconds[name].clear()
    old, new = float(np.median(timings["spread"])), float(np.median(timings["combined"]))
    old_pass, new_pass = float(np.median(pass_seconds["spread"])), float(np.median(pass_seconds["combined"]))
    return (
        f"Cost, 1920x1080 synthetic frames through `matte_shot` at the CPU default, the old and the new pass "
        f"alternated in one run ({rounds} rounds of {frames} frames each, medians; "
        f"`python scripts/bench_uncertainty.py cost --frames {frames} --rounds {rounds}`): "
        f"{old:.2f} s per frame with the spread alone, {new:.2f} s with the combined pass "
        f"({(new / old - 1) * 100:+.1f} %, wall time on a shared machine); the pass itself takes "
        f"{new_pass * 1e3:.0f} ms against {old_pass * 1e3:.0f} ms, "
        f"{(new_pass - old_pass) / old * 100:+.1f} % of the frame."
    )


# -- fit and score ----------------------------------------------------------------------


@dataclass
class Item:
    """One collected image or shot frame."""

    name: str
    group: str  # the collection folder's name (default, mask, guided, shot-…, keys-…)
    half: str  # "GT01-10" or "GT11-20": the subject's half (a shot's target's)
    alpha: np.ndarray
    gt: np.ndarray
    lr_mean: np.ndarray
    lr_std: np.ndarray
    signals: dict[str, np.ndarray]  # LR, plus ``subject`` at full resolution
    prior: bool  # the run used the salient-object prior (WEIGHTS) or not (WEIGHTS_GUIDED)


HALVES = ("GT01-10", "GT11-20")


def _half(subject: str) -> str:
    return HALVES[0] if int(subject[2:4]) <= 10 else HALVES[1]


def load_items(folder: Path) -> list[Item]:
    from vfxmatte.uncertainty import lr_signals

    items = []
    for path in sorted(folder.glob("*.npz")):
        data = np.load(path)
        prior = data["prior"] if "prior" in data else None
        signals = lr_signals(data["lr_mean"], data["lr_std"], data["alpha"], prior)
        if "subject_doubt" in data:
            signals["subject"] = data["subject_doubt"]
        subject = path.stem.split(".")[0]
        arrays = (data["alpha"], data["gt"], data["lr_mean"], data["lr_std"])
        items.append(Item(path.stem, folder.name, _half(subject), *arrays, signals, prior is not None))
    if not items:
        raise SystemExit(f"{folder}: no collected items (*.npz); run the collect step first")
    return items


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
    """Non-negative least squares of the absolute error on the signals.

    Each group (collection folder) weighs the same, and each item the same within its group.
    """
    from scipy.optimize import nnls

    from vfxmatte.uncertainty import SIGNALS, UncertaintyWeights

    groups: dict[str, int] = {}
    for item in items:
        groups[item.group] = groups.get(item.group, 0) + 1
    rows, targets = [], []
    for item in items:
        x, y = design(item)
        scale = 1.0 / np.sqrt(len(y) * groups[item.group])
        rows.append(np.c_[x, np.ones(len(y))] * scale)
        targets.append(y * scale)
    solution, _ = nnls(np.concatenate(rows), np.concatenate(targets), maxiter=5000)
    values = dict(zip([*SIGNALS, "bias"], (round(float(v), 4) for v in solution), strict=True))
    return UncertaintyWeights(**values)


def spread_map(item: Item) -> np.ndarray:
    from vfxmatte.sampling import resize

    height, width = item.alpha.shape
    return np.clip(resize(item.lr_std, height, width), 0.0, None)


def combined_map(item: Item, weights: Any) -> np.ndarray:
    from vfxmatte.uncertainty import combine

    height, width = item.alpha.shape
    return combine(item.signals, height, width, item.signals.get("subject"), weights)


def old_score(item: Item) -> float:
    from vfxmatte.pipeline import edge_band_uncertainty

    return edge_band_uncertainty(item.lr_mean, item.lr_std)


@dataclass
class Scored:
    mean_ratio: float  # mean over items of AUSE / AUSE random
    pooled: Any  # Sparsification of all items' pixels together
    rank: float  # Spearman of the frame scores with the true MSE


def score_items(items: list[Item], maps: list[np.ndarray], scores: list[float]) -> Scored:
    from vfxmatte.metrics import rank_correlation, sparsification

    per_image = [sparsification(i.alpha, i.gt, m) for i, m in zip(items, maps, strict=True)]
    pooled = sparsification([i.alpha for i in items], [i.gt for i in items], maps)
    mse = [float(np.mean((i.alpha - i.gt) ** 2)) for i in items]
    return Scored(float(np.mean([s.ratio for s in per_image])), pooled, rank_correlation(scores, mse))


@dataclass
class Row:
    group: str
    half: str
    count: int
    mse: float
    spread: Scored
    combined: Scored


Weights = dict[tuple[str, bool], Any]  # (held-out half, with prior) -> UncertaintyWeights


def fit_regimes(items: list[Item]) -> dict[bool, Any]:
    """One weight set for runs with the prior, one for runs without (as vfxmatte.uncertainty.weights_for)."""
    return {
        prior: fit([i for i in items if i.prior == prior])
        for prior in (True, False)
        if any(i.prior == prior for i in items)
    }


def evaluate_groups(groups: dict[str, list[Item]]) -> tuple[list[Row], Weights]:
    """Each half of each group scored with the weights fitted on the *other* half of every group."""
    every = [item for items in groups.values() for item in items]
    weights: Weights = {}
    for half in HALVES:
        for prior, w in fit_regimes([i for i in every if i.half != half]).items():
            weights[(half, prior)] = w
    rows = []
    for name, items in groups.items():
        for half in HALVES:
            test = [i for i in items if i.half == half]
            if not test:
                continue
            combined = [combined_map(i, weights[(half, i.prior)]) for i in test]
            spread = [spread_map(i) for i in test]
            rows.append(
                Row(
                    name,
                    half,
                    len(test),
                    float(np.mean([np.mean((i.alpha - i.gt) ** 2) for i in test])) * 1e3,
                    score_items(test, spread, [old_score(i) for i in test]),
                    score_items(test, combined, [float(m.mean()) for m in combined]),
                )
            )
    return rows, weights


def table(rows: list[Row], labels: dict[str, str]) -> str:
    lines = [
        "| run | half (weights fitted on the other) | items | MSE | AUSE ratio: spread | combined | "
        "pooled: spread | combined | rank corr.: old score | new score |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {labels.get(r.group, r.group)} | {r.half} | {r.count} | {r.mse:.2f} | {r.spread.mean_ratio:.3f} | "
            f"**{r.combined.mean_ratio:.3f}** | {r.spread.pooled.ratio:.3f} | **{r.combined.pooled.ratio:.3f}** | "
            f"{r.spread.rank:.2f} | **{r.combined.rank:.2f}** |"
        )
    return "\n".join(lines)


def load_groups(folders: list[Path]) -> dict[str, list[Item]]:
    return {folder.name: load_items(folder) for folder in folders}


def cmd_fit(folders: list[Path]) -> None:
    groups = load_groups(folders)
    rows, weights = evaluate_groups(groups)
    print(table(rows, {}))
    for (half, prior), w in weights.items():
        print(f"weights fitted without {half}, {'with' if prior else 'without'} prior: {w.as_dict()}")
    for prior, w in fit_regimes([i for items in groups.values() for i in items]).items():
        print(f"weights fitted on everything, {'with' if prior else 'without'} prior: {w.as_dict()}")


def plot(groups: dict[str, list[Item]], weights: Weights, labels: dict[str, str]) -> None:
    """Pooled sparsification curves per run, both halves together (each scored with the other half's weights)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vfxmatte.metrics import sparsification

    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for index, (name, items) in enumerate(groups.items()):
        ax = fig.add_subplot(rows, cols, index + 1)
        combined = [combined_map(i, weights[(i.half, i.prior)]) for i in items]
        spread = [spread_map(i) for i in items]
        alphas, gts = [i.alpha for i in items], [i.gt for i in items]
        new = sparsification(alphas, gts, combined)
        old = sparsification(alphas, gts, spread)
        ax.plot(new.fractions, new.oracle, color="#2ca02c", label="oracle")
        ax.plot(new.fractions, [1.0] * len(new.fractions), color="#7f7f7f", linestyle=":", label="random")
        ax.plot(old.fractions, old.curve, color="#1f77b4", linestyle="--", label=f"ensemble spread ({old.ratio:.2f})")
        ax.plot(new.fractions, new.curve, color="#d62728", label=f"combined pass ({new.ratio:.2f})")
        ax.set_title(labels.get(name, name), fontsize="medium")
        ax.set_xlabel("fraction of pixels removed (most uncertain first)")
        if index % cols == 0:
            ax.set_ylabel("MSE of the rest / MSE of all")
        ax.set_ylim(0.0, 1.3)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper right")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, format="png")


def weights_text(shipped: dict[bool, Any], weights: Weights) -> str:
    lines = ["| weights | fitted on | " + " | ".join(shipped[True].as_dict()) + " |"]
    lines.append("|---|---|" + "---:|" * len(shipped[True].as_dict()))
    named = {True: "`WEIGHTS` (with the prior)", False: "`WEIGHTS_GUIDED` (guide, no prior)"}
    for prior in (True, False):
        entries = [("everything (shipped)", shipped.get(prior))]
        entries += [(f"all but {half}", weights.get((half, prior))) for half in HALVES]
        for where, w in entries:
            if w is not None:
                lines.append(
                    f"| {named[prior]} | {where} | " + " | ".join(f"{v:.4f}" for v in w.as_dict().values()) + " |"
                )
    return "\n".join(lines)


def collect_command(folder: Path) -> str:
    """The command that collected ``folder``, from its run.json."""
    info = json.loads((folder / "run.json").read_text())
    if "target" not in info:
        guide = f" --guide {info['guide']}" if info.get("guide") else ""
        return f"python scripts/bench_uncertainty.py collect {info['dataset']} {folder}{guide}"
    width, height = info["size"]
    keys = f" --keyframes {','.join(str(k) for k in info['keyframes'])}" if info.get("keyframes") else ""
    return (
        f"python scripts/bench_uncertainty.py collect-shot {folder} --target {info['target']} "
        f"--distractor {info['distractor']} --frames {info['frames']} --width {width} --height {height}{keys}"
    )


def cmd_report(folders: list[Path], update_docs: bool, cost: Path | None) -> None:
    import datetime

    groups = load_groups(folders)
    labels = {}
    for folder in folders:
        info = json.loads((folder / "run.json").read_text())
        if "target" in info:
            kind = f"keyframes {info['keyframes']}" if info.get("keyframes") else "trimap-free default"
            labels[folder.name] = f"shot {info['target']} (+{info['distractor']}), {kind}"
        else:
            labels[folder.name] = {
                None: "GT01-20 trimap-free default",
                "trimap": "GT01-20 trimap-guided",
                "mask": "GT01-20 mask-guided",
            }[info.get("guide")]
    rows, weights = evaluate_groups(groups)
    plot(groups, weights, labels)
    shipped = fit_regimes([i for items in groups.values() for i in items])
    print(table(rows, labels))
    print(f"weights fitted on everything: {shipped}")
    if not update_docs:
        return
    commands = [collect_command(folder) for folder in folders]
    if cost is not None:
        commands.append(f"python scripts/bench_uncertainty.py cost --out {cost}")
    report = f"python scripts/bench_uncertainty.py report {' '.join(str(f) for f in folders)}"
    commands.append(report + (f" --cost {cost}" if cost is not None else "") + " --update-docs")
    cost_text = ""
    if cost is not None:
        cost_text = cost.read_text().strip() + "\n\n"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"""{BEGIN}
## Uncertainty: does the pass find the errors?

Generated by `python scripts/bench_uncertainty.py report` on {stamp}.  `uncertainty.Y` is the
combined pass of `vfxmatte/uncertainty.py` (the estimated absolute alpha error per pixel; the
header's `vfxmatte:uncertainty` is its frame mean); *spread* is the seed ensemble's standard
deviation alone, the pass before it, with the old header score (mean spread in the edge band).
Sparsification (Ilg et al., ECCV 2018): pixels removed most uncertain first, the MSE of the rest
relative to the MSE of all; AUSE is the area between that curve and the oracle's (errors removed
worst first), the ratio divides it by random removal's (0 perfect, 1 chance).  *AUSE ratio* is the
mean over images (shot frames), *pooled* ranks all pixels of the row together.  Rank corr. is
Spearman's between the frame score and the frame's true MSE.  Honest tuning: every row is scored
with the weights fitted (non-negative least squares of the absolute error) on the **other** half
of the subjects (GT01-10 against GT11-20; a shot by its target's half).  Shots are composites of
an alphamatting subject and a second subject crossing behind it over real footage with people
(`vfxmatte/composite_shot.py`; frame counts and sizes in the commands); the keyframe runs guide
with the roto of the listed frames only (0 = the first), carried to the rest.

```sh
{chr(10).join(commands)}
```

{table(rows, labels)}

{weights_text(shipped, weights)}

![sparsification curves](img/{PLOT.name})

{cost_text}{END}"""
    path = REPO / "docs" / "BENCHMARKS.md"
    text = path.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="matte a dataset and store what the uncertainty pass sees")
    c.add_argument("dataset")
    c.add_argument("out", type=Path)
    c.add_argument("--guide", choices=("trimap", "mask"))
    c.add_argument("--limit", type=int)
    c.add_argument("--lr-size", type=int, default=512)
    c = sub.add_parser(
        "collect-shot", help="build a composite shot over real footage, matte it, store the pass's inputs"
    )
    c.add_argument("out", type=Path)
    c.add_argument("--target", default="GT16")
    c.add_argument("--distractor", default="GT14")
    c.add_argument("--frames", type=int, default=20)
    c.add_argument("--width", type=int, default=640)
    c.add_argument("--height", type=int, default=360)
    c.add_argument("--keyframes", default="", help="comma-separated frame indices (0 = first) whose roto guides")
    c.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("fit", help="cross-fit the weights on the two halves")
    f.add_argument("folders", nargs="+", type=Path)
    k = sub.add_parser("cost", help="time the old and the new pass side by side on 1080p frames")
    k.add_argument("--frames", type=int, default=2)
    k.add_argument("--rounds", type=int, default=2)
    k.add_argument("--out", type=Path, help="also write the sentence to this file (for report --cost)")
    r = sub.add_parser("report", help="score, plot and (--update-docs) write the docs/BENCHMARKS.md block")
    r.add_argument("folders", nargs="+", type=Path)
    r.add_argument("--update-docs", action="store_true")
    r.add_argument("--cost", type=Path, help="a Markdown file with the cost measurement to include")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.dataset, args.out, args.guide, args.limit, args.lr_size)
    elif args.command == "collect-shot":
        keys = [int(k) for k in args.keyframes.split(",") if k.strip()]
        collect_shot(args.out, args.target, args.distractor, args.frames, args.width, args.height, keys, args.seed)
    elif args.command == "fit":
        cmd_fit(args.folders)
    elif args.command == "cost":
        text = cost(args.frames, args.rounds)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n")
    elif args.command == "report":
        cmd_report(args.folders, args.update_docs, args.cost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
