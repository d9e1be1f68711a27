"""Python names in flow.py: the compiler's business, never the spec author's (DESIGN.md "Names").

Every name flow.py defines comes from the spec, so a reviewer sees the spec in it: `<alias>_run`,
`<alias>_done`, and `<alias>_<param>`, where each character of the parameter that a Python
name cannot hold becomes `_`. When two such names are equal (aliases `a` + parameter `b_c` and
`a_b` + `c`; one child's parameters `a:b` and `a/b`) or one would shadow a name the module
imports, a keyword or a builtin, the first in plan order keeps it and each later one takes the
first free `_2`, `_3`, ... suffix. "Free" means no other wanted name either, so a name that did
not collide never moves, and the result depends on the spec and the lock alone.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.plan import Step

# Names the generated module defines or imports; no spec-derived variable may shadow them.
MODULE_NAMES = frozenset(
    {
        "flow",
        "Flow",
        "IndexedFlow",
        "Parameter",
        "IMAGE",
        "LABELS",
        "LocalDaskExecutor",
        "LocalThreadExecutor",
        "DockerRun",
        "KubernetesRun",
        "Local",
        "create_flow_run",
        "wait_for_flow_run",
        "get_task_run_result",
        "load_db_result",
        "run_child_flow",
        "unmapped",
        "scan_points",
        "point_names",
        "point_parameters",
        "scan_parameters",
        "ScanSlots",
    }
)

# A step's own names, `<alias>_<role>` (compiler.plan.Step reads them).
STEP_ROLES = ("run", "done", "names", "parameters", "points", "slots")


def reserved(name: str) -> bool:
    """Whether flow.py cannot use `name` for a value: the module's own names, keywords, builtins."""
    return (
        name in MODULE_NAMES
        or keyword.iskeyword(name)
        or hasattr(builtins, name)
        or (name.startswith("__") and name.endswith("__"))
    )


def assign_python_names(steps: Iterable[Step]) -> list[Step]:
    """The steps with every name flow.py defines made unique and unreserved (see the module)."""
    steps = list(steps)
    wanted = [(index, role, name) for index, step in enumerate(steps) for role, name in _wanted(step)]
    every = {name for _, _, name in wanted}
    kept: set[str] = set()
    suffixed: set[str] = set()
    chosen: dict[tuple[int, str], str] = {}
    for index, role, name in wanted:
        if name not in kept and not reserved(name):
            kept.add(name)
            continue
        number = 2
        while f"{name}_{number}" in every or f"{name}_{number}" in suffixed or reserved(f"{name}_{number}"):
            number += 1
        suffixed.add(f"{name}_{number}")
        chosen[(index, role)] = f"{name}_{number}"
    if not chosen:
        return steps
    return [_renamed(step, {role: name for (i, role), name in chosen.items() if i == index}) for index, step in enumerate(steps)]


def _wanted(step: Step) -> Iterator[tuple[str, str]]:
    """(role, name) of each name flow.py defines for `step`, in the order they are claimed."""
    yield "step:run", step.run_variable
    yield "step:done", step.done_variable
    if step.per_point:
        yield "step:names", step.names_variable
        yield "step:parameters", step.parameters_variable
    if step.scan is not None:
        yield "step:points", step.points_variable
        if step.scan.max_concurrency is not None:
            yield "step:slots", step.slots_variable
    for parameter in step.parameters:
        yield f"parameter:{parameter.name}", parameter.variable
    for mapped in step.inputs:
        yield f"input:{mapped.parameter}", mapped.variable


def _renamed(step: Step, names: dict[str, str]) -> Step:
    if not names:
        return step
    parameters = tuple(
        replace(p, variable=names.get(f"parameter:{p.name}", p.variable)) for p in step.parameters
    )
    inputs = tuple(replace(m, variable=names.get(f"input:{m.parameter}", m.variable)) for m in step.inputs)
    by_child_parameter = {p.child_parameter: p.variable for p in parameters}
    by_child_parameter.update({m.parameter: m.variable for m in inputs})
    arguments = tuple((name, by_child_parameter.get(name, variable)) for name, variable in step.arguments)
    scan = step.scan
    if scan is not None:
        axes = tuple(replace(axis, variable=by_child_parameter.get(axis.parameter, axis.variable)) for axis in scan.axes)
        scan = replace(scan, axes=axes)
    own = tuple((role.removeprefix("step:"), name) for role, name in names.items() if role.startswith("step:"))
    return replace(
        step, parameters=parameters, inputs=inputs, arguments=arguments, scan=scan, python_names=step.python_names + own
    )
