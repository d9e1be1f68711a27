"""The prefect3 target's costs on a real server: setup, deploy, and a run's overhead per child.

    python benchmarks/prefect3_overhead.py [--python /var/tmp/flowc-prefect3/bin/python] [--repeat 3]

Starts a private server, process pool and worker (compiler/targets/prefect3/server.py, the worker
polling every second), deploys the example children and generated/fan_in3/, then times
(1) the fan_in3 composite, four children through run_deployment, from the flow run's creation to
its end, and (2) the same four child flows called one after another in one process of the same
interpreter against the same server, passing the values by hand. Prints one JSON object.

Where a composite run's time goes, from the server's own timestamps (the best run's): the
composite's start (created -> Running: the worker's poll, a new process, `import prefect`), each
child's start the same way (`child_start_s`, one per child) and each child's running time
(`child_run_s`); `import_prefect_s` is `import prefect` alone in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compiler.targets.prefect3.server import PrefectServer  # noqa: E402

CHILDREN = {"scale": "examples/prefect3/scale.py:scale_flow", "combine": "examples/prefect3/combine.py:combine_flow"}
DIRECT = """
import time
from examples.prefect3.scale import scale_flow
from examples.prefect3.combine import combine_flow
start = time.monotonic()
value = scale_flow(1.5, 2.0)
left = scale_flow(value, 3.0)
right = scale_flow(value, 5.0)
total = combine_flow(left, right)
assert total == 24.0, total
print(time.monotonic() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=os.environ.get("FLOWC_PREFECT3_PYTHON", "/var/tmp/flowc-prefect3/bin/python"))
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="flowc-bench3-"))
    server = PrefectServer(options.python, scratch)
    server.env["PYTHONPATH"] = str(REPO)
    timings: dict[str, object] = {"load_average": os.getloadavg()[0]}
    try:
        start = time.monotonic()
        server.start()
        timings["server_pool_worker_s"] = round(time.monotonic() - start, 1)
        requests = [
            {"flow_name": name, "name": name, "entrypoint": entrypoint, "local_directory": str(REPO),
             "image_directory": "/opt/flowc", "work_pool": "flowc", "version": "bench"}
            for name, entrypoint in CHILDREN.items()
        ]
        requests.append(
            {"flow_name": "fan_in3", "name": "fan_in3", "entrypoint": "flow.py:fan_in3",
             "local_directory": str(REPO / "generated" / "fan_in3"), "image_directory": "/opt/flowc",
             "work_pool": "flowc", "version": "bench"}
        )
        start = time.monotonic()
        server.deploy(*requests)
        timings["deploy_3_s"] = round(time.monotonic() - start, 1)
        deployment = server.api("GET", "/deployments/name/fan_in3/fan_in3")
        composite: list[float] = []
        breakdowns: list[dict[str, Any]] = []
        for _ in range(options.repeat):
            start = time.monotonic()
            run = server.api("POST", f"/deployments/{deployment['id']}/create_flow_run", {})
            while _state(server, run["id"]) not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                time.sleep(0.2)
            composite.append(round(time.monotonic() - start, 2))
            assert _state(server, run["id"]) == "COMPLETED", server.api("GET", f"/flow_runs/{run['id']}")["state"]
            breakdowns.append(_breakdown(server, run["id"]))
        direct = []
        for _ in range(options.repeat):
            done = subprocess.run([options.python, "-c", DIRECT], env=server.env, cwd=REPO, capture_output=True, text=True, check=True)
            direct.append(round(float(done.stdout.strip().splitlines()[-1]), 2))
        done = subprocess.run(
            [options.python, "-c", "import time; t = time.monotonic(); import prefect; print(time.monotonic() - t)"],
            env=server.env, cwd=REPO, capture_output=True, text=True, check=True,
        )
        timings["import_prefect_s"] = round(float(done.stdout.strip().splitlines()[-1]), 2)
        timings["composite_s"] = composite
        timings["direct_s"] = direct
        best_composite, best_direct = min(composite), min(direct)
        timings["overhead_per_child_s"] = round((best_composite - best_direct) / 4, 2)
        timings.update(breakdowns[composite.index(best_composite)])
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(timings))


def _state(server: PrefectServer, flow_run_id: str) -> str | None:
    state = server.api("GET", f"/flow_runs/{flow_run_id}")["state"]
    return state["type"] if state else None


def _seconds(run: dict[str, Any], since: str, until: str) -> float | None:
    if not run.get(since) or not run.get(until):
        return None
    return round((datetime.fromisoformat(run[until]) - datetime.fromisoformat(run[since])).total_seconds(), 2)


def _breakdown(server: PrefectServer, flow_run_id: str) -> dict[str, Any]:
    """The composite's and each child's start latency and running time, as the server recorded them."""
    composite = server.api("GET", f"/flow_runs/{flow_run_id}")
    children = [server.api("GET", f"/flow_runs/{child['id']}") for child in server.probe(flow_run_id)["children"]]
    return {
        "composite_start_s": _seconds(composite, "created", "start_time"),
        "child_start_s": [_seconds(child, "created", "start_time") for child in children],
        "child_run_s": [_seconds(child, "start_time", "end_time") for child in children],
    }


if __name__ == "__main__":
    main()
