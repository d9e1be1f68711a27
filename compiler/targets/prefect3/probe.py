"""Runs in a Prefect 3 (or 2.14) virtualenv: what a composite flow run did, as JSON on stdout.

    python probe.py COMPOSITE_FLOW_RUN_ID

For the composite and each child run it started (found through the composite's task runs, as
run_deployment links them): the child's deployment, state, and the persisted results of its
tasks by task name (and `return`, its own persisted return value).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Dict
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentTaskRunId

from compiler.targets.prefect3.runtime.orchestration import _state_value, _task_name_of


async def describe(composite_id: str) -> Dict[str, Any]:
    async with get_client() as client:
        composite = await client.read_flow_run(UUID(composite_id))
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[composite.id])))
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[run.id for run in task_runs])
            )
        )
        described = []
        for child in sorted(children, key=lambda run: run.created or run.expected_start_time):
            deployment = await client.read_deployment(child.deployment_id) if child.deployment_id else None
            results: Dict[str, Any] = {}
            for task_run in await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[child.id]))):
                if task_run.state is not None and task_run.state.is_completed():
                    try:
                        results[_task_name_of(task_run.name)] = await asyncio.to_thread(_state_value, task_run.state)
                    except Exception:  # noqa: BLE001 - a result that was not persisted
                        continue
            if child.state is not None and child.state.is_completed():
                try:
                    results["return"] = await asyncio.to_thread(_state_value, child.state)
                except Exception:  # noqa: BLE001
                    pass
            described.append(
                {
                    "id": str(child.id),
                    "name": child.name,
                    "deployment": deployment.name if deployment else None,
                    "state": child.state.type.value if child.state else None,
                    "idempotency_key": child.idempotency_key,
                    "results": results,
                }
            )
        return {
            "state": composite.state.type.value if composite.state else None,
            "message": composite.state.message if composite.state else None,
            "run_count": composite.run_count,
            "children": described,
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(describe(sys.argv[1])), default=repr))
