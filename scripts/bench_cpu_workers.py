#!/usr/bin/env python3
"""CPU-node throughput by worker layout: W worker processes × T threads each, on the same frames.

A CPU worker of ``scripts/facility_up.sh`` runs each flow run in its own process with its thread
count set through :func:`flows.worker.thread_env` (``OMP_NUM_THREADS`` and the BLAS/numba
equivalents; torch and the salient-object prior follow it).  This script measures what a layout
gets out of the node's cores: for each layout ``WxT`` it starts W ``vfxmatte matte`` processes at
once, each with T threads and an equal, contiguous share of a synthetic scene-linear EXR shot
(as a worker gets a chunk), and times them until the last one ends — start-up and model load
included, as each flow run pays them.  Layouts alternate within each repeat; the table gives the
median wall time and frames per minute.

    .venv/bin/python scripts/bench_cpu_workers.py --layouts 1x2 2x1 --frames 8 --size 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def layout(text: str) -> tuple[int, int]:
    workers, _, threads = text.partition("x")
    try:
        parsed = int(workers), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: a layout is WORKERSxTHREADS, e.g. 2x1") from None
    if min(parsed) < 1:
        raise argparse.ArgumentTypeError(f"{text}: workers and threads must be at least 1")
    return parsed


def run_layout(pattern: str, frames: list[int], workers: int, threads: int, out: Path,
               env: dict[str, str], common: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the W processes together) for one layout."""
    import resource

    from flows.worker import thread_env

    share = -(-len(frames) // workers)
    chunks = [frames[i : i + share] for i in range(0, len(frames), share)]
    worker_env = dict(env, **thread_env(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vfxmatte.cli", "matte", pattern, "-o", str(out / "matte.####.exr"),
             "--frames", f"{chunk[0]}-{chunk[-1]}", "--quiet", *common],
            env=worker_env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for chunk in chunks
    ]
    failed = []
    for proc in procs:
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"exit {proc.returncode}: {stderr.strip()[-500:]}")
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if failed:
        raise SystemExit(f"layout {workers}x{threads} failed: {failed[0]}")
    written = sorted(p.name for p in out.glob("matte.*.exr"))
    if len(written) != len(frames):
        raise SystemExit(f"layout {workers}x{threads}: {len(written)} of {len(frames)} frames written")
    return seconds, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", type=layout, default=[(1, 2), (2, 1)], metavar="WxT")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024, help="frame width and height in pixels")
    parser.add_argument("--preset", default="standard", choices=("draft", "standard", "final"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    args = parser.parse_args()

    from test_flows import write_sequence

    work = Path(tempfile.mkdtemp(prefix="bench-cpu-workers-"))
    times: dict[tuple[int, int], list[float]] = {lay: [] for lay in args.layouts}
    cpu_times: dict[tuple[int, int], list[float]] = {lay: [] for lay in args.layouts}
    loads: list[float] = []
    try:
        frames = list(range(1001, 1001 + args.frames))
        pattern = write_sequence(work / "plate", frames, size=args.size)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        common = ["--preset", args.preset, "--device", "cpu", *(["--model", args.model] if args.model else [])]
        for repeat in range(args.repeats):
            for workers, threads in args.layouts:
                out = work / f"out-{workers}x{threads}-{repeat}"
                loads.append(os.getloadavg()[0])
                seconds, cpu = run_layout(pattern, frames, workers, threads, out, env, common)
                times[(workers, threads)].append(seconds)
                cpu_times[(workers, threads)].append(cpu)
                print(f"repeat {repeat + 1}: {workers} worker(s) x {threads} thread(s): {seconds:.1f} s wall, "
                      f"{cpu:.1f} s CPU; load average before {loads[-1]:.2f}", file=sys.stderr)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{os.cpu_count()} CPU cores; 1-minute load average before the layouts' runs "
          f"{min(loads):.2f}–{max(loads):.2f} (other load on the machine included); "
          f"model: {args.model or 'the bundled model'}.\n")
    print(f"| {args.frames} frames {args.size}x{args.size}, preset {args.preset} | wall (median) | runs "
          "| frames per minute | CPU s per frame |")
    print("|---|---:|---|---:|---:|")
    for (workers, threads), values in times.items():
        wall = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        cpu = statistics.median(cpu_times[(workers, threads)]) / args.frames
        print(f"| {workers} worker(s) × {threads} thread(s) | {wall:.1f} s | {runs} "
              f"| {60 * args.frames / wall:.1f} | {cpu:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
