"""End to end on a real Prefect server and worker, for Prefect 3.x and for 2.14.2.

Per version: a server (SQLite, its own PREFECT_HOME), a process work pool and a worker; the
example children (examples/prefect3/) deployed; `flowc build` deploys the composites; runs are
started through the REST API and their children's persisted results read back (prefect3_probe).
The virtualenvs come from `scripts/prefect3.sh venv 3|2` (FLOWC_PREFECT3_VENV / FLOWC_PREFECT2_VENV);
without them the tests skip, unless FLOWC_PREFECT3_E2E=1 (CI), where a missing one fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from compiler.targets.prefect3.server import PrefectServer
from tests.helpers import REPO, copy_project

VENVS = {
    "3": Path(os.environ.get("FLOWC_PREFECT3_VENV", "/var/tmp/flowc-prefect3")),
    "2.14": Path(os.environ.get("FLOWC_PREFECT2_VENV", "/var/tmp/flowc-prefect2")),
}
REQUIRED = os.environ.get("FLOWC_PREFECT3_E2E") == "1"
CHILDREN = {  # deployment name -> entrypoint of the example child
    "distgen": "examples/prefect3/distgen.py:distgen",
    "impact": "examples/prefect3/impact.py:impact",
    "analysis": "examples/prefect3/analysis.py:analysis",
    "scale": "examples/prefect3/scale.py:scale_flow",
    "combine": "examples/prefect3/combine.py:combine_flow",
    "failing": "examples/prefect3/failing.py:failing",
    "total": "examples/prefect3/total.py:total_flow",
}
COMPOSITES = ("specs/impact_pipeline3.yaml", "specs/fan_in3.yaml", "specs/broken3.yaml", "specs/scan3.yaml")
BROKEN = """\
name: broken3
project_name: lume3
target: prefect3
work_pool: flowc
composing_flows:
  - name: scale
    alias: start
    project_name: lume3
    source: examples.prefect3.scale:scale_flow
    parameters: {value: 4.0, factor: 0.5}
  - name: failing
    project_name: lume3
    source: examples.prefect3.failing:failing
    mapped_parameters:
      value: {parent_flow_name: start, parent_task_name: scale}
  - name: combine
    alias: after
    project_name: lume3
    source: examples.prefect3.combine:combine_flow
    mapped_parameters:
      a: {parent_flow_name: failing, parent_task_name: fail}
      b: {parent_flow_name: start, parent_task_name: return}
"""


class Deployed:
    def __init__(self, server: PrefectServer, project: Path, flag: Path) -> None:
        self.server = server
        self.project = project
        self.flag = flag
        self.built: subprocess.CompletedProcess[str] | None = None

    def build(self) -> subprocess.CompletedProcess[str]:
        """`flowc build` of the composites (once; the first build's output is kept)."""
        if self.built is None:
            self.built = self.flowc("build", "--no-image", *COMPOSITES)
            assert self.built.returncode == 0, self.built.stdout + self.built.stderr
        return self.built

    def flowc(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.server.env, "FLOWC_PREFECT3_PYTHON": self.server.python}
        return subprocess.run(
            [sys.executable, "-m", "compiler", *args], cwd=self.project, env=env, capture_output=True, text=True, timeout=600
        )

    def run(self, deployment: str, parameters: dict[str, Any] | None = None, timeout: float = 600) -> dict[str, Any]:
        found = self.server.api("GET", f"/deployments/name/{deployment}")
        body = {"parameters": {"parameters": parameters}} if parameters is not None else {}
        flow_run = self.server.api("POST", f"/deployments/{found['id']}/create_flow_run", body)
        return self.wait(flow_run["id"], timeout)

    def wait(self, flow_run_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.server.api("GET", f"/flow_runs/{flow_run_id}")["state"]
            if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return self.probe(flow_run_id)
            assert time.monotonic() < deadline, f"flow run {flow_run_id} still {state}"
            time.sleep(1)

    def probe(self, flow_run_id: str) -> dict[str, Any]:
        return self.server.probe(flow_run_id)

    def runs_of(self, deployment: str) -> list[dict[str, Any]]:
        found = self.server.api("GET", f"/deployments/name/{deployment}")
        return self.server.api("POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [found["id"]]}}})


@pytest.fixture(scope="module", params=sorted(VENVS), ids=lambda v: f"prefect{v}")
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    venv = VENVS[request.param]
    if not (venv / "bin" / "prefect").exists():
        if REQUIRED:
            pytest.fail(f"no Prefect {request.param} virtualenv at {venv}; run scripts/prefect3.sh venv")
        pytest.skip(f"no Prefect {request.param} virtualenv at {venv} (scripts/prefect3.sh venv)")
    scratch = tmp_path_factory.mktemp(f"prefect{request.param}")
    project = copy_project(scratch / "project", examples=True)
    shutil.copytree(REPO / "compiler", project / "compiler", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "specs" / "broken3.yaml").write_text(BROKEN)
    server = PrefectServer(str(venv / "bin" / "python"), scratch)
    flag = scratch / "fail.flag"
    server.env["FLOWC_FAIL_FLAG"] = str(flag)
    server.env["PYTHONPATH"] = str(project)  # the worker's runs import the copy's runtime and examples
    try:
        server.start(pool="flowc")
        server.deploy(
            *(
                {
                    "flow_name": name,
                    "name": name,
                    "entrypoint": entrypoint,
                    "local_directory": str(project),
                    "image_directory": "/opt/flowc",
                    "work_pool": "flowc",
                    "version": "e2e",
                }
                for name, entrypoint in CHILDREN.items()
            )
        )
        deployed = Deployed(server, project, flag)
        for command in (("lock",), ("generate",)):
            done = deployed.flowc(*command)
            assert done.returncode == 0, done.stdout + done.stderr
        yield deployed
    finally:
        server.stop()


def test_build_deploys_the_composites_then_reports_them_unchanged(deployed: Deployed) -> None:
    first = deployed.build()
    assert "impact_pipeline3/impact_pipeline3: created (work pool 'flowc' (process: code on this machine)" in first.stderr
    assert first.stdout == "", first.stdout  # human output goes to stderr
    assert first.stderr.splitlines()[-1] == "images skipped; 0 registered, 0 skipped, 0 errored; 4 deployed, 0 unchanged"
    second = deployed.flowc("build", "--no-image", *COMPOSITES)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stderr.splitlines()[-1] == "images skipped; 0 registered, 0 skipped, 0 errored; 0 deployed, 4 unchanged"


def _child(run: dict[str, Any], deployment: str) -> dict[str, Any]:
    found = [child for child in run["children"] if child["deployment"] == deployment]
    assert len(found) == 1, run
    return found[0]


def test_the_pipeline_passes_file_db_raw_and_return_values(deployed: Deployed) -> None:
    """The same numbers as the Prefect 1 pipeline: the physics is the examples', values really pass."""
    deployed.build()
    run = deployed.run("impact_pipeline3/impact_pipeline3", {"distgen-n_particle": 500})
    assert run["state"] == "COMPLETED", run
    distgen = _child(run, "distgen")["results"]
    reference = distgen["save_distribution"]
    assert reference["file_type_string"] == "compiler.runtime.files:JSONFile"
    particles = json.loads(Path(reference["filename"]).read_text())
    assert particles["n_particle"] == 500  # the -p value reached the child
    impact = _child(run, "impact")["results"]
    emittance = impact["summarize"]
    assert math.isclose(emittance, _emittance(particles), rel_tol=1e-12)
    assert impact["save_db_result"]["query"]["unique_hash"]
    analysis = _child(run, "analysis")["results"]["report"]
    assert analysis["emittance"] == emittance  # through the results store (db mapping)
    scales = sorted((c for c in run["children"] if c["deployment"] == "scale"), key=lambda c: c["results"]["return"])
    assert [c["results"]["return"] for c in scales] == [emittance * 1e6, emittance * 1e6 * 2.0]


def _emittance(beam: dict[str, Any], drift_length: float = 1.0, quad_k: float = 0.5) -> float:
    xs = [x + drift_length * xp for x, xp in zip(beam["x"], beam["xp"])]
    xps = [xp - quad_k * x for x, xp in zip(xs, beam["xp"])]
    mean = lambda values: math.fsum(values) / len(values)  # noqa: E731
    mx, mp = mean(xs), mean(xps)
    sxx = mean([(x - mx) ** 2 for x in xs])
    spp = mean([(p - mp) ** 2 for p in xps])
    sxp = mean([(x - mx) * (p - mp) for x, p in zip(xs, xps)])
    return beam["beta_gamma"] * math.sqrt(max(sxx * spp - sxp * sxp, 0.0))


def test_fan_in_waits_for_both_parents(deployed: Deployed) -> None:
    deployed.build()
    run = deployed.run("fan_in3/fan_in3")
    assert run["state"] == "COMPLETED", run
    # start = 1.5 * 2; left = start * 3 (its task), right = start * 5 (its return value)
    assert _child(run, "combine")["results"]["combine"] == 1.5 * 2 * 3 + 1.5 * 2 * 5


def test_a_failed_child_fails_the_composite_and_a_retry_starts_only_it_anew(deployed: Deployed) -> None:
    deployed.build()
    deployed.flag.write_text("fail")
    before = {name: len(deployed.runs_of(f"{name}/{name}")) for name in ("scale", "failing", "combine")}
    run = deployed.run("broken3/broken3")
    assert run["state"] == "FAILED", run
    assert "failing" in run["message"] or run["message"], run
    assert _child(run, "failing")["state"] == "FAILED"
    after_fail = {name: len(deployed.runs_of(f"{name}/{name}")) for name in before}
    assert after_fail == {"scale": before["scale"] + 1, "failing": before["failing"] + 1, "combine": before["combine"]}
    # Retry the same composite run (what the UI's Retry does): the same keys.
    deployed.flag.unlink()
    deployed.server.api(
        "POST", f"/flow_runs/{run['id']}/set_state", {"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True}
    )
    retried = deployed.wait(run["id"])
    assert retried["state"] == "COMPLETED", retried
    after_retry = {name: len(deployed.runs_of(f"{name}/{name}")) for name in before}
    # start finished before: reused, not started again; failing started anew; combine at last.
    assert after_retry == {"scale": after_fail["scale"], "failing": after_fail["failing"] + 1, "combine": before["combine"] + 1}
    assert _child(retried, "combine")["results"]["combine"] == 4.0 * 0.5 * 2


def test_a_scan_runs_each_point_pairs_for_each_and_gathers_in_point_order(deployed: Deployed) -> None:
    """scan3 with the points given at run time: 3 points of `scaled` (at most 2 alive at once),
    `tripled` for each of them with the same point's value, `total` of the three in point order."""
    deployed.build()
    run = deployed.run("scan3/scan3", {"scaled-value": [1.0, 2.0, 4.0]})
    assert run["state"] == "COMPLETED", run
    by_name = {child["name"]: child for child in run["children"]}
    names = ["scaled[value=1.0]", "scaled[value=2.0]", "scaled[value=4.0]"]
    names += [name.replace("scaled", "tripled") for name in names]
    assert sorted(by_name) == sorted([*names, "scan3.total"]), sorted(by_name)
    assert [by_name[n]["results"]["scale"] for n in names] == [2.0, 4.0, 8.0, 6.0, 12.0, 24.0]
    assert by_name["scan3.total"]["results"]["total"] == 42.0  # (2 + 4 + 8) * 3: every point, once
    keys = [by_name[n]["idempotency_key"] for n in names]
    assert len(set(keys)) == 6 and all(k.startswith("flowc/") and k.endswith("/0") for k in keys), keys
    # max_concurrency: 2: no more than two of scaled's points were alive at any moment.
    spans = []
    for name in names[:3]:
        found = deployed.server.api("GET", f"/flow_runs/{by_name[name]['id']}")
        spans.append((found["start_time"], found["end_time"]))
    assert all(start and end for start, end in spans), spans
    # The points start in point order, so the third is created once one of the first two ended.
    assert spans[2][0] >= min(end for _, end in spans[:2]), spans


@pytest.mark.parametrize("version", sorted(VENVS), ids=lambda v: f"prefect{v}")
def test_flowc_run_starts_a_private_server_and_stops_it(tmp_path: Path, version: str) -> None:
    """`flowc run` of a prefect3 spec with no server configured: the same numbers, nothing left running."""
    venv = VENVS[version]
    if not (venv / "bin" / "prefect").exists():
        if REQUIRED:
            pytest.fail(f"no Prefect {version} virtualenv at {venv}")
        pytest.skip(f"no Prefect {version} virtualenv at {venv}")
    project = copy_project(tmp_path / "project", examples=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT")}
    env.update(FLOWC_PREFECT3_PYTHON=str(venv / "bin" / "python"), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "compiler", "run", "specs/fan_in3.yaml", "--json", "-p", "start-value=2.0"],
        cwd=project, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["parameters"] == {"start-value": 2.0}
    combine = next(c for c in summary["children"] if c["alias"] == "combine")
    assert combine["results"]["combine"] == 2.0 * 2 * 3 + 2.0 * 2 * 5
    assert sorted(c["alias"] for c in summary["children"]) == ["combine", "left", "right", "start"]
    scratch = str(project / summary["logs"])
    assert scratch.startswith(str(project / ".flowc" / "prefect3"))
    assert not [pid for pid in _pids() if _cwd(pid).startswith(scratch)], "the private server and worker are stopped"


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""
