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
from compiler.lock import FlowInterface
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


def scan_axes(alias: str, flow: ComposingFlow, variable: Callable[[str, str], str]) -> Scan | None:
    if flow.scan is None:
        return None
    axes = tuple(
        ScanAxis(parameter=name, name=f"{alias}-{name}", variable=variable(alias, name), values=tuple(values))
        for name, values in flow.scan.parameters.items()
    )
    return Scan(mode=flow.scan.mode, axes=axes, max_concurrency=flow.scan.max_concurrency)
