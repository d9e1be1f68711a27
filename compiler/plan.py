"""The Plan: the steps in order, their composite parameters and mapped inputs (built from a spec
and the lock by compiler.planner).

Every decision about the generated project is in the Plan; rendering only lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from compiler.scanplan import Scan

@dataclass(frozen=True)
class CompositeParameter:
    """A child parameter exposed on the composite flow as `<alias>-<param>` (LUME's renaming)."""

    name: str
    variable: str
    step: str
    child_parameter: str
    default: Any
    required: bool
    overridden: bool
    scanned: bool = False  # the default is the scan's list of values (DESIGN.md "Scans")


@dataclass(frozen=True)
class MappedInput:
    """A child parameter fed from a parent's task result."""

    parameter: str
    variable: str
    parent: str
    task_name: str
    task_slug: str
    map_type: str
    attribute_index: tuple[str | int, ...]
    # From the same point of a step of this step's scan (for_each), or gathered from every point
    # of a per-point step into a list in point order.
    per_point: bool = False
    gathered: bool = False
    # Said beside the mapping in flow.py and README.md: a LocalResult needs the children's files
    # on one machine (`flowc run`, a local agent, a shared volume).
    note: str | None = None


@dataclass(frozen=True)
class Step:
    """One child flow run of the composition."""

    alias: str
    flow_name: str
    project_name: str
    source: str | None
    parameters: tuple[CompositeParameter, ...]
    inputs: tuple[MappedInput, ...]
    depends_on: tuple[str, ...]
    upstream: tuple[str, ...]
    arguments: tuple[tuple[str, str], ...]
    # Per-child run options (DESIGN.md "Per-child run options"); durations in seconds.
    labels: tuple[str, ...] | None = None
    retries: int = 0
    retry_delay_s: float = 0.0
    timeout_s: float | None = None
    deployment: str | None = None
    # Scans: this step's own points, the step it runs for_each of, and the scanned step whose
    # points it runs over (itself when scanned; None when it runs once).
    scan: Scan | None = None
    for_each: str | None = None
    lineage: str | None = None
    # The lock's digest of the child's source closure: its version in run keys (compiler.keys).
    source_digest: str | None = None
    # (role, name) for the step's own Python names that compiler.names moved off a collision;
    # every other one is `<alias>_<role>`.
    python_names: tuple[tuple[str, str], ...] = ()

    @property
    def per_point(self) -> bool:
        return self.lineage is not None

    def _python_name(self, role: str) -> str:
        for own_role, name in self.python_names:
            if own_role == role:
                return name
        return f"{self.alias}_{role}"

    @property
    def run_variable(self) -> str:
        return self._python_name("run")

    @property
    def points_variable(self) -> str:
        return self._python_name("points")

    @property
    def names_variable(self) -> str:
        return self._python_name("names")

    @property
    def parameters_variable(self) -> str:
        return self._python_name("parameters")

    @property
    def slots_variable(self) -> str:
        return self._python_name("slots")

    @property
    def done_variable(self) -> str:
        return self._python_name("done")


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    label: str
    map_type: str | None
    fan: str = ""  # "per point" or "gathered" for mappings between scans


@dataclass(frozen=True)
class Plan:
    """Everything the generated project says, decided."""

    name: str
    spec_path: str
    project_name: str
    labels: tuple[str, ...]
    image_repository: str
    image_tag: str
    base_image: str
    run_config: str
    env: tuple[tuple[str, str], ...]
    steps: tuple[Step, ...]
    inputs_digest: str
    # The spec's own `target:` (None: the project's `[tool.flowc] target`, see compiler.config).
    target: str | None = None
    work_pool: str = "default"

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.image_tag}"

    @property
    def parameters(self) -> tuple[CompositeParameter, ...]:
        return tuple(p for step in self.steps for p in step.parameters)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Data edges (one per mapping) then order-only edges, in step order."""
        edges = []
        for step in self.steps:
            for mapped in step.inputs:
                fan = "per point" if mapped.per_point else "gathered" if mapped.gathered else ""
                edges.append(Edge(mapped.parent, step.alias, mapped.parameter, mapped.map_type, fan))
            for parent in step.depends_on:
                edges.append(Edge(parent, step.alias, "depends_on", None))
            if step.for_each is not None and not any(m.parent == step.for_each for m in step.inputs):
                edges.append(Edge(step.for_each, step.alias, "for_each", None))
        return tuple(edges)

    def step(self, alias: str) -> Step:
        return self._steps_by_alias[alias]

    def point_count(self, step: Step) -> int:
        """How many child runs a step has with the default values (1 unless per point)."""
        if step.lineage is None:
            return 1
        scan = self.step(step.lineage).scan
        return scan.point_count if scan is not None else 1

    @cached_property
    def _steps_by_alias(self) -> dict[str, Step]:
        return {step.alias: step for step in self.steps}


def child_parameters(step: Step, composite: Mapping[str, Any], mapped: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters the step's child run is started with, as the generated flow passes them:
    composite parameters by their `alias-param` name, mapped values by child parameter."""
    by_variable = {p.variable: composite[p.name] for p in step.parameters}
    by_variable.update({m.variable: mapped[m.parameter] for m in step.inputs})
    return {name: by_variable[variable] for name, variable in step.arguments}


def step_keys(
    plan: Plan,
    composite: Mapping[str, Any],
    version: Callable[[Step], str | None],
    mapped_value: Callable[[Step, MappedInput, Mapping[str, str]], Any],
) -> dict[str, str]:
    """Every (unscanned) step's run key (compiler.keys), in plan order, without running anything.

    `composite`: every composite parameter's value; `version(step)`: the child's version;
    `mapped_value(step, mapped, keys)`: the value a mapping passes, given the keys so far.
    """
    from compiler.keys import child_identity, run_key

    keys: dict[str, str] = {}
    for step in plan.steps:
        mapped = {m.parameter: mapped_value(step, m, keys) for m in step.inputs}
        identity = child_identity(step.project_name, step.flow_name, version(step))
        keys[step.alias] = run_key(identity, child_parameters(step, composite, mapped))
    return keys
