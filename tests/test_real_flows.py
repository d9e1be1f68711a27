"""Real Prefect 1 flows, unmodified (tests/data/prefect1/README.md): their interfaces lock, and their
LocalResult, storage-default and Parameter values map (issue 10 findings 3 and 4)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.lockproject import CHILD, make_project, run

DATA = Path(__file__).resolve().parent / "data" / "prefect1"

SPEC = """\
name: real_flows
project_name: test
composing_flows:
  - name: "Example: Parameters"
    alias: parameters
    project_name: test
    source: data/parameters.py:flow
  - name: Check Even/Odd
    alias: even_odd
    project_name: test
    source: data/parameterized_flow.py:f
    mapped_parameters:
      value: {parent_flow_name: parameters, parent_task_name: x}
  - name: "Map / Reduce 🤓"
    alias: map_reduce
    project_name: test
    source: data/map_reduce.py:flow
  - name: local-result-flow
    alias: local_result
    project_name: test
    source: data/local_result.py:flow
  - name: gcs-flow
    alias: gcs
    project_name: test
    source: data/gcs_storage.py:flow
  - name: "Example: Conditional Tasks"
    alias: conditional
    project_name: test
    source: 2a_conditional:flow
  - name: child
    alias: from_local
    project_name: test
    source: flows.child:flow
    mapped_parameters:
      x: {parent_flow_name: local_result, parent_task_name: my_task}
  - name: child
    alias: from_gcs
    project_name: test
    mapped_parameters:
      x: {parent_flow_name: gcs, parent_task_slug: produce-1}
  - name: child
    alias: from_storage_default
    project_name: test
    mapped_parameters:
      x: {parent_flow_name: map_reduce, parent_task_name: reduce_task}
"""


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = make_project(
        tmp_path_factory.mktemp("real") / "p", {"flows/__init__.py": "", "flows/child.py": CHILD}, {"real_flows": SPEC}
    )
    shutil.copytree(DATA, root / "data")
    shutil.copy(DATA / "conditional.py", root / "2a_conditional.py")
    result = run("lock", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result.stdout, result.stderr


def _entry(root: Path, key: str) -> dict:
    return yaml.safe_load((root / "specs" / "flows.lock.yaml").read_text())["flows"][key]


def test_real_flows_lock_with_their_prints_kept_off_stdout(locked: tuple[Path, str, str]) -> None:
    root, stdout, stderr = locked
    assert stdout == "" and "wrote specs/flows.lock.yaml (7 flows)" in stderr
    assert "[test/Check Even/Odd] 2 is even!" in stderr  # the example runs itself at import
    assert "[test/Map / Reduce 🤓]" in stderr
    assert _entry(root, "test/Check Even/Odd")["parameters"] == [{"name": "value", "default": None, "required": True}]
    assert [p["name"] for p in _entry(root, "test/Example: Parameters")["parameters"]] == ["x", "y"]
    assert _entry(root, "test/Example: Conditional Tasks")["source"] == "2a_conditional:flow"


def test_result_classes_as_prefect_register_resolves_them(locked: tuple[Path, str, str]) -> None:
    root, _, _ = locked
    local = _entry(root, "test/local-result-flow")["tasks"]["my_task"]["slugs"]["my_task-1"]
    assert local == {"result": "LocalResult", "origin": "task", "loadable": "one-machine"}
    gcs = _entry(root, "test/gcs-flow")["tasks"]["produce"]["slugs"]["produce-1"]
    assert gcs == {"result": "GCSResult", "origin": "storage GCS", "loadable": "anywhere"}
    reduce = _entry(root, "test/Map / Reduce 🤓")["tasks"]["reduce_task"]["slugs"]["reduce_task-1"]
    assert reduce == {"result": "LocalResult", "origin": "storage Local", "loadable": "one-machine"}
    files = _entry(root, "test/local-result-flow")["source_files"]
    assert files == ["data/local_result.py"]


def test_local_result_gcs_default_and_parameter_mappings_generate(locked: tuple[Path, str, str]) -> None:
    root, _, _ = locked
    result = run("generate", cwd=root)
    assert result.returncode == 0, result.stderr
    flow = (root / "generated" / "real_flows" / "flow.py").read_text()
    assert "get_task_run_result(\n        parameters_run, \"x\"" in flow or "get_task_run_result(parameters_run, \"x\"" in flow
    assert "LocalResult: needs the children's files on one machine" in flow
    assert 'flow_name="Check Even/Odd"' in flow and 'flow_name="Map / Reduce 🤓"' in flow
    compile(flow, "flow.py", "exec")
    readme = (root / "generated" / "real_flows" / "README.md").read_text()
    assert (
        "Note: `from_local.x <- local_result.my_task-1: LocalResult: needs the children's files on one machine "
        "(flowc run, a local agent, a shared volume)`"
    ) in readme
    assert "from_gcs.x <- gcs" not in readme, "a GCSResult needs no note"
    assert run("check", cwd=root).returncode == 0
    assert run("lock", "--check", cwd=root).returncode == 0


def test_a_name_that_is_not_an_identifier_needs_an_alias(locked: tuple[Path, str, str], tmp_path: Path) -> None:
    root, _, _ = locked
    spec = root / "specs" / "real_flows.yaml"
    original = spec.read_text()
    try:
        spec.write_text(original.replace("    alias: even_odd\n", "", 1))
        result = run("generate", cwd=root)
        assert result.returncode == 1
        assert "specs/real_flows.yaml:8:11: error: flow name 'Check Even/Odd' is not a valid step name; give this step an `alias:`" in result.stderr
    finally:
        spec.write_text(original)


PER_SLUG = """\
from prefect import Flow, task
from prefect.engine.results import PrefectResult


@task(name="t", result=PrefectResult())
def kept():
    return 1


@task(name="t", checkpoint=False)
def scratch():
    return 2


with Flow("parent") as flow:
    kept()
    scratch()
"""


def _per_slug_spec(mapping: str) -> str:
    return textwrap.dedent(
        f"""\
        name: per_slug
        project_name: test
        composing_flows:
          - name: parent
            project_name: test
            source: flows.parent:flow
          - name: child
            project_name: test
            source: flows.child:flow
            mapped_parameters:
              x: {{parent_flow_name: parent, {mapping}}}
        """
    )


def test_persistence_is_per_slug(tmp_path: Path) -> None:
    files = {"flows/__init__.py": "", "flows/child.py": CHILD, "flows/parent.py": PER_SLUG}
    root = make_project(tmp_path / "p", files, {"per_slug": _per_slug_spec("parent_task_slug: t-1")})
    assert run("lock", cwd=root).returncode == 0
    slugs = _entry(root, "test/parent")["tasks"]["t"]["slugs"]
    assert slugs["t-1"]["loadable"] == "anywhere"
    # A module source is registered as `prefect register -m` does: Module storage, no default result.
    assert slugs["t-2"] == {"result": None, "origin": "storage Module", "checkpoint": False, "loadable": "no"}
    assert run("generate", cwd=root).returncode == 0
    (root / "specs" / "per_slug.yaml").write_text(_per_slug_spec("parent_task_slug: t-2"))
    result = run("generate", cwd=root)
    assert result.returncode == 1
    assert "error: task 't' (t-2) of 'parent' does not persist a result another flow run can load (checkpoint=False)" in result.stderr


RUN_PARENT = """\
from prefect import Flow, Parameter, task
from prefect.engine.results import LocalResult


@task(result=LocalResult(dir="results"))
def scaled(n):
    return n * 10


with Flow("parent") as flow:
    n = Parameter("n", default=4)
    scaled(n)
"""
RUN_CHILD = """\
from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(result=PrefectResult())
def add(a, b):
    return a + b


with Flow("adder") as flow:
    add(Parameter("a"), Parameter("b"))
"""
RUN_SPEC = """\
name: two
project_name: test
composing_flows:
  - name: parent
    project_name: test
    source: flows.parent:flow
  - name: adder
    project_name: test
    source: flows.adder:flow
    mapped_parameters:
      a: {parent_flow_name: parent, parent_task_name: n}
      b: {parent_flow_name: parent, parent_task_slug: scaled-1}
"""


def test_a_parameter_and_a_local_result_arrive_in_a_local_run(tmp_path: Path) -> None:
    import json

    files = {"flows/__init__.py": "", "flows/parent.py": RUN_PARENT, "flows/adder.py": RUN_CHILD}
    root = make_project(tmp_path / "p", files, {"two": RUN_SPEC})
    assert run("lock", cwd=root).returncode == 0
    assert run("generate", cwd=root).returncode == 0
    result = run("run", "specs/two.yaml", "-p", "parent-n=5", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    adder = next(child for child in summary["children"] if child["alias"] == "adder")
    assert adder["parameters"] == {"a": 5, "b": 50}
    assert adder["results"] == {"add-1": 55}
