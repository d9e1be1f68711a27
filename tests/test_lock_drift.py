"""Lock drift: `flowc check` notices a child flow whose source no longer matches the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.lock import FlowInterface, ParameterInterface, TaskInterface, interface_changes
from tests.helpers import copy_project, flowc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A generated copy of the repository's project, with its child flow modules."""
    root = copy_project(tmp_path / "project", generated=False, examples=True)
    result = flowc("generate", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert flowc("check", cwd=root).returncode == 0
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_renamed_parameter_is_reported_naming_the_flow_and_the_difference(project: Path) -> None:
    lock = project / "specs" / "flows.lock.yaml"
    before = lock.read_text()
    edit(
        project / "examples/flows/scale.py",
        'Parameter("factor", default=2.0)',
        'Parameter("gain", default=2.0)',
    )
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert (
        "lume/scale no longer matches its source examples.flows.scale:flow: "
        "parameter 'gain' added (default 2.0); parameter 'factor' removed; run `flowc lock`"
    ) in result.stderr
    assert "--- a/specs/flows.lock.yaml" in result.stdout
    assert "-    - name: factor\n" in result.stdout
    assert "+    - name: gain\n" in result.stdout
    assert lock.read_text() == before, "check must write nothing"


def test_removed_task_is_reported(project: Path) -> None:
    edit(project / "examples/flows/combine.py", '@task(name="combine"', '@task(name="add"')
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert "lume/combine no longer matches its source" in result.stderr
    assert "task 'add' added; task 'combine' gone" in result.stderr


def test_new_required_parameter_is_reported(project: Path) -> None:
    edit(
        project / "examples/flows/analysis.py",
        "    report(emittance, threshold)",
        '    report(emittance, threshold)\n    flow.add_task(Parameter("unit", required=True))',
    )
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert (
        "lume/analysis no longer matches its source examples.flows.analysis:flow: parameter 'unit' added (required)"
        in result.stderr
    )


def test_drift_as_github_annotation_on_the_lock_entry(project: Path) -> None:
    edit(
        project / "examples/flows/scale.py",
        'Parameter("factor", default=2.0)',
        'Parameter("factor", default=3.0)',
    )
    lock_lines = (project / "specs" / "flows.lock.yaml").read_text().splitlines()
    line = lock_lines.index("  lume/scale:") + 1
    result = flowc("check", "--format", "github", cwd=project)
    assert result.returncode == 1
    assert (
        f"::error file=specs/flows.lock.yaml,line={line},col=1::lume/scale no longer matches its source "
        "examples.flows.scale:flow: parameter 'factor' default 2.0 -> 3.0; run `flowc lock`"
    ) in result.stdout


def test_source_that_no_longer_imports_is_an_error(project: Path) -> None:
    edit(project / "examples/flows/combine.py", "from prefect import", "from prefect import no_such_name,")
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert "specs/flows.lock.yaml:" in result.stderr
    assert "lume/combine" in result.stderr and "no_such_name" in result.stderr


def test_source_change_without_interface_change_passes_with_a_note(project: Path) -> None:
    path = project / "examples/flows/combine.py"
    path.write_text(path.read_text() + "\n# a comment changes the file, not the interface\n")
    result = flowc("check", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "note: lume/combine: examples.flows.combine:flow changed but its interface did not" in result.stderr
    )


def test_relocking_moves_the_problem_to_the_spec_that_uses_the_old_name(project: Path) -> None:
    edit(
        project / "examples/flows/scale.py",
        'Parameter("factor", default=2.0)',
        'Parameter("gain", default=2.0)',
    )
    assert flowc("lock", cwd=project).returncode == 0
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert "specs/fan_in.yaml:" in result.stderr
    assert "no parameter 'factor'" in result.stderr


def _flow(parameters: tuple[ParameterInterface, ...], tasks: tuple[TaskInterface, ...]) -> FlowInterface:
    return FlowInterface("lume", "demo", "demo:flow", parameters, tasks)


def test_interface_changes_in_words() -> None:
    locked = _flow(
        (ParameterInterface("n", 10, False), ParameterInterface("path", None, True)),
        (
            TaskInterface("save", ("save-1",), "PrefectResult", True),
            TaskInterface("log", ("log-1",), "PrefectResult", True),
        ),
    )
    current = _flow(
        (ParameterInterface("n", 20, False), ParameterInterface("path", "x", False)),
        (
            TaskInterface("save", ("save-1", "save-2"), "PrefectResult", True),
            TaskInterface("log", ("log-1",), "LocalResult", False),
        ),
    )
    assert interface_changes(locked, current) == [
        "parameter 'n' default 10 -> 20",
        "parameter 'path' is no longer required",
        "task 'log' no longer persists its result (LocalResult)",
        "task 'save' slugs ['save-1'] -> ['save-1', 'save-2']",
    ]
    assert interface_changes(locked, locked) == []
