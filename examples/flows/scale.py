"""scale: multiply a number; small enough to compose twice or fan out from one parent."""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="scale", result=PrefectResult(), checkpoint=True)
def scale(value: float, factor: float) -> float:
    """`value * factor`, so a test can predict every composed result by hand."""
    return float(value) * float(factor)


with Flow("scale") as flow:
    value = Parameter("value", required=True)
    factor = Parameter("factor", default=2.0)
    scale(value, factor)
