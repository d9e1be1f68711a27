"""clock: a child flow that notes when it ran (its own clock and pid), for the scan tests.

Copied into a test project's examples/flows/ by tests/test_scan_run.py.
"""

from __future__ import annotations

import os
import time

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="tick", result=PrefectResult(), checkpoint=True)
def tick(label: object, seconds: float, fail_on: object) -> dict:
    started = time.time()
    time.sleep(seconds)
    if fail_on is not None and label == fail_on:
        raise ValueError(f"point {label!r} fails on purpose")
    return {"label": label, "start": started, "end": time.time(), "pid": os.getpid()}


@task(name="scaled", result=PrefectResult(), checkpoint=True)
def scaled(label: object) -> float:
    """label x 10; a gathered list is summed first."""
    return 10 * (sum(label) if isinstance(label, list) else label)  # type: ignore[arg-type]


with Flow("clock") as flow:
    label = Parameter("label", default=0)
    seconds = Parameter("seconds", default=0.0)
    fail_on = Parameter("fail_on", default=None)
    tick(label, seconds, fail_on)
    scaled(label)
