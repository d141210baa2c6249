"""Prompt selection: does a caption pick out its object in a multi-object scene?

Held-out multi-object composites (``CompositeDataset(..., multi_object_fraction=1)`` with a
seed the model never trained on) are matted once per object with one of that object's
captions, drawn at random; the LR ensemble's mean matte, thresholded at 0.5, is compared
with the object's own alpha (> 0.5) by intersection over union.  The same scenes with the
empty prompt give the reference (what the model does without being told which object); a
model without a text encoder is scored on that null-prompt matte for every query.

    python scripts/eval_prompts.py --model runs/default-v2 --count 40 --size 128 --json

The mean IoU is reported overall and per caption kind: colour + shape ("the red star"),
shape ("the star"), colour ("the red object", "the red one") and position ("the object on
the left", "the top right object").  Uses :func:`vfxmatte.sampling.lr_ensemble`, the LR
path of ``vfxmatte matte``, on the display-referred composite (no file round trip).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from vfxmatte.model.core import load_model
from vfxmatte.pipeline import mask_iou
from vfxmatte.sampling import lr_ensemble
from vfxmatte.train.synthetic import CompositeDataset

_POSITION_WORDS = ("left", "right", "top", "bottom", "middle", "second")


def caption_kind(caption: str, colour: str, shape: str) -> str:
    words = caption.split()
    if any(w in _POSITION_WORDS for w in words):
        return "position"
    if colour in words and shape in words:
        return "colour+shape"
    if shape in words:
        return "shape"
    return "colour"


def evaluate(
    model_dir: str | None, count: int, size: int, seed: int, steps: int, seeds: int, noise_seed: int
) -> dict[str, Any]:
    model = load_model(model_dir)
    texted = model.text_encoder is not None
    dataset = CompositeDataset(count, size=size, seed=seed, multi_object_fraction=1.0)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    null_best: list[float] = []
    started = time.time()
    for i in range(count):
        scene = dataset[i]
        null = lr_ensemble(model, scene.image, steps=steps, seeds=seeds, seed=noise_seed, prompt=None).mean
        # Without a prompt the best a model can do is match one object by luck: score its best object.
        null_best.append(max(mask_iou(null, o.alpha) for o in scene.objects))
        for k, obj in enumerate(scene.objects):
            caption = obj.captions[int(rng.integers(0, len(obj.captions)))]
            # A model without a text encoder cannot take the caption: it gives its null-prompt matte.
            matte = null if not texted else lr_ensemble(
                model, scene.image, steps=steps, seeds=seeds, seed=noise_seed, prompt=caption).mean
            colour, shape = obj.name.split(" ", 1)
            others = [mask_iou(matte, o.alpha) for j, o in enumerate(scene.objects) if j != k]
            rows.append(
                {
                    "scene": i,
                    "object": obj.name,
                    "caption": caption,
                    "kind": caption_kind(caption, colour, shape),
                    "iou": mask_iou(matte, obj.alpha),
                    "best_other_iou": max(others) if others else 0.0,
                }
            )
    kinds = sorted({r["kind"] for r in rows})
    return {
        "model": str(model.path),
        "model_name": model.name,
        "text_encoder": texted,
        "scenes": count,
        "queries": len(rows),
        "size": size,
        "seed": seed,
        "steps": steps,
        "seeds": seeds,
        "mean_iou": float(np.mean([r["iou"] for r in rows])),
        "selected_fraction": float(np.mean([r["iou"] > r["best_other_iou"] for r in rows])),
        "by_kind": {
            k: {"n": sum(r["kind"] == k for r in rows), "mean_iou": float(np.mean([r["iou"] for r in rows
                                                                                   if r["kind"] == k]))}
            for k in kinds
        },
        "null_prompt_best_object_iou": float(np.mean(null_best)),
        "seconds": round(time.time() - started, 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--count", type=int, default=40, help="held-out scenes (default 40)")
    parser.add_argument("--size", type=int, default=128, help="scene side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=4242, help="scene seed; training used another (default 4242)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps (default 10)")
    parser.add_argument("--seeds", type=int, default=2, help="ensemble size (default 2)")
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print every query too")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = evaluate(args.model, args.count, args.size, args.seed, args.steps, args.seeds, args.noise_seed)
    if not args.json:
        result.pop("rows")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
