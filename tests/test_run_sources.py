"""How `flowc run`'s children import their sources: the lock's loader, in the child's own process.

Real processes: `flowc lock`, `flowc generate`, `flowc run` of small projects (tests/lockproject.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.lockproject import make_project, run

PRODUCER = '''\
"""A child flow file that imports the module beside it, as `python pkg/flowfile.py` would."""

from prefect import Flow, task
from prefect.engine.results import PrefectResult

import helper


@task(name="make", result=PrefectResult(), checkpoint=True)
def make() -> str:
    return helper.GREETING + " from " + helper.__name__


with Flow("produce") as flow:
    make()
'''

CONSUMER = '''\
from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="shout", result=PrefectResult(), checkpoint=True)
def shout(text: str) -> str:
    return text.upper()


with Flow("consume") as flow:
    shout(Parameter("text", required=True))
'''

NEIGHBOURS = """\
name: neighbours
project_name: test
composing_flows:
  - name: produce
    project_name: test
    source: pkg/flowfile.py:flow
  - name: consume
    project_name: test
    source: consume.py:flow
    mapped_parameters:
      text: {parent_flow_name: produce, parent_task_name: make, map_type: raw}
"""


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_source_file_importing_its_neighbour_locks_generates_and_runs(tmp_path: Path, start: str) -> None:
    root = make_project(
        tmp_path / "project",
        {"pkg/flowfile.py": PRODUCER, "pkg/helper.py": 'GREETING = "hello"\n', "consume.py": CONSUMER},
        {"neighbours": NEIGHBOURS},
    )
    for command in (("lock",), ("generate",)):
        done = run(*command, cwd=root)
        assert done.returncode == 0, done.stderr
    lock = (root / "specs" / "flows.lock.yaml").read_text()
    assert "pkg/helper.py" in lock  # the closure the lock fingerprints includes the neighbour
    done = run("run", "specs/neighbours.yaml", "--json", cwd=root, env={"FLOWC_CHILD_START": start})
    assert done.returncode == 0, done.stderr
    children = {child["alias"]: child for child in json.loads(done.stdout)["children"]}
    assert children["produce"]["results"] == {"make-1": "hello from helper"}
    assert children["consume"]["mapped"] == {"text": "hello from helper"}
    assert children["consume"]["results"] == {"shout-1": "HELLO FROM HELPER"}


COUNTED = '''\
"""counted: a child flow that records every import of itself and what it read at import."""

import os

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult

with open("imports.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
SEEN = open("state.txt").read().strip() if os.path.exists("state.txt") else ""
print(f"counted: imported, saw {SEEN!r}", flush=True)


@task(name="step", result=PrefectResult(), checkpoint=True)
def step(name: str, upstream: dict) -> dict:
    with open("state.txt", "w") as handle:
        handle.write(name)
    return {"seen_at_import": SEEN, "pid": os.getpid(), "ppid": os.getppid()}


with Flow("counted") as flow:
    step(Parameter("name"), Parameter("upstream", default={}))
'''


def _counted_spec(name: str, steps: dict[str, str | None]) -> str:
    """One `counted` step per alias, each mapped from the alias it names (or from none)."""
    lines = [f"name: {name}", "project_name: test", "composing_flows:"]
    for alias, parent in steps.items():
        lines += [f"  - name: counted", f"    alias: {alias}", "    project_name: test", "    source: counted.py:flow"]
        lines += [f"    parameters: {{name: {alias}}}"]
        if parent:
            lines += ["    mapped_parameters:", f"      upstream: {{parent_flow_name: {parent}, parent_task_name: step}}"]
    return "\n".join(lines) + "\n"


def _run_counted(root: Path, spec: str, servers: str = "on") -> tuple[dict[str, dict], list[str]]:
    make_project(root, {"counted.py": COUNTED}, {spec: _counted_spec(spec, SPECS[spec])})
    for command in (("lock",), ("generate",)):
        done = run(*command, cwd=root)
        assert done.returncode == 0, done.stderr
    (root / "imports.log").unlink(missing_ok=True)  # the lock's capture imported it too
    (root / "state.txt").unlink(missing_ok=True)
    env = {"FLOWC_CHILD_START": "fork", "FLOWC_SOURCE_SERVERS": servers}
    done = run("run", f"specs/{spec}.yaml", "--json", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for child in summary["children"]:  # each child's output starts with what its import printed
        assert "counted: imported, saw" in (root / child["log"]).read_text()
    results = {child["alias"]: child["results"]["step-1"] for child in summary["children"]}
    return results, (root / "imports.log").read_text().split()


SPECS = {"fan": {"a": None, "b1": "a", "b2": "a", "b3": "a"}, "chain": {"a": None, "b": "a", "c": "b"}}


def test_later_children_of_a_source_fork_from_one_import_of_it_made_after_their_parent_ended(tmp_path: Path) -> None:
    results, imports = _run_counted(tmp_path / "project", "fan")
    assert len(imports) == 2  # the first child's own import, then one for the three after it
    assert results["a"]["seen_at_import"] == ""
    servers = {results[alias]["ppid"] for alias in ("b1", "b2", "b3")}
    assert len(servers) == 1 and servers != {results["a"]["ppid"]}
    assert all(results[alias]["seen_at_import"] == "a" for alias in ("b1", "b2", "b3"))
    assert len({results[alias]["pid"] for alias in results}) == 4  # still a process per child
    (server,) = servers
    with pytest.raises(ProcessLookupError):  # the source server ended with the run
        os.kill(server, 0)


def test_a_child_never_gets_a_source_imported_before_its_parent_ended(tmp_path: Path) -> None:
    results, imports = _run_counted(tmp_path / "project", "chain")
    assert [results[alias]["seen_at_import"] for alias in ("a", "b", "c")] == ["", "a", "b"]
    assert len(imports) == 3


def test_without_source_servers_every_child_imports_its_source_itself(tmp_path: Path) -> None:
    results, imports = _run_counted(tmp_path / "project", "fan", servers="off")
    assert len(imports) == 4
    assert len({results[alias]["ppid"] for alias in results}) == 1  # all forked by the main server
