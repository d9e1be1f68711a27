"""summary: the end of a scan: every point's emittance and divergence, and the best point.

It receives lists gathered over the points of a scan, in point order (one item per child run),
and picks the point whose beam leaves the line most parallel (the smallest divergence) among
those whose emittance passed the analysis.
"""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="best_point", result=PrefectResult(), checkpoint=True)
def best_point(points: list, reports: list, divergences: list) -> dict:
    """The passing point with the smallest divergence, with its index, values and figures."""
    if not (len(points) == len(reports) == len(divergences)) or not points:
        raise ValueError(
            f"expected one item per point, got {len(points)} points, {len(reports)} reports "
            f"and {len(divergences)} divergences"
        )
    passing = [i for i, report in enumerate(reports) if report["ok"]]
    if not passing:
        raise ValueError("no point passed the analysis")
    best = min(passing, key=lambda i: (float(divergences[i]), i))
    return {
        "index": best,
        "quad_k": points[best]["quad_k"],
        "drift_length": points[best]["drift_length"],
        "emittance": reports[best]["emittance"],
        "divergence": float(divergences[best]),
        "emittances": [report["emittance"] for report in reports],
        "points": len(points),
    }


with Flow("summary") as flow:
    points = Parameter("points", required=True)
    reports = Parameter("reports", required=True)
    divergences = Parameter("divergences", required=True)
    best_point(points, reports, divergences)
