"""impact: a stand-in for the IMPACT-T tracking code: a drift and a thin quadrupole, then the
end-of-line statistics in the results database (as examples/flows/impact.py, for Prefect 3)."""

from __future__ import annotations

import math
from typing import Dict, List

from prefect import flow, task

from compiler.targets.prefect3.runtime import load_file, save_db_result


def _mean(values: List[float]) -> float:
    return math.fsum(values) / len(values)


@task(name="track")
def track(distribution: Dict[str, object], drift_length: float, quad_k: float) -> Dict[str, object]:
    """Drift by `drift_length` [m], then a thin quad of integrated strength `quad_k` [1/m]."""
    xs = [float(v) for v in distribution["x"]]  # type: ignore[union-attr]
    xps = [float(v) for v in distribution["xp"]]  # type: ignore[union-attr]
    drifted = [x + drift_length * xp for x, xp in zip(xs, xps)]
    kicked = [xp - quad_k * x for x, xp in zip(drifted, xps)]
    return {**distribution, "x": drifted, "xp": kicked}


@task(name="compute_outputs")
def compute_outputs(beam: Dict[str, object]) -> Dict[str, float]:
    """Beam statistics at the end of the line, named as LUME's Impact outputs."""
    xs: List[float] = beam["x"]  # type: ignore[assignment]
    xps: List[float] = beam["xp"]  # type: ignore[assignment]
    mean_x, mean_xp = _mean(xs), _mean(xps)
    dx = [x - mean_x for x in xs]
    dxp = [xp - mean_xp for xp in xps]
    sxx = _mean([v * v for v in dx])
    spp = _mean([v * v for v in dxp])
    sxp = _mean([a * b for a, b in zip(dx, dxp)])
    emittance = math.sqrt(max(sxx * spp - sxp * sxp, 0.0))
    return {
        "end_n_particle": len(xs),
        "end_mean_x": mean_x,
        "end_sigma_x": math.sqrt(sxx),
        "end_norm_emit_x": float(beam["beta_gamma"]) * emittance,  # type: ignore[arg-type]
    }


@task(name="summarize", persist_result=True, result_serializer="json")
def summarize(outputs: Dict[str, float]) -> float:
    """The one number downstream flows usually want, as a raw result they can map."""
    return float(outputs["end_norm_emit_x"])


@flow(name="impact")
def impact(distribution_file: dict, drift_length: float = 1.0, quad_k: float = 0.5) -> float:
    distribution = load_file(distribution_file)
    outputs = compute_outputs(track(distribution, drift_length, quad_k))
    inputs = {"distribution_file": distribution_file, "drift_length": drift_length, "quad_k": quad_k}
    save_db_result(inputs=inputs, outputs=outputs)
    return summarize(outputs)
