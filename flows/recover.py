"""Put crashed or stuck ``matte-shot`` runs back in the queue; a requeued run resumes.

A worker that dies (SIGKILL, a lost node) leaves its run Running or, with heartbeats and the
zombie automation of ``scripts/facility_up.sh``, Crashed.  Setting the run back to Scheduled
lets any worker of the pool pick it up again; the rerun skips every frame already written
(same parameters in the header) and writes the rest.  Atomic writes mean a killed frame left
at most a hidden ``.….tmp.exr`` file, which the rerun removes.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Scheduled

from vfxmatte.errors import UsageError

REQUEUEABLE = {StateType.CRASHED, StateType.RUNNING, StateType.PENDING, StateType.FAILED}


def requeue_runs(run_ids: list[str] | None = None) -> list[str]:
    """Requeue the given runs (any that is not Completed/Cancelled), or every crashed matte-shot run."""
    lines = []
    with get_client(sync_client=True) as client:
        if run_ids:
            runs = []
            for run_id in run_ids:
                try:
                    runs.append(client.read_flow_run(UUID(run_id)))
                except ValueError:
                    raise UsageError(f"requeue {run_id}: not a flow run id") from None
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["matte-shot"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED]))
                ),
                deployment_filter=DeploymentFilter(),
            )
        for run in runs:
            state_type = run.state.type if run.state else None
            if state_type not in REQUEUEABLE:
                lines.append(f"{run.id} ({run.name}): {state_type.value if state_type else 'no state'}, left alone")
                continue
            client.set_flow_run_state(run.id, Scheduled(), force=True)
            lines.append(f"{run.id} ({run.name}): {state_type.value} → SCHEDULED")
    if not lines:
        lines.append("nothing to requeue")
    return lines
