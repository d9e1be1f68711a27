"""failing: a child flow that fails while the file FLOWC_FAIL_FLAG names exists (always, unset).

The e2e tests remove the flag between two runs of a composition, to see a failed child started
anew while the children that finished are not.
"""

from __future__ import annotations

import os

from prefect import flow, task


@task(name="fail", persist_result=True, result_serializer="json")
def fail(value: float) -> float:
    flag = os.environ.get("FLOWC_FAIL_FLAG")
    if flag is None or os.path.exists(flag):
        raise ValueError(f"failing flow refuses value {value!r}")
    return float(value)


@flow(name="failing")
def failing(value: float = 0.0) -> float:
    return fail(value)
