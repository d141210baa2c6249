"""Flow settings from the environment: one place for every knob a facility sets per worker.

| variable | default | meaning |
|---|---|---|
| ``VFXMATTE_ROOTS`` | the working directory | ``os.pathsep``-separated roots inputs/outputs must lie in |
| ``VFXMATTE_GPU_LIMIT`` | ``gpu`` | global concurrency limit taken around model work (``gpu-0``… per device) |
| ``VFXMATTE_GPU_SLOTS`` | ``1`` | slots of that limit when the flow has to create it (embedded mode) |
| ``VFXMATTE_GPU_LEASE_SECONDS`` | ``300`` | lease of a held slot; a killed worker's slot returns after it (≥ 60) |
| ``VFXMATTE_RETRIES`` | ``2`` | retries of a failed chunk |
| ``VFXMATTE_RETRY_DELAY`` | ``10`` | first retry delay in seconds; doubles each retry (with jitter) |
| ``VFXMATTE_FLAG_THRESHOLD`` | unset | fixed frame uncertainty score (mean estimated alpha error) to flag above |
| ``VFXMATTE_FLAG_FACTOR`` | ``1.5`` | without a fixed threshold: flag frames above this × the shot's median score |
| ``VFXMATTE_MODEL`` | the bundled model | model folder the flows use |
| ``VFXMATTE_MODEL_ROOTS`` | unset | ``os.pathsep``-separated folders ``VFXMATTE_MODEL`` may lie in |
| ``VFXMATTE_DEVICE`` | ``auto`` | torch device (a worker per GPU sets ``CUDA_VISIBLE_DEVICES`` instead) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vfxmatte.errors import UsageError
from vfxmatte.security import configured_roots, confine_model


def _number(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r}: not a number") from None
    if value < minimum:
        raise UsageError(f"{name}={text}: must be at least {minimum:g}")
    return value


def _optional_number(name: str, minimum: float) -> float | None:
    return _number(name, 0.0, minimum) if os.environ.get(name, "").strip() else None


@dataclass(frozen=True)
class FlowSettings:
    roots: tuple[str, ...]
    gpu_limit: str = "gpu"
    gpu_slots: int = 1
    lease_seconds: float = 300.0
    retries: int = 2
    retry_delay: float = 10.0
    flag_threshold: float | None = None
    flag_factor: float = 1.5
    model: str | None = None
    device: str = "auto"

    @classmethod
    def from_env(cls) -> FlowSettings:
        return cls(
            roots=tuple(configured_roots()),
            gpu_limit=os.environ.get("VFXMATTE_GPU_LIMIT", "").strip() or "gpu",
            gpu_slots=int(_number("VFXMATTE_GPU_SLOTS", 1, 1)),
            lease_seconds=_number("VFXMATTE_GPU_LEASE_SECONDS", 300.0, 60.0),
            retries=int(_number("VFXMATTE_RETRIES", 2, 0)),
            retry_delay=_number("VFXMATTE_RETRY_DELAY", 10.0, 0.0),
            flag_threshold=_optional_number("VFXMATTE_FLAG_THRESHOLD", 0.0),
            flag_factor=_number("VFXMATTE_FLAG_FACTOR", 1.5, 0.0),
            model=confine_model(model, "VFXMATTE_MODEL") if (model := os.environ.get("VFXMATTE_MODEL")) else None,
            device=os.environ.get("VFXMATTE_DEVICE", "").strip() or "auto",
        )
