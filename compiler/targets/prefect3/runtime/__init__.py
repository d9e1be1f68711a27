"""What prefect3 generated flows and Prefect 3 child flows import at run time.

Prefect (2.14 or 3.x) and the standard library only, never the compiler's stages. The tasks have
the Prefect 1 runtime's names, documents and references (LUME-services' formats, shared through
`compiler.runtime.results` and `compiler.runtime.files`, which import no Prefect), and persist
their results, so another flow run can load them.
"""

from __future__ import annotations

from compiler.targets.prefect3.runtime.orchestration import (
    POLL_SECONDS,
    ChildFailed,
    ChildRun,
    CompositeFailed,
    CompositeParameters,
    child_key,
    finished,
    outcome,
    return_value,
    task_result,
)
from compiler.targets.prefect3.runtime.scans import (
    Points,
    ScanRuns,
    every_point,
    from_points,
    gather,
    point_inputs,
    run_points,
    scan_points,
)
from compiler.targets.prefect3.runtime.tasks import load_db_result, load_file, save_db_result, save_file

__all__ = [
    "POLL_SECONDS",
    "ChildFailed",
    "ChildRun",
    "CompositeFailed",
    "CompositeParameters",
    "child_key",
    "finished",
    "load_db_result",
    "load_file",
    "outcome",
    "Points",
    "ScanRuns",
    "every_point",
    "from_points",
    "gather",
    "point_inputs",
    "return_value",
    "run_points",
    "scan_points",
    "save_db_result",
    "save_file",
    "task_result",
]
