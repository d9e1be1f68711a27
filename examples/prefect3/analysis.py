"""analysis: judge the emittance impact produced against a specification, LUME's last step."""

from __future__ import annotations

from typing import Dict, Union

from prefect import flow, task


@task(name="report", persist_result=True, result_serializer="json")
def report(emittance: float, threshold: float) -> Dict[str, Union[float, bool]]:
    """Pass when the emittance is within the threshold; the ratio says by how much."""
    value, limit = float(emittance), float(threshold)
    if limit <= 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    return {"emittance": value, "threshold": limit, "ratio": value / limit, "ok": value <= limit}


@flow(name="analysis")
def analysis(emittance: float, threshold: float = 1e-6) -> Dict[str, Union[float, bool]]:
    return report(emittance, threshold)
