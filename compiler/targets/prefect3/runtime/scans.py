"""Scans in a prefect3 flow: one child run per point, at most `max_concurrency` alive at once.

The points are data: the scan lists are composite parameters, `scan_points` computes the points
from the run's values, and a per-point step is one task, `run_points`, that starts each point's
child with `run_deployment(..., timeout=0)` (named from the point's values, with its own
idempotency key), polls the live ones in batches, starts the next point when one ends, and
starts a failed point anew (a new key) while it has retries left. It returns one entry per point
in point order and completes even when points failed, so the other points' `for_each`
descendants still run; `outcome` then fails the composite naming each failed point.
`point_inputs` pairs a for_each step's points with its lineage's (the same point's values;
points whose upstream point did not succeed are not run); `gather` hands a step that runs once
the list of every point's value, and fails (so that step never starts) when a point did not
succeed. Prefect 2.14 and 3.x, standard library besides.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple
from uuid import UUID

from prefect import task
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from compiler.runtime.points import ScanError, expand_points, point_name
from compiler.targets.prefect3.runtime.orchestration import (
    POLL_SECONDS,
    ChildFailed,
    ChildRun,
    _client_call,
    child_key,
    return_value,
    task_result,
)
from compiler.targets.prefect3.runtime.tasks import load_db_result

# A point to run: {"point": scan values (its name), "values": the child parameters it adds}, or
# {"point": ..., "not_run": why} / {"point": ..., "failed": why} when it cannot start.
Points = List[Dict[str, Any]]
# What a per-point step hands on: {"step": alias, "runs": [one entry per point, in point order]};
# an entry has "point" and "name", and "id" when its child completed, else "failed" or "not_run".
ScanRuns = Dict[str, Any]
RETURN_TASK = "return"
READ_BATCH = 200  # flow runs per state read (the API's default page)


def scan_points(step: str, mode: str, axes: Mapping[str, Any]) -> Points:
    """The points of the scanned step `step` from the run's values of its scan lists."""
    try:
        points = expand_points(step, mode, dict(axes))
    except ScanError as error:
        raise ValueError(str(error)) from None
    return [{"point": point, "values": dict(point)} for point in points]


def from_points(runs: Any, task_name: str, attribute_index: Optional[list] = None) -> Dict[str, Any]:
    """A per-point mapping for `point_inputs`: `task_name`'s value of each point's child run
    (through the db loader with `attribute_index`); `runs` is the parent step's future."""
    return {"runs": runs, "task": task_name, "attribute_index": attribute_index}


@task(name="point_inputs")
def point_inputs(lineage: ScanRuns, mapped: Dict[str, Dict[str, Any]], after: Sequence[ScanRuns] = ()) -> Points:
    """The points of a for_each step: its lineage's points, each with the values mapped from the
    same point of an upstream step; a point whose upstream point did not succeed is not run."""
    points: Points = []
    sources = [lineage, *after, *(m["runs"] for m in mapped.values())]
    for index, entry in enumerate(lineage["runs"]):
        point = entry["point"]
        missing = [s["runs"][index]["name"] for s in sources if "id" not in s["runs"][index]]
        if missing:
            points.append({"point": point, "not_run": f"{', '.join(sorted(set(missing)))} did not succeed"})
            continue
        values: Dict[str, Any] = {}
        try:
            for parameter, source in mapped.items():
                values[parameter] = _value(source["runs"]["runs"][index], source["task"], source["attribute_index"])
        except Exception as error:  # this point's own loader: its reason, the other points go on
            points.append({"point": point, "failed": f"its {parameter!r} cannot be loaded: {error}"})
            continue
        points.append({"point": point, "values": values})
    return points


@task(name="gather")
def gather(runs: ScanRuns, task_name: str, attribute_index: Optional[list] = None) -> List[Any]:
    """Every point's value of `task_name`, in point order; fails unless every point succeeded."""
    _require_every_point(runs)
    return [_value(entry, task_name, attribute_index) for entry in runs["runs"]]


@task(name="every_point")
def every_point(runs: ScanRuns) -> None:
    """Succeeds when every point of the step succeeded (order-only `depends_on` on a scan)."""
    _require_every_point(runs)


def _require_every_point(runs: ScanRuns) -> None:
    bad = [entry["name"] for entry in runs["runs"] if "id" not in entry]
    if bad:
        raise ChildFailed(f"not every point of {runs['step']} succeeded ({', '.join(bad)})")


def _value(entry: Mapping[str, Any], task_name: str, attribute_index: Optional[list]) -> Any:
    child: ChildRun = {"id": entry["id"], "name": entry["name"]}
    value = return_value.fn(child) if task_name == RETURN_TASK else task_result.fn(child, task_name)
    return load_db_result.fn(value, attribute_index) if attribute_index is not None else value


def run_points(
    step: str,
    deployment: str,
    parameters: Mapping[str, Any],
    points: Points,
    max_concurrency: Optional[int] = None,
    retries: int = 0,
    retry_delay_seconds: float = 0.0,
    timeout: Optional[float] = None,
    tags: Optional[List[str]] = None,
) -> ScanRuns:
    """Run `deployment` once per point (each point's parameters over `parameters`), at most
    `max_concurrency` children alive at once, started in point order; see the module's doc."""
    limit = max_concurrency or max(len(points), 1)
    entries: List[Dict[str, Any]] = []
    waiting: Deque[Tuple[int, int]] = deque()  # (point index, attempt)
    for index, spec in enumerate(points):
        entry = {"point": spec["point"], "name": point_name(step, spec["point"])}
        for outcome in ("not_run", "failed"):
            if outcome in spec:
                entry[outcome] = spec[outcome]
        if "not_run" not in spec and "failed" not in spec:
            waiting.append((index, 0))
        entries.append(entry)
    alive: Dict[str, Tuple[int, int, float]] = {}  # flow run id -> (index, attempt, started)
    retrying: List[Tuple[float, int, int]] = []  # (when, index, attempt): these keep their slot
    while waiting or alive or retrying:
        now = time.monotonic()
        for due in [r for r in retrying if r[0] <= now]:
            retrying.remove(due)
            waiting.appendleft((due[1], due[2]))
        while waiting and len(alive) + len(retrying) < limit:
            index, attempt = waiting.popleft()
            child_parameters = {**parameters, **points[index]["values"]}
            child = run_deployment(
                deployment,
                parameters=child_parameters,
                flow_run_name=entries[index]["name"],
                idempotency_key=child_key(step, deployment, child_parameters, point=points[index]["point"]),
                timeout=0,
                tags=tags,
            )
            alive[str(child.id)] = (index, attempt, time.monotonic())
        if not alive:
            time.sleep(min(POLL_SECONDS, max(min(r[0] for r in retrying) - time.monotonic(), 0.0)))
            continue
        time.sleep(POLL_SECONDS)
        for run in _read_runs(list(alive)):
            index, attempt, started = alive[str(run.id)]
            state = run.state
            timed_out = timeout is not None and time.monotonic() - started > timeout
            if state is not None and state.is_completed():
                entries[index]["id"] = str(run.id)
                del alive[str(run.id)]
                continue
            if state is not None and state.is_final():
                message = f"ended {state.type.value}" + (f": {state.message}" if state.message else "")
            elif timed_out:
                from prefect.states import Cancelling

                _client_call("set_flow_run_state", run.id, Cancelling(message=f"flowc: timed out after {timeout} s"), force=True)
                message = f"was still running after {timeout} s; cancelled"
            else:
                continue
            del alive[str(run.id)]
            if attempt < retries:
                retrying.append((time.monotonic() + retry_delay_seconds, index, attempt + 1))
            else:
                entries[index]["failed"] = f"child run {run.name!r} ({run.id}) {message}"
    return {"step": step, "runs": entries}


def _read_runs(ids: List[str]) -> List[Any]:
    runs = []
    for start in range(0, len(ids), READ_BATCH):
        batch = [UUID(i) for i in ids[start : start + READ_BATCH]]
        runs += _client_call(
            "read_flow_runs", flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=len(batch)
        )
    return runs
