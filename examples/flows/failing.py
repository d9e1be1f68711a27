"""failing: a child flow that always fails, to test how a composition reports a failure."""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="fail", result=PrefectResult(), checkpoint=True)
def fail(value: object) -> float:
    """Raise, naming the value, so a failure report can be traced to this run."""
    raise ValueError(f"failing flow refuses value {value!r}")


with Flow("failing") as flow:
    value = Parameter("value", default=0)
    fail(value)
