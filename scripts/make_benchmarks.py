"""Write docs/BENCHMARKS.md from the real CLI commands, each number beside the command that made it.

Usage::

    python scripts/make_benchmarks.py [--model DIR] [--devices cpu,cuda] [--quick] [--output docs/BENCHMARKS.md]

Every figure in the document comes from the JSON of one ``vfxmatte bench …`` or
``vfxmatte eval …`` command, run here as a subprocess (``python -m vfxmatte.cli …``) from
the repository root; the document prints those commands in a code block above each table.
Inputs that do not exist on disk are made by this script's own sub-commands, which are
printed too, so every table can be rebuilt by hand:

* ``synth OUT --count N --size S --seed K``: composites of the training generator
  (``CompositeDataset``) with a held-out seed, as ``OUT/image/*.png`` (8-bit sRGB) and
  ``OUT/alpha/*.png`` (16-bit);
* ``synth OUT --width W --height H --count N --seed K``: full-size frames for the speed table;
* ``baseline zero|difference-key IMAGES OUT``: the trimap-free baselines' mattes;
* ``random-pair OUT --width W --height H --seed K``: a random 4096x2160 prediction / ground
  truth pair (half-float EXR) for the metrics' speed.

Sections: quality on the alphamatting.com GT01–GT20 fixture (``../shared/data/matting``;
evaluation only, never training), whole image and trimap unknown region; quality on a
synthetic set with a fixed seed; speed per resolution and device; the metrics' speed on a
4096x2160 pair.  ``--quick`` runs a handful of images per set to check the whole chain; a
document written with it says so at the top.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().relative_to(REPO).as_posix()
DEFAULT_DATA = REPO.parent / "shared" / "data" / "matting" / "alphamatting"
DEFAULT_WORK = REPO / "build" / "benchmarks"
#: Seed of the synthetic benchmark set; the bundled model trains on seed 20261125.
SYNTH_SEED = 4242
SPEED_SIZES = {"512": (512, 512), "1080p": (1920, 1080), "2160p": (3840, 2160)}


# --------------------------------------------------------------------------- image helpers


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import OpenImageIO as oiio

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[:, :, None])  # OIIO wants (H, W, C)
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], str(pixels.dtype))
    out = oiio.ImageOutput.create(str(path))
    if out is None or not out.open(str(path), spec) or not out.write_image(pixels) or not out.close():
        raise SystemExit(f"{path}: cannot write: {oiio.geterror()}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _to_uint16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)


def cmd_synth(args: argparse.Namespace) -> int:
    """Composites as ``OUT/image/NNNN.png`` + ``OUT/alpha/NNNN.png``."""
    from vfxmatte.train.synthetic import Composite, CompositeDataset, make_composite

    out = Path(args.out)
    composites: Iterator[Composite]
    if args.width or args.height:
        if not (args.width and args.height):
            raise SystemExit("synth: give both --width and --height (or --size)")
        size = (args.height, args.width)
        composites = (make_composite(np.random.default_rng([args.seed, i]), size) for i in range(args.count))
    else:
        composites = iter(CompositeDataset(length=args.count, size=args.size, seed=args.seed))
    for sub in ("image", "alpha"):  # composites of an earlier, larger run would join the set
        for stale in (out / sub).glob("[0-9][0-9][0-9][0-9].png"):
            stale.unlink()
    for i, comp in enumerate(composites):
        _write_png(out / "image" / f"{i:04d}.png", _to_uint8(comp.image))
        _write_png(out / "alpha" / f"{i:04d}.png", _to_uint16(comp.alpha))
    print(f"{args.count} composites written to {out}")
    return 0


def _difference_key(image: np.ndarray, low: float = 0.05, high: float = 0.25) -> np.ndarray:
    """Distance from the median colour of the 4-pixel border, ramped from ``low`` to ``high``."""
    border = np.concatenate(
        [image[:4].reshape(-1, 3), image[-4:].reshape(-1, 3), image[:, :4].reshape(-1, 3), image[:, -4:].reshape(-1, 3)]
    )
    background = np.median(border, axis=0)
    distance = np.linalg.norm(image - background, axis=2) / np.sqrt(3.0)
    return np.clip((distance - low) / (high - low), 0.0, 1.0)


def cmd_baseline(args: argparse.Namespace) -> int:
    """A trimap-free baseline's matte for every image of a dataset (as ``OUT/<name>.png``)."""
    from vfxmatte.bench import find_dataset
    from vfxmatte.io.exr import read_plate

    items = find_dataset(args.dataset)
    items = items[: args.limit] if args.limit else items
    for index, item in enumerate(items):
        plate = read_plate(item.image, index, colorspace="sRGB Encoded Rec.709 (sRGB)")
        image = np.clip(plate.rgb, 0.0, 1.0)
        if args.kind == "zero":
            alpha = np.zeros(image.shape[:2], np.float32)
        elif args.kind == "u2netp":
            from vfxmatte.prior import load_prior

            prior = load_prior("u2netp")
            assert prior is not None
            alpha = prior.predict(image, mirror=False)  # the published single-run inference
        elif args.kind in ("closed-form", "knn"):
            import OpenImageIO as oiio
            from pymatting import estimate_alpha_cf, estimate_alpha_knn

            if item.trimap is None:
                raise SystemExit(f"{item.image}: {args.kind} needs a trimap")
            values = np.asarray(oiio.ImageBuf(str(item.trimap)).get_pixels(oiio.FLOAT))[..., 0].astype(np.float64)
            values = values / max(float(values.max()), 1e-6)
            trimap = np.where(values <= 0.0, 0.0, np.where(values >= 1.0, 1.0, 0.5))
            solve = estimate_alpha_cf if args.kind == "closed-form" else estimate_alpha_knn
            alpha = np.clip(solve(image.astype(np.float64), trimap), 0.0, 1.0).astype(np.float32)
        else:
            alpha = _difference_key(image)
        _write_png(Path(args.out) / f"{item.name}.png", _to_uint8(alpha))
    print(f"{len(items)} {args.kind} mattes written to {args.out}")
    return 0


def cmd_random_pair(args: argparse.Namespace) -> int:
    """``OUT/pred.exr`` and ``OUT/gt.exr``: uniform random mattes (half float, one channel Y)."""
    import OpenImageIO as oiio

    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("pred", "gt"):
        pixels = rng.random((args.height, args.width, 1), dtype=np.float32)
        spec = oiio.ImageSpec(args.width, args.height, 1, "half")
        spec.channelnames = ("Y",)
        spec.attribute("compression", "zip")
        path = str(out / f"{name}.exr")
        writer = oiio.ImageOutput.create(path)
        if writer is None or not writer.open(path, spec) or not writer.write_image(pixels) or not writer.close():
            raise SystemExit(f"{path}: cannot write: {oiio.geterror()}")
    print(f"random {args.width}x{args.height} pair written to {out}")
    return 0


# --------------------------------------------------------------------------- running commands


@dataclass
class Runner:
    """Runs CLI and helper commands from the repository root and remembers how to print them."""

    log: list[str] = field(default_factory=list)

    def shown(self, argv: list[str]) -> str:
        return shlex.join(argv)

    def vfxmatte(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[dict[str, Any], str]:
        """Run ``vfxmatte ARGS --json``: the parsed JSON and the command as the document shows it."""
        argv = ["vfxmatte", *args, "--json"]
        proc = self._run([sys.executable, "-m", "vfxmatte.cli", *args, "--json"], argv, ok)
        return json.loads(proc.stdout), shlex.join(argv)

    def helper(self, *args: str) -> str:
        """Run one of this script's sub-commands; the command as the document shows it."""
        argv = ["python", SCRIPT, *args]
        self._run([sys.executable, str(REPO / SCRIPT), *args], argv, (0,))
        return shlex.join(argv)

    def _run(self, real: list[str], argv: list[str], ok: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
        print(f"$ {shlex.join(argv)}", file=sys.stderr, flush=True)
        proc = subprocess.run(real, cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode not in ok:
            raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(argv)}\n{proc.stderr.strip()}")
        self.log.append(shlex.join(argv))
        return proc


def _rel(path: Path) -> str:
    """``path`` relative to the repository root when possible (the commands run from there)."""
    try:
        return os.path.relpath(path, REPO)
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- document


HEADER = "| {first} | MSE | MAD | SAD | Conn | Grad | s/img | peak GiB |\n|---|---:|---:|---:|---:|---:|---:|---:|"


def _row(label: str, scores: dict[str, float], seconds: float | None = None, peak: float | None = None) -> str:
    cells = [f"{scores[k]:.2f}" for k in ("mse", "mad", "sad", "conn", "grad")]
    cells += ["–" if seconds is None else f"{seconds:.2f}", "–" if peak is None else f"{peak:.2f}"]
    return "| " + " | ".join([label, *cells]) + " |"


def _peak(result: dict[str, Any]) -> float | None:
    peak = result.get("peak_cuda_gib")
    return peak if peak is not None else result.get("peak_rss_gib")


def _code(commands: list[str]) -> list[str]:
    return ["```sh", *commands, "```", ""]


def _quality_section(
    run: Runner, title: str, dataset: Path, model_args: list[str], device: str, limit: int | None, trimaps: bool,
    work: Path, intro: str, variants: tuple[tuple[str, tuple[str, ...]], ...] = (),
    baseline_kinds: tuple[str, ...] = ("zero", "difference-key"),
) -> list[str]:
    data = _rel(dataset)
    limit_args = ["--limit", str(limit)] if limit else []
    bench_args = ["bench", data, *model_args, "--device", device, *limit_args]
    if trimaps:
        bench_args.append("--trimaps")
    result, bench_cmd = run.vfxmatte(*bench_args)
    label = f"vfxmatte ({result['label']})"
    commands = [bench_cmd]
    variant_results: list[tuple[str, dict[str, Any]]] = []
    for variant_label, extra in variants:
        variant, variant_cmd = run.vfxmatte(*bench_args, *extra)
        commands.append(variant_cmd)
        variant_results.append((f"vfxmatte {variant_label}", variant))
    baselines: list[tuple[str, dict[str, Any]]] = []
    for kind in baseline_kinds:
        out = _rel(work / "baselines" / dataset.name / kind)
        commands.append(run.helper("baseline", kind, data, out, *limit_args))
        eval_args = ["eval", out, _rel(dataset / Path(result["items"][0]["alpha"]).parent.name)]
        if trimaps:
            eval_args += ["--trimap", _rel(dataset / Path(result["items"][0]["trimap"]).parent.name)]
        report, eval_cmd = run.vfxmatte(*eval_args, ok=(0, 1) if limit else (0,))
        commands.append(eval_cmd)
        baselines.append((kind, report))
    count = result["count"]
    lines = [f"## {title}", "", intro, "", *_code(commands)]
    lines += [
        f"Whole image ({count} images; P3M convention: MSE ×1e3, MAD ×1e3, SAD /1000, Conn /1000, Grad /10):",
        "",
        HEADER.format(first="method"),
        _row(label, result["mean"]["whole"], result["seconds_per_image"], _peak(result)),
    ]
    for variant_label, variant in variant_results:
        lines.append(_row(variant_label, variant["mean"]["whole"], variant["seconds_per_image"], _peak(variant)))
    for kind, report in baselines:
        lines.append(_row(f"baseline: {kind}", report["mean"]["whole"]))
    if trimaps:
        lines += [
            "",
            f"Trimap unknown region ({count} images, Trimap1; DIM / GCA convention: MSE ×1e3, MAD ×1e3, "
            "SAD /1000, Conn /1000, Grad /1000).  Rows without `--guided` / `closed-form` are trimap-free "
            "predictions scored inside the band the trimap marks unknown; `--guided` gives the model each "
            "trimap as an Eq. 8 guide, `--guide-as mask` a coarse mask instead (the trimap's pixels >= 0.5, "
            "as a roto shape would give), and `closed-form` is pymatting's `estimate_alpha_cf` with the same "
            "trimap.",
            "",
            HEADER.format(first="method"),
            _row(label, result["mean"]["unknown"], result["seconds_per_image"], _peak(result)),
        ]
        for variant_label, variant in variant_results:
            lines.append(_row(variant_label, variant["mean"]["unknown"], variant["seconds_per_image"], _peak(variant)))
        for kind, report in baselines:
            lines.append(_row(f"baseline: {kind}", report["mean"]["unknown"]))
    if {Path(str(i["name"])).stem for i in result["items"]} >= set().union(*HALVES.values()):
        table_rows = [(label, result)] + variant_results + [(f"baseline: {k}", r) for k, r in baselines]
        lines += ["", "Per half of the tuning protocol (whole image; MSE ×1e3, SAD /1000):", ""]
        lines += halves_table([(lb, r) for lb, r in table_rows if r["mean"]["whole"] is not None], "whole")
        if trimaps:
            lines += ["", "Per half, trimap unknown region (MSE ×1e3, SAD /1000):", ""]
            lines += halves_table(table_rows, "unknown")
    lines += [
        "",
        f"s/img: matting time per image on `{result['device']}` after one warm-up image "
        f"({result['warmup_seconds']:.2f} s); peak GiB: "
        + ("CUDA peak allocated." if result.get("peak_cuda_gib") is not None else "peak RSS of the process.")
        + f" Parameters: {_params(result)}.",
        "",
    ]
    return lines


#: The tuning protocol's halves of alphamatting GT01–GT20 (docs/BENCHMARKS.md): defaults are
#: chosen on one and reported on the other, then swapped.
HALVES = {"A (GT01–GT10)": {f"GT{i:02d}" for i in range(1, 11)}, "B (GT11–GT20)": {f"GT{i:02d}" for i in range(11, 21)}}


def _half_means(result: dict[str, Any], region: str, names: set[str] | None) -> dict[str, float] | None:
    scored = [
        item[region]
        for item in result["items"]
        if item.get(region) is not None and (names is None or Path(str(item["name"])).stem in names)
    ]
    if not scored:
        return None
    return {key: float(np.mean([s[key] for s in scored])) for key in ("mse", "sad")}


def halves_table(rows: list[tuple[str, dict[str, Any]]], region: str) -> list[str]:
    """MSE and SAD per half of GT01–GT20 and on all of it, from each result's per-item scores."""
    columns = [*HALVES, "all"]
    lines = [
        "| method | " + " | ".join([*(f"MSE {c}" for c in columns), *(f"SAD {c}" for c in columns)]) + " |",
        "|---|" + "---:|" * (2 * len(columns)),
    ]
    for label, result in rows:
        means = [_half_means(result, region, HALVES.get(c)) for c in columns]
        if any(m is None for m in means):
            continue
        cells = [f"{m['mse']:.2f}" for m in means if m] + [f"{m['sad']:.2f}" for m in means if m]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return lines


def _params(result: dict[str, Any]) -> str:
    p = result["params"]
    return f"steps {p['steps']}, seeds {p['seeds']}, LR size {p['lr_size']}, seed {p['seed']}"


def _speed_section(run: Runner, model_args: list[str], devices: list[str], work: Path, quick: bool) -> list[str]:
    count = 2 if quick else 3
    commands: list[str] = []
    rows: list[str] = []
    made: dict[str, str] = {}
    for name, (width, height) in SPEED_SIZES.items():
        out = _rel(work / "speed" / name)
        made[name] = out
        commands.append(
            run.helper("synth", out, "--width", str(width), "--height", str(height), "--count", str(count),
                       "--seed", str(SYNTH_SEED))
        )
    for device in devices:
        for name, (width, height) in SPEED_SIZES.items():
            result, cmd = run.vfxmatte("bench", made[name], *model_args, "--device", device)
            commands.append(cmd)
            peak = _peak(result)
            rows.append(
                f"| {name} ({width}×{height}) | {result['device']} | {result['seconds_per_image']:.2f} | "
                f"{result['warmup_seconds']:.2f} | {'–' if peak is None else f'{peak:.2f}'} | {count - 1} |"
            )
    return [
        "## Speed per resolution and device",
        "",
        "Synthetic frames at each size, matted through the CLI's code path (read, LR ensemble, upsampling, "
        f"foreground estimation); s/img excludes reading and scoring.  Frame 0 warms up; s/img is the mean of "
        f"the other {count - 1}.",
        "",
        *_code(commands),
        "| frame | device | s/img | warm-up s | peak GiB | timed frames |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
        "",
        "Peak GiB: CUDA peak allocated on a GPU, else the process's peak RSS (model and frame included).",
        "",
    ]


def _metrics_section(run: Runner, work: Path) -> list[str]:
    out = _rel(work / "metrics4k")
    commands = [run.helper("random-pair", out, "--width", "4096", "--height", "2160", "--seed", "0")]
    timings = []
    report: dict[str, Any] = {}
    for _ in range(3):
        report, cmd = run.vfxmatte("eval", f"{out}/pred.exr", f"{out}/gt.exr")
        timings.append(report["timings"])
    commands.append(cmd + "   # run 3 times")
    metric_s = [t["metrics_s"] for t in timings]
    read_s = [t["read_s"] for t in timings]
    verdict = "meets" if min(metric_s) <= 3.0 else "misses"
    return [
        "## Metrics speed: one 4096×2160 pair",
        "",
        "All five whole-image metrics (SAD, MSE, MAD, Grad, Conn; P3M convention) on a uniform-random pair, "
        "the worst case for Conn (many small components at every threshold).  `metrics_s` is the time "
        "inside the metrics, reading the two EXRs excluded (`read_s`).",
        "",
        *_code(commands),
        "| run | metrics_s | read_s |",
        "|---|---:|---:|",
        *[f"| {i + 1} | {m:.2f} | {r:.2f} |" for i, (m, r) in enumerate(zip(metric_s, read_s, strict=True))],
        "",
        f"Best of three: {min(metric_s):.2f} s, which {verdict} the target of ≤ 3 s for all five metrics.",
        "",
    ]


def _machine_line(devices: list[str]) -> str:
    import torch

    from vfxmatte.bench import _cpu_name

    text = (
        f"{_cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    if "cuda" in devices or any(d.startswith("cuda") for d in devices):
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def _kept_sections(output: Path) -> list[str]:
    """Blocks between ``<!-- keep:NAME -->`` and ``<!-- /keep:NAME -->`` (other scripts write them): kept."""
    if not output.is_file():
        return []
    text = output.read_text(encoding="utf-8")
    kept: list[str] = []
    for match in re.finditer(r"<!-- keep:(\S+) -->.*?<!-- /keep:\1 -->", text, flags=re.S):
        kept += ["", match.group(0)]
    return kept


def cmd_all(args: argparse.Namespace) -> int:
    run = Runner()
    work = Path(args.work).resolve()
    data = Path(args.data).resolve()
    if not (data / "input").is_dir():
        raise SystemExit(f"{data}: the alphamatting fixture (input/ gt/ trimap/) is not there; pass --data")
    import torch

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    model_args = ["--model", _rel(Path(args.model).resolve())] if args.model else []
    for flag, dest in (("--steps", "steps"), ("--seeds", "seeds"), ("--lr-size", "lr_size"), ("--seed", "bench_seed")):
        value = getattr(args, dest)
        if value is not None:
            model_args += [flag, str(value)]
    quality_device = devices[-1]
    limit = 3 if args.quick else None
    synth_count = 4 if args.quick else 20
    synth_dir = work / "synthetic"
    synth_cmd = run.helper(
        "synth", _rel(synth_dir), "--count", str(synth_count), "--size", "512", "--seed", str(SYNTH_SEED)
    )
    lines = [
        "# Benchmarks",
        "",
    ]
    if args.quick:
        lines += [
            "> **DRY RUN (`--quick`)** — a handful of images per set"
            + (f", model `{_rel(Path(args.model).resolve())}`" if args.model else "")
            + ": these numbers check the chain of commands, they are **not** the benchmark.  "
            "Regenerate with `python scripts/make_benchmarks.py` (no `--quick`) for real figures.",
            "",
        ]
    lines += [
        f"Generated by `{shlex.join(['python', SCRIPT, *sys.argv[1:]])}` on "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.  Machine: "
        f"{_machine_line(devices)}.",
        "",
        "Every table below lists the commands that produced its numbers (run from the repository root); each "
        "number is read from the `--json` output of the `vfxmatte` command beside it.  Metric conventions are "
        "those of `vfxmatte/metrics.py`: the whole-image numbers follow P3M's `core/evaluate.py` (the tables "
        "of \"Matting by Generation\"), the unknown-region numbers the DIM / GCA-Matting evaluation code.  "
        "Baselines are trimap-free: `zero` is an all-zero matte; `difference-key` keys the distance (in sRGB) "
        "from the median colour of the image border, ramped from 0.05 to 0.25.  An all-zero matte scores "
        "Conn 0 on the whole image: its intersection with the ground truth is empty at the first threshold, "
        "and P3M's code then leaves every pixel at level 1 (the DIM code, used for the unknown region, does "
        "not; see `vfxmatte.metrics.conn`).",
        "",
    ]
    lines += _quality_section(
        run,
        "Quality: alphamatting.com GT01–GT20",
        data,
        model_args,
        quality_device,
        limit,
        True,
        work,
        "The low-resolution training set of the alphamatting.com benchmark (`../shared/data/matting`, see its "
        "INDEX.md; evaluation only, never used for training).  Whole image and the unknown region of Trimap1.  "
        "The default run uses the U²-Netp prior and the CPU `--hr pymatting` refine; the variants switch one "
        "of them off, or guide with the trimap.  `baseline: u2netp` is the raw prior (320², bilinear back).",
        variants=(
            ("--prior none", ("--prior", "none")),
            ("--hr off", ("--hr", "off")),
            ("--guided", ("--guided",)),
            ("--guided --guide-as mask", ("--guided", "--guide-as", "mask")),
        ),
        baseline_kinds=("zero", "difference-key", "u2netp", "closed-form", "knn"),
    )
    synth_lines = _quality_section(
        run,
        f"Quality: synthetic composites (seed {SYNTH_SEED})",
        synth_dir,
        model_args,
        quality_device,
        None,
        False,
        work,
        f"{synth_count} composites of the training generator (`CompositeDataset(length={synth_count}, size=512, "
        f"seed={SYNTH_SEED})`; the model trains on seed 20261125, so none of these was seen in training), "
        "written as 8-bit sRGB images and 16-bit alphas.",
    )
    code_at = synth_lines.index("```sh") + 1
    synth_lines.insert(code_at, synth_cmd)
    lines += synth_lines
    lines += _speed_section(run, model_args, devices, work, args.quick)
    lines += _metrics_section(run, work)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    lines += _kept_sections(output)
    output.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder passed to every `vfxmatte bench` (default: bundled model)")
    parser.add_argument(
        "--devices", help="comma-separated devices for the speed table (default: cpu, and cuda if present)"
    )
    parser.add_argument("--steps", type=int, help="passed to every `vfxmatte bench` (default: the CLI's)")
    parser.add_argument("--seeds", type=int, help="passed to every `vfxmatte bench` (default: the CLI's)")
    parser.add_argument("--lr-size", type=int, help="passed to every `vfxmatte bench` (default: the CLI's)")
    parser.add_argument(
        "--seed", dest="bench_seed", type=int, help="passed to every `vfxmatte bench` (default: the CLI's)"
    )
    parser.add_argument("--quick", action="store_true", help="a few images per set: a dry run of the whole chain")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="alphamatting folder (input/ gt/ trimap/)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="folder for generated inputs and outputs")
    parser.add_argument("--output", default=str(REPO / "docs" / "BENCHMARKS.md"), help="document to write")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("synth", help="synthetic composites as image/ + alpha/ PNG folders")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--size", type=int, default=512, help="square size (CompositeDataset)")
    p.add_argument("--width", type=int, help="frame width (with --height: full-size frames)")
    p.add_argument("--height", type=int)
    p.add_argument("--seed", type=int, default=SYNTH_SEED)
    p = sub.add_parser("baseline", help="a trimap-free baseline's mattes for a dataset")
    p.add_argument("kind", choices=("zero", "difference-key", "u2netp", "closed-form", "knn"))
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--limit", type=int)
    p = sub.add_parser("random-pair", help="a uniform-random prediction / ground-truth EXR pair")
    p.add_argument("out")
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--height", type=int, default=2160)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    commands = {"synth": cmd_synth, "baseline": cmd_baseline, "random-pair": cmd_random_pair}
    return commands[args.command](args) if args.command else cmd_all(args)


if __name__ == "__main__":
    raise SystemExit(main())
