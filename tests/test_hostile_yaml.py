"""Hostile YAML ends in one clear error within bounded time and memory; names cannot leave generated/.

The corpus (benchmarks/hostile.py) holds alias bombs, deep nesting in every YAML syntax, huge
files and dangerous tags. Each is compiled in-process, and run through `flowc generate` and
`flowc check` in a real process whose wall time and peak memory are measured (os.wait4).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import compiler.yamlsafe as yamlsafe
from benchmarks.hostile import ESCAPING_NAMES, HEAD, billion_laughs, corpus
from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import Lock
from compiler.spec import parse_spec
from compiler.yamlsafe import MAX_DEPTH, MAX_NODES, YamlLimitError, compose_bounded

REPO = Path(__file__).resolve().parents[1]
# Processes run this working tree's compiler, whatever `pip install -e` last pointed at.
THIS_TREE = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
CORPUS = corpus()
LOCK = Lock(path="specs/flows.lock.yaml")
ERROR_LINE = re.compile(r"^specs/hostile\.yaml:(\d+):(\d+): error: (.+)$")
# Of CPU time (wall time on a loaded 2-core machine measures the neighbours): a bound that catches
# a quadratic path, not a benchmark; measured values are in README.md (Hostile input).
MAX_SECONDS = 30.0
MAX_RSS_MB = 400


def _compile_error(text: str, spec_path: str = "specs/hostile.yaml") -> CompileError:
    with pytest.raises(CompileError) as raised:
        compile_spec(text, spec_path, LOCK)
    return raised.value


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_spec_is_one_clear_error_in_process(name: str) -> None:
    hostile = CORPUS[name]
    started = time.process_time()
    error = _compile_error(hostile.text)
    elapsed = time.process_time() - started
    assert any(hostile.message in d.message for d in error.diagnostics), error
    assert len(error.diagnostics) <= 101
    lines = hostile.text.count("\n") + 1
    for diagnostic in error.diagnostics:
        assert diagnostic.path == "specs/hostile.yaml"
        assert 1 <= diagnostic.line <= lines and diagnostic.col >= 1
        assert "\n" not in diagnostic.message and len(diagnostic.message) < 300
    assert elapsed < MAX_SECONDS


def _run_measured(command: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Exit code, output, CPU seconds and peak RSS (MB) of one real process."""
    log = cwd / "output.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, env=THIS_TREE)
        watchdog = threading.Timer(120, process.kill)  # a hang fails the test instead of the run
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
    elapsed = usage.ru_utime + usage.ru_stime
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, log.read_text(), elapsed, usage.ru_maxrss / 1024


def _project(root: Path, specs: dict[str, str]) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.flowc]\n")
    for name, text in specs.items():
        (root / "specs" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_spec_through_the_cli_is_bounded_in_time_and_memory(name: str, tmp_path: Path) -> None:
    root = _project(tmp_path / "project", {"hostile": CORPUS[name].text})
    code, output, seconds, peak_mb = _run_measured([sys.executable, "-m", "compiler", "generate"], root)
    assert code == 1, output[-2000:]
    assert "Traceback" not in output
    errors = [m for m in map(ERROR_LINE.match, output.splitlines()) if m]
    assert errors and any(CORPUS[name].message in m.group(3) for m in errors), output[-2000:]
    assert not (root / "generated").exists(), "a bad spec writes nothing"
    assert seconds < MAX_SECONDS, f"{name}: {seconds:.1f} s"
    assert peak_mb < MAX_RSS_MB, f"{name}: {peak_mb:.0f} MB"


def test_check_reports_every_hostile_spec_in_one_bounded_run(tmp_path: Path) -> None:
    names = {f"h{index:02d}": name for index, name in enumerate(CORPUS)}
    root = _project(tmp_path / "project", {key: CORPUS[name].text for key, name in names.items()})
    code, output, seconds, peak_mb = _run_measured([sys.executable, "-m", "compiler", "check"], root)
    assert code == 1 and "Traceback" not in output
    for key, name in names.items():
        assert re.search(rf"^specs/{key}\.yaml:\d+:\d+: error: .*{re.escape(CORPUS[name].message)}", output, re.M), name
    assert seconds < 2 * MAX_SECONDS
    assert peak_mb < MAX_RSS_MB


def test_the_python_tag_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("python object tag on a value", "python name tag on a scalar"):
        _compile_error(CORPUS[name].text)
    assert not (tmp_path / "pwned").exists()


# The bounds hold before pyyaml builds anything -----------------------------------------------------


def test_composing_never_starts_past_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml's composer recurses in C and builds every node: it must only see bounded documents."""
    composed: list[int] = []
    real_compose = yaml.compose

    def spy(text: str, Loader: type) -> yaml.Node:  # noqa: N803 - pyyaml's own keyword
        composed.append(len(text))
        return real_compose(text, Loader=Loader)

    monkeypatch.setattr(yamlsafe.yaml, "compose", spy)
    for name in ("100 000 nested [", "500 000 nested block sequences (- - - ...)", "2 MiB flat list (1 million values)"):
        with pytest.raises(YamlLimitError):
            compose_bounded(CORPUS[name].text)
    assert composed == []
    compose_bounded(HEAD)
    assert composed == [len(HEAD)]


def test_the_value_bound_stops_at_the_first_value_past_it() -> None:
    """One value per line, twice the bound: the error points at the line where counting stopped."""
    text = "k:\n" + "- 1\n" * (2 * MAX_NODES)
    with pytest.raises(YamlLimitError) as raised:
        compose_bounded(text)
    assert raised.value.mark is not None
    # Nodes counted before the items: the root mapping, the key and the sequence.
    assert raised.value.mark.line + 1 == MAX_NODES + 1 - 3 + 1


def test_a_document_at_the_depth_bound_is_accepted_and_one_deeper_is_not() -> None:
    at_bound = "k: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert compose_bounded(at_bound) is not None
    deeper = "k: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    with pytest.raises(YamlLimitError, match=f"nesting deeper than {MAX_DEPTH} levels") as raised:
        compose_bounded(deeper)
    assert raised.value.mark is not None and raised.value.mark.column == 3 + MAX_DEPTH - 1


def test_an_alias_bomb_composes_to_a_few_shared_nodes_and_expansion_is_counted() -> None:
    """Aliases share nodes, so composing the bomb is cheap; the builder counts the expansion."""
    node = compose_bounded(CORPUS["billion laughs (10^9 values)"].text)
    distinct: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in distinct:
            continue
        distinct.add(id(current))
        if isinstance(current, yaml.MappingNode):
            stack.extend(v for pair in current.value for v in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    assert len(distinct) < 200
    with pytest.raises(CompileError, match=f"document expands to more than {MAX_NODES} values"):
        parse_spec(CORPUS["billion laughs (10^9 values)"].text, "specs/hostile.yaml")


# Names that would leave generated/ ---------------------------------------------------------------


def _spec_named(name: str) -> str:
    # A JSON string is a YAML double-quoted scalar: the name arrives exactly as written here.
    return f"name: {json.dumps(name)}\nproject_name: lume\ncomposing_flows: [{{name: distgen, project_name: lume}}]\n"


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_a_spec_name_that_would_leave_generated_is_rejected_at_the_name(name: str) -> None:
    error = _compile_error(_spec_named(name))
    assert [d for d in error.diagnostics if (d.line, d.col) == (1, 7) and "is not a valid name" in d.message], error


@pytest.mark.parametrize(
    ("spec_path", "message"),
    [
        ("../specs/x.yaml", "spec is outside the project"),
        ("/etc/x.yaml", "spec is outside the project"),
        ("specs/../../x.yaml", "spec is outside the project"),
        ("specs/x.yaml\n", "spec file paths may hold only"),
        ("specs/x;id.yaml", "spec file paths may hold only"),
    ],
)
def test_a_spec_path_outside_the_project_or_unsafe_is_rejected(spec_path: str, message: str) -> None:
    text = "name: fine\nproject_name: lume\ncomposing_flows: [{name: distgen, project_name: lume}]\n"
    error = _compile_error(text, spec_path)
    assert message in str(error)


def test_generate_with_escaping_names_writes_nothing_anywhere(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.flowc]\n")
    for index, name in enumerate(ESCAPING_NAMES):
        (root / "specs" / f"s{index}.yaml").write_text(_spec_named(name))
    outside = tmp_path / "outside.yaml"
    outside.write_text("name: outside\nproject_name: lume\ncomposing_flows: [{name: distgen, project_name: lume}]\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for argv in (["generate"], ["generate", str(outside)], ["generate", "../outside.yaml"]):
        done = subprocess.run(
            [sys.executable, "-m", "compiler", *argv], cwd=root, capture_output=True, text=True, timeout=120, env=THIS_TREE
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".flowc" not in p.parts)
    assert after == [p for p in before if ".flowc" not in p.parts]


# The lock is committed text too: a pull request can make it hostile ----------------------------

HOSTILE_LOCKS = {
    "100 000 nested [": ("version: 1\nflows: " + "[" * 100_000 + "]" * 100_000 + "\n", "lock: nesting deeper than 64 levels"),
    "alias bomb in a default": (
        billion_laughs().split("\n", 3)[3]
        + "version: 1\nflows:\n  lume/distgen:\n    parameters:\n    - {name: n, required: false, default: *lol9}\n"
        "    tasks: {}\n",
        "the lock expands to more than 200000 values (alias bomb?)",
    ),
    "broken YAML": ("version: 1\nflows: {a: [\n", "lock is not valid YAML: "),
}


@pytest.mark.parametrize("name", list(HOSTILE_LOCKS))
def test_a_hostile_lock_is_one_clear_error_in_bounded_time(name: str, tmp_path: Path) -> None:
    text, message = HOSTILE_LOCKS[name]
    root = _project(tmp_path / "project", {"fine": HEAD})
    (root / "specs" / "flows.lock.yaml").write_text(text)
    for command in ("check", "generate"):
        code, output, seconds, peak_mb = _run_measured([sys.executable, "-m", "compiler", command], root)
        assert code == 1 and "Traceback" not in output, output[-2000:]
        assert re.search(rf"^specs/flows\.lock\.yaml:\d+:\d+: error: {re.escape(message)}", output, re.M), output[-2000:]
        assert seconds < MAX_SECONDS and peak_mb < MAX_RSS_MB
