"""Deployments in code: the ``vfxmatte-gpu`` process work pool and its queues, the GPU limits and both deployments.

``apply_all()`` (``vfxmatte flow deploy``, ``python -m flows.deploy``) talks to the server that
``PREFECT_API_URL`` names and is idempotent: what exists is left alone, deployments are updated.

- ``matte-shot/vfxmatte``: submitted by the Nuke bridge or ``prefect deployment run``.
- ``matte-new-shots/nightly``: a cron schedule (default 02:00 UTC) over a drop folder or manifest.

Deployments load the code from this checkout (``from_source`` on the repository folder), so a
worker needs the same path on its machine (a shared file system, as facilities have).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.schedules import Cron

REPO = Path(__file__).resolve().parents[1]
WORK_POOL = "vfxmatte-gpu"  # the historical name: CPU workers serve it too (docs/FLOWS.md, "Mixed farms")
#: Besides the ``default`` queue every worker serves: a run sent to ``gpu`` or ``cpu`` waits for that kind.
WORK_QUEUES = ("gpu", "cpu")
MATTE_SHOT = ("flows/matte_shot.py:matte_shot", "vfxmatte")
NEW_SHOTS = ("flows/new_shots.py:matte_new_shots", "nightly")


def gpu_limit_names(gpus: int) -> list[str]:
    """``gpu`` on a one-GPU machine; ``gpu-0``, ``gpu-1``… with one limit per device."""
    return ["gpu"] if gpus <= 1 else [f"gpu-{index}" for index in range(gpus)]


def ensure_work_pool(name: str = WORK_POOL) -> str:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return f"work pool {name}: exists"
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return f"work pool {name}: exists"
    return f"work pool {name}: created (process)"


def ensure_work_queues(names: tuple[str, ...] = WORK_QUEUES, pool: str = WORK_POOL) -> list[str]:
    """The pool's ``gpu`` and ``cpu`` queues (a worker polling a queue that does not exist gets 404s)."""
    lines = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_work_queue_by_name(name, work_pool_name=pool)
                lines.append(f"work queue {pool}/{name}: exists")
                continue
            except ObjectNotFound:
                pass
            try:
                client.create_work_queue(name=name, work_pool_name=pool)
                lines.append(f"work queue {pool}/{name}: created")
            except ObjectAlreadyExists:
                lines.append(f"work queue {pool}/{name}: exists")
    return lines


def ensure_gpu_limits(gpus: int, slots: int = 1) -> list[str]:
    lines = []
    with get_client(sync_client=True) as client:
        for name in gpu_limit_names(gpus):
            try:
                limit = client.read_global_concurrency_limit_by_name(name)
                lines.append(f"concurrency limit {name}: exists ({limit.limit} slot(s))")
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
                lines.append(f"concurrency limit {name}: created ({slots} slot(s))")
    return lines


ZOMBIE_AUTOMATION = "vfxmatte: crash silent flow runs"


def ensure_zombie_automation(silent_for: float = 180.0) -> str:
    """Mark flow runs Crashed when their heartbeats stop (a dead node); requeue them with ``vfxmatte flow requeue``.

    Needs ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (≥ 30 s) in the workers' environment.
    """
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with get_client(sync_client=True) as client:
        if any(a.name == ZOMBIE_AUTOMATION for a in client.read_automations()):
            return f"automation {ZOMBIE_AUTOMATION!r}: exists"
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silent_for),
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,
                state=StateType.CRASHED,
                message=f"No heartbeat for {silent_for:.0f} s: the worker or its node died",
            )
        ],
    ).create()
    return f"automation {ZOMBIE_AUTOMATION!r}: created"


def _deploy(flow: tuple[str, str], source: Path, work_pool: str, **options: Any) -> UUID:
    """Deploy one of this project's flows from ``source`` (no image build or push), tagged vfxmatte."""
    from prefect import Flow

    entrypoint, name = flow
    loaded: Any = Flow.from_source(source=str(source), entrypoint=entrypoint)  # sync in this context
    deployment_id: UUID = loaded.deploy(
        name=name,
        work_pool_name=work_pool,
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,
        tags=["vfxmatte"],
        **options,
    )
    return deployment_id


def deploy_matte_shot(source: Path = REPO, work_pool: str = WORK_POOL) -> UUID:
    return _deploy(
        MATTE_SHOT, source, work_pool,
        description="Matte one shot (FLOW_CONTRACT parameters); triggered by the Nuke bridge or the API.",
    )  # fmt: skip


def deploy_new_shots(
    drop: str | None,
    manifest: str | None,
    output_root: str | None,
    cron: str = "0 2 * * *",
    timezone: str = "UTC",
    source: Path = REPO,
    work_pool: str = WORK_POOL,
) -> UUID:
    parameters = {k: v for k, v in {"drop": drop, "manifest": manifest, "output_root": output_root}.items() if v}
    return _deploy(
        NEW_SHOTS, source, work_pool,
        schedules=[Cron(cron, timezone=timezone)],
        parameters=parameters,
        paused=not parameters,  # without a drop folder or manifest there is nothing to scan yet
        description="Matte every new shot in the drop folder or manifest (cron).",
    )  # fmt: skip


def apply_all(
    gpus: int = 1,
    drop: str | None = None,
    manifest: str | None = None,
    output_root: str | None = None,
    cron: str = "0 2 * * *",
    timezone: str = "UTC",
    automations: bool = False,
) -> list[str]:
    """Work pool and queues, GPU limits, both deployments (and the zombie-run automation); one line per thing."""
    lines = [ensure_work_pool(), *ensure_work_queues(), *ensure_gpu_limits(gpus)]
    if automations:
        lines.append(ensure_zombie_automation())
    lines.append(f"deployment matte-shot/vfxmatte: {deploy_matte_shot()}")
    new_shots = deploy_new_shots(drop, manifest, output_root, cron, timezone)
    state = f"schedule '{cron}' {timezone}" if drop or manifest else "paused: no drop folder or manifest given"
    lines.append(f"deployment matte-new-shots/nightly: {new_shots} ({state})")
    return lines


if __name__ == "__main__":
    import flows  # noqa: F401  (offline defaults)

    for line in apply_all(gpus=int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(line)
