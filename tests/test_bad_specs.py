"""The bad-spec corpus: one problem per spec, each reported at its line and column, nothing written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import main

CORPUS = Path(__file__).parent / "bad_specs"
BAD_SPECS = sorted(p for p in CORPUS.glob("*.yaml") if p.name != "flows.lock.yaml")
EXPECT = re.compile(r"# error: (\d+):(\d+): (.*)")


@pytest.fixture
def corpus_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A flowc project whose specs and lock are the corpus, laid out as in this repository."""
    shutil.copytree(CORPUS, tmp_path / "tests" / "bad_specs")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flowc]\nspecs = "tests/bad_specs"\ngenerated = "generated"\n'
        'lock = "tests/bad_specs/flows.lock.yaml"\n'
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def expectation(spec: Path) -> tuple[int, int, str]:
    match = EXPECT.match(spec.read_text().splitlines()[0])
    assert match, f"{spec.name} must start with '# error: LINE:COL: message'"
    return int(match[1]), int(match[2]), match[3]


def test_corpus_covers_every_kind_of_error() -> None:
    names = {p.stem for p in BAD_SPECS}
    for kind in (
        "yaml_syntax", "wrong_type", "unknown_key", "duplicate_alias", "unknown_parameter",
        "unknown_parent", "unknown_task", "several_slugs", "unloadable_result", "cycle",
        "missing_from_lock", "unsafe_spec_name", "unsafe_alias", "unsafe_image",
        "unsafe_base_image", "unsafe_flow_name", "unsafe_label",
    ):
        assert kind in names


@pytest.mark.parametrize("spec", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_is_reported_at_its_location(spec: Path, corpus_project: Path) -> None:
    line, col, message = expectation(spec)
    result = CliRunner().invoke(main, ["generate", f"tests/bad_specs/{spec.name}"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    prefix = f"tests/bad_specs/{spec.name}:{line}:{col}: error: "
    errors = [entry for entry in result.output.splitlines() if ": error: " in entry]
    assert any(entry.startswith(prefix) and message in entry for entry in errors), (
        f"expected {prefix}{message}\ngot:\n{result.output}"
    )
    assert "Traceback" not in result.output
    assert not (corpus_project / "generated").exists()


def test_every_problem_in_one_run_is_reported(corpus_project: Path) -> None:
    result = CliRunner().invoke(main, ["generate"])
    assert result.exit_code == 1
    reported = {entry.split(":", 1)[0] for entry in result.output.splitlines() if ": error: " in entry}
    assert reported == {f"tests/bad_specs/{p.name}" for p in BAD_SPECS}
    assert not (corpus_project / "generated").exists()


def test_bad_spec_in_a_real_process_prints_no_traceback(corpus_project: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "compiler", "check", "tests/bad_specs/cycle.yaml"],
        capture_output=True,
        text=True,
        cwd=corpus_project,
    )
    assert process.returncode == 1
    assert "cycle: first -> second -> first" in process.stderr
    assert "Traceback" not in process.stderr + process.stdout


def test_several_problems_in_one_spec_are_all_reported(corpus_project: Path) -> None:
    spec = corpus_project / "tests" / "bad_specs" / "many.yaml"
    spec.write_text(
        "name: many\nproject_name: test\ncomposing_flows:\n"
        "  - {name: source, project_name: test, colour: red}\n"
        "  - name: sink\n    project_name: test\n    mapped_parameters:\n"
        "      valeu: {parent_flow_name: nope, parent_task_name: produce}\n"
    )
    result = CliRunner().invoke(main, ["generate", "tests/bad_specs/many.yaml"])
    errors = [entry for entry in result.output.splitlines() if ": error: " in entry]
    assert result.exit_code == 1
    assert any(":4:40: error: unknown key 'colour'" in e for e in errors), result.output
