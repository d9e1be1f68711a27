"""combine: add two numbers; the fan-in step that waits for two parents."""

from __future__ import annotations

from prefect import flow, task


@task(name="combine", persist_result=True, result_serializer="json")
def combine(a: float, b: float) -> float:
    """`a + b`: both mapped values must have arrived for the sum to be right."""
    return float(a) + float(b)


@flow(name="combine")
def combine_flow(a: float, b: float) -> float:
    return combine(a, b)
