"""`IndexedFlow`: a `prefect.Flow` whose graph queries stay near-linear, for large compositions.

Prefect 1 sorts a flow's tasks (`Flow.validate()`, run by every `serialize()`: `prefect build`,
`prefect register`, `flowc build`; and before every `flow.run()`) with repeated passes over a list
with linear membership tests, about depth x tasks^2: a 500-step chain of flow runs took minutes.
Its `@cache` decorator also copies and compares every task and edge on each `edges_to(task)` call,
so each per-task loop over the graph (reference tasks, the flow runner) is quadratic.

`IndexedFlow` keeps the graph, the API and the serialized form of `prefect.Flow` (only the
`type` field names this class; Prefect's `FlowSchema` ignores it when loading) and answers from
an index built once per graph change:
- `sorted_tasks()`: Kahn's algorithm, O((tasks + edges) log tasks). Among the tasks that are
  ready, the one added to the flow first comes first: a generated flow is sorted as its code
  reads, step by step, so an executor that starts tasks in this order starts the first child
  flow run right after its own parameters, not after every parameter of the composition. The
  order is the same in every process (Prefect's follows set iteration order).
- `all_upstream_edges()` / `all_downstream_edges()`, hence `edges_to`, `edges_from`,
  `upstream_tasks`, `downstream_tasks`, `root_tasks`, `terminal_tasks`, `reference_tasks`.
A cycle still raises Prefect's `ValueError("Cycle found; flows must be acyclic!")`.

The index lives in `Flow._cache`, which every Prefect method that changes the graph
(`add_task`, `add_edge`, `replace`, `set_reference_tasks`, `validate`) clears, and it is stamped
with the identity and size of `tasks` and `edges`, so a caller that swaps or grows those sets
directly gets a fresh index too.
Depends on prefect and the standard library only.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prefect import Flow, Task
from prefect.core.edge import Edge

CYCLE_MESSAGE = "Cycle found; flows must be acyclic!"  # Prefect's own, word for word
_INDEX_KEY = "flowc.index"  # a key Prefect's `@cache` never uses (its keys are tuples and names)


@dataclass
class _GraphIndex:
    """Edges by task in both directions, and (once asked for) the order, for one graph state."""

    stamp: tuple[int, int, int, int]
    upstream_edges: dict[Task, set[Edge]]
    downstream_edges: dict[Task, set[Edge]]
    sorted_tasks: tuple[Task, ...] | None = None


class IndexedFlow(Flow):
    """A `prefect.Flow` with near-linear sorting and constant-time edge lookups; same graph."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before Flow.__init__, which adds the tasks it is given.
        self._added: dict[Task, int] = {}
        self._add_counter = itertools.count()
        super().__init__(*args, **kwargs)

    def add_task(self, task: Task) -> Task:
        added = super().add_task(task)
        if added not in self._added:
            self._added[added] = next(self._add_counter)
        return added

    def copy(self) -> IndexedFlow:
        new = super().copy()
        new._added = dict(self._added)
        new._add_counter = itertools.count(max(self._added.values(), default=-1) + 1)
        return new  # type: ignore[return-value]

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> tuple[Task, ...]:
        """Tasks in a topological order (of `root_tasks` and everything downstream, if given)."""
        roots = tuple(root_tasks or ())
        if not roots:
            index = self._index()
            if index.sorted_tasks is None:
                index.sorted_tasks = self._topological_order(
                    self.tasks, index.upstream_edges, index.downstream_edges
                )
            return index.sorted_tasks
        for task in roots:
            if task not in self.tasks:
                raise ValueError(f"Task {task} was not found in Flow {self}")
        index = self._index()
        selected = set(roots)
        frontier = list(roots)
        while frontier:
            for edge in index.downstream_edges[frontier.pop()]:
                if edge.downstream_task not in selected:
                    selected.add(edge.downstream_task)
                    frontier.append(edge.downstream_task)
        return self._topological_order(selected, index.upstream_edges, index.downstream_edges)

    def all_upstream_edges(self) -> dict[Task, set[Edge]]:
        return self._index().upstream_edges

    def all_downstream_edges(self) -> dict[Task, set[Edge]]:
        return self._index().downstream_edges

    def edges_to(self, task: Task) -> set[Edge]:
        edges = self._index().upstream_edges.get(task)
        if edges is None:
            raise ValueError(f"Task {task} was not found in Flow {self}")
        return edges

    def edges_from(self, task: Task) -> set[Edge]:
        edges = self._index().downstream_edges.get(task)
        if edges is None:
            raise ValueError(f"Task {task} was not found in Flow {self}")
        return edges

    # The index ---------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int, int]:
        return (id(self.tasks), len(self.tasks), id(self.edges), len(self.edges))

    def _index(self) -> _GraphIndex:
        index = self._cache.get(_INDEX_KEY)
        stamp = self._stamp()
        if index is None or index.stamp != stamp:
            index = self._build_index(stamp)
            self._cache[_INDEX_KEY] = index
        return index

    def _build_index(self, stamp: tuple[int, int, int, int]) -> _GraphIndex:
        upstream: dict[Task, set[Edge]] = {task: set() for task in self.tasks}
        downstream: dict[Task, set[Edge]] = {task: set() for task in self.tasks}
        for edge in self.edges:
            # An edge to a task outside the flow raises KeyError in Prefect's version as well;
            # validate() reports it first with its own message.
            upstream[edge.downstream_task].add(edge)
            downstream[edge.upstream_task].add(edge)
        return _GraphIndex(stamp, upstream, downstream)

    def _topological_order(
        self,
        tasks: set[Task],
        upstream: dict[Task, set[Edge]],
        downstream: dict[Task, set[Edge]],
    ) -> tuple[Task, ...]:
        """Kahn's algorithm over `tasks` (edges from outside them are ignored, as Prefect does);
        of the ready tasks, the earliest added goes first."""
        slugs, added, unknown = self.slugs, self._added, len(self._added)
        by_priority = sorted(tasks, key=lambda t: (added.get(t, unknown), slugs.get(t, "")))
        position = {task: n for n, task in enumerate(by_priority)}
        waiting = {
            task: len({e.upstream_task for e in upstream[task] if e.upstream_task in position})
            for task in tasks
        }
        ready = [position[t] for t, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[Task] = []
        while ready:
            task = by_priority[heapq.heappop(ready)]
            order.append(task)
            for child in {
                e.downstream_task for e in downstream[task] if e.downstream_task in position
            }:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, position[child])
        if len(order) != len(tasks):
            raise ValueError(CYCLE_MESSAGE)
        return tuple(order)
