"""`vfxmatte …`: a thin shell over :mod:`vfxmatte.pipeline`.

Parses arguments, calls the library, and turns its errors into one-line messages and
exit codes (0 all written, 1 some frames failed, 2 bad usage or no readable input,
130 interrupted).  A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from vfxmatte import __version__
from vfxmatte.bench import add_bench_parser, cmd_bench
from vfxmatte.config import CLEAN_PLATES
from vfxmatte.errors import UsageError, VfxmatteError
from vfxmatte.evaluate import add_eval_parser, cmd_eval
from vfxmatte.flow_cli import add_flow_parser, cmd_flow
from vfxmatte.review import add_review_parser, cmd_review


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _add_matte(sub: Any) -> None:
    p = sub.add_parser("matte", help="matte a sequence, an image or a movie into multichannel EXRs")
    p.add_argument("input", help="plate.####.exr, plate.%%04d.exr, plate.@.exr, one image, or a movie")
    p.add_argument(
        "-o", "--output", required=True,
        help="output pattern (plate.####.exr), directory, or a .mov (ProRes 4444 with alpha)",
    )
    p.add_argument(
        "--preview", action="store_true",
        help="movie output as H.264 (.mov/.mp4/.mkv): the comp over a checkerboard with uncertainty as heat",
    )
    p.add_argument("--frames", help="frames to do: 1001-1100, 1001-1100x2, 1001,1005")
    p.add_argument("--model", help="model folder (default: the bundled model)")
    p.add_argument(
        "--preset", choices=("draft", "standard", "final"), default="standard",
        help="quality preset: draft (4 steps, 2 seeds, 256 px), standard (default), final (20, 8, 1024 px)",
    )
    p.add_argument("--steps", type=int, help="DDIM steps T' (default 10; overrides the preset)")
    p.add_argument("--seeds", type=int, help="ensemble size L (default 4; overrides the preset)")
    p.add_argument("--lr-size", type=int, help="long side of the LR pass (default 512; overrides the preset)")
    p.add_argument("--seed", type=int, default=0, help="noise seed; same seed, same device → same pixels")
    p.add_argument("--prompt", help="text prompt (models with a text encoder)")
    p.add_argument(
        "--hr", choices=("auto", "diffusion", "pymatting", "off"),
        help="full-resolution refinement: diffusion (uncertain patches, GPU), pymatting (closed-form in the "
        "auto-trimap band, CPU), off (upsampled LR matte); default auto: diffusion on CUDA with an HR-capable "
        "model, else pymatting",
    )
    p.add_argument("--write-trimap", action="store_true", default=None, help="also write the auto-trimap as trimap.Y")
    p.add_argument(
        "--guide",
        help="guide image or sequence (roto.####.png / .exr): a sequence matched frame by frame; one that covers "
        "only some frames gives keyframes, carried to the frames between by optical flow; one image guides every "
        "frame (locked-off shots), or is the keyframe of --guide-frame",
    )
    p.add_argument(
        "--guide-frame", type=int, metavar="N",
        help="the single --guide image was drawn on frame N: a keyframe carried through the shot",
    )
    p.add_argument(
        "--guide-kind", choices=("trimap", "mask", "scribble", "auto"),
        help="trimap: 0/0.5/1; mask: binary or soft subject mask; scribble: white fg, black bg, grey or "
        "transparent unknown; auto (default) guesses",
    )
    p.add_argument("--guide-channel", help="EXR channel holding the guide (default: its alpha)")
    p.add_argument("--clamp-known", action="store_true", default=None, help="force the guide's known pixels")
    p.add_argument(
        "--mask-band", type=float,
        help="mask guides: how far inside the mask's edge the subject's edge may lie, as a fraction of the "
        "frame's long side (default 0.06, for loose rotos and garbage mattes; less for a roto drawn on the edge)",
    )
    p.add_argument(
        "--prior", choices=("u2netp", "people", "none"),
        help="salient-object prior for runs without a trimap/scribble guide (kept inside a mask guide): "
        "its coarse mask is where sampling starts (default u2netp; people: each subject completed by a "
        "person-segmentation network, for shots of people: heads and hats U²-Netp loses against a dark background)",
    )
    p.add_argument(
        "--prior-strength", type=float, help="fraction of the DDIM schedule run from the noised prior mask (0.3)"
    )
    p.add_argument(
        "--prior-jump-iou", type=float,
        help="with --temporal shared: a frame whose prior mask overlaps the previous frame's matte "
        "(moved by optical flow) less than this (IoU) follows that matte instead, two frames in a row "
        "at most (default 0: never; docs/VIDEO.md has the shots where 0.5 helps and where it hurts)",
    )
    p.add_argument(
        "--prior-window", type=int, metavar="N",
        help="trimap-free: steady the prior over N frames on either side of each frame (per-pixel median "
        "of their masks moved by optical flow), so what it finds on one frame and loses on the next "
        "does not flicker in the matte (default 3; 0: each frame's own prior)",
    )
    p.add_argument(
        "--clean-plate", choices=CLEAN_PLATES,
        help="trimap-free on a multi-frame shot: gather the background from frames where no subject stands "
        "over it (tracked over a pan, tilt or push-in), and wherever a frame still shows it unchanged outside "
        "the prior's contour, the matte is 0 there (spill and fringe off the subject's edge go). auto "
        "(default): used where the shot gives one, noted where it does not; fill: also, where a frame differs "
        "from it and the prior sees a subject faintly (a head, a hat half lost against a background of its "
        "own colour), the matte is the subject's there; off: never",
    )
    p.add_argument(  # no argparse choices: a removed mode (prev-latent) gets its reason from MatteParams
        "--temporal", metavar="{off,shared}",
        help="temporal stability: off (independent noise per frame), shared (one noise for every frame); "
        "default: shared",
    )
    p.add_argument("--layer", help="EXR layer or part to matte (default: the main RGB layer)")
    p.add_argument("--view", help="stereo view to matte (default: the file's first/hero view)")
    p.add_argument("--colorspace", help="input colour space (OCIO name); default from the header / file type")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda[:N], mps")
    p.add_argument("--batch-size", type=int, help="seeds per forward pass (default: all at once)")
    p.add_argument("--start-frame", type=int, default=1001, help="first frame number of a movie (default 1001)")
    p.add_argument("--max-pixels", type=int, default=48_000_000, help="refuse frames larger than this")
    p.add_argument("--overwrite", action="store_true", help="replace outputs made with other parameters")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="frames, gaps, resolution, windows and channels of an input")
    p.add_argument("input")
    p.add_argument("--json", action="store_true")


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model from a JSON config")
    p.add_argument("config", help="JSON config; 'base' names a config it overrides")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output folder")


def _add_convert(sub: Any) -> None:
    p = sub.add_parser("convert", help="turn a Stable Diffusion folder into a matting model folder")
    p.add_argument("source")
    p.add_argument("destination")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vfxmatte", description="Diffusion alpha mattes with an uncertainty pass.")
    parser.add_argument("--version", action="version", version=f"vfxmatte {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_matte, _add_info, _add_train, _add_convert, add_eval_parser, add_bench_parser, add_review_parser,
                add_flow_parser):
        add(sub)
    for command in sub.choices.values():  # `vfxmatte matte … --debug` as well as `vfxmatte --debug matte …`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_gracefully_on_sigterm() -> None:
    """SIGTERM stops a run as Ctrl-C does: the frame in progress is finished or discarded, exit 130.

    The Nuke bridge cancels a local job with it, and so do process managers.  SIGINT is not
    enough: a process started in the background of a non-interactive shell (a launcher script's
    ``nuke &``) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _cmd_matte(args: argparse.Namespace) -> int:
    stop_gracefully_on_sigterm()
    from vfxmatte.config import RunOptions, preset_params
    from vfxmatte.io.sequence import parse_frame_range
    from vfxmatte.pipeline import FrameResult, matte_shot

    params = preset_params(
        args.preset,
        steps=args.steps,
        seeds=args.seeds,
        lr_size=args.lr_size,
        seed=args.seed,
        layer=args.layer,
        view=args.view,
        colorspace=args.colorspace,
        prompt=args.prompt,
        temporal=args.temporal,
        hr=args.hr,
        write_trimap=args.write_trimap,
        guide=args.guide,
        guide_kind=args.guide_kind,
        guide_channel=args.guide_channel,
        guide_frame=args.guide_frame,
        clamp_known=args.clamp_known,
        mask_band=args.mask_band,
        prior=args.prior,
        prior_strength=args.prior_strength,
        prior_jump_iou=args.prior_jump_iou,
        prior_window=args.prior_window,
        clean_plate=args.clean_plate,
    )
    if args.colorspace:
        from vfxmatte.io.color import is_linear

        is_linear(args.colorspace)  # validates the name before any work
    options = RunOptions(
        device=args.device,
        overwrite=args.overwrite,
        start_frame=args.start_frame,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
        preview=args.preview,
    )
    frames = parse_frame_range(args.frames) if args.frames else None
    bar: Any = None
    seen_warnings: set[str] = set()

    def on_start(total: int) -> None:
        nonlocal bar
        if not args.quiet and not args.json:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def on_frame(result: FrameResult) -> None:
        for warning in result.warnings:
            if warning not in seen_warnings:  # a movie repeats the same warning on every frame
                seen_warnings.add(warning)
                _say(f"warning: {warning}", bar)
        if result.status == "failed":
            if args.debug and result.traceback:
                _say(result.traceback, bar)
            _say(f"error: frame {result.frame}: {result.error}", bar)
        if bar is not None:
            bar.set_postfix_str(f"{result.frame} {result.status}")
            bar.update(1)

    summary = matte_shot(
        args.input, args.output, params, options, frames=frames, model=args.model, on_start=on_start, on_frame=on_frame
    )
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        written, skipped, failed = (len(summary.frames(s)) for s in ("written", "skipped", "failed"))
        print(f"{written} written, {skipped} skipped, {failed} failed → {summary.output}")
        for note in summary.notes:
            print(f"note: {note}")
        if summary.keyframes:
            from vfxmatte.io.sequence import format_ranges

            print(f"keyframes: {format_ranges(summary.keyframes)} (carried in {summary.carry_seconds:.1f} s)")
            if suggested := summary.next_keyframes():
                print(f"draw the next roto on frame(s): {', '.join(map(str, suggested))}")
        if summary.interrupted:
            print("interrupted: the frame in progress was discarded; rerun to resume", file=sys.stderr)
    return summary.exit_code


def _cmd_info(args: argparse.Namespace) -> int:
    from vfxmatte.info import describe_input

    record = describe_input(args.input)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for key, value in record.items():
            print(f"{key}: {value if not isinstance(value, list | dict) else json.dumps(value)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vfxmatte.train.loop import TrainConfig, train

    config = TrainConfig.load(args.config)
    out = train(config, command="vfxmatte train " + " ".join(sys.argv[2:]), resume=args.resume)
    print(f"model written to {out}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from vfxmatte.model.core import convert_sd_folder

    out = convert_sd_folder(args.source, args.destination)
    print(f"matting model written to {out}")
    return 0


def _say(message: str, bar: Any) -> None:
    if bar is not None:
        bar.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "matte": _cmd_matte,
    "info": _cmd_info,
    "train": _cmd_train,
    "convert": _cmd_convert,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "flow": cmd_flow,
    "review": cmd_review,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except VfxmatteError as exc:
        if debug:
            traceback.print_exc()
        print(f"vfxmatte: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print("vfxmatte: error: out of memory (try a smaller --lr-size or --batch-size)", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure still gets one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"vfxmatte: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return 1


def entry() -> None:
    # Die quietly on a closed pipe (`vfxmatte info … | head`).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    sys.exit(main())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    entry()
