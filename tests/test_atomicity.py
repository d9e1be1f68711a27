"""`flowc generate` never half-writes: a failure anywhere leaves generated/ as it was, and
concurrent runs (and the parallel compile) produce exactly the tree one sequential run does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import compiler.targets.prefect1.render
from benchmarks import synthetic
from compiler.commands.generate import run_generate
from compiler.config import Project, find_project

REPO = Path(__file__).resolve().parents[1]
# Processes run this working tree's compiler, whatever `pip install -e` last pointed at.
THIS_TREE = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (temp files included, so leftovers show up)."""
    if not directory.exists():
        return {}
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _example_project(root: Path) -> Project:
    """The repository's own specs and lock in a fresh project, generated once."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.flowc]\n")
    shutil.copytree(REPO / "specs", root / "specs", ignore=shutil.ignore_patterns("*.json"))
    project = find_project(root)
    assert run_generate(project, None, "text", quiet=True) == 0
    return project


def _change_every_spec(project: Project) -> None:
    """An edit that changes every generated file: each spec gets another label."""
    for path in project.spec_files():
        data = yaml.safe_load(path.read_text())
        data["labels"] = [*data.get("labels", ["lume-services"]), "atomicity"]
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def _fail_on_call(number: int, real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == number:
            raise error
        return real(*args, **kwargs)

    return wrapper


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = _example_project(tmp_path / "project")
    assert len(project.spec_files()) >= 4, "the failures below happen in the middle of several specs"
    return project


def _assert_untouched(project: Project, before: dict[str, bytes]) -> None:
    after = _snapshot(project.generated_dir)
    assert sorted(after) == sorted(before), "no file added, removed or left behind (temp files included)"
    assert after == before, "no file changed"


def test_renderer_failing_on_the_third_spec_leaves_generated_untouched(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(project.generated_dir)
    _change_every_spec(project)
    monkeypatch.setattr(
        compiler.targets.prefect1.render, "render_plan", _fail_on_call(3, compiler.targets.prefect1.render.render_plan, RuntimeError("simulated crash"))
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_generate(project, None, "text", quiet=True)
    _assert_untouched(project, before)


@pytest.mark.parametrize("failing_call", [1, 3, 7, 12])
def test_replace_failing_while_files_are_swapped_in_leaves_generated_untouched(
    project: Project, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    """The disk fills up (or any OSError) after some files were already replaced."""
    before = _snapshot(project.generated_dir)
    _change_every_spec(project)
    monkeypatch.setattr(os, "replace", _fail_on_call(failing_call, os.replace, OSError(28, "No space left on device")))
    with pytest.raises(SystemExit) as exited:
        run_generate(project, None, "text", quiet=True)
    assert exited.value.code == 1
    monkeypatch.undo()
    _assert_untouched(project, before)
    assert run_generate(project, None, "text", quiet=True) == 0, "the next run still works"


def test_a_write_error_is_one_line_naming_the_cause_and_saying_nothing_changed(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _change_every_spec(project)
    monkeypatch.setattr(os, "replace", _fail_on_call(2, os.replace, OSError(28, "No space left on device")))
    with pytest.raises(SystemExit):
        run_generate(project, None, "text")
    err = capsys.readouterr().err
    assert err == "error: cannot write generated files: [Errno 28] No space left on device; generated/ is unchanged\n"


def test_an_interrupt_while_writing_leaves_generated_untouched(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(project.generated_dir)
    _change_every_spec(project)
    monkeypatch.setattr(os, "replace", _fail_on_call(5, os.replace, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_generate(project, None, "text", quiet=True)
    monkeypatch.undo()
    _assert_untouched(project, before)


def test_a_failure_while_removing_orphans_leaves_generated_untouched(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(project.generated_dir)
    _change_every_spec(project)
    removed = project.spec_files()[:2]
    for path in removed:
        path.unlink()  # their generated projects become orphans
    monkeypatch.setattr(Path, "unlink", _fail_on_call(2, Path.unlink, PermissionError(13, "Permission denied")))
    with pytest.raises(SystemExit):
        run_generate(project, None, "text", quiet=True)
    monkeypatch.undo()
    _assert_untouched(project, before)


def test_a_failure_after_a_new_project_directory_was_made_leaves_no_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(project.generated_dir)
    dirs_before = sorted(p for p in project.generated_dir.rglob("*") if p.is_dir())
    source = project.spec_files()[0]
    data = yaml.safe_load(source.read_text())
    data["name"] = "brand_new"
    (project.specs_dir / "brand_new.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    _change_every_spec(project)
    monkeypatch.setattr(os, "replace", _fail_on_call(4, os.replace, OSError(5, "Input/output error")))
    with pytest.raises(SystemExit):
        run_generate(project, None, "text", quiet=True)
    monkeypatch.undo()
    _assert_untouched(project, before)
    assert sorted(p for p in project.generated_dir.rglob("*") if p.is_dir()) == dirs_before


# Concurrency ------------------------------------------------------------------------------------


def _generate_process(root: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "compiler", "generate"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**THIS_TREE, **(env or {})},
    )


def _reference_tree(root: Path, tmp_path: Path, name: str) -> dict[str, bytes]:
    """What one sequential generate writes for the project's current specs."""
    reference = tmp_path / name
    shutil.copytree(root, reference, ignore=shutil.ignore_patterns("generated", ".flowc"))
    done = subprocess.run(
        [sys.executable, "-m", "compiler", "generate"],
        cwd=reference,
        capture_output=True,
        text=True,
        env={**THIS_TREE, "FLOWC_JOBS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return _snapshot(reference / "generated")


def test_two_generate_processes_at_once_produce_the_correct_tree(tmp_path: Path) -> None:
    """Twelve specs (so each process also compiles on both cores), three rounds of edits."""
    root = tmp_path / "project"
    synthetic.write_project(root, synthetic.many_specs(12, steps=5))
    for round_number in range(3):
        if round_number:
            for path in sorted((root / "specs").glob("spec*.yaml"))[round_number::2]:
                path.write_text(path.read_text().replace("labels:\n- bench", f"labels:\n- bench{round_number}"))
        first, second = _generate_process(root), _generate_process(root)
        outputs = [process.communicate(timeout=300) for process in (first, second)]
        assert first.returncode == 0 and second.returncode == 0, outputs
        expected = _reference_tree(root, tmp_path, f"reference{round_number}")
        assert _snapshot(root / "generated") == expected
    check = subprocess.run(
        [sys.executable, "-m", "compiler", "check"], cwd=root, capture_output=True, text=True, env=THIS_TREE
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_parallel_compile_writes_the_same_bytes_as_one_process(tmp_path: Path) -> None:
    root = tmp_path / "project"
    synthetic.write_project(root, synthetic.many_specs(16, steps=4))
    done = subprocess.run(
        [sys.executable, "-m", "compiler", "generate"], cwd=root, capture_output=True, text=True, timeout=300, env=THIS_TREE
    )
    assert done.returncode == 0, done.stderr
    assert _snapshot(root / "generated") == _reference_tree(root, tmp_path, "sequential")
    assert len(_snapshot(root / "generated")) == 16 * 3


def test_spec_errors_found_by_parallel_workers_are_all_reported_in_order(tmp_path: Path) -> None:
    root = tmp_path / "project"
    specs = synthetic.many_specs(12, steps=3)
    specs["spec003"] = specs["spec003"].replace("  project_name: bench\n", "  project_name: nowhere\n", 1)
    specs["spec010"] = specs["spec010"].replace("name: spec010", "name: spec010\nunknown_key: 1", 1)
    synthetic.write_project(root, specs)
    done = subprocess.run(
        [sys.executable, "-m", "compiler", "generate"], cwd=root, capture_output=True, text=True, env=THIS_TREE
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert [line.split(":", 1)[0] for line in errors] == ["specs/spec003.yaml", "specs/spec010.yaml"], done.stderr
    assert not (root / "generated").exists()
