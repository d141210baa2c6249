"""Fuzz the readers: mutate the real files of ../shared/data and feed them to vfxmatte's readers.

Usage::

    python scripts/fuzz_readers.py --cases 2000 --seed 1 --timeout 10 --out build/fuzz
    python scripts/fuzz_readers.py --replay build/fuzz/findings/crash-1000042-t01.exr

Each case is one source file (the EXRs, a few PNGs and the movies of ../shared/data, plus a
crop of one picture re-encoded as DWA/B44/RLE/PXR24/HTJ2K/tiled EXRs, TIFF, DPX, JPEG and as
ProRes 4444/PNG/MJPEG/FFV1 movies, all taken in turn) damaged by :func:`vfxmatte.fuzz.mutate`
with seed ``run seed x 1e6 + case index``, then read in a sandboxed worker exactly as
``vfxmatte info`` and ``vfxmatte matte`` read it (:mod:`vfxmatte.fuzz`).  Every source is
first read unmutated.  Non-clean cases (crash, hang, memory) are kept under ``OUT/findings``
with a JSON record; ``OUT/cases.jsonl`` lists every case and ``OUT/summary.json`` the table
printed at the end.  Exit status 1 when anything but ``ok`` or a clean one-line error came
out, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from vfxmatte.fuzz import FINDINGS, OUTCOMES, Case, Worker, derive_seeds, fuzz, kind_of

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# A few PNGs stand for "other stills": RGBA, palette trimaps, 8-bit grey as RGB.
STILLS = ["matting/lemur/lemur_trimap.png", "matting/lemur/lemur_alpha.png", "matting/alphamatting/trimap/GT01.png",
          "matting/alphamatting/gt/GT01.png"]
# Cropped and re-encoded (vfxmatte.fuzz.DERIVED*: DWA/B44/HTJ2K EXRs, TIFF, DPX, JPEG; ProRes, PNG,
# MJPEG, FFV1 movies) into OUT/seeds.
DERIVED_FROM = "matting/alphamatting/input/GT01.png"


def default_sources(data: Path, max_bytes: int, derived: Path | None) -> list[Path]:
    found = sorted((data / "exr").rglob("*.exr")) + [data / s for s in STILLS]
    if derived is not None and (data / DERIVED_FROM).is_file():
        found += derive_seeds(data / DERIVED_FROM, derived)
    found += sorted(p for p in (data / "video").iterdir() if kind_of(p) == "movie")
    return [p for p in found if p.is_file() and 0 < p.stat().st_size <= max_bytes]


def summarise(cases: list[Case], seconds: float, restarts: int) -> dict[str, object]:
    table: dict[str, dict[str, int]] = {}
    for case in cases:
        row = table.setdefault(case.kind, {"sources": 0, "inputs": 0, **dict.fromkeys(OUTCOMES, 0)})
        row["inputs"] += 1
        row[case.result.outcome] += 1
    for kind, row in table.items():
        row["sources"] = len({c.source for c in cases if c.kind == kind})
    slowest = max(cases, key=lambda c: c.result.seconds)
    return {
        "table": table,
        "total": {o: sum(r[o] for r in table.values()) for o in ("inputs", *OUTCOMES)},
        "seconds": round(seconds, 1),
        "slowest": {"source": slowest.source, "seed": slowest.seed, "seconds": round(slowest.result.seconds, 2),
                    "outcome": slowest.result.outcome},
        "peak_rss_mb": round(max(c.result.peak_rss_mb for c in cases), 1),
        "worker_restarts": restarts,
        "rechecked_without_cap": sum(1 for c in cases if c.result.note),
        "rechecked_error_codes": sum(1 for c in cases if c.result.note and c.result.outcome == "error"),
        "findings": [{"outcome": c.result.outcome, "kept": c.kept, "message": c.result.message,
                      "mutations": c.mutations} for c in cases if c.result.outcome in FINDINGS],
    }


def print_table(summary: dict[str, object]) -> None:
    table = summary["table"]
    assert isinstance(table, dict)
    columns = ("sources", "inputs", *OUTCOMES)
    print(f"{'format':8}" + "".join(f"{c:>9}" for c in columns))
    for kind in sorted(table):
        print(f"{kind:8}" + "".join(f"{table[kind][c]:>9}" for c in columns))
    total = summary["total"]
    assert isinstance(total, dict)
    print(f"{'all':8}{'':>9}" + "".join(f"{total[c]:>9}" for c in columns[1:]))
    slowest = summary["slowest"]
    assert isinstance(slowest, dict)
    print(f"time {summary['seconds']} s; slowest case {slowest['seconds']} s ({Path(slowest['source']).name}, "
          f"seed {slowest['seed']}, {slowest['outcome']}); peak worker RSS {summary['peak_rss_mb']} MB; "
          f"worker restarts {summary['worker_restarts']}; exhaustion-like errors re-run without the cap "
          f"{summary['rechecked_without_cap']} (library error codes: {summary['rechecked_error_codes']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="mutated inputs to try")
    parser.add_argument("--seed", type=int, default=1, help="run seed (case seeds are seed x 1e6 + index)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a frame may take before it is a hang")
    parser.add_argument("--case-timeout", type=float, default=300.0, help="seconds a whole input may take")
    parser.add_argument("--memory-mb", type=int, default=3072, help="address-space cap of the worker (RLIMIT_AS)")
    parser.add_argument("--out", default=str(REPO / "build" / "fuzz"), help="output folder")
    parser.add_argument("--data", default=str(DATA), help="the shared data folder")
    parser.add_argument("--max-source-mb", type=float, default=4.0, help="skip larger source files")
    parser.add_argument("--source", action="append", help="fuzz these files instead of the defaults")
    parser.add_argument("--no-derived", action="store_true", help="no re-encoded seeds (other codecs and formats)")
    parser.add_argument("--replay", nargs="+", help="read these (kept) files once each, no mutation")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    worker = Worker(timeout=args.timeout, case_timeout=args.case_timeout, memory_mb=args.memory_mb,
                    log_dir=out / "scratch")
    if args.replay:
        with worker:
            for path in args.replay:
                result = worker.run(os.path.abspath(path))
                print(f"{result.outcome:7} {result.seconds:6.2f} s  {path}: {result.message}")
                if result.note:
                    print(f"  note: {result.note}")
                if result.stderr:
                    print("  stderr: " + result.stderr.replace("\n", "\n          "))
        return 0
    sources = [Path(s) for s in args.source] if args.source else default_sources(
        Path(args.data), int(args.max_source_mb * 1e6), None if args.no_derived else out / "seeds")
    if not sources:
        print(f"no source files under {args.data}", file=sys.stderr)
        return 2
    print(f"{len(sources)} sources, {args.cases} mutated cases, seed {args.seed}, timeout {args.timeout} s/frame, "
          f"cap {args.memory_mb} MiB; python {platform.python_version()}", flush=True)

    log = (out / "cases.jsonl").open("w")

    def on_case(case: Case) -> None:
        log.write(json.dumps(case.record()) + "\n")
        log.flush()
        if case.result.outcome in FINDINGS:
            note = f" [{case.result.note}]" if case.result.note else ""
            print(f"  {case.result.outcome.upper()} {case.kept}: {case.result.message}{note}", flush=True)
        if (case.index + 1) % 100 == 0:
            print(f"  {case.index + 1} cases done", flush=True)

    started = time.monotonic()
    with worker, log:
        cases = fuzz(sources, args.cases, out, seed=args.seed, originals=True, worker=worker, on_case=on_case)
    summary = summarise(cases, time.monotonic() - started, worker.restarts)
    summary["command"] = " ".join(["python", "scripts/fuzz_readers.py", *(argv or sys.argv[1:])])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    return 1 if any(c.result.outcome in FINDINGS for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
