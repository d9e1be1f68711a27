"""distgen: generate a particle distribution and hand it on as a file, as LUME's distgen does."""

from __future__ import annotations

import hashlib
import json
import os
import random

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult

from compiler.runtime import write_file

DistributionData = dict[str, object]


@task(name="generate")
def generate(
    n_particle: int, sigma_x: float, sigma_xp: float, beta_gamma: float, seed: int
) -> DistributionData:
    """Uncorrelated Gaussian x [m] and x' [rad]; seeded so a rerun gives the same particles."""
    if int(n_particle) < 2:
        raise ValueError(
            f"n_particle must be at least 2 to have a spread, got {n_particle}"
        )
    rng = random.Random(seed)
    count = int(n_particle)
    return {
        "n_particle": count,
        "beta_gamma": float(beta_gamma),
        "x": [rng.gauss(0.0, sigma_x) for _ in range(count)],
        "xp": [rng.gauss(0.0, sigma_xp) for _ in range(count)],
    }


@task(name="save_distribution", result=PrefectResult(), checkpoint=True)
def save_distribution(distribution: DistributionData, output_dir: str) -> dict:
    """Save under a content-addressed name, so runs with other parameters never overwrite it."""
    content = json.dumps(distribution, sort_keys=True).encode("utf-8")
    digest = hashlib.sha256(content).hexdigest()[:16]
    filename = os.path.join(output_dir, f"distribution-{digest}.json")
    return write_file(distribution, filename, file_type="json")


with Flow("distgen") as flow:
    n_particle = Parameter("n_particle", default=1000)
    sigma_x = Parameter("sigma_x", default=0.001)
    sigma_xp = Parameter("sigma_xp", default=0.0001)
    beta_gamma = Parameter("beta_gamma", default=5.0)
    seed = Parameter("seed", default=0)
    output_dir = Parameter("output_dir", default=".flowc/files")
    distribution = generate(n_particle, sigma_x, sigma_xp, beta_gamma, seed)
    save_distribution(distribution, output_dir)
