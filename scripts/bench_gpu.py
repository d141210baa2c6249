"""GPU speed of the LR ensemble and the HR diffusion refine with the bundled model in float16.

Usage: ``python scripts/bench_gpu.py [OUT.json]`` on a machine with CUDA.  Times (median of a few
runs after two warm-ups, CUDA synchronised) the LR ensemble at the standard preset for 1080p and
2160p plates and at the final preset for 1080p, and ``hr.refine_diffusion`` on a random plate of
each size (every patch the LR uncertainty selects), plus the peak GPU memory.  The inputs are
random arrays: the speed does not depend on the pixels, only on the sizes and patch counts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from vfxmatte import hr
from vfxmatte.model.core import load_model
from vfxmatte.sampling import lr_ensemble, lr_shape


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    fn()
    fn()
    torch.cuda.synchronize()
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds)), result


def main() -> int:
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu: needs a CUDA device")
    out: dict[str, Any] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    model = load_model(None, device="cuda", dtype=torch.float16)
    rng = np.random.default_rng(0)
    cases = [
        ("1080p standard", (1080, 1920), 512, 10, 4),
        ("1080p final", (1080, 1920), 1024, 20, 8),
        ("2160p standard", (2160, 3840), 512, 10, 4),
    ]
    for label, (height, width), lr_size, steps, seeds in cases:
        h, w = lr_shape(height, width, lr_size, model.size_multiple)
        image = rng.random((h, w, 3), dtype=np.float32)
        seconds, ensemble = timed(partial(lr_ensemble, model, image, steps=steps, seeds=seeds, seed=0), 5)
        out[f"lr_ensemble {label} ({w}x{h}, {steps} steps x {seeds} seeds)"] = round(seconds, 4)
        if label.endswith("standard"):
            display = rng.random((height, width, 3), dtype=np.float32)
            refine = partial(
                hr.refine_diffusion, model, display, ensemble.mean, ensemble.std, steps=steps, seed=0, lr_size=lr_size
            )
            seconds, result = timed(refine, 3)
            patches = f"{len(result.positions)} patches, {result.unet_evaluations} UNet evaluations"
            out[f"hr diffusion refine {label} ({patches})"] = round(seconds, 4)
        print(json.dumps(out), flush=True)
    out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    text = json.dumps(out, indent=1)
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
