#!/usr/bin/env python3
"""Orchestration overhead of the ``matte-shot`` flow against the plain CLI on the same shot.

Writes a synthetic scene-linear EXR shot (default 24 frames), then mattes it, alternating, with

- ``vfxmatte matte IN -o OUT``               (the plain CLI), and
- ``vfxmatte flow run IN -o OUT``           (the flow in-process on Prefect's ephemeral server,
  whose start-up is included: that is what a user of the embedded default pays; the first run
  in a fresh ``PREFECT_HOME``, which also creates the server's database, is reported apart), and
- the same with ``PREFECT_API_URL`` naming a ``prefect server`` started beforehand (facility mode:
  the per-run cost of API calls, task states, the GPU slot and the artifacts, no server start-up),

each in a fresh process into a fresh output folder, ``--repeats`` times.  Prints a Markdown table
of wall time, per-frame time and overhead (flow − CLI) / CLI, from the median of the repeats.

    .venv/bin/python scripts/bench_flows.py --frames 24 --size 128 --preset draft --repeats 1
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
sys.path.insert(0, str(REPO / "tests"))


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def tiny_model(folder: Path) -> Path:
    """The tests' tiny seeded model (tests/conftest.py configs), for machines without the bundled one."""
    import torch
    from conftest import TINY_UNET, TINY_VAE

    from vfxmatte.model.build import build_model
    from vfxmatte.model.core import save_model

    torch.manual_seed(0)
    save_model(build_model(TINY_VAE, TINY_UNET, path=folder), folder, {"name": "tiny-test"})
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128, help="frame width and height in pixels")
    parser.add_argument("--preset", default="standard", choices=("draft", "standard", "final"))
    parser.add_argument("--chunk-size", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    args = parser.parse_args()

    from test_flows import write_sequence

    work = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    try:
        pattern = write_sequence(work / "plate", range(1001, 1001 + args.frames), size=args.size)
        env = dict(os.environ, VFXMATTE_ROOTS=str(work), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
        env.pop("PREFECT_API_URL", None)  # the embedded default: an ephemeral server per run
        env["PREFECT_HOME"] = str(work / "prefect-home")
        common = ["--preset", args.preset]
        model_name = args.model or "the bundled model"
        if not args.model and not (REPO / "vfxmatte" / "model" / "default" / "unet" / "config.json").exists():
            args.model = str(tiny_model(work / "tiny-model"))
            model_name = "the tests' tiny model (bundled model absent)"
        if args.model:
            env["VFXMATTE_MODEL"] = args.model
            env["VFXMATTE_MODEL_ROOTS"] = str(Path(args.model).resolve().parent)  # the flows' model allow-list
        cli_times: list[float] = []
        flow_times: list[float] = []
        served_times: list[float] = []
        from prefect_server import _start, _stop

        server = _start(work / "server-home", f"sqlite+aiosqlite:///{work / 'server-home' / 'prefect.db'}")
        served_env = dict(env, PREFECT_API_URL=server.api_url)
        flow_command = [sys.executable, "-m", "vfxmatte.cli", "flow", "run", pattern, "--chunk-size",
                        str(args.chunk_size), "--no-review", *common]
        # The first embedded run in a fresh PREFECT_HOME also creates the server's database.
        first = timed([*flow_command, "-o", str(work / "flow-first" / "matte.####.exr")], env)
        print(f"first embedded run (creates the database): {first:.1f} s", file=sys.stderr)
        for repeat in range(args.repeats):
            out = work / f"cli{repeat}" / "matte.####.exr"
            model = ["--model", args.model] if args.model else []
            cli_times.append(timed([sys.executable, "-m", "vfxmatte.cli", "matte", pattern, "-o", str(out),
                                    "--quiet", *common, *model], env))
            out = work / f"flow{repeat}" / "matte.####.exr"
            flow_times.append(timed([*flow_command, "-o", str(out)], env))
            out = work / f"served{repeat}" / "matte.####.exr"
            served_times.append(timed([*flow_command, "-o", str(out)], served_env))
            print(f"repeat {repeat + 1}: cli {cli_times[-1]:.1f} s, flow {flow_times[-1]:.1f} s, "
                  f"flow on a running server {served_times[-1]:.1f} s", file=sys.stderr)
        _stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cli, flow = statistics.median(cli_times), statistics.median(flow_times)
    print(f"Model: {model_name}; {os.cpu_count()} CPU cores.\n")
    print(f"| {args.frames} frames {args.size}x{args.size}, preset {args.preset}, chunk {args.chunk_size} "
          "| wall (median) | per frame | overhead |")
    print("|---|---:|---:|---:|")
    print(f"| `vfxmatte matte` | {cli:.1f} s | {cli / args.frames:.2f} s | — |")
    print(f"| `vfxmatte flow run` (embedded server), first run in a fresh PREFECT_HOME | {first:.1f} s "
          f"| {first / args.frames:.2f} s | {100 * (first - cli) / cli:+.1f} % "
          f"({(first - cli) / args.frames:+.2f} s/frame) |")
    print(f"| `vfxmatte flow run` (embedded server), later runs | {flow:.1f} s | {flow / args.frames:.2f} s "
          f"| {100 * (flow - cli) / cli:+.1f} % ({(flow - cli) / args.frames:+.2f} s/frame) |")
    served = statistics.median(served_times)
    print(f"| `vfxmatte flow run` on a running `prefect server` | {served:.1f} s | {served / args.frames:.2f} s "
          f"| {100 * (served - cli) / cli:+.1f} % ({(served - cli) / args.frames:+.2f} s/frame) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
