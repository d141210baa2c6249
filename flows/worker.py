"""Start a vfxmatte process worker, after checking that this node has the device it is asked to use.

::

    python -m flows.worker [--device auto|cpu|cuda|cuda:N] [--threads N] [--slots N] [--limit NAME]
                           [--pool vfxmatte-gpu] [--name NAME] [--runs N]
    python -m flows.worker --detect     # print how many CUDA devices torch sees here (0: a CPU node)

``scripts/facility_up.sh`` starts every worker through this module; a worker started by hand should
be too.  Before anything else, and each failure one line on stderr with exit status 1:

- **the device**: ``cuda`` (or ``cuda:N``) needs a CUDA device torch can use here (after
  ``CUDA_VISIBLE_DEVICES``); ``auto`` is resolved now (CUDA, else the CPU), so the flow runs this
  worker starts never guess and never fail three times with "CUDA is not available";
- **the server**: ``PREFECT_API_URL`` answers and accepts our credentials.

Then it creates (or resizes) the worker's concurrency limit — the one the flow's model work holds a
slot of (``VFXMATTE_GPU_LIMIT``): by default ``gpu-<host>[-<CUDA_VISIBLE_DEVICES>]`` with one slot for
a GPU worker, ``cpu-<host>`` with ``--slots`` slots for a CPU worker, so that CPU work never waits
for a GPU's slot and two nodes never share one — and replaces itself (same process id) with
``prefect worker start --type process --pool … --limit RUNS --work-queue default --work-queue gpu|cpu``.
The flow runs it starts inherit ``VFXMATTE_DEVICE`` (concrete), ``VFXMATTE_GPU_LIMIT`` and, for a CPU
worker, the thread count (``OMP_NUM_THREADS`` and the BLAS/numba equivalents; torch and the
salient-object prior follow it).

Work queues: the deployments' runs go to the pool's ``default`` queue, which every worker serves; a
run created with ``work_queue_name`` ``gpu`` or ``cpu`` is only picked up by a worker of that kind
(docs/FLOWS.md, "Mixed farms").
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import flows  # noqa: F401  (offline defaults before Prefect loads)

PREFIX = "vfxmatte worker"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


class StartupError(Exception):
    """A reason this worker must not start; its message is the one line printed."""


def thread_env(threads: int) -> dict[str, str]:
    """The variables that hold torch, BLAS, numba and (through torch) the prior to ``threads`` threads."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def cuda_devices() -> int:
    """CUDA devices torch can use in this process (``CUDA_VISIBLE_DEVICES`` applies); 0 without CUDA."""
    import torch

    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except RuntimeError:  # a broken driver raises instead of answering
        return 0


def check_device(device: str) -> str:
    """The concrete device a worker asked for ``device`` runs on here, or :class:`StartupError`."""
    if device == "auto":
        return "cuda" if cuda_devices() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise StartupError(f"--device {device}: not a CUDA device (cuda or cuda:N)")
        found = cuda_devices()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f" with CUDA_VISIBLE_DEVICES={visible}" if visible is not None else ""
        if found == 0:
            raise StartupError(
                f"--device {device}: torch sees no CUDA device on this node{seen}; "
                "start CPU workers here (--device cpu, or DEVICE=cpu for scripts/facility_up.sh)"
            )
        if index and int(index) >= found:
            raise StartupError(f"--device {device}: torch sees only {found} CUDA device(s) on this node{seen}")
        return device
    raise StartupError(f"--device {device}: choose auto, cpu, cuda or cuda:N")


def default_limit(device: str) -> str:
    host = socket.gethostname().split(".")[0] or "node"
    if device == "cpu":
        return f"cpu-{host}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return f"gpu-{host}-{visible}" if visible and "," not in visible else f"gpu-{host}"


def prepare_server(pool: str, limit: str, slots: int) -> str:
    """The pool and its queues exist and ``limit`` has ``slots`` slots; what the limit is, for the start line."""
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise StartupError("PREFECT_API_URL is not set: a worker needs the facility's server (http://head:4200/api)")
    try:
        from flows.deploy import WORK_QUEUES, ensure_work_pool, ensure_work_queues

        ensure_work_pool(pool)
        ensure_work_queues(WORK_QUEUES, pool)
        return ensure_limit(limit, slots)
    except Exception as exc:  # httpx / Prefect errors: one line naming the server and the cause
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise StartupError(
                f"the Prefect server at {url} refused our credentials (HTTP {status}): set PREFECT_API_AUTH_STRING "
                "to the server's PREFECT_SERVER_API_AUTH_STRING"
            ) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StartupError(f"cannot reach the Prefect server at {url}: {reason}") from None


def ensure_limit(name: str, slots: int) -> str:
    """Create the global concurrency limit ``name`` with ``slots`` slots, or set an existing one to that many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
                return f"{name} ({slots} slot(s), created)"
            except ObjectAlreadyExists:  # another worker of this node created it first
                limit = client.read_global_concurrency_limit_by_name(name)
        if limit.limit != slots:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots))
            return f"{name} ({slots} slot(s), was {limit.limit})"
        return f"{name} ({slots} slot(s))"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flows.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--detect", action="store_true", help="print the number of CUDA devices torch sees; exit")
    parser.add_argument("--device", default=os.environ.get("VFXMATTE_DEVICE", "").strip() or "auto")
    parser.add_argument("--threads", type=positive, help="CPU threads per flow run (default: the environment's)")
    parser.add_argument("--slots", type=positive, default=1, help="slots of this worker's limit (CPU workers)")
    parser.add_argument("--limit", default=os.environ.get("VFXMATTE_GPU_LIMIT", "").strip() or None,
                        help="concurrency limit the model work holds (default gpu-<host>[-i] / cpu-<host>)")
    parser.add_argument("--pool", default="vfxmatte-gpu")
    parser.add_argument("--name", help="worker name (default <host>-<device>)")
    parser.add_argument("--runs", type=positive, default=1, help="flow runs this worker runs at once (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.detect:
        print(cuda_devices())
        return 0
    try:
        device = check_device(args.device)
        kind = "cpu" if device == "cpu" else "gpu"
        limit = args.limit or default_limit(device)
        slots = args.slots if kind == "cpu" else 1
        described = prepare_server(args.pool, limit, slots)
    except StartupError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 1
    env = dict(os.environ, VFXMATTE_DEVICE=device, VFXMATTE_GPU_LIMIT=limit)
    if args.threads:
        env.update(thread_env(args.threads))
    if kind == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker's runs never touch a GPU another worker owns
    name = args.name or f"{socket.gethostname().split('.')[0]}-{device.replace(':', '')}"
    threads = env.get("OMP_NUM_THREADS", "all")
    print(f"{PREFIX} {name}: device {device}, {threads} thread(s), limit {described}, pool {args.pool} "
          f"(queues default, {kind}), {args.runs} run(s) at a time", flush=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    command = [prefect, "worker", "start", "--type", "process", "--pool", args.pool, "--name", name,
               "--limit", str(args.runs), "--work-queue", "default", "--work-queue", kind]
    os.execve(prefect, command, env)
    return 1  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main())
