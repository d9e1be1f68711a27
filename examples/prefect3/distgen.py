"""distgen: generate a particle distribution and hand it on as a file, as LUME's distgen does."""

from __future__ import annotations

import hashlib
import json
import os
import random
from typing import Dict

from prefect import flow, task

from compiler.targets.prefect3.runtime import save_file

# The runtime's save_file under the name the composition maps (`parent_task_name: save_distribution`).
save_distribution = save_file.with_options(name="save_distribution")


@task(name="generate")
def generate(n_particle: int, sigma_x: float, sigma_xp: float, beta_gamma: float, seed: int) -> Dict[str, object]:
    """Uncorrelated Gaussian x [m] and x' [rad]; seeded so a rerun gives the same particles."""
    if int(n_particle) < 2:
        raise ValueError(f"n_particle must be at least 2 to have a spread, got {n_particle}")
    rng = random.Random(seed)
    count = int(n_particle)
    return {
        "n_particle": count,
        "beta_gamma": float(beta_gamma),
        "x": [rng.gauss(0.0, sigma_x) for _ in range(count)],
        "xp": [rng.gauss(0.0, sigma_xp) for _ in range(count)],
    }


@flow(name="distgen")
def distgen(
    n_particle: int = 1000,
    sigma_x: float = 0.001,
    sigma_xp: float = 0.0001,
    beta_gamma: float = 5.0,
    seed: int = 0,
    output_dir: str = ".flowc/files",
) -> None:
    distribution = generate(n_particle, sigma_x, sigma_xp, beta_gamma, seed)
    # A content-addressed name, so runs with other parameters never overwrite it.
    digest = hashlib.sha256(json.dumps(distribution, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    save_distribution(distribution, os.path.join(os.path.abspath(output_dir), f"distribution-{digest}.json"))
