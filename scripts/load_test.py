#!/usr/bin/env python3
"""Load: a long 2K shot through the ``matte-shot`` deployment with two workers on one machine.

What a facility does with a shot of a few hundred frames: the TD submits it in frame ranges
(here ``--runs`` ranges, plus ``--duplicates`` ranges submitted a second time, as a retry
button pressed twice would), a ``prefect server`` queues the runs, and two process workers, each
with its own GPU slot (``gpu-0``/``gpu-1``), take them.  The script then checks what a
compositor cares about:

- nothing lost: every frame of the shot is on disk, complete (every channel reads back, finite,
  alpha in [0, 1]), with the run's parameters in its header;
- nothing duplicated: across all runs each frame was matted exactly once (a duplicate run's
  frames come back ``skipped``: resumed, or waited for through the per-frame output lock), and
  no temp or lock file is left;

and reports the total wall time (first submission to last run finished), frames per minute,
the per-frame matting time (median / 95th percentile, from the runs' results) and how the runs
were shared between the workers.  Exit status 1 if a check fails.

    .venv/bin/python scripts/load_test.py --frames 200 --width 2048 --height 1080 --runs 4 --duplicates 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
POOL = "vfxmatte-gpu"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def write_shot(folder: Path, frames: range, width: int, height: int) -> str:
    """A scene-linear half-float shot: a soft disc moving over a graded, grainy background."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([0.05 + 0.2 * xx / width, 0.1 + 0.1 * yy / height, np.full_like(xx, 0.15)], axis=-1)
    rng = np.random.default_rng(0)
    grain = rng.normal(0.0, 0.01, (height, width, 1)).astype(np.float32)
    for i, frame in enumerate(frames):
        cx, cy, radius = width * (0.3 + 0.4 * i / max(len(frames) - 1, 1)), height * 0.5, height * 0.25
        distance = np.hypot(xx - cx, yy - cy)
        alpha = np.clip((radius - distance) / 6.0 + 0.5, 0.0, 1.0)[..., None]
        image = background * (1 - alpha) + np.array([0.9, 0.5, 0.2], np.float32) * alpha + grain
        spec = oiio.ImageSpec(width, height, 3, "half")
        spec.attribute("compression", "zip")
        path = str(folder / f"plate.{frame}.exr")
        out = oiio.ImageOutput.create(path)
        if out is None or not out.open(path, spec) or not out.write_image(image.astype(np.float32)):
            raise SystemExit(f"{path}: cannot write the test plate: {oiio.geterror()}")
        out.close()
    return str(folder / "plate.####.exr")


def complete(path: Path) -> str | None:
    """None when ``path`` is a whole matte; else what is wrong with it."""
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        return f"unreadable: {oiio.geterror()}"
    names = list(inp.spec().channelnames)
    params = inp.spec().getattribute("vfxmatte:params")
    pixels = inp.read_image("float")
    inp.close()
    if pixels is None or names[:5] != ["R", "G", "B", "A", "uncertainty.Y"] or not params:
        return f"incomplete: channels {names}"
    alpha = pixels[..., names.index("A")]
    if not np.isfinite(pixels).all() or alpha.min() < 0 or alpha.max() > 1:
        return "non-finite pixels or alpha outside [0, 1]"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=4, help="frame ranges the shot is submitted as")
    parser.add_argument("--duplicates", type=int, default=1, help="ranges submitted a second time")
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--preset", default="draft", choices=("draft", "standard", "final"))
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--work", help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()

    from prefect_server import _start, _stop, rest, start_worker

    work = Path(args.work or tempfile.mkdtemp(prefix="vfxmatte-load-"))
    server = None
    try:
        frames = range(1001, 1001 + args.frames)
        started = time.perf_counter()
        pattern = write_shot(work / "plate", frames, args.width, args.height)
        print(f"{args.frames} plates {args.width}x{args.height} written in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        out = work / "out"
        server = _start(work / "server-home", f"sqlite+aiosqlite:///{work / 'server-home' / 'prefect.db'}")
        deploy = subprocess.run([sys.executable, "-m", "vfxmatte.cli", "flow", "deploy", "--gpus", "2"],
                                env=server.env, cwd=REPO, capture_output=True, text=True, timeout=600)
        if deploy.returncode != 0:
            raise SystemExit(f"flow deploy failed: {deploy.stderr[-2000:]}")
        worker_env = {"VFXMATTE_ROOTS": str(work), "VFXMATTE_DEVICE": "cpu", "VFXMATTE_RETRY_DELAY": "1",
                      "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
        if args.model:
            worker_env.update(VFXMATTE_MODEL=str(Path(args.model).resolve()),
                              VFXMATTE_MODEL_ROOTS=str(Path(args.model).resolve().parent))
        for gpu in range(2):
            start_worker(server, POOL, dict(worker_env, VFXMATTE_GPU_LIMIT=f"gpu-{gpu}"), limit=1, name=f"w{gpu}")

        deployment = rest(server.api_url, "GET", "/deployments/name/matte-shot/vfxmatte")
        size = -(-args.frames // args.runs)
        ranges = [(frames[i], frames[min(i + size, len(frames)) - 1]) for i in range(0, len(frames), size)]
        ranges += ranges[: args.duplicates]
        submitted = time.perf_counter()
        runs: dict[str, tuple[int, int]] = {}
        for first, last in ranges:
            parameters = {"input": pattern, "output": str(out / "matte.####.exr"), "frames": f"{first}-{last}",
                          "preset": args.preset, "chunk_size": args.chunk_size, "review": False}
            run = rest(server.api_url, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                       {"parameters": parameters})
            runs[str(run["id"])] = (first, last)
        finished: dict[str, dict[str, Any]] = {}
        ended: dict[str, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(finished) < len(runs) and time.monotonic() < deadline:
            for run_id in runs:
                if run_id not in finished:
                    run = rest(server.api_url, "GET", f"/flow_runs/{run_id}")
                    if run["state_type"] in FINAL:
                        finished[run_id] = run
                        ended[run_id] = time.perf_counter() - submitted
            time.sleep(2)
        total = time.perf_counter() - submitted

        problems: list[str] = []
        written: dict[int, list[str]] = {}
        seconds: list[float] = []
        spans: list[tuple[datetime, datetime]] = []
        for run_id, (first, last) in runs.items():
            run = finished.get(run_id)
            if run is None:
                problems.append(f"run {run_id} ({first}-{last}) not finished after {args.timeout:.0f} s")
                continue
            if run["state_type"] != "COMPLETED":
                problems.append(f"run {run_id} ({first}-{last}) ended {run['state_type']}: {run['state']['message']}")
            found = rest(server.api_url, "POST", "/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["vfxmatte-result"]}}})
            if not found:
                problems.append(f"run {run_id} ({first}-{last}) published no result")
                continue
            result = json.loads(found[0]["data"].removeprefix("```json\n").removesuffix("\n```"))
            for frame in result["frames"]["written"]:
                written.setdefault(frame, []).append(run_id)
            seconds += [float(s) for s in result.get("seconds", {}).values()]
            if run.get("start_time") and run.get("end_time"):
                spans.append((datetime.fromisoformat(run["start_time"]), datetime.fromisoformat(run["end_time"])))
        lost = [f for f in frames if f not in written]
        twice = [f for f, ids in written.items() if len(ids) > 1]
        if lost:
            problems.append(f"{len(lost)} frame(s) never written: {lost[:10]}")
        if twice:
            problems.append(f"{len(twice)} frame(s) matted by more than one run: {twice[:10]}")
        on_disk = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        hidden = [name for name in on_disk if name.startswith(".")]
        if hidden:
            problems.append(f"left behind: {hidden[:5]}")
        for frame in frames:
            path = out / f"matte.{frame}.exr"
            wrong = complete(path) if path.exists() else "missing"
            if wrong:
                problems.append(f"{path.name}: {wrong}")

        per_frame = statistics.median(seconds) if seconds else float("nan")
        p95 = float(np.percentile(seconds, 95)) if seconds else float("nan")
        print(f"\n{args.frames} frames {args.width}x{args.height}, preset {args.preset}, "
              f"model {args.model or 'bundled'}; {len(ranges)} runs ({args.duplicates} duplicate), "
              f"chunks of {args.chunk_size}; 2 process workers, one GPU slot each; {os.cpu_count()} CPU cores.\n")
        print("| frames | runs | lost | matted twice | total wall | frames/min | per frame (median / p95) |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.frames} | {len(ranges)} | {len(lost)} | {len(twice)} | {total / 60:.1f} min "
              f"| {args.frames / (total / 60):.1f} | {per_frame:.1f} s / {p95:.1f} s |")
        parallel = max((sum(a <= start < b for a, b in spans) for start, _ in spans), default=0)
        print(f"\nAt most {parallel} runs ran at once; run end times (s after submission): "
              f"{sorted(round(t) for t in ended.values())}")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        return 1 if problems else 0
    finally:
        if server is not None:
            _stop(server)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
