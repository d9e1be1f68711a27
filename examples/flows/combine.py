"""combine: add two numbers; the fan-in step that waits for two parents."""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="combine", result=PrefectResult(), checkpoint=True)
def combine(a: float, b: float) -> float:
    """`a + b`: both mapped values must have arrived for the sum to be right."""
    return float(a) + float(b)


with Flow("combine") as flow:
    a = Parameter("a", required=True)
    b = Parameter("b", required=True)
    combine(a, b)
