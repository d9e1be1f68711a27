"""The points of a scan and their run names: pure Python, shared by both targets' runtimes.

Standard library only (Python 3.9+), so the Prefect 1 runtime (compiler.runtime.scans) and the
Prefect 3 one (compiler.targets.prefect3.runtime.scans) compute the same points in the same order
and name their runs alike.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Dict, List

MAX_SCAN_POINTS = 10_000  # per step: DESIGN.md "Scans"
SCAN_MODES = ("grid", "zip")


class ScanError(ValueError):
    """Scan values that give no points, or too many: the message names the step and the axis."""


def expand_points(step: str, mode: str, axes: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The points of a scan, in order: grid = every combination, the first axis slowest;
    zip = the i-th value of every axis together."""
    if mode not in SCAN_MODES:
        raise ScanError(f"{step}: scan mode {mode!r} is not one of {', '.join(SCAN_MODES)}")
    names = list(axes)
    lists = []
    for name in names:
        values = axes[name]
        if not isinstance(values, (list, tuple)):
            raise ScanError(f"{step}-{name}: a scan takes a list of values, got {values!r}")
        if not values:
            raise ScanError(f"{step}-{name}: the list of values is empty")
        lists.append(list(values))
    if mode == "zip":
        lengths = {len(values) for values in lists}
        if len(lengths) > 1:
            shown = ", ".join(f"{name} has {len(values)}" for name, values in zip(names, lists))
            raise ScanError(f"{step}: zip needs lists of one length ({shown})")
        combinations = zip(*lists)
        count = len(lists[0]) if lists else 0
    else:
        count = math.prod(len(values) for values in lists)
        combinations = itertools.product(*lists)
    if count > MAX_SCAN_POINTS:
        raise ScanError(f"{step}: {count} points; a step runs at most {MAX_SCAN_POINTS}")
    return [dict(zip(names, values)) for values in combinations]


def point_name(step: str, point: Dict[str, Any]) -> str:
    """`impact[quad_k=0.1, drift_length=1.0]`: a point's run, named from its values."""
    return step + "[" + ", ".join(f"{name}={_shown(value)}" for name, value in point.items()) + "]"


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
