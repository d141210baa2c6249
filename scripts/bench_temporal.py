"""Temporal stability benchmark: dtSSD, mean SAD and time of --temporal off / shared / prev-latent.

Usage: ``python scripts/bench_temporal.py [--model DIR] [--frames 48] [--size 256] [--update-docs]``

A synthetic moving shot with ground truth is generated with a fixed seed from the training
generator's building blocks (a furry creature with strands, moving and rotating over a
panning background), written as scene-linear EXRs and matted through
:func:`vfxmatte.pipeline.matte_shot` (the CLI's code path) once per mode.  Chunked runs of
the prev-latent modes are compared against their single run to measure the chunk bound.
With ``--update-docs`` the table replaces the block between the temporal markers in
docs/BENCHMARKS.md (the other sections of that file belong to other scripts).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- temporal:begin -->", "<!-- temporal:end -->"


@dataclass
class Mode:
    label: str
    temporal: str
    strength: float = 0.5
    flow: bool = False


MODES = [
    Mode("off", "off"),
    Mode("shared", "shared"),
    Mode("prev-latent 0.3", "prev-latent", 0.3),
    Mode("prev-latent 0.5", "prev-latent", 0.5),
    Mode("prev-latent 0.5 + flow", "prev-latent", 0.5, True),
    Mode("prev-latent 0.7 + flow", "prev-latent", 0.7, True),
]


def moving_shot(frames: int, size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(sRGB images, true alphas): a hairy creature moving and turning over a panning background."""
    from scipy import ndimage

    from vfxmatte.train import synthetic as syn

    rng = np.random.default_rng(seed)
    s = size / 256.0
    # the subject: the generator's creature with its fur strands, drawn once on a larger canvas
    canvas = int(size * 1.25)
    layer, strands, _ = syn._creature(rng, canvas, canvas, s)
    hair_prem, hair_alpha = syn._strand_layer(rng, canvas, canvas, strands, int(95_000 * s**1.7))
    prem, alpha = syn._over(hair_prem, hair_alpha, layer.prem, layer.alpha)
    # the background: wider than the frame, panned by a window sliding across it
    pan = int(size * 0.5)
    background, _ = syn._background(rng, size + pan, size + pan, None, False)
    background = syn._finish_background(rng, syn._add_distractors(rng, background, 3, s), s)
    images, alphas = [], []
    centre = np.array([canvas / 2, canvas / 2])
    for t in range(frames):
        phase = t / max(1, frames - 1)
        angle = math.radians(35.0 * phase)  # turns 35 degrees over the shot
        shift = np.array([0.12 * size * math.sin(2 * math.pi * phase), 0.2 * size * (phase - 0.5)])  # (y, x)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        # output pixel o (frame) samples canvas at rot @ (o - frame centre - shift) + canvas centre
        offset = centre - rot @ (np.array([size / 2, size / 2]) + shift)
        warp = [
            ndimage.affine_transform(channel, rot, offset=offset, output_shape=(size, size), order=1)
            for channel in (*np.moveaxis(prem, 2, 0), alpha)
        ]
        fg_prem = np.clip(np.stack(warp[:3], axis=2), 0, 1)
        a = np.clip(warp[3], 0, 1).astype(np.float32)
        y0, x0 = int(round(pan * phase * 0.6)), int(round(pan * phase))
        bg = background[y0 : y0 + size, x0 : x0 + size]
        images.append(np.clip(fg_prem + bg * (1 - a[..., None]), 0, 1).astype(np.float32))
        alphas.append(a)
    return images, alphas


def write_shot(images: list[np.ndarray], folder: Path) -> str:
    from vfxmatte.io import color
    from vfxmatte.io.exr import write_exr
    from vfxmatte.io.frames import Plate, Window

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        linear = color.convert(image, color.NETWORK_SPACE, color.LINEAR_REC709)
        window = Window(0, 0, image.shape[1], image.shape[0])
        plate = Plate(linear, window, window, "bench", 1001 + i, color.LINEAR_REC709)
        channels = {"R": linear[..., 0], "G": linear[..., 1], "B": linear[..., 2]}
        write_exr(str(folder / f"plate.{1001 + i:04d}.exr"), plate, channels, {})
    return str(folder / "plate.####.exr")


def read_alphas(pattern: str, frames: list[int]) -> list[np.ndarray]:
    import OpenImageIO as oiio

    out = []
    for frame in frames:
        buf = oiio.ImageBuf(pattern.replace("####", f"{frame:04d}"))
        pixels = np.asarray(buf.get_pixels(oiio.FLOAT))
        out.append(pixels[..., buf.spec().channelnames.index("A")].astype(np.float32))
    return out


def moving_edge_share(preds: list[np.ndarray], gts: list[np.ndarray], radius: int = 3) -> float:
    """The share of the squared temporal-derivative error (what dtSSD sums) within ``radius`` px of
    pixels whose true alpha changes between the two frames (> 0.01): error carried by moving
    edges, which a more accurate matte removes, against flicker where nothing moves, which
    temporal smoothing removes."""
    from scipy import ndimage

    total = moving = 0.0
    for t in range(1, len(preds)):
        true_change = gts[t] - gts[t - 1]
        error = ((preds[t] - preds[t - 1]) - true_change) ** 2
        near = ndimage.binary_dilation(np.abs(true_change) > 0.01, iterations=radius)
        total += float(error.sum())
        moving += float(error[near].sum())
    return moving / total if total > 0 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (and the LR size)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the matting runs")
    parser.add_argument("--shot-seed", type=int, default=20261208, help="seed of the synthetic shot")
    parser.add_argument("--chunk", type=int, default=12, help="chunk length for the chunked-vs-single check")
    parser.add_argument("--modes", help="comma-separated labels of MODES to run (default: all)")
    parser.add_argument("--hr", default="off", help="HR refinement (default off: temporal modes act on LR)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--update-docs", action="store_true", help="fill the temporal block of docs/BENCHMARKS.md")
    args = parser.parse_args()

    import torch

    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.metrics import dtssd, sad
    from vfxmatte.model.core import load_model
    from vfxmatte.pipeline import matte_shot

    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    modes = [m for m in MODES if args.modes is None or m.label in args.modes.split(",")]
    images, gts = moving_shot(args.frames, args.size, args.shot_seed)
    frames = list(range(1001, 1001 + args.frames))
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench_temporal_") as tmp_name:
        tmp = Path(tmp_name)
        shot = write_shot(images, tmp / "shot")
        options = RunOptions(device="cpu")

        def params(mode: Mode) -> MatteParams:
            return MatteParams(
                steps=args.steps,
                seeds=args.seeds,
                lr_size=args.size,
                seed=args.seed,
                hr=args.hr,
                temporal=mode.temporal,
                temporal_strength=mode.strength,
                temporal_flow=mode.flow,
            )

        # one untimed frame first: numba JIT of the foreground solver, allocator warm-up
        matte_shot(shot, str(tmp / "warm" / "m.####.exr"), params(MODES[0]), options, frames=[1001], model=model)
        for mode in modes:
            out = str(tmp / mode.label.replace(" ", "_").replace("+", "") / "m.####.exr")
            # CPU time of this process, not wall time: other jobs share the machine, and a
            # single-threaded run's CPU seconds depend much less on how much of it they take.
            started = time.process_time()
            summary = matte_shot(shot, out, params(mode), options, model=model)
            seconds = time.process_time() - started
            if summary.exit_code != 0:
                raise SystemExit(f"{mode.label}: matte_shot exited {summary.exit_code}")
            preds = read_alphas(out, frames)
            row: dict[str, object] = {
                "mode": mode.label,
                "dtssd": dtssd(preds, gts),
                "sad": float(np.mean([sad(p, g) for p, g in zip(preds, gts, strict=True)])),
                "s_per_frame": seconds / args.frames,
                "moving_share": moving_edge_share(preds, gts),
            }
            if mode.temporal == "prev-latent":
                chunk_out = out.replace("/m.####", "_chunked/m.####")
                for first in range(0, args.frames, args.chunk):
                    part = frames[first : first + args.chunk]
                    matte_shot(shot, chunk_out, params(mode), options, frames=part, model=model)
                chunked = read_alphas(chunk_out, frames)
                diffs = [np.abs(a - b) for a, b in zip(preds, chunked, strict=True)]
                row["chunk_max"] = float(max(d.max() for d in diffs))
                row["chunk_mean"] = float(max(d.mean() for d in diffs))
                row["chunk_dtssd"] = dtssd(chunked, gts)
            results.append(row)
            print(json.dumps(row), flush=True)
    off = next((r for r in results if r["mode"] == "off"), None)
    if off is not None:
        for row in results:
            row["dtssd_vs_off"] = float(row["dtssd"]) / float(off["dtssd"]) - 1.0  # type: ignore[arg-type]
            row["sad_vs_off"] = float(row["sad"]) / float(off["sad"]) - 1.0  # type: ignore[arg-type]
            row["time_vs_off"] = float(row["s_per_frame"]) / float(off["s_per_frame"]) - 1.0  # type: ignore[arg-type]
    command = "python scripts/bench_temporal.py " + " ".join(sys.argv[1:])
    table = render(results, args, model.describe(), command)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "results": results}, indent=2))
    if args.update_docs:
        update_docs(table)
    return 0


def _pct(value: object) -> str:
    return f"{float(value) * 100:+.1f}%" if isinstance(value, float) else "–"


def render(results: list[dict[str, object]], args: argparse.Namespace, model: str, command: str) -> str:
    lines = ["## Temporal stability: synthetic moving shot", ""]
    if args.model:
        lines += [
            f"> **Provisional**: measured with `{args.model}`, not the bundled default model (it was not "
            "trained yet); rerun `python scripts/bench_temporal.py --update-docs` once `vfxmatte/model/default` "
            "exists.  An untrained model's mattes are far from the truth, so only the relative dtSSD and "
            "the chunk bound mean much here.",
            "",
        ]
    lines += [
        f"{args.frames} frames of {args.size}x{args.size} px: a furry creature from the training generator "
        f"(`vfxmatte/train/synthetic.py`, shot seed {args.shot_seed}) moving and turning 35 degrees over a "
        "panning background, matted through `vfxmatte.pipeline.matte_shot` (the CLI's code path) with "
        f"model `{model}`, steps {args.steps}, seeds {args.seeds}, LR size {args.size}, HR {args.hr}, "
        f"seed {args.seed}, on the CPU "
        f"({args.threads} thread, {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
        "s/frame is CPU seconds of the benchmark process per frame: other jobs on the machine skew it less "
        "than wall time, but they do skew it).  dtSSD: mean over frame pairs, "
        "RobustVideoMatting scale (`vfxmatte.metrics.dtssd`); SAD: whole image /1000, mean over frames.  "
        "Lower is better for both.",
        "",
        "```sh",
        command,
        "```",
        "",
        "| mode | dtSSD | vs off | on moving edges | SAD | vs off | s/frame | time vs off | chunked max / mean diff "
        "| chunked dtSSD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        chunk = (
            f"{float(r['chunk_max']):.3f} / {float(r['chunk_mean']):.4f}"  # type: ignore[arg-type]
            if "chunk_max" in r
            else "0 (exact)"
        )
        chunk_dtssd = f"{float(r['chunk_dtssd']):.2f}" if "chunk_dtssd" in r else "same"  # type: ignore[arg-type]
        lines.append(
            f"| {r['mode']} | {float(r['dtssd']):.2f} | {_pct(r.get('dtssd_vs_off'))} | "  # type: ignore[arg-type]
            f"{float(r['moving_share']) * 100:.1f}% | "  # type: ignore[arg-type]
            f"{float(r['sad']):.3f} | {_pct(r.get('sad_vs_off'))} | {float(r['s_per_frame']):.2f} | "  # type: ignore[arg-type]
            f"{_pct(r.get('time_vs_off'))} | {chunk} | {chunk_dtssd} |"
        )
    lines += [
        "",
        f"Chunked: the shot matted in chunks of {args.chunk} frames (each chunk warms up from the frame before "
        "its first, matted for state only) against one run; the columns give the largest per-pixel and the "
        "largest per-frame mean absolute alpha difference over all frames.  `off` and `shared` carry no "
        "latents, so their chunked runs are bit-identical (tested in tests/test_temporal.py) unless the "
        "prior jumps exactly at a chunk boundary (docs/VIDEO.md).  On moving edges: the share of dtSSD's "
        "squared error within 3 px of pixels whose true alpha changes between the two frames — error that "
        "moves with the subject's edges (the matte's accuracy) rather than flicker where nothing moves "
        "(what temporal modes remove).",
    ]
    return "\n".join(lines)


def update_docs(table: str) -> None:
    path = REPO / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        # Inside a keep block, so that scripts/make_benchmarks.py carries it over when it regenerates the file.
        text = text.rstrip("\n") + f"\n\n<!-- keep:temporal -->\n{block}\n<!-- /keep:temporal -->\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
