"""The ``--hr pymatting`` band stage of this checkout against another checkout's, side by side.

Usage (from the repository root)::

    git worktree add /tmp/vfxmatte-before <commit>
    python scripts/bench_band.py /tmp/vfxmatte-before [--sizes 1080p,4k] [--rounds 2]

For each size and round, ``scripts/bench_hr.py``'s probe (a synthetic composite with ground
truth, an LR matte simulated from it, ``hr.refine("pymatting", …)`` timed in a fresh
process: trimap, band solve, foreground) runs once with this checkout's ``vfxmatte`` and once
with the other's, alternated so that a busy machine slows both alike.  Prints one JSON line
per run: seconds, peak RSS (MB), the band's share of the frame, SAD of the refine and of the
upsampled LR matte.  Used for docs/BENCHMARKS.md, "the band as one system".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", help="another checkout of this repository (a git worktree)")
    parser.add_argument("--sizes", default="1080p,4k")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    other = Path(args.other).resolve()
    if not (other / "vfxmatte" / "hr.py").is_file():
        print(f"{other}: not a checkout of this repository (no vfxmatte/hr.py)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_hr import _PYMATTING_PROBE, SIZES

    trees = {"this checkout": REPO, str(other): other}
    for rnd in range(args.rounds):
        for size in args.sizes.split(","):
            for label, tree in trees.items():
                code = _PYMATTING_PROBE.format(scripts=str(tree / "scripts"), shape=SIZES[size], lr_size=512)
                env = {**os.environ, "PYTHONPATH": str(tree)}
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree, env=env)
                if proc.returncode:
                    print(f"{label}: the probe failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    return 1
                row = {"round": rnd, "size": size, "tree": label, **json.loads(proc.stdout.strip().splitlines()[-1])}
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
