"""`flowc run --resume`: children whose run key has a successful record are reused, the rest run.

What ran is read from the children's own side effects: each run of the `counted` child adds one
to a counter file named for its step (and value, for scan points). Specs and the child module are
written into a copy of the project, locked and generated with the real command line.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_run_failures import _project, _run

COUNTED = '''\
"""counted: counts its runs in a file, fails while a marker file names its value, doubles."""

import json
from pathlib import Path

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="step", result=PrefectResult(), checkpoint=True)
def step(value: float, name: str) -> float:
    counter = Path("counts") / f"{name}-{value:g}.count"
    counter.parent.mkdir(exist_ok=True)
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
    broken = Path("broken.json")
    if broken.exists() and value in json.loads(broken.read_text()):
        raise RuntimeError(f"{name} is broken for {value:g}, on purpose")
    return 2 * value + 1


with Flow("counted") as flow:
    step(Parameter("value", default=1.0), Parameter("name", default="counted"))
'''

GATHER = '''\
"""gather: the sum of a list of values, counted like `counted`."""

from pathlib import Path

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="total", result=PrefectResult(), checkpoint=True)
def total(values: list) -> float:
    counter = Path("counts") / "collect.count"
    counter.parent.mkdir(exist_ok=True)
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
    return float(sum(values))


with Flow("gather") as flow:
    total(Parameter("values", default=[]))
'''


def _step(alias: str, mapped_from: str | None = None, value: float | None = None, extra: str = "") -> str:
    text = f"""
      - name: counted
        alias: {alias}
        project_name: lume
        source: counted_child:flow
        parameters: {{name: {alias}{'' if value is None else f', value: {value}'}}}"""
    if mapped_from:
        text += f"""
        mapped_parameters:
          value: {{parent_flow_name: {mapped_from}, parent_task_name: step}}"""
    return text + extra


CHAIN = (
    "    name: chain\n    project_name: lume\n    composing_flows:"
    + _step("first", value=1.0)
    + _step("middle", "first")
    + _step("last", "middle")
    + _step("aside", value=5.0)
    + "\n"
)

SCAN = (
    "    name: sweep\n    project_name: lume\n    composing_flows:"
    + _step("source", value=0.0)
    + _step(
        "sim",
        extra="\n        scan:\n          parameters: {value: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]}"
        "\n        depends_on: [source]",
    )
    + _step("judge", "sim", extra="\n        for_each: sim")
    + """
      - name: gather
        alias: collect
        project_name: lume
        source: gather_child:flow
        mapped_parameters:
          values: {parent_flow_name: judge, parent_task_name: step}
"""
)


def _counts(project: Path) -> dict[str, int]:
    return {p.name.removesuffix(".count"): int(p.read_text()) for p in sorted((project / "counts").glob("*.count"))}


def _results(summary: dict) -> dict[str, dict]:
    return {child["alias"]: child["results"] for child in summary["children"]}


def test_resume_after_a_fix_runs_only_the_failed_child_and_what_follows_it(tmp_path: Path) -> None:
    project = _project(tmp_path, {"chain": CHAIN}, {"counted_child": COUNTED})
    (project / "broken.json").write_text("[3.0]")  # `middle` receives 2 * 1 + 1 = 3
    summary, _ = _run(project, "chain", expect=1)
    states = {c["alias"]: c["state"] for c in summary["children"]}
    assert states == {"first": "Success", "middle": "Failed", "last": "not run", "aside": "Success"}
    assert _counts(project) == {"first-1": 1, "middle-3": 1, "aside-5": 1}

    (project / "broken.json").unlink()  # the fix
    summary, stderr = _run(project, "chain", "--resume", expect=0)
    assert _counts(project) == {"first-1": 1, "middle-3": 2, "last-7": 1, "aside-5": 1}
    by_alias = {c["alias"]: c for c in summary["children"]}
    assert by_alias["first"]["reused"]["run_id"] == by_alias["aside"]["reused"]["run_id"]
    assert by_alias["first"]["attempts"] == 0 and by_alias["middle"]["attempts"] == 1
    assert by_alias["middle"]["reused"] is None and by_alias["last"]["reused"] is None
    assert "reused    run local-" in stderr
    resumed = _results(summary)

    fresh, _ = _run(project, "chain", "--fresh", expect=0)
    assert _results(fresh) == resumed == {
        "first": {"step-1": 3.0},
        "middle": {"step-1": 7.0},
        "last": {"step-1": 15.0},
        "aside": {"step-1": 11.0},
    }
    assert _counts(project) == {"first-1": 2, "middle-3": 3, "last-7": 2, "aside-5": 2}
    assert all(child["reused"] is None for child in fresh["children"])


def test_resume_of_an_unchanged_run_starts_nothing_and_a_changed_parameter_reruns_only_below_it(tmp_path: Path) -> None:
    project = _project(tmp_path, {"chain": CHAIN}, {"counted_child": COUNTED})
    _run(project, "chain", expect=0)
    before = _counts(project)
    summary, stderr = _run(project, "chain", "--resume", expect=0)
    assert _counts(project) == before
    assert summary["message"] == "all 4 children reused from earlier runs (flowc run --resume)"
    assert all(child["reused"] and child["state"] == "Success" for child in summary["children"])
    assert _results(summary)["last"] == {"step-1": 15.0}
    record = json.loads((project / summary["run_dir"] / "record.json").read_text())
    assert {c["step"] for c in record["children"]} == {"first", "middle", "last", "aside"}

    # A resume of that resume still finds the original runs; -p on `aside` re-runs it alone.
    summary, _ = _run(project, "chain", "--resume", "-p", "aside-value=6.0", expect=0)
    assert _counts(project) == {**before, "aside-6": 1}
    reused = {c["alias"] for c in summary["children"] if c["reused"]}
    assert reused == {"first", "middle", "last"}

    # A changed source changes the keys of every step that runs it: all run again.
    child = project / "counted_child.py"
    child.write_text(child.read_text().replace("return 2 * value + 1", "return 2 * value + 1  # edited"))
    from tests.helpers import flowc
    from tests.test_run_failures import _env

    for command in (("lock",), ("generate",)):
        done = flowc(*command, cwd=project, env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
    summary, stderr = _run(project, "chain", "--resume", expect=0)
    assert not any(c["reused"] for c in summary["children"])
    assert "no child's run key matched a recorded successful run" in stderr


def test_resume_with_no_records_says_so_and_runs_everything(tmp_path: Path) -> None:
    project = _project(tmp_path, {"chain": CHAIN}, {"counted_child": COUNTED})
    summary, stderr = _run(project, "chain", "--resume", expect=0)
    assert "nothing to resume: no successful child run is recorded under .flowc/runs/" in stderr
    assert not any(c["reused"] for c in summary["children"])
    assert _counts(project) == {"first-1": 1, "middle-3": 1, "last-7": 1, "aside-5": 1}


def test_resume_of_a_scan_reruns_only_the_failed_points_their_for_each_runs_and_the_gathering(tmp_path: Path) -> None:
    project = _project(tmp_path, {"sweep": SCAN}, {"counted_child": COUNTED, "gather_child": GATHER})
    (project / "broken.json").write_text("[2.0, 6.0, 10.0]")  # points; a judge gets odd values
    _run(project, "sweep", expect=1)
    first = _counts(project)
    assert first["sim-2"] == first["sim-6"] == first["sim-10"] == 1
    assert "judge-5" not in first and "judge-3" in first  # a judge gets 2v+1: 3 for the point 1

    (project / "broken.json").unlink()
    summary, _ = _run(project, "sweep", "--resume", expect=0)
    after = _counts(project)
    ran_again = {name for name in after if after[name] != first.get(name, 0)}
    assert ran_again == {"sim-2", "sim-6", "sim-10", "judge-5", "judge-13", "judge-21", "collect"}
    collect = next(c for c in summary["children"] if c["alias"] == "collect")
    assert collect["reused"] is None and collect["state"] == "Success"
    fresh, _ = _run(project, "sweep", "--fresh", expect=0)
    assert _results(fresh)["collect"] == collect["results"]
