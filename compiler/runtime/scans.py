"""Scans at run time: the points of a scanned step, their run names and parameters, and the
bound on how many of one step's child runs are alive at once.

A generated flow keeps the scan lists as composite parameters (`impact-quad_k`), so the points
are computed here, from the values the run was given, and the child runs are Prefect mapped
tasks over them (`run_child_flow.map`); nothing in the generated file grows with the points.

`ScanSlots(n)` bounds a step to n live child runs without a Prefect Cloud concurrency limit: its
`acquire` state handler (on the mapped `run_child_flow`) blocks a point until a slot is free,
in point order, and its `release` state handler (on the same task) frees the slot once that
point's task has ended (its child runs, retries included, are over), whatever its state. The thread that blocks tells
`LocalThreadExecutor` so (`blocking()`), so the executor starts another thread for the waits
that will free the slot: no number of points can deadlock it.
Depends on prefect and the standard library only (Python 3.9+).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

import prefect
from prefect import task
from prefect.engine.state import State

from compiler.runtime.executor import blocking
from compiler.runtime.points import MAX_SCAN_POINTS, SCAN_MODES, ScanError, expand_points, point_name

__all__ = [
    "MAX_SCAN_POINTS",
    "SCAN_MODES",
    "ScanError",
    "ScanSlots",
    "expand_points",
    "point_name",
    "point_names",
    "point_parameters",
    "scan_points",
]


@task(name="scan_points")
def scan_points(step: str, mode: str, axes: dict) -> list:
    """The points of the scanned step `step` from the run's values of its scan parameters."""
    return expand_points(step, mode, axes)


@task(name="point_names")
def point_names(step: str, points: list) -> list:
    """One run name per point, for `run_child_flow.map(run_name=...)`."""
    return [point_name(step, point) for point in points]


@task(name="scan_parameters")
def scan_parameters(fixed: dict, points: list) -> list:
    """Every point's child parameters, in point order: the broadcast ones and the point's own.
    One task for the whole scan, so the first point's child starts without 1,000 task runs first."""
    return [{**fixed, **point} for point in points]


@task(name="point_parameters")
def point_parameters(fixed: dict, point: Optional[dict] = None, **values: Any) -> dict:
    """One point's child parameters: the broadcast ones, the point's own, and the values mapped
    from the same point of an upstream step."""
    return {**fixed, **(point or {}), **values}


class ScanSlots:
    """At most `limit` live child runs of one step per composite flow run, started in point order.

    Every point's run_child_flow passes through this handler once it leaves Pending: Running
    (it takes the next slot in point order) or a finished state without running (TriggerFailed,
    Skipped: it gives up its turn), so the turn always moves on.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.limit = limit
        self._condition = threading.Condition()
        self._held: Dict[str, set] = {}  # flow run -> map indexes holding a slot
        self._passed: Dict[str, set] = {}  # flow run -> map indexes past their turn
        self._turn: Dict[str, int] = {}  # flow run -> the lowest index not past its turn

    def acquire(self, task_: Any, old_state: State, new_state: State) -> State:
        """State handler for the mapped run_child_flow: block until this point's turn and a slot."""
        key = self._key()
        if key is None:
            return new_state  # the mapped task itself, not one of its points
        if new_state.is_running():
            self._acquire(*key)
        elif new_state.is_failed() or new_state.is_skipped():
            self._release(*key)  # the child never started (or its creation failed)
        return new_state

    def release(self, task_: Any, old_state: State, new_state: State) -> State:
        """State handler for the mapped run_child_flow: the point's child runs have ended."""
        key = self._key()
        if key is not None and new_state.is_finished():
            self._release(*key)
        return new_state

    def alive(self, run: str) -> int:
        with self._condition:
            return len(self._held.get(run, ()))

    @staticmethod
    def _key() -> Optional[tuple]:
        index = prefect.context.get("map_index")
        if index is None:
            return None
        return str(prefect.context.get("flow_run_id") or prefect.context.get("flow_run_name") or ""), int(index)

    def _acquire(self, run: str, index: int) -> None:
        with self._condition:
            held = self._held.setdefault(run, set())
            if index in held or index in self._passed.get(run, ()):
                return  # a retried task keeps its slot
            if not self._may_start(run, index):
                with blocking():
                    while not self._may_start(run, index):
                        self._condition.wait()
            held.add(index)
            self._pass(run, index)

    def _may_start(self, run: str, index: int) -> bool:
        return len(self._held[run]) < self.limit and self._turn.get(run, 0) >= index

    def _pass(self, run: str, index: int) -> None:
        passed = self._passed.setdefault(run, set())
        passed.add(index)
        turn = self._turn.get(run, 0)
        while turn in passed:
            turn += 1
        self._turn[run] = turn
        self._condition.notify_all()

    def _release(self, run: str, index: int) -> None:
        with self._condition:
            self._held.setdefault(run, set()).discard(index)
            self._pass(run, index)
