"""`[tool.flowc] python`: every child of `flowc run` runs in that interpreter, not flowc's.

The interpreter is a virtualenv of another Python (3.10 where pyenv has it) without the system
site-packages: prefect 1.4.1 and flowc's runtime only, no pydantic, no click. scripts/child-env.sh
builds it (cached under /var/tmp; .ci/run builds it before the tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, copy_project, flowc

WHERE = '''\
"""where: which interpreter runs this child, and what it can import."""

import importlib.util
import sys

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="where", result=PrefectResult(), checkpoint=True)
def where(value: float) -> dict:
    return {
        "executable": sys.executable,
        "version": list(sys.version_info[:2]),
        "pydantic": importlib.util.find_spec("pydantic") is not None,
        "value": value,
    }


with Flow("where") as flow:
    where(Parameter("value", default=1.0))
'''

SPEC = """\
    name: elsewhere
    project_name: lume
    composing_flows:
      - {name: scale, project_name: lume, source: "examples.flows.scale:flow", parameters: {value: 2.0, factor: 3.0}}
      - name: where
        project_name: lume
        source: "where:flow"
        mapped_parameters:
          value: {parent_flow_name: scale, parent_task_name: scale}
"""


def _use_python(project: Path, python: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.flowc]\n" in text
    pyproject.write_text(text.replace("[tool.flowc]\n", f'[tool.flowc]\npython = "{python}"\n', 1))


@pytest.fixture(scope="module")
def child_python() -> str:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "child-env.sh"), "build"], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("export FLOWC_CHILD_PYTHON=")
    return line.partition("=")[2].strip("'\"")


def test_children_run_in_the_configured_interpreter_and_its_environment(tmp_path: Path, child_python: str) -> None:
    project = copy_project(tmp_path / "project", generated=True, examples=True)
    (project / "where.py").write_text(WHERE)
    (project / "specs" / "elsewhere.yaml").write_text(textwrap.dedent(SPEC))
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWC_RESULTS_DB", "FLOWC_MOUNT")}
    for command in (("lock",), ("generate",)):
        done = flowc(*command, cwd=project, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    _use_python(project, child_python)
    for start in ("fork", "spawn"):
        done = flowc("run", "specs/elsewhere.yaml", "--json", cwd=project, env={**env, "FLOWC_CHILD_START": start})
        assert done.returncode == 0, done.stdout + done.stderr
        steps = {c["alias"]: c for c in json.loads(done.stdout)["children"]}
        seen = steps["where"]["results"]["where-1"]
        assert seen["executable"] == child_python
        assert seen["pydantic"] is False  # not flowc's environment
        assert seen["value"] == 6.0  # mapped across: scale ran there too
        assert steps["scale"]["results"] == {"scale-1": 6.0}


def test_an_interpreter_without_flowcs_runtime_fails_each_child_with_the_reason(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", generated=True, examples=True)
    venv = tmp_path / "bare"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    _use_python(project, str(venv / "bin" / "python"))
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWC_RESULTS_DB", "FLOWC_MOUNT")}
    done = flowc("run", "specs/fan_in.yaml", "--json", cwd=project, env=env)
    assert done.returncode == 1, done.stderr
    steps = {c["alias"]: c for c in json.loads(done.stdout)["children"]}
    assert steps["start"]["state"] == "Failed"
    assert "No module named" in steps["start"]["message"] and str(venv) in steps["start"]["message"]
    assert steps["combine"]["state"] == "not run"
