"""total: add a list of numbers; the step that gathers every point of a scan."""

from __future__ import annotations

from prefect import flow, task


@task(name="total", persist_result=True, result_serializer="json")
def total(values: list) -> float:
    """The sum, so a test can predict it from the points by hand."""
    return float(sum(values))


@flow(name="total", persist_result=True, result_serializer="json")
def total_flow(values: list) -> float:
    return total(values)
