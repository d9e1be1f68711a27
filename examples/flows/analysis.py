"""analysis: judge the emittance impact produced against a specification, LUME's last step."""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="report", result=PrefectResult(), checkpoint=True)
def report(emittance: float, threshold: float) -> dict[str, float | bool]:
    """Pass when the emittance is within the threshold; the ratio says by how much."""
    value, limit = float(emittance), float(threshold)
    if limit <= 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    return {
        "emittance": value,
        "threshold": limit,
        "ratio": value / limit,
        "ok": value <= limit,
    }


with Flow("analysis") as flow:
    emittance = Parameter("emittance", required=True)
    threshold = Parameter("threshold", default=1e-6)
    report(emittance, threshold)
