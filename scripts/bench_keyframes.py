"""Keyframe benchmark: a roto on one or two keyframes carried through a moving shot, against the others.

Usage::

    python scripts/bench_keyframes.py [--frames 24] [--size 640x360] [--shots GT16:GT14,GT10:GT02]
        [--keep DIR] [--real] [--carry-1080p 8] [--update-docs]

Composite shots with exact ground truth are built by :func:`vfxmatte.composite_shot.build_composite_shot`
(an alphamatting.com subject moving over panned ``chaplin.mp4`` footage, a second subject crossing
behind it; evaluation only) and matted through the real CLI (``vfxmatte matte PLATE -o OUT --json
--seed 0``) in five modes:

``default``        trimap-free (no guide);
``every frame``    the roto of every frame as a mask guide (the upper bound);
``1 keyframe``     a guide folder holding only the first frame's roto (carried through the shot);
``2 keyframes``    the first and the last frame's roto (carried from both ends);
``static``         the first frame's roto as a single image (today's meaning: the same guide on every frame).

Per shot and mode: MSE x1e3 and SAD (whole image, mean over frames), dtSSD (``vfxmatte.metrics``),
the worst frame and its MSE, the frames that lose the subject (a frame's MSE over 3x the
every-frame roto's on that frame) and the carry's own seconds per frame (``timings.carry_s`` of
the CLI's JSON).  ``--carry-1080p N`` times the carry on an N-frame 1920x1080 composite (one
keyframe, ``--preset draft --hr off``: the carry does not depend on the matting settings).
``--real`` mattes the first frames of ``chaplin.mp4`` itself trimap-free and with a keyframe on
its first frame, and draws a few frames of both comps over a checkerboard into
``docs/img/keyframes_chaplin.png``.  ``--update-docs`` writes the table into the keyframes blocks
of docs/BENCHMARKS.md and docs/GUIDANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- keyframes:begin -->", "<!-- keyframes:end -->"
KEEP_BEGIN, KEEP_END = "<!-- keep:keyframes -->", "<!-- /keep:keyframes -->"
LOSE_FACTOR = 3.0  # a frame "loses the subject" when its MSE exceeds this times the every-frame roto's
MODES = ("default", "every frame", "1 keyframe", "2 keyframes", "static")
REAL_IMAGE = REPO / "docs" / "img" / "keyframes_chaplin.png"


@dataclass
class Run:
    """One CLI run: its output pattern, the CLI's JSON summary and its wall time."""

    output: str
    summary: dict[str, object]
    wall_s: float


@dataclass
class Row:
    shot: str
    mode: str
    mse: float
    sad: float
    dtssd: float
    worst_frame: int
    worst_mse: float
    lost: int
    carry_s_per_frame: float | None
    frames: int
    per_frame_mse: list[float] = field(default_factory=list)


def vfxmatte_command() -> list[str]:
    """The CLI of this checkout: the ``vfxmatte`` beside this Python, else ``python -m vfxmatte.cli``."""
    beside = Path(sys.executable).with_name("vfxmatte")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "vfxmatte.cli"]


#: --reuse: take a run whose record (same command line) is already in its output folder instead of matting again.
REUSE = {"enabled": False, "resume": False}
#: --threads: OMP / MKL / OpenBLAS / numba threads of each CLI run (0: the environment's).
THREADS = {"n": 0}


def matte(
    plate: str, output: str, extra: list[str], matte_args: list[str], frames: str | None = None, timed: bool = True
) -> Run:
    """``vfxmatte matte PLATE -o OUTPUT --json --seed 0 --overwrite …`` (every frame matted and timed anew).

    With ``--resume`` and ``timed=False`` (a run whose time is not reported) ``--overwrite`` is left
    out: the CLI skips frames already written with the same parameters (bit-identical: same seed).
    The command, the CLI's JSON and the wall time are recorded in ``run.json`` beside the output.
    """
    command = [*vfxmatte_command(), "matte", plate, "-o", output, "--json", "--seed", "0"]
    if timed or not REUSE["resume"]:
        command.append("--overwrite")
    command += [*matte_args, *extra]
    if frames:
        command += ["--frames", frames]
    record = Path(output).parent / "run.json"
    if REUSE["enabled"] and record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("command") == command:
            return Run(output, saved["summary"], float(saved["wall_s"]))
    bare = Path(output).parent / "summary.json"  # the CLI's JSON alone, as the first version of this script kept it
    if REUSE["enabled"] and not record.is_file() and bare.is_file():
        summary = json.loads(bare.read_text())
        if summary.get("output") == output and summary.get("exit_code") == 0:
            return Run(output, summary, float("nan"))
    started = time.perf_counter()
    env = dict(os.environ)
    if THREADS["n"]:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[name] = str(THREADS["n"])
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{output}: vfxmatte matte exited {proc.returncode}: {last}")
    summary = json.loads(proc.stdout)
    record.write_text(json.dumps({"command": command, "summary": summary, "wall_s": wall}, indent=2))
    return Run(output, summary, wall)


def carry_seconds(summary: dict[str, object]) -> float | None:
    timings = summary.get("timings")
    if isinstance(timings, dict) and "carry_s" in timings:
        return float(timings["carry_s"])
    return None


def guide_folders(shot_roto: str, frames: list[int], work: Path) -> dict[str, list[str]]:
    """The guide arguments of each mode (keyframe folders hold copies of the chosen rotos only)."""
    from vfxmatte.composite_shot import frame_path

    def folder(name: str, keys: list[int]) -> str:
        target = work / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for key in keys:
            shutil.copy2(frame_path(shot_roto, key), target / f"roto.{key:04d}.png")
        return str(target / "roto.####.png")

    static = work / "static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(frame_path(shot_roto, frames[0]), static / "roto_first.png")
    return {
        "default": [],
        "every frame": ["--guide", shot_roto, "--guide-kind", "mask"],
        "1 keyframe": ["--guide", folder("key_first", [frames[0]]), "--guide-kind", "mask"],
        "2 keyframes": ["--guide", folder("key_first_last", [frames[0], frames[-1]]), "--guide-kind", "mask"],
        "static": ["--guide", str(static / "roto_first.png"), "--guide-kind", "mask"],
    }


def read_alphas(pattern: str, frames: list[int]) -> list[np.ndarray]:
    from vfxmatte.composite_shot import frame_path, read_channels

    return [np.clip(read_channels(frame_path(pattern, f), ["A"])[..., 0], 0.0, 1.0) for f in frames]


def score(shot_name: str, mode: str, preds: list[np.ndarray], gts: list[np.ndarray], frames: list[int]) -> Row:
    from vfxmatte.metrics import dtssd, mse, sad

    per_mse = [mse(p, g) for p, g in zip(preds, gts, strict=True)]
    worst = int(np.argmax(per_mse))
    return Row(
        shot=shot_name,
        mode=mode,
        mse=float(np.mean(per_mse)),
        sad=float(np.mean([sad(p, g) for p, g in zip(preds, gts, strict=True)])),
        dtssd=dtssd(preds, gts),
        worst_frame=frames[worst],
        worst_mse=per_mse[worst],
        lost=0,
        carry_s_per_frame=None,
        frames=len(frames),
        per_frame_mse=per_mse,
    )


@dataclass
class ShotPlan:
    name: str
    half: str
    folder: Path
    plate: str
    frames: list[int]
    gts: list[np.ndarray]
    guides: dict[str, list[str]]


def prepare_shot(target: str, distractor: str, args: argparse.Namespace, work: Path) -> ShotPlan:
    """Build one composite shot and the guide folders of its modes."""
    from vfxmatte.composite_shot import build_composite_shot, half_of

    folder = work / f"{target}_{distractor}_{args.frames}f_{args.width}x{args.height}"
    shot = build_composite_shot(
        folder / "shot",
        frames=args.frames,
        width=args.width,
        height=args.height,
        target=target,
        distractor=distractor,
        data_root=args.data,
        seed=args.shot_seed,
    )
    guides = guide_folders(shot.roto, shot.frames, folder / "guides")
    name = f"{target} over {distractor}"
    return ShotPlan(name, half_of(target), folder, shot.plate, shot.frames, shot.true_alphas(), guides)


def run_mode(plan: ShotPlan, mode: str, matte_args: list[str]) -> tuple[Row, dict[str, object]]:
    """One mode of one shot through the CLI, scored against the truth."""
    carried = mode in ("1 keyframe", "2 keyframes")
    out = str(plan.folder / "out" / mode.replace(" ", "_") / "matte.####.exr")
    run = matte(plan.plate, out, plan.guides[mode], matte_args, timed=carried)
    row = score(plan.name, mode, read_alphas(out, plan.frames), plan.gts, plan.frames)
    seconds = carry_seconds(run.summary)
    if seconds is not None and carried:
        row.carry_s_per_frame = seconds / len(plan.frames)
    print(json.dumps({k: v for k, v in row.__dict__.items() if k != "per_frame_mse"}), flush=True)
    return row, {"wall_s": run.wall_s, "carry_s": seconds, "timings": run.summary.get("timings")}


def count_lost(rows: list[Row]) -> None:
    """Each row's frames that lose the subject: MSE over LOSE_FACTOR x the every-frame roto's on that frame."""
    upper = next((r for r in rows if r.mode == "every frame"), None)
    if upper is not None:
        for row in rows:
            row.lost = sum(m > LOSE_FACTOR * u for m, u in zip(row.per_frame_mse, upper.per_frame_mse, strict=True))


def carry_1080p(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Seconds per frame of the carry alone on a 1920x1080 composite with one keyframe."""
    from vfxmatte.composite_shot import build_composite_shot

    target, distractor = args.shot_pairs[0]
    folder = work / f"carry1080_{target}_{distractor}_{args.carry_1080p}f"
    shot = build_composite_shot(
        folder / "shot",
        frames=args.carry_1080p,
        width=1920,
        height=1080,
        target=target,
        distractor=distractor,
        data_root=args.data,
        seed=args.shot_seed,
    )
    guides = guide_folders(shot.roto, shot.frames, folder / "guides")
    out = str(folder / "out" / "matte.####.exr")
    run = matte(shot.plate, out, guides["1 keyframe"], ["--preset", "draft", "--hr", "off"])
    seconds = carry_seconds(run.summary)
    return {
        "frames": len(shot.frames),
        "carry_s": seconds,
        "carry_s_per_frame": None if seconds is None else seconds / len(shot.frames),
        "wall_s": run.wall_s,
        **carry_cpu(shot.plate, guides["1 keyframe"][1], shot.frames),
    }


def carry_cpu(plate: str, guide: str, frames: list[int]) -> dict[str, float]:
    """The carry alone in this process (``vfxmatte.carry.carry_shot`` on plates read beforehand):
    CPU seconds of the process (all its threads) and wall seconds, per carried frame."""
    from vfxmatte import carry
    from vfxmatte.config import MatteParams, RunOptions
    from vfxmatte.io.frames import Plate
    from vfxmatte.pipeline import open_shot

    params = MatteParams(guide=guide, guide_kind="mask")
    shot = open_shot(plate, frames, params, RunOptions(device="cpu"))
    plates = {p.frame: p for p in shot.plates(set()) if isinstance(p, Plate)}
    if len(plates) != len(frames):
        raise SystemExit(f"{plate}: could not read every frame for the carry timing")

    def read(wanted: list[int]) -> Iterator[Plate | int]:
        return iter([plates[f] for f in wanted])

    plan = carry.plan_guides(guide, None, frames, frames)
    cpu, wall = time.process_time(), time.perf_counter()
    carry.carry_shot(plan, "mask", None, frames, frames, read)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"inproc_cpu_s_per_frame": cpu / len(frames), "inproc_wall_s_per_frame": wall / len(frames)}


# -- the real footage ---------------------------------------------------------------------------


#: A roto of the man standing on the left of chaplin.mp4's first picture, drawn by hand as a polygon on
#: the 640x360 frame (x, y): hat, head, coat, the cane in his right hand, legs. What an artist draws on a
#: keyframe, rough at the edge; the band solve finds the edge.
CHAPLIN_ROTO_1001 = [
    (170, 32), (183, 36), (188, 48), (193, 60), (187, 65), (188, 80), (205, 88), (214, 100), (218, 140),
    (216, 200), (219, 236), (205, 245), (204, 300), (203, 330), (207, 339), (186, 341), (176, 336), (160, 341),
    (145, 337), (150, 300), (150, 250), (138, 246), (131, 242), (134, 180), (130, 140), (132, 110), (138, 92),
    (155, 84), (160, 80), (157, 65), (149, 61), (156, 55), (158, 40), (165, 33),
]


def keyframe_roto(height: int, width: int) -> np.ndarray:
    """The hand-drawn roto of chaplin.mp4's first picture (:data:`CHAPLIN_ROTO_1001`) at the frame's size."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 0)
    scale_x, scale_y = width / 640, height / 360
    ImageDraw.Draw(image).polygon([(x * scale_x, y * scale_y) for x, y in CHAPLIN_ROTO_1001], fill=255)
    return np.asarray(image) > 127


def comp_over_checker(rgba: np.ndarray, tile: int = 16) -> np.ndarray:
    """Premultiplied RGBA over a grey checkerboard, display-referred 0-1 (the movie is sRGB)."""
    height, width = rgba.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    checker = np.where(((yy // tile) + (xx // tile)) % 2 == 0, 0.35, 0.65).astype(np.float32)
    alpha = np.clip(rgba[..., 3:4], 0.0, 1.0)
    return np.clip(rgba[..., :3] + checker[..., None] * (1.0 - alpha), 0.0, 1.0)


def real_footage(args: argparse.Namespace, work: Path, matte_args: list[str]) -> dict[str, object]:
    """Trimap-free against a frame-0 keyframe on chaplin.mp4 itself; writes docs/img/keyframes_chaplin.png."""
    from PIL import Image, ImageDraw

    from vfxmatte.composite_shot import frame_path, read_channels

    movie = Path(args.data) / "video" / "chaplin.mp4"
    if not movie.is_file():
        raise SystemExit(f"{movie}: not found (pass --data)")
    first, count = 1001, args.real_frames
    frames = list(range(first, first + count))
    span = f"{first}-{frames[-1]}"
    folder = work / f"real_{count}f"
    default = matte(str(movie), str(folder / "default" / "matte.####.exr"), [], matte_args, span, timed=False)
    rgba0 = read_channels(frame_path(default.output, first), ["A"])[..., 0]
    roto = keyframe_roto(*rgba0.shape)
    keys = folder / "keyframe"
    keys.mkdir(parents=True, exist_ok=True)
    for stale in keys.glob("roto.*.png"):
        stale.unlink()
    Image.fromarray((roto * 255).astype(np.uint8), mode="L").save(keys / f"roto.{first:04d}.png")
    carried = matte(
        str(movie),
        str(folder / "keyframe_out" / "matte.####.exr"),
        ["--guide", str(keys / "roto.####.png"), "--guide-kind", "mask"],
        matte_args,
        span,
    )
    picks = sorted({frames[i] for i in (0, count // 3, (2 * count) // 3, count - 1)})
    tiles: list[np.ndarray] = []
    for number in picks:
        pair = []
        for run in (default, carried):
            rgba = read_channels(frame_path(run.output, number), ["R", "G", "B", "A"])
            pair.append(comp_over_checker(rgba))
        tiles.append(np.concatenate([pair[0], np.ones((pair[0].shape[0], 4, 3), np.float32), pair[1]], axis=1))
    sheet = np.concatenate([np.concatenate([t, np.ones((4, t.shape[1], 3), np.float32)], axis=0) for t in tiles], 0)
    image = Image.fromarray((sheet * 255).astype(np.uint8))
    scale = 900 / image.width
    image = image.resize((900, round(image.height * scale)), Image.Resampling.LANCZOS)
    header = Image.new("RGB", (image.width, 22), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    draw.text((8, 5), "trimap-free default", fill=(0, 0, 0))
    draw.text((image.width // 2 + 8, 5), f"roto keyframe on frame {first} carried", fill=(0, 0, 0))
    out = Image.new("RGB", (image.width, image.height + 22), (255, 255, 255))
    out.paste(header, (0, 0))
    out.paste(image, (0, 22))
    draw = ImageDraw.Draw(out)
    tile_h = image.height / len(picks)
    for i, number in enumerate(picks):
        draw.text((8, 22 + round(i * tile_h) + 4), f"frame {number}", fill=(255, 255, 0))
    REAL_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    out.save(REAL_IMAGE, optimize=True)
    default_a = read_alphas(default.output, frames)
    carried_a = read_alphas(carried.output, frames)
    coverage = [float((a > 0.5).mean()) for a in carried_a]
    return {
        "frames": span,
        "picked": picks,
        "image": str(REAL_IMAGE.relative_to(REPO)),
        "image_kb": round(REAL_IMAGE.stat().st_size / 1024, 1),
        "roto_area": float(roto.mean()),
        "default_area": [round(float((a > 0.5).mean()), 4) for a in default_a],
        "carried_area": [round(c, 4) for c in coverage],
        "carry_s": carry_seconds(carried.summary),
        "default_wall_s": default.wall_s,
        "carried_wall_s": carried.wall_s,
    }


# -- the table ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(
    rows: list[Row],
    shots: list[dict[str, object]],
    args: argparse.Namespace,
    command: str,
    load: tuple[float, float],
    carry1080: dict[str, object] | None,
    real: dict[str, object] | None,
) -> str:
    lines = [
        "## Keyframes carried: composite shots with exact ground truth",
        "",
        f"{args.frames} frames of {args.width}x{args.height} px per shot, built by "
        "`vfxmatte.composite_shot.build_composite_shot` (shot seed "
        f"{args.shot_seed}): an alphamatting.com subject (target) moving and shrinking slightly over "
        "`chaplin.mp4` panned and pushed in (the camera moves; the footage holds people), a smaller "
        "alphamatting subject crossing *behind* the target; foreground colours by "
        "`estimate_foreground_ml` on each photo and its true alpha, composited in scene-linear light "
        "(evaluation only: these images are never trained on).  The roto is the true alpha > 0.5 "
        "smoothed by a 0.5 % disc (a hand-roto stand-in).  Every mode is the real CLI "
        f"(`vfxmatte matte PLATE -o OUT --json --seed 0{' ' + ' '.join(args.matte_args) if args.matte_args else ''}`) "
        "with `--guide-kind mask`: every frame's roto (`roto.####.png`), a folder holding only the first "
        "frame's roto (1 keyframe), the first and last frame's (2 keyframes), the first frame's roto as "
        "one image (static, the same guide on every frame).  MSE ×1e3 and SAD /1000: whole image, mean "
        "over frames; dtSSD: `vfxmatte.metrics.dtssd` (RobustVideoMatting scale); lost: frames whose MSE "
        f"is over {LOSE_FACTOR:g}× the every-frame roto's on that frame; carry s/frame: `timings.carry_s` "
        "of the CLI's JSON over the shot's frames (wall time).  Lower is better everywhere.  "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs shared with "
        f"other jobs (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end), so the "
        f"seconds are noisy.  Code: {getattr(args, 'checkout', 'unknown commit')}.",
        "",
        "```sh",
        command,
        "```",
    ]
    if rows:
        lines += _shot_tables(rows, shots)
    return "\n".join(lines + _extra_parts(carry1080, real))


def _shot_tables(rows: list[Row], shots: list[dict[str, object]]) -> list[str]:
    lines = [
        "",
        "| shot (half) | mode | MSE | SAD | dtSSD | worst frame (MSE) | lost | carry s/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    halves = {str(s["shot"]): str(s["half"]) for s in shots}
    for r in rows:
        lines.append(
            f"| {r.shot} ({halves.get(r.shot, '?')}) | {r.mode} | {r.mse:.2f} | {r.sad:.3f} | {r.dtssd:.2f} | "
            f"{r.worst_frame} ({r.worst_mse:.2f}) | {r.lost}/{r.frames} | {_fmt(r.carry_s_per_frame, 3)} |"
        )
    lines += ["", "Against the targets of the keyframe issue (1 keyframe carried):", ""]
    lines += [
        "| shot | MSE / every frame's (≤ 1.5) | MSE / default's (≤ 0.35) | dtSSD vs default's (≤) | lost (0) |",
        "|---|---:|---:|---:|---:|",
    ]
    for shot in shots:
        name = str(shot["shot"])
        by_mode = {r.mode: r for r in rows if r.shot == name}
        one, upper, base = by_mode.get("1 keyframe"), by_mode.get("every frame"), by_mode.get("default")
        if one is None or upper is None or base is None:
            continue
        lines.append(
            f"| {name} | {one.mse / upper.mse:.2f} {'✓' if one.mse <= 1.5 * upper.mse else '✗'} | "
            f"{one.mse / base.mse:.2f} {'✓' if one.mse <= 0.35 * base.mse else '✗'} | "
            f"{one.dtssd:.2f} vs {base.dtssd:.2f} {'✓' if one.dtssd <= base.dtssd else '✗'} | "
            f"{one.lost} {'✓' if one.lost == 0 else '✗'} |"
        )
    return lines


def _extra_parts(carry1080: dict[str, object] | None, real: dict[str, object] | None) -> list[str]:
    lines: list[str] = []
    if carry1080 is not None and "failed" in carry1080:
        lines += ["", f"Carry at 1080p: not measured, the run failed: {carry1080['failed']}"]
    elif carry1080 is not None:
        per = carry1080.get("carry_s_per_frame")
        cpu = carry1080.get("inproc_cpu_s_per_frame")
        lines += [
            "",
            f"Carry at 1080p: {carry1080['frames']} frames of a 1920x1080 composite of the first shot, one "
            "keyframe, `--preset draft --hr off` (the carry does not depend on the matting settings).  "
            + (
                f"The CLI's `timings.carry_s`: {float(carry1080['carry_s']):.2f} s, "  # type: ignore[arg-type]
                f"**{float(per):.3f} s per frame** of wall time, reading the frames it steps over included "  # type: ignore[arg-type]
                f"(target ≤ 0.3 s {'✓' if float(per) <= 0.3 else '✗'} on this loaded machine)."  # type: ignore[arg-type]
                if per is not None
                else "The CLI's JSON has no `timings.carry_s`: not measured."
            ),
        ]
        if cpu is not None:
            wall = float(carry1080["inproc_wall_s_per_frame"])  # type: ignore[arg-type]
            lines[-1] += (
                "  The carry alone (`vfxmatte.carry.carry_shot` in the benchmark's process on plates read "
                f"beforehand): **{float(cpu):.3f} CPU s per frame** (all its threads; "  # type: ignore[arg-type]
                f"{wall:.3f} s of wall time under the load), target ≤ 0.3 s {'✓' if float(cpu) <= 0.3 else '✗'}."  # type: ignore[arg-type]
            )
    if real is not None and "failed" in real:
        lines += ["", f"Real footage: not measured, the run failed: {real['failed']}"]
    elif real is not None:
        lines += [
            "",
            f"Real footage: `chaplin.mp4` frames {real['frames']} matted trimap-free and with a roto keyframe on "
            "the first frame.  The keyframe roto is a polygon drawn by hand around the man standing on the left "
            "(hat, head, coat, cane, legs; `CHAPLIN_ROTO_1001` in the script), rough at the edge as a quick "
            "roto is.  Left the default, right the keyframe carried, over a checkerboard "
            f"(frames {', '.join(str(p) for p in real['picked'])}):",  # type: ignore[attr-defined]
            "",
            f"![chaplin.mp4: trimap-free default against a frame-{str(real['frames']).split('-')[0]} keyframe "
            "carried](img/keyframes_chaplin.png)",
        ]
    return lines


def update_block(path: Path, block_text: str, keep: bool) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{block_text}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    elif keep:
        # inside a keep block, so that scripts/make_benchmarks.py carries it over when it regenerates the file
        text = text.rstrip("\n") + f"\n\n{KEEP_BEGIN}\n{block}\n{KEEP_END}\n"
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


def checkout() -> str:
    """The commit measured, and whether vfxmatte/ had uncommitted changes at the start."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "vfxmatte"], capture_output=True, text=True, cwd=REPO)
    text = head.stdout.strip() or "unknown commit"
    return text + (" with uncommitted changes in vfxmatte/" if dirty.stdout.strip() else "")


def _optional(future: Future[dict[str, object]], name: str) -> dict[str, object]:
    try:
        result = future.result()
    except (SystemExit, Exception) as exc:  # any failure of an optional part is reported, not raised
        result = {"failed": " ".join(str(exc).split())[:300] or type(exc).__name__}
    print(json.dumps({name: result}), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the composite shots")
    parser.add_argument(
        "--shots",
        default="GT10:GT02,GT16:GT14",
        help="TARGET:DISTRACTOR pairs, comma-separated (default: one from each half, GT01–10 / GT11–20; '' for none)",
    )
    parser.add_argument("--shot-seed", type=int, default=0)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of: {', '.join(MODES)}")
    parser.add_argument("--matte-arg", dest="matte_args", action="append", default=[], help="extra CLI argument")
    parser.add_argument("--keep", help="work folder kept after the run (default: a temporary one)")
    parser.add_argument("--real", action="store_true", help="also the real footage (chaplin.mp4) and its picture")
    parser.add_argument("--real-frames", type=int, default=24)
    parser.add_argument("--carry-1080p", type=int, default=0, metavar="N", help="time the carry on N 1080p frames")
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep: take runs already recorded there by the same command"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --keep: runs whose time is not reported (all but the keyframe modes) skip frames already "
        "written there with the same parameters",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="OMP/MKL/OpenBLAS/numba threads per CLI run (default: as set)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="shots / parts run side by side (default 1)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--render",
        metavar="JSON",
        action="append",
        help="only print (and with --update-docs write) the table of --json files of earlier runs (repeatable: "
        "the shots of the first with shots, the 1080p carry and the real footage of the last with them)",
    )
    parser.add_argument("--update-docs", action="store_true", help="fill the keyframes blocks of the docs")
    args = parser.parse_args()
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size}: expected WIDTHxHEIGHT, e.g. 640x360")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)} (choose from {', '.join(MODES)})")
    args.shot_pairs = [tuple(pair.split(":")) for pair in args.shots.split(",") if pair]
    if not all(len(p) == 2 for p in args.shot_pairs):
        parser.error(f"--shots {args.shots}: expected TARGET:DISTRACTOR[,TARGET:DISTRACTOR…]")
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data}: not found (the shared data folder, ../shared/data by default)")

    if args.render:
        # Several --json files of earlier runs: the shots' rows and the text's settings from the first with
        # rows, the 1080p carry and the real footage from the last that has them.
        saved_runs = [json.loads(Path(name).read_text()) for name in args.render]
        main_run = next((r for r in saved_runs if r["rows"]), saved_runs[0])
        for key, value in main_run["settings"].items():
            setattr(args, key, value)
        table = render(
            [Row(**r) for r in main_run["rows"]],
            main_run["shots"],
            args,
            "\n".join(saved["command"] for saved in saved_runs),
            (float(main_run["load"][0]), float(main_run["load"][1])),
            next((r["carry_1080p"] for r in reversed(saved_runs) if r["carry_1080p"] is not None), None),
            next((r["real"] for r in reversed(saved_runs) if r["real"] is not None), None),
        )
        print(table)
        if args.update_docs:
            update_block(REPO / "docs" / "BENCHMARKS.md", table, keep=True)
            update_block(REPO / "docs" / "GUIDANCE.md", table, keep=False)
        return 0

    from vfxmatte.errors import VfxmatteError

    command = shlex.join(["python", "scripts/bench_keyframes.py", *sys.argv[1:]])
    load_start = os.getloadavg()[0]
    REUSE["enabled"] = bool(args.reuse and args.keep)
    REUSE["resume"] = bool(args.resume and args.keep)
    THREADS["n"] = args.threads
    args.checkout = checkout()
    temporary = tempfile.TemporaryDirectory(prefix="bench_keyframes_") if not args.keep else None
    work = Path(args.keep) if args.keep else Path(temporary.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    shots: list[dict[str, object]] = []
    carry1080: dict[str, object] | None = None
    real: dict[str, object] | None = None
    try:
        # Every (shot, mode) run, the 1080p carry and the real footage are tasks; --jobs runs them side by side.
        plans = [prepare_shot(t, d, args, work) for t, d in args.shot_pairs]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            real_future = pool.submit(real_footage, args, work, args.matte_args) if args.real else None
            mode_futures = [
                (plan, pool.submit(run_mode, plan, mode, args.matte_args)) for plan in plans for mode in args.modes
            ]
            carry_future = pool.submit(carry_1080p, args, work) if args.carry_1080p and args.shot_pairs else None
            for plan in plans:
                done = [future.result() for p, future in mode_futures if p is plan]
                shot_rows = [row for row, _ in done]
                count_lost(shot_rows)
                rows += shot_rows
                runs = {row.mode: info for row, info in done}
                shots.append({"shot": plan.name, "half": plan.half, "folder": str(plan.folder), "runs": runs})
            # The optional parts report a failure in the table instead of losing the shots' numbers.
            if carry_future is not None:
                carry1080 = _optional(carry_future, "carry_1080p")
            if real_future is not None:
                real = _optional(real_future, "real")
    except VfxmatteError as exc:
        raise SystemExit(str(exc)) from exc
    finally:
        if temporary is not None:
            temporary.cleanup()
    load = (load_start, os.getloadavg()[0])
    table = render(rows, shots, args, command, load, carry1080, real)
    print(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command,
                    "settings": {
                        k: getattr(args, k)
                        for k in ("frames", "width", "height", "matte_args", "shot_seed", "checkout")
                    },
                    "rows": [r.__dict__ for r in rows],
                    "shots": shots,
                    "carry_1080p": carry1080,
                    "real": real,
                    "load": load,
                },
                indent=2,
            )
        )
    if args.update_docs:
        update_block(REPO / "docs" / "BENCHMARKS.md", table, keep=True)
        update_block(REPO / "docs" / "GUIDANCE.md", table, keep=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
