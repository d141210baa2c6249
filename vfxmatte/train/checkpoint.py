"""Training checkpoints that resume bit-for-bit: safetensors for tensors, JSON for the rest.

A checkpoint is a folder ``OUTPUT/checkpoints/step-NNNNNNN/`` holding

* ``modules.safetensors`` — every module's weights (``vae.*``, ``unet.*``, ``text.*``, and
  the EMA copies ``ema_unet.*``, ``ema_text.*``);
* ``optimizer.safetensors`` + the optimizer's hyper-parameters in ``state.json``;
* the RNG states (torch CPU and CUDA tensors in ``rng.safetensors``; numpy and Python in
  ``state.json``), the stage, the step, the data cursor and the loss log so far.

Nothing is pickled.  A checkpoint is written to a temporary folder and renamed into place,
so an interrupted write never leaves a half checkpoint behind.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vfxmatte.errors import UsageError

CHECKPOINTS = "checkpoints"


def _flat_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, list(internal), gauss]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    output: Path,
    *,
    stage: str,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``output/checkpoints/step-NNNNNNN`` (``step`` = steps done in ``stage``); keep the last ``keep``."""
    root = output / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{stage}-{step:07d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    save_file(weights, str(tmp / "modules.safetensors"))
    opt_tensors, opt_meta = _flat_optimizer(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_meta = _rng_state()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {"stage": stage, "step": step, "optimizer": opt_meta, "rng": rng_meta, **extra}
    (tmp / "state.json").write_text(json.dumps(state) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.iterdir() if p.name.startswith(f"{stage}-"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(output: Path) -> Path | None:
    """The most advanced checkpoint of a run (UNet stage beats VAE stage), or None."""
    root = output / CHECKPOINTS
    if not root.is_dir():
        return None
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "state.json").is_file()]
    order = {"vae": 0, "unet": 1}
    found.sort(key=lambda p: (order.get(p.name.split("-")[0], -1), p.name))
    return found[-1] if found else None


def load_checkpoint(
    folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None
) -> dict[str, Any]:
    """Restore modules (those named in ``modules``), the optimizer and the RNG states; return state.json."""
    state: dict[str, Any] = json.loads((folder / "state.json").read_text())
    weights = load_file(str(folder / "modules.safetensors"))
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if not sub:
            raise UsageError(f"{folder}: checkpoint holds no weights for {name!r}")
        module.load_state_dict(sub)
    if optimizer is not None:
        tensors = load_file(str(folder / "optimizer.safetensors"))
        optimizer.load_state_dict(_unflat_optimizer(tensors, state["optimizer"]))
    _set_rng_state(load_file(str(folder / "rng.safetensors")), state["rng"])
    return state
