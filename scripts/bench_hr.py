"""HR refinement benchmark → the HR section of docs/BENCHMARKS.md.

    python scripts/bench_hr.py [--model DIR] [--simulated-lr] [--sizes 2k,4k] [--out docs/BENCHMARKS.md]

Measures, on synthetic composites with ground truth (vfxmatte.train.synthetic):
  * ``--hr diffusion`` (uncertainty patches, collage) against naive full-frame tiled diffusion
    (every tile, pure-noise start): UNet evaluations, wall time, SAD/MSE; with and without
    the Eq. 6 LR start, and the gradient error along patch borders;
  * the ``--hr pymatting`` path: seconds per 1080p and 4K frame and peak memory (a fresh
    subprocess per size, its ``VmHWM``: ``ru_maxrss`` would report the parent's peak, which
    Linux carries across fork and exec);
  * the gain of ``--hr pymatting`` over ``--hr off`` on ../shared/data/matting (GT01–GT20).

``--simulated-lr`` replaces the model's LR ensemble by the ground truth averaged down to the
LR size and blurred by one LR pixel (std: the LR gradient magnitude).  It isolates the cost and
behaviour of the HR stage from the quality of the LR model, and is labelled as such in the table.
The table is written between ``<!-- hr:begin -->`` and ``<!-- hr:end -->`` (kept by
scripts/make_benchmarks.py through its ``<!-- keep:hr -->`` block).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
SIZES = {"1080p": (1080, 1920), "2k": (1080, 2048), "4k": (2160, 3840)}


def lr_inputs(truth: np.ndarray, image: np.ndarray, model: object | None, lr_size: int, simulated: bool, seed: int):
    """(lr_mean, lr_std) for a frame: the model's ensemble or the simulated one."""
    from vfxmatte.sampling import lr_ensemble, lr_shape, resize

    height, width = truth.shape
    multiple = 8 if model is None else model.size_multiple  # type: ignore[attr-defined]
    lr_h, lr_w = lr_shape(height, width, lr_size, multiple)
    if simulated or model is None:
        mean = ndimage.gaussian_filter(resize(truth, lr_h, lr_w), 1.0)
        std = np.hypot(ndimage.sobel(mean, 0), ndimage.sobel(mean, 1)).astype(np.float32) * 0.1
        return mean.astype(np.float32), std
    ensemble = lr_ensemble(model, resize(image, lr_h, lr_w), steps=10, seeds=4, seed=seed)  # type: ignore[arg-type]
    return ensemble.mean, ensemble.std


def sad_mse(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    diff = pred.astype(np.float64) - truth
    return float(np.abs(diff).sum() / 1000.0), float((diff**2).mean() * 1000.0)


def border_gradient_error(pred: np.ndarray, truth: np.ndarray, positions: list[tuple[int, int]], size: int) -> float:
    """Mean |∇pred − ∇truth| on the pixel columns/rows of patch borders (seams show here)."""
    gy, gx = np.gradient(pred.astype(np.float64))
    ty, tx = np.gradient(truth.astype(np.float64))
    error = np.hypot(gy - ty, gx - tx)
    mask = np.zeros(pred.shape, dtype=bool)
    h, w = pred.shape
    for top, left in positions:
        for y in (top, top + size - 1):
            if 0 <= y < h:
                mask[y, max(0, left) : min(w, left + size)] = True
        for x in (left, left + size - 1):
            if 0 <= x < w:
                mask[max(0, top) : min(h, top + size), x] = True
    return float(error[mask].mean()) if mask.any() else 0.0


def diffusion_rows(model, sizes: list[str], simulated: bool, steps: int, lr_size: int) -> list[dict]:
    from vfxmatte import hr
    from vfxmatte.train.synthetic import make_composite

    rows = []
    f = model.latent_factor
    for name in sizes:
        h, w = SIZES[name]
        comp = make_composite(np.random.default_rng(7), (h, w))
        mean, std = lr_inputs(comp.alpha, comp.image, model, lr_size, simulated, 0)
        lr_alpha = np.clip(hr.resize(mean, h, w), 0, 1)
        runs = [
            ("naive tiled", None),
            ("hr patches, Eq. 6 start", hr.PatchSettings(lr_start=True)),
            ("hr patches, noise start", hr.PatchSettings(lr_start=False)),
        ]
        sad0, mse0 = sad_mse(lr_alpha, comp.alpha)
        rows.append({"size": name, "method": "--hr off (upsampled LR)", "evals": 0, "seconds": 0.0,
                     "sad": sad0, "mse": mse0, "seam": None})  # fmt: skip
        for method, settings in runs:
            started = time.perf_counter()
            if settings is None:
                result = hr.tiled_diffusion(model, comp.image, steps=steps, seed=0, lr_size=lr_size)
            else:
                result = hr.refine_diffusion(
                    model, comp.image, mean, std, steps=steps, seed=0, lr_size=lr_size, settings=settings
                )
            seconds = time.perf_counter() - started
            sad, mse = sad_mse(result.alpha, comp.alpha)
            px = [(t * f, le * f) for t, le in result.positions]
            seam = border_gradient_error(result.alpha, comp.alpha, px, result.grid.size * f)
            rows.append({"size": name, "method": method, "evals": result.unet_evaluations, "seconds": seconds,
                         "sad": sad, "mse": mse, "seam": seam, "patches": len(result.positions)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


_PYMATTING_PROBE = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {scripts!r})
from bench_hr import lr_inputs, sad_mse
from vfxmatte import hr
from vfxmatte.train.synthetic import make_composite
h, w = {shape}
comp = make_composite(np.random.default_rng(7), (h, w))
mean, std = lr_inputs(comp.alpha, comp.image, None, {lr_size}, True, 0)
linear = comp.image ** 2.2
started = time.perf_counter()
refined = hr.refine("pymatting", None, linear, comp.image, mean, std, steps=1, seed=0, lr_size={lr_size})
seconds = time.perf_counter() - started
off = np.clip(hr.resize(mean, h, w), 0, 1)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"seconds": seconds, "peak_mb": int(hwm.split()[1]) / 1024,
                  "band": float((refined.trimap == 0.5).mean()), "sad": sad_mse(refined.alpha, comp.alpha)[0],
                  "sad_off": sad_mse(off, comp.alpha)[0]}}))
"""


def pymatting_rows(sizes: list[str], lr_size: int) -> list[dict]:
    rows = []
    for name in sizes:
        code = _PYMATTING_PROBE.format(scripts=str(REPO / "scripts"), shape=SIZES[name], lr_size=lr_size)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
        row = {"size": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def matting_rows(model, data: Path, simulated: bool, lr_size: int) -> dict:
    """Mean SAD/MSE of --hr off and --hr pymatting on alphamatting GT01–GT20."""
    import OpenImageIO as oiio

    from vfxmatte import hr

    def read(path: Path) -> np.ndarray:
        return np.asarray(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT))

    scores: dict[str, list[tuple[float, float]]] = {"off": [], "pymatting": []}
    seconds = []
    for index in range(1, 21):
        name = f"GT{index:02d}.png"
        image = read(data / "input" / name)[..., :3]
        truth = read(data / "gt" / name)[..., 0]
        h, w = truth.shape
        mean, std = lr_inputs(truth, image, model, lr_size, simulated, 0)
        off = np.clip(hr.resize(mean, h, w), 0, 1)
        started = time.perf_counter()
        refined = hr.refine("pymatting", model, image**2.2, image, mean, std, steps=1, seed=0, lr_size=lr_size)
        seconds.append(time.perf_counter() - started)
        scores["off"].append(sad_mse(off, truth))
        scores["pymatting"].append(sad_mse(refined.alpha, truth))
    return {
        key: {"sad": float(np.mean([s for s, _ in v])), "mse": float(np.mean([m for _, m in v]))}
        for key, v in scores.items()
    } | {"seconds_mean": float(np.mean(seconds))}


def render(
    args: argparse.Namespace, diffusion: list[dict], pym: list[dict], matting: dict | None, model_name: str
) -> str:
    lr_source = (
        "simulated LR ensemble (ground truth averaged to the LR size, blurred one LR pixel)"
        if args.simulated_lr
        else f"the model's LR ensemble (10 steps, 4 seeds, {args.lr_size} px)"
    )
    lines = [
        "## High-resolution refinement (`--hr`)",
        "",
        f"Generated by `python scripts/bench_hr.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, 1 thread, wall-clock timings (other jobs on the machine would "
        f"inflate them). Model: `{model_name}`. LR input: {lr_source}.",
        "",
        "### Diffusion patches vs naive tiled diffusion (synthetic composite with ground truth)",
        "",
        f"{args.steps} DDIM steps; UNet evaluations = patches × steps; seam = mean gradient error on patch-border "
        "pixels. SAD /1000, MSE ×1e3 on the whole frame.",
        "",
        "| size | method | patches | UNet evals | wall s | SAD | MSE | seam |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in diffusion:
        seam = "" if r["seam"] is None else f"{r['seam']:.4f}"
        lines.append(
            f"| {r['size']} | {r['method']} | {r.get('patches', '')} | {r['evals']} | {r['seconds']:.1f} | "
            f"{r['sad']:.2f} | {r['mse']:.2f} | {seam} |"
        )
    lines += [
        "",
        "### `--hr pymatting` (auto-trimap band, tiled closed-form, tiled foreground)",
        "",
        "Time of the HR stage (trimap, closed-form solve, foreground), LR pass excluded; peak RSS of the whole "
        "process; band = share of pixels in the unknown band. Targets: ≤ 5 s at 1080p, ≤ 20 s and ≤ 6 GB at 4K.",
        "",
        "| size | s/frame | peak MB | band | SAD off | SAD pymatting |",
        "|---|---|---|---|---|---|",
    ]
    for r in pym:
        lines.append(
            f"| {r['size']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['band']:.3f} | {r['sad_off']:.2f} | "
            f"{r['sad']:.2f} |"
        )
    if matting:
        lines += [
            "",
            "### Gain over `--hr off` on ../shared/data/matting (GT01–GT20, mean per image)",
            "",
            "| | SAD | MSE |",
            "|---|---|---|",
            f"| `--hr off` | {matting['off']['sad']:.2f} | {matting['off']['mse']:.2f} |",
            f"| `--hr pymatting` | {matting['pymatting']['sad']:.2f} | {matting['pymatting']['mse']:.2f} |",
            "",
            f"Mean HR-stage time per image: {matting['seconds_mean']:.2f} s.",
        ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"<!-- hr:begin -->\n{body}\n<!-- hr:end -->"
    if "<!-- hr:begin -->" in text and "<!-- hr:end -->" in text:
        head, rest = text.split("<!-- hr:begin -->", 1)
        tail = rest.split("<!-- hr:end -->", 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + f"\n\n<!-- keep:hr -->\n{block}\n<!-- /keep:hr -->\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--simulated-lr", action="store_true", help="LR ensemble simulated from the ground truth")
    parser.add_argument("--sizes", default="2k,4k", help="diffusion comparison sizes (1080p, 2k, 4k)")
    parser.add_argument("--pymatting-sizes", default="1080p,4k")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr-size", type=int, default=512)
    parser.add_argument("--skip-diffusion", action="store_true")
    parser.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from vfxmatte.model.core import load_model

    model = load_model(args.model)
    diffusion = [] if args.skip_diffusion else diffusion_rows(
        model, args.sizes.split(","), args.simulated_lr, args.steps, args.lr_size
    )  # fmt: skip
    pym = pymatting_rows(args.pymatting_sizes.split(","), args.lr_size)
    data = REPO.parent / "shared" / "data" / "matting" / "alphamatting"
    matting = matting_rows(model, data, args.simulated_lr, args.lr_size // 2) if data.is_dir() else None
    if matting:
        print(json.dumps(matting), flush=True)
    write_section(Path(args.out), render(args, diffusion, pym, matting, model.describe()))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
