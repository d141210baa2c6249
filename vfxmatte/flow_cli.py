"""`vfxmatte flow …`: run the Prefect flows locally, or apply them to a Prefect server.

``vfxmatte flow run INPUT -o OUTPUT`` runs the ``matte-shot`` flow in this process on any
paths the user names (``VFXMATTE_ROOTS`` confines only runs that arrive over the network); with no
``PREFECT_API_URL`` set, Prefect's ephemeral SQLite-backed server runs for it (no set-up),
started before anything heavy is imported so that its start-up overlaps theirs
(:mod:`flows.local_server`).  ``vfxmatte flow deploy`` creates the work pool, the GPU concurrency limits and the
deployments on the server ``PREFECT_API_URL`` names (facility mode, see docs/FLOWS.md).
``vfxmatte flow requeue RUN_ID…`` puts crashed or stuck runs back in the queue; they resume.

The flows live in the top-level ``flows`` package and import Prefect; this module imports
them only when a ``flow`` command runs, so the rest of the CLI never loads Prefect.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from vfxmatte.config import CLEAN_PLATES, PRESETS
from vfxmatte.errors import UsageError, VfxmatteError


def add_flow_parser(sub: Any) -> None:
    p = sub.add_parser("flow", help="Prefect flows: run a shot locally, deploy to a server, requeue runs")
    actions = p.add_subparsers(dest="flow_command", required=True, parser_class=type(p))

    run = actions.add_parser("run", help="run the matte-shot flow here (ephemeral server unless PREFECT_API_URL)")
    run.add_argument("input", help="plate.####.exr or a movie")
    run.add_argument("-o", "--output", required=True, help="output pattern (matte.####.exr) or directory")
    run.add_argument("--frames", help="frames to do: 1001-1100, 1001-1010,1020")
    run.add_argument("--preset", choices=tuple(PRESETS), default="standard")
    run.add_argument("--prompt")
    run.add_argument("--guide", help="guide image or sequence; keyframes when it covers only some frames")
    run.add_argument("--guide-kind", choices=("trimap", "mask", "scribble", "auto"), default="auto")
    run.add_argument("--guide-channel", help="EXR channel holding the guide (default: its alpha)")
    run.add_argument("--guide-frame", type=int, metavar="N", help="the single --guide image is frame N's keyframe")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--prior", choices=("u2netp", "people", "none"), default="u2netp",
        help="subject prior without a guide, as vfxmatte matte --prior (people: for shots of people)",
    )
    run.add_argument(
        "--clean-plate", choices=CLEAN_PLATES, default="auto",
        help="trimap-free: use the shot's clean plate (tracked over a moving camera), as vfxmatte matte --clean-plate",
    )
    run.add_argument("--colorspace")
    run.add_argument("--overwrite", action="store_true")
    run.add_argument("--chunk-size", type=int, default=24, help="frames per task (default 24)")
    run.add_argument("--no-review", action="store_true", help="do not build the review page")
    run.add_argument("--json", action="store_true", help="print the result record as JSON")

    deploy = actions.add_parser("deploy", help="create the work pool, GPU limits and deployments on PREFECT_API_URL")
    deploy.add_argument("--gpus", type=int, default=1, help="one concurrency limit per GPU: gpu-0 … (default 1: 'gpu')")
    deploy.add_argument("--drop", help="drop folder the nightly deployment scans")
    deploy.add_argument("--manifest", help="manifest JSON the nightly deployment reads (instead of --drop)")
    deploy.add_argument("--output-root", help="where the nightly deployment writes each shot's mattes")
    deploy.add_argument("--cron", default="0 2 * * *", help="schedule of the nightly deployment (default 02:00)")
    deploy.add_argument("--timezone", default="UTC")
    deploy.add_argument(
        "--automations", action="store_true", help="also mark runs whose heartbeats stop Crashed (facility mode)"
    )

    requeue = actions.add_parser("requeue", help="put crashed or stuck matte-shot runs back in the queue")
    requeue.add_argument("run_ids", nargs="*", help="flow run ids (default: every crashed matte-shot run)")
    for action in (run, deploy, requeue):  # `vfxmatte flow run … --debug` too
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def cmd_flow(args: argparse.Namespace) -> int:
    try:
        import flows  # noqa: F401  (sets the offline defaults before Prefect loads)
    except ModuleNotFoundError as exc:
        raise UsageError("vfxmatte flow: the flows package is not installed next to vfxmatte") from exc
    try:
        return _flow_command(args)
    except Exception as exc:
        refused = _refused_credentials(exc)
        if refused is None:
            raise
        raise refused from None


def _refused_credentials(exc: BaseException) -> UsageError | None:
    """One line for an HTTP 401/403 from the Prefect server (Prefect's own error is a paragraph)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status not in (401, 403):
        return None
    url = os.environ.get("PREFECT_API_URL", "the Prefect server")
    return UsageError(
        f"the Prefect server at {url} refused our credentials (HTTP {status}): set PREFECT_API_AUTH_STRING "
        "to the server's PREFECT_SERVER_API_AUTH_STRING (user:password)"
    )


def _flow_command(args: argparse.Namespace) -> int:
    if args.flow_command == "run":
        return _run(args)
    if args.flow_command == "deploy":
        from flows.deploy import apply_all

        for line in apply_all(
            gpus=args.gpus,
            drop=args.drop,
            manifest=args.manifest,
            output_root=args.output_root,
            cron=args.cron,
            timezone=args.timezone,
            automations=args.automations,
        ):
            print(line)
        return 0
    from flows.recover import requeue_runs

    for line in requeue_runs(args.run_ids):
        print(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    # The embedded default's server starts first, on its own core, while Prefect and torch load
    # here (flows/local_server.py); a server named in a Prefect profile makes it unnecessary.
    from flows.local_server import start_if_unconfigured

    server = start_if_unconfigured()
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.matte_shot import matte_shot
    from vfxmatte.security import local_paths

    if server is not None and get_current_settings().api.url:
        server.stop()
        server = None
    settings: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if server is not None:
        server.wait_ready()
        settings = temporary_settings(updates={PREFECT_API_URL: server.api_url})
    # The paths were typed here: they are the user's own, not confined to VFXMATTE_ROOTS
    # (that fence is for parameters arriving over the network: deployments, REST, the bridge).
    with settings, local_paths():
        state = matte_shot(
            args.input,
            args.output,
            frames=args.frames,
            preset=args.preset,
            prompt=args.prompt,
            guide=args.guide,
            guide_kind=args.guide_kind,
            guide_channel=args.guide_channel,
            guide_frame=args.guide_frame,
            seed=args.seed,
            colorspace=args.colorspace,
            overwrite=args.overwrite,
            chunk_size=args.chunk_size,
            prior=args.prior,
            clean_plate=args.clean_plate,
            review=not args.no_review,
            return_state=True,
        )
        value = state.result(raise_on_failure=False)
    return _report(value, args)


def _report(value: Any, args: argparse.Namespace) -> int:
    """Print a flow run's result record (or raise its error) and give the exit status."""
    from flows.matte_shot import ShotFailed

    if isinstance(value, ShotFailed):
        result: dict[str, Any] = value.result
    elif isinstance(value, VfxmatteError):
        raise value
    elif isinstance(value, BaseException):
        raise UsageError(f"{args.input}: flow run failed: {value}")
    else:
        result = value
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        frames = result["frames"]
        print(
            f"{len(frames['written'])} written, {len(frames['skipped'])} skipped, "
            f"{len(frames['failed'])} failed → {result['output']}"
        )
        for frame, error in result["errors"].items():
            print(f"error: frame {frame}: {error}", file=sys.stderr)
        if result["flagged"]:
            print(f"flagged for review: {', '.join(map(str, result['flagged']))}")
        if result.get("missed"):
            print(
                "the clean plate sees a subject the matte leaves out on frame(s): "
                f"{', '.join(result['missed'])}: look at them, or matte them with --clean-plate fill"
            )
        if result.get("next_keyframes"):
            print(f"draw the next roto on frame(s): {', '.join(map(str, result['next_keyframes']))}")
        print(f"review: {result['review_page'] or result['review_note']}")
    return 1 if result["frames"]["failed"] else 0
