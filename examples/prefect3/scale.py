"""scale: multiply a number; its return value is persisted, so a composition can map `return`."""

from __future__ import annotations

from prefect import flow, task


@task(name="scale", persist_result=True, result_serializer="json")
def scale(value: float, factor: float) -> float:
    """`value * factor`, so a test can predict every composed result by hand."""
    return float(value) * float(factor)


@flow(name="scale", persist_result=True, result_serializer="json")
def scale_flow(value: float, factor: float = 2.0) -> float:
    return scale(value, factor)
