"""Compare trained models with the same commands: trimap-free quality and prompt selection.

For each model folder this runs, through the real CLI and scripts,

* ``vfxmatte bench DATASET --model M --hr off --prior none ... --json`` on every dataset given
  (the model's own LR matte, without the salient-object prior or HR refinement that the
  default ``matte`` path adds, so the numbers are the model's);
* ``python scripts/eval_prompts.py --model M ...`` (prompt-selection IoU on held-out
  multi-object scenes),

and prints one Markdown table (whole-image P3M convention) plus the commands, e.g.::

    python scripts/make_benchmarks.py synth build/eval/synthetic-256 --count 24 --size 256 --seed 4242
    python scripts/compare_models.py runs/default-v2 vfxmatte/model/default \\
        --dataset build/eval/synthetic-256:256 --dataset ../shared/data/matting/alphamatting:512
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METRICS = ("MSE", "MAD", "SAD", "Grad", "Conn")


def _run(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout))


def _metric(scores: dict[str, Any], name: str) -> float:
    for key, value in scores.items():
        if key.lower() == name.lower():
            return float(value)
    raise KeyError(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--dataset", action="append", default=[], help="DATASET:LR_SIZE (repeatable)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--prompt-scenes", type=int, default=40, help="held-out multi-object scenes (0: skip)")
    parser.add_argument("--prompt-size", type=int, default=128)
    args = parser.parse_args(argv)
    cli = [sys.executable, "-m", "vfxmatte.cli"]
    commands: list[str] = []
    rows: list[str] = []
    header = ["model"]
    for spec in args.dataset:
        name = Path(spec.rsplit(":", 1)[0]).name
        header += [f"{name} {m}" for m in METRICS]
    if args.prompt_scenes:
        header += ["prompt IoU", "selected", "null-prompt IoU"]
    for model in args.models:
        cells = [f"`{model}`"]
        for spec in args.dataset:
            dataset, lr_size = spec.rsplit(":", 1)
            argv_bench = [*cli, "bench", dataset, "--model", model, "--hr", "off", "--prior", "none",
                          "--steps", str(args.steps), "--seeds", str(args.seeds), "--lr-size", lr_size,
                          "--device", "cpu", "--json"]
            commands.append("vfxmatte " + shlex.join(argv_bench[3:]))
            whole = _run(argv_bench)["mean"]["whole"]
            cells += [f"{_metric(whole, m):.2f}" for m in METRICS]
        if args.prompt_scenes:
            argv_prompts = [sys.executable, "scripts/eval_prompts.py", "--model", model,
                            "--count", str(args.prompt_scenes), "--size", str(args.prompt_size)]
            commands.append("python " + shlex.join(argv_prompts[1:]))
            result = _run(argv_prompts)
            cells += [f"{result['mean_iou']:.3f}", f"{result['selected_fraction']:.2f}",
                      f"{result['null_prompt_best_object_iou']:.3f}"]
        rows.append("| " + " | ".join(cells) + " |")
        print(f"done: {model}", file=sys.stderr)
    print("```sh")
    print("\n".join(commands))
    print("```\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" + "---:|" * (len(header) - 1))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
