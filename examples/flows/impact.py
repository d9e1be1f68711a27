"""impact: a stand-in for the IMPACT-T tracking code, LUME's second step.

Tracks the particles of a distgen file through a drift and a thin focusing quadrupole (both
linear and symplectic, so the emittance is conserved while the beam size changes) and stores the
end-of-line statistics in the results database.
"""

from __future__ import annotations

import math

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult

from compiler.runtime import load_file, save_db_result

Beam = dict[str, object]


@task(name="track")
def track(distribution: Beam, drift_length: float, quad_k: float) -> Beam:
    """Drift by `drift_length` [m], then a thin quad of integrated strength `quad_k` [1/m]."""
    xs = [float(v) for v in distribution["x"]]  # type: ignore[union-attr]
    xps = [float(v) for v in distribution["xp"]]  # type: ignore[union-attr]
    drifted = [x + drift_length * xp for x, xp in zip(xs, xps)]
    kicked = [xp - quad_k * x for x, xp in zip(drifted, xps)]
    return {**distribution, "x": drifted, "xp": kicked}


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


@task(name="compute_outputs")
def compute_outputs(beam: Beam) -> dict[str, float | int]:
    """Beam statistics at the end of the line, named as LUME's Impact outputs."""
    xs: list[float] = beam["x"]  # type: ignore[assignment]
    xps: list[float] = beam["xp"]  # type: ignore[assignment]
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
        "end_sigma_xp": math.sqrt(spp),
        "end_norm_emit_x": float(beam["beta_gamma"]) * emittance,  # type: ignore[arg-type]
    }


@task(name="collect_inputs")
def collect_inputs(
    distribution_file: dict, drift_length: float, quad_k: float
) -> dict[str, object]:
    """The inputs recorded beside the outputs, so the stored result says how it was made."""
    return {
        "distribution_file": distribution_file,
        "drift_length": drift_length,
        "quad_k": quad_k,
    }


@task(name="summarize", result=PrefectResult(), checkpoint=True)
def summarize(outputs: dict[str, float | int]) -> float:
    """The one number downstream flows usually want, as a raw result they can map."""
    return float(outputs["end_norm_emit_x"])


with Flow("impact") as flow:
    distribution_file = Parameter("distribution_file", required=True)
    drift_length = Parameter("drift_length", default=1.0)
    quad_k = Parameter("quad_k", default=0.5)
    distribution = load_file(distribution_file)
    outputs = compute_outputs(track(distribution, drift_length, quad_k))
    save_db_result(
        inputs=collect_inputs(distribution_file, drift_length, quad_k), outputs=outputs
    )
    summarize(outputs)
