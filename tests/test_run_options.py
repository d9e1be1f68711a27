"""`flowc run` honours the per-child run options as a server run does: retries are new child
runs, a child past its timeout is stopped and fails, labels reach the child run.
Specs and child modules are written into a copy of the project, locked and generated."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.test_run_failures import SLEEPY, _project, _run

FLAKY = '''\
"""flaky: fails its first `failures` runs (counted in a file), then succeeds."""

from pathlib import Path

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="attempt", result=PrefectResult(), checkpoint=True)
def attempt(counter: str, failures: int) -> int:
    path = Path(counter)
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    if count <= failures:
        raise RuntimeError(f"flaky run {count} fails on purpose")
    return count


with Flow("flaky") as flow:
    attempt(Parameter("counter", default="flaky.count"), Parameter("failures", default=1))
'''


def _flaky_spec(name: str, options: str) -> str:
    return f"""\
    name: {name}
    project_name: lume
    composing_flows:
      - name: flaky
        alias: shaky
        project_name: lume
        source: flaky_child:flow
        parameters: {{counter: {name}.count, failures: 1}}
{options}
      - name: scale
        alias: after
        project_name: lume
        source: examples.flows.scale:flow
        mapped_parameters:
          value: {{parent_flow_name: shaky, parent_task_name: attempt}}
"""


def test_a_child_failing_once_passes_with_one_retry_and_fails_without(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "with_retry": _flaky_spec("with_retry", "        retries: 1\n        retry_delay: 1s\n        labels: [gpu, lume-services]"),
            "without_retry": _flaky_spec("without_retry", ""),
        },
        {"flaky_child": FLAKY},
    )
    summary, stderr = _run(project, "with_retry", expect=0)
    shaky, after = summary["children"]
    assert stderr.count("started   lume/flaky") == 2  # a new child run, in a process of its own
    assert len(list((project / summary["run_dir"]).glob("shaky*.log"))) == 2
    assert (shaky["alias"], shaky["state"], shaky["attempts"]) == ("shaky", "Success", 2)
    assert shaky["results"] == {"attempt-1": 2}  # the second run's
    assert after["mapped"] == {"value": 2}
    assert (project / "with_retry.count").read_text() == "2"
    assert shaky["labels"] == ["gpu", "lume-services"]  # as the child run was created with them
    assert after["labels"] is None  # no labels in the spec: the child flow's own

    summary, _ = _run(project, "without_retry", expect=1)
    shaky, after = summary["children"]
    assert (shaky["state"], shaky["attempts"]) == ("Failed", 1)
    assert "flaky run 1 fails on purpose" in shaky["message"]
    assert after["state"] == "not run"
    assert (project / "without_retry.count").read_text() == "1"


PID_SLEEPER = '''\
"""pid_sleeper: writes its process id, then sleeps."""

import os
import time
from pathlib import Path

from prefect import Flow, Parameter, task


@task(name="nap")
def nap(seconds: float, pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(float(seconds))


with Flow("pid_sleeper") as flow:
    nap(Parameter("seconds", default=120.0), Parameter("pid_file", default="sleeper.pid"))
'''


def test_a_child_past_its_timeout_is_stopped_and_fails_and_no_process_is_left(tmp_path: Path) -> None:
    spec = """\
    name: too_slow
    project_name: lume
    composing_flows:
      - name: pid_sleeper
        alias: slow
        project_name: lume
        source: pid_sleeper:flow
        parameters: {seconds: 120, pid_file: slow.pid}
        timeout: 2s
      - name: sleepy
        alias: quick
        project_name: lume
        source: sleepy_child:flow
        parameters: {seconds: 0, value: 2.0}
"""
    project = _project(tmp_path, {"too_slow": spec}, {"sleepy_child": SLEEPY, "pid_sleeper": PID_SLEEPER})
    started = time.monotonic()
    summary, _ = _run(project, "too_slow", expect=1)
    assert time.monotonic() - started < 100  # not the child's 120 s
    slow, quick = summary["children"]
    assert slow["state"] == "Failed" and "timed out after 2s" in slow["message"]
    assert quick["state"] == "Success"  # an independent branch runs to its end
    pid = int((project / "slow.pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the timed-out child's process {pid} is still alive")
