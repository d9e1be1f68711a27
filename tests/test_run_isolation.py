"""`flowc run` with every child in a process of its own: real processes, real signals.

The misbehaving child flows read a trigger file at run time (`behave.py` below), so the source
that `flowc lock` captured is the source that runs and no drift check re-imports it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_project, flowc

BEHAVE = '''\
"""behave: a child flow that misbehaves as the file `behave-<name>` in the working directory says."""

import ctypes
import os
import subprocess
import sys
import time

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


def _order(name):
    path = f"behave-{name}"
    return open(path).read().strip() if os.path.exists(path) else ""


print("behave: imported, printing to stdout", flush=True)
print("behave: and to stderr", file=sys.stderr, flush=True)
if _order("import") == "exit":
    sys.exit(3)
if _order("import") == "os_exit":
    os._exit(4)


@task(name="act", result=PrefectResult(), checkpoint=True)
def act(name: str, value: float) -> float:
    order = _order(name)
    print(f"behave {name}: acting on {value}")
    if order == "sys_exit":
        sys.exit(7)
    if order == "os_exit":
        os._exit(7)
    if order == "segfault":
        ctypes.string_at(0)
    if order == "hang":
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(f"pids-{name}", "w") as handle:
            handle.write(f"{os.getpid()} {sleeper.pid}\\n")
        time.sleep(600)
    if order == "huge":
        return "x" * 50_000_000
    return float(value) + 1.0


with Flow("behave") as flow:
    act(Parameter("name", default="a"), Parameter("value", default=1.0))
'''

MEASURE = '''\
"""measure: the length of what it is given."""

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="measure", result=PrefectResult(), checkpoint=True)
def measure(text) -> int:
    return len(text)


with Flow("measure") as flow:
    measure(Parameter("text", required=True))
'''

NESTED = '''\
"""nested: a child flow that composes flows itself, as Prefect's docs write it."""

from prefect import Flow, Parameter
from prefect.tasks.prefect import StartFlowRun, create_flow_run, get_task_run_result, wait_for_flow_run

started = StartFlowRun(flow_name="scale", project_name="lume", wait=True, parameters={"value": 4.0})

with Flow("nested") as flow:
    value = Parameter("value", default=10.0)
    inner = create_flow_run(flow_name="scale", parameters={"value": value, "factor": 3.0})
    inner_done = wait_for_flow_run(inner, raise_final_state=True)
    get_task_run_result(inner, "scale-1", upstream_tasks=[inner_done])
    started(upstream_tasks=[inner_done])
'''

LOOK = '''\
"""look: what a child run sees of its run and its process."""

import os

import prefect
from prefect import Flow, task
from prefect.engine.results import PrefectResult


@task(name="look", result=PrefectResult(), checkpoint=True)
def look() -> dict:
    return {
        "project_name": prefect.context.get("project_name"),
        "flow_run_id": prefect.context.get("flow_run_id"),
        "checkpointing": prefect.context.get("checkpointing"),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "ppid": os.getppid(),
    }


with Flow("look") as flow:
    look()
'''

LOOKING = """\
    name: looking
    project_name: lume
    composing_flows:
      - {name: look, alias: one, project_name: lume, source: "look:flow"}
      - {name: look, alias: two, project_name: lume, source: "look:flow"}
"""

TWO = """\
    name: two
    project_name: lume
    composing_flows:
      - {name: behave, alias: first, project_name: lume, source: "behave:flow", parameters: {name: first}}
      - {name: behave, alias: second, project_name: lume, source: "behave:flow", parameters: {name: second}}
      - name: behave
        alias: after_first
        project_name: lume
        source: "behave:flow"
        parameters: {name: after_first}
        mapped_parameters:
          value: {parent_flow_name: first, parent_task_name: act}
"""

TIMED = """\
    name: timed
    project_name: lume
    composing_flows:
      - {name: behave, alias: slow, project_name: lume, source: "behave:flow", parameters: {name: slow}, timeout: 2s}
      - {name: behave, alias: quick, project_name: lume, source: "behave:flow", parameters: {name: quick}}
"""

HUGE = """\
    name: huge
    project_name: lume
    composing_flows:
      - {name: behave, alias: big, project_name: lume, source: "behave:flow", parameters: {name: big}}
      - name: measure
        project_name: lume
        source: "measure:flow"
        mapped_parameters:
          text: {parent_flow_name: big, parent_task_name: act}
"""

COMPOSING = """\
    name: composing
    project_name: lume
    composing_flows:
      - {name: scale, project_name: lume, source: "examples.flows.scale:flow", parameters: {value: 1.0}}
      - {name: nested, project_name: lume, source: "nested:flow", depends_on: [scale]}
"""

MODULES = {"behave": BEHAVE, "measure": MEASURE, "nested": NESTED, "look": LOOK}
SPECS = {"two": TWO, "timed": TIMED, "huge": HUGE, "composing": COMPOSING, "looking": LOOKING}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWC_RESULTS_DB", "FLOWC_MOUNT", "PREFECT__LOGGING__LEVEL")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One locked and generated project for the whole module; each test runs in a copy."""
    project = copy_project(tmp_path_factory.mktemp("isolation") / "project", generated=True, examples=True)
    for name, text in MODULES.items():
        (project / f"{name}.py").write_text(text)
    for name, text in SPECS.items():
        (project / "specs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    for command in (("lock",), ("generate",)):
        done = flowc(*command, cwd=project, env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
    return project


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "project"
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("__pycache__", ".flowc"))
    return target


def _orders(project: Path, **orders: str) -> None:
    for name, order in orders.items():
        (project / f"behave-{name}").write_text(order)


def _run(project: Path, spec: str, *extra: str, expect: int, **env: str) -> tuple[dict[str, Any], str]:
    done = flowc("run", f"specs/{spec}.yaml", "--json", *extra, cwd=project, env=_env(**env))
    assert done.returncode == expect, done.stdout + done.stderr
    return json.loads(done.stdout), done.stderr  # stdout is exactly one JSON object


def _children(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {child["alias"]: child for child in summary["children"]}


def test_what_children_print_goes_to_stderr_prefixed_and_to_their_log(project: Path) -> None:
    summary, stderr = _run(project, "two", expect=0)
    steps = _children(summary)
    assert steps["after_first"]["results"] == {"act-1": 3.0}
    assert "[first] behave: imported, printing to stdout" in stderr
    assert "[first] behave: and to stderr" in stderr
    assert "[second] behave second: acting on 1.0" in stderr
    assert "INFO - prefect" not in stderr  # Prefect's chatter only in the log
    log = (project / steps["first"]["log"]).read_text()
    assert "behave first: acting on 1.0" in log and "INFO - prefect.FlowRunner" in log
    assert steps["first"]["log"].startswith(summary["run_dir"] + "/")


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_each_child_runs_in_its_own_process_group_with_its_project_and_run_id(project: Path, start: str) -> None:
    summary, _ = _run(project, "looking", expect=0, FLOWC_CHILD_START=start)
    seen = {alias: child["results"]["look-1"] for alias, child in _children(summary).items()}
    for alias, child in _children(summary).items():
        assert seen[alias]["project_name"] == "lume" and seen[alias]["checkpointing"] is True
        assert seen[alias]["flow_run_id"] == child["run_id"]
        assert seen[alias]["pid"] == seen[alias]["pgid"] == seen[alias]["sid"]  # its own session and group
    assert seen["one"]["pid"] != seen["two"]["pid"]


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ("import=exit", "exited with status 3"),
        ("import=os_exit", "exited with status 4"),
        ("sys_exit", "exited with status 7"),
        ("os_exit", "exited with status 7"),
        ("segfault", "killed by SIGSEGV"),
    ],
)
def test_a_child_that_exits_or_crashes_is_a_failed_child_and_the_rest_goes_on(
    project: Path, order: str, reason: str
) -> None:
    if order.startswith("import="):
        _orders(project, **{"import": order.partition("=")[2]})
        (project / "behave-second").write_text("")
        summary, stderr = _run(project, "two", expect=1)
        steps = _children(summary)
        assert steps["first"]["state"] == "Failed", stderr
        assert reason in steps["first"]["message"], (project / steps["first"]["log"]).read_text() + stderr
        assert steps["second"]["state"] == "Failed"  # the same source: it exits there too
        return
    _orders(project, first=order)
    summary, stderr = _run(project, "two", expect=1)
    steps = _children(summary)
    assert steps["first"]["state"] == "Failed" and steps["first"]["ok"] is False
    assert steps["first"]["message"] == reason
    assert steps["second"]["state"] == "Success" and steps["second"]["results"] == {"act-1": 2.0}
    assert steps["after_first"]["state"] == "not run"
    assert steps["after_first"]["reason"] == "upstream 'first' failed"
    assert summary["state"] == "Failed"


def test_human_output_names_the_crash_and_still_prints_the_summary(project: Path) -> None:
    _orders(project, first="segfault")
    done = flowc("run", "specs/two.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    out = " ".join(done.stderr.split())
    assert "✘ first Failed" in out and "killed by SIGSEGV" in out
    assert "two: Failed" in out and "1 succeeded, 1 failed, 1 not run" in out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries `marker` (flowc passes its environment on)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes() and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_child_over_its_timeout_is_stopped_with_everything_it_started(project: Path) -> None:
    _orders(project, slow="hang")
    marker = f"FLOWC_TEST_MARKER={uuid.uuid4()}"
    started = time.monotonic()
    summary, _ = _run(project, "timed", expect=1, FLOWC_TEST_MARKER=marker.partition("=")[2])
    assert time.monotonic() - started < 60
    steps = _children(summary)
    assert steps["slow"]["state"] == "Failed" and steps["slow"]["message"] == "timed out after 2s"
    assert steps["quick"]["state"] == "Success"
    child_pid, sleeper_pid = map(int, (project / "pids-slow").read_text().split())
    assert not _alive(child_pid) and not _alive(sleeper_pid)
    assert _marked_processes(marker) == []


def test_the_whole_run_is_bounded_by_timeout(project: Path) -> None:
    _orders(project, first="hang")
    marker = str(uuid.uuid4())
    summary, _ = _run(project, "two", "--timeout", "20s", expect=1, FLOWC_TEST_MARKER=marker)
    steps = _children(summary)
    assert steps["first"]["message"] == "timed out after 20s (flowc run --timeout)"
    assert steps["second"]["state"] == "Success"
    assert summary["message"] == "timed out after 20s (flowc run --timeout)"
    assert 20 <= summary["duration_s"] < 60
    assert _marked_processes(marker) == []


def test_a_bad_timeout_is_a_usage_error(project: Path) -> None:
    done = flowc("run", "specs/two.yaml", "--timeout", "soon", cwd=project, env=_env())
    assert done.returncode == 2 and "--timeout" in done.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_stops_every_child_prints_the_summary_and_leaves_nothing_running(
    project: Path, sig: signal.Signals, code: int
) -> None:
    _orders(project, first="hang", second="hang")
    marker = str(uuid.uuid4())
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler", "run", "specs/two.yaml", "--json"],
        cwd=project,
        env=_env(FLOWC_TEST_MARKER=marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ((project / "pids-first").exists() and (project / "pids-second").exists()):
            assert time.monotonic() < deadline and process.poll() is None, "the children did not start"
            time.sleep(0.1)
        pids = [int(p) for name in ("first", "second") for p in (project / f"pids-{name}").read_text().split()]
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == code, stderr
    summary = json.loads(stdout)
    steps = _children(summary)
    name = signal.Signals(sig).name
    for alias in ("first", "second"):
        assert steps[alias]["state"] == "Failed"
        assert steps[alias]["message"] == f"stopped: flowc run was interrupted ({name})"
    assert steps["after_first"]["state"] == "not run"
    assert all(not _alive(pid) for pid in pids)
    assert _marked_processes(marker) == []


def _peak_rss_kib(process: subprocess.Popen[str]) -> int:
    """VmHWM of a running process, read until it exits (the last value read)."""
    peak = 0
    while process.poll() is None:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    return peak


def test_a_huge_result_is_mapped_whole_but_summarised_small(project: Path) -> None:
    _orders(project, big="huge")
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler", "run", "specs/huge.yaml", "--json"],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = _peak_rss_kib(process)
    stdout, _ = process.communicate()
    assert process.returncode == 0
    assert len(stdout) < 20_000
    steps = _children(json.loads(stdout))
    assert steps["measure"]["results"] == {"measure-1": 50_000_000}  # the whole value arrived
    shown = steps["big"]["results"]["act-1"]
    assert shown["type"] == "str" and shown["size"] == 50_000_000 and len(shown["sha256"]) == 64
    assert steps["measure"]["mapped"]["text"] == shown
    assert peak < 600 * 1024, f"flowc's peak RSS was {peak // 1024} MB"


def test_a_child_that_composes_flows_gets_them_from_the_composition(project: Path) -> None:
    started = time.monotonic()
    summary, stderr = _run(project, "composing", expect=0)
    assert time.monotonic() - started < 60  # no Prefect Cloud retries
    steps = _children(summary)
    assert steps["nested"]["state"] == "Success", stderr
    nested_runs = [c for c in summary["children"] if c["alias"].startswith("nested/")]
    assert sorted(c["alias"] for c in nested_runs) == ["nested/scale", "nested/scale"]
    results = sorted(c["results"]["scale-1"] for c in nested_runs)
    assert results == [8.0, 30.0]  # StartFlowRun's 4.0 * 2, create_flow_run's 10.0 * 3
