"""Scans in the plan: the axes and point count of a scanned step, which steps run per point of
which scan (for_each lineage), and the located checks of DESIGN.md "Scans".

Target-neutral: a backend reads `Step.scan`, `Step.lineage` and `MappedInput.per_point` /
`.gathered`, and decides how its orchestrator runs the points.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from compiler.diagnostics import did_you_mean
from compiler.lockfile import FlowInterface
from compiler.spec import MAX_SCAN_POINTS, ComposingFlow, Path

# The runtime task that merges a point's child parameters takes these two by position; a value
# mapped per point under one of these names would collide with them.
POINT_PARAMETER_NAMES = frozenset({"fixed", "point"})


@dataclass(frozen=True)
class ScanAxis:
    """One scanned child parameter: its composite parameter holds the list of values."""

    parameter: str
    name: str
    variable: str
    values: tuple[Any, ...]
    child_default: Any = None  # the child's own default: what a value must fit


@dataclass(frozen=True)
class Scan:
    """The points of a scanned step: grid (every combination, first axis slowest) or zip."""

    mode: str
    axes: tuple[ScanAxis, ...]
    max_concurrency: int | None

    @property
    def point_count(self) -> int:
        lengths = [len(axis.values) for axis in self.axes]
        return min(lengths) if self.mode == "zip" else math.prod(lengths)

    def points(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The default points, in run order (at most `limit` of them)."""
        names = [axis.parameter for axis in self.axes]
        lists = [axis.values for axis in self.axes]
        combinations: Iterator[tuple[Any, ...]] = (
            zip(*lists) if self.mode == "zip" else itertools.product(*lists)
        )
        return [dict(zip(names, values)) for values in itertools.islice(combinations, limit)]

    @property
    def shape(self) -> str:
        """`grid 3 × 2` / `zip 4`: how the points come about, in a few characters."""
        if self.mode == "zip":
            return f"zip of {self.point_count}"
        return "grid " + " × ".join(str(len(axis.values)) for axis in self.axes)


def value_fits(value: Any, default: Any) -> bool:
    """Whether a scan value can stand where the child's default stands (ints for floats: yes)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


Report = Callable[..., None]


def check_scan(
    index: int, flow: ComposingFlow, interface: FlowInterface | None, error: Report
) -> None:
    """Every located problem of one step's `scan:` (lengths, limit, parameters, value types)."""
    scan = flow.scan
    if scan is None:
        return
    base: Path = ("composing_flows", index, "scan")
    if flow.for_each is not None:
        error(
            ("composing_flows", index, "for_each"),
            "a scanned step cannot also be for_each of another; scan one step and run the others for_each of it",
            key=True,
        )
    lengths = {name: len(values) for name, values in scan.parameters.items()}
    if scan.mode == "zip" and len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        error(base + ("parameters",), f"zip needs lists of one length ({shown}); use mode: grid for every combination")
    count = min(lengths.values()) if scan.mode == "zip" else math.prod(lengths.values())
    if count > MAX_SCAN_POINTS:
        shape = " × ".join(str(n) for n in lengths.values())
        error(base, f"this scan has {count} points ({shape}); a step runs at most {MAX_SCAN_POINTS}")
    known = {p.name: p for p in interface.parameters} if interface else {}
    for name, values in scan.parameters.items():
        path = base + ("parameters", name)
        if interface is not None and name not in known:
            error(path, f"flow {flow.name!r} has no parameter {name!r}{did_you_mean(name, known)}", key=True)
            continue
        if name in flow.mapped_parameters:
            error(path, f"parameter {name!r} is scanned and also mapped from another flow; keep one of the two", key=True)
        if name in flow.parameters:
            error(
                ("composing_flows", index, "parameters", name),
                f"parameter {name!r} is scanned; its values come from `scan:`, so a default here has no effect",
                key=True,
            )
        if interface is None:
            continue
        default = known[name].default
        for position, value in enumerate(values):
            if not value_fits(value, default):
                error(
                    path + (position,),
                    f"scan value {value!r} of {name!r} is {_kind(value)}, but {flow.name!r}'s default for it "
                    f"is {_kind(default)} ({default!r})",
                )


def scan_axes(
    alias: str, flow: ComposingFlow, interface: FlowInterface | None, variable: Callable[[str, str], str]
) -> Scan | None:
    if flow.scan is None:
        return None
    known = {p.name: p.default for p in interface.parameters} if interface else {}
    axes = tuple(
        ScanAxis(
            parameter=name,
            name=f"{alias}-{name}",
            variable=variable(alias, name),
            values=tuple(values),
            child_default=known.get(name),
        )
        for name, values in flow.scan.parameters.items()
    )
    return Scan(mode=flow.scan.mode, axes=axes, max_concurrency=flow.scan.max_concurrency)


def scan_value_problems(plan: Any, overrides: dict[str, Any]) -> list[str]:
    """Problems with the scan lists a run is given, for every scanned step of `plan`."""
    problems = []
    for step in plan.steps:
        if step.scan is not None and any(axis.name in overrides for axis in step.scan.axes):
            problems += [f"{step.alias}: {p}" if not p.startswith("-p ") else p for p in check_run_values(step.scan, overrides)]
    return problems


def check_run_values(scan: Scan, values: dict[str, Any]) -> list[str]:
    """Problems with the lists a run gives a scan (`-p impact-quad_k=[...]`), one message each;
    `values` holds every axis's list by composite parameter name."""
    problems = []
    lengths = {}
    for axis in scan.axes:
        given = values.get(axis.name, list(axis.values))
        if not isinstance(given, list):
            problems.append(f"-p {axis.name}: a scanned parameter takes a list of values, e.g. [0.1, 0.5]")
            continue
        if not given:
            problems.append(f"-p {axis.name}: the list of values is empty")
            continue
        lengths[axis.name] = len(given)
        for value in given:
            if not value_fits(value, axis.child_default):
                problems.append(
                    f"-p {axis.name}: {value!r} is {_kind(value)}, but the child's default is "
                    f"{_kind(axis.child_default)} ({axis.child_default!r})"
                )
                break
    if problems or not lengths:
        return problems
    if scan.mode == "zip" and len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        return [f"zip needs lists of one length ({shown})"]
    count = min(lengths.values()) if scan.mode == "zip" else math.prod(lengths.values())
    if count > MAX_SCAN_POINTS:
        return [f"{count} points; a step runs at most {MAX_SCAN_POINTS}"]
    return []
