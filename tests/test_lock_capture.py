"""`flowc lock` imports each source in a process of its own (issue 10 findings 2 for lock, 6, 7)."""

from __future__ import annotations

import re
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.lockproject import CHILD, make_project, one_flow_spec, run

SPEC_SOURCE_LINE = 6  # the `source:` line of one_flow_spec's spec


def _project(tmp_path: Path, child: str, **kwargs: str) -> Path:
    return make_project(tmp_path / "p", {"flows/__init__.py": "", "flows/child.py": child}, {"one": one_flow_spec("one", "flows.child:flow")}, **kwargs)


def test_output_of_a_source_goes_to_stderr_prefixed_never_to_stdout(tmp_path: Path) -> None:
    root = _project(tmp_path, 'print("hello from import")\nimport sys; print("on stderr", file=sys.stderr)\n' + CHILD)
    result = run("lock", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "hello" not in result.stdout and "on stderr" not in result.stdout
    assert "[test/child] hello from import" in result.stderr
    assert "[test/child] on stderr" in result.stderr
    assert result.stdout == "" and "wrote specs/flows.lock.yaml (1 flows)" in result.stderr


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import sys; sys.exit(0)", "the source called sys.exit(0) while being imported"),
        ("import sys; sys.exit(3)", "the source called sys.exit(3) while being imported"),
        ("import os; os._exit(0)", "the process ended without describing the flow"),
        ("import os; os._exit(7)", "the process importing it exited with status 7"),
        ("import ctypes; ctypes.string_at(0)", "the process importing it was killed by SIGSEGV"),
        ("raise RuntimeError('no database here')", "RuntimeError: no database here (child.py:1)"),
    ],
    ids=["exit0", "exit3", "os_exit0", "os_exit7", "segfault", "raises"],
)
def test_a_source_that_exits_or_crashes_is_one_located_error(tmp_path: Path, code: str, message: str) -> None:
    root = _project(tmp_path, code + "\n" + CHILD)
    result = run("lock", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    expected = f"specs/one.yaml:{SPEC_SOURCE_LINE}:13: error: cannot capture test/child from flows.child:flow: {message}"
    assert expected in result.stderr, result.stderr
    assert not (root / "specs" / "flows.lock.yaml").exists()


def test_a_hanging_source_is_stopped_with_its_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    hang = (
        "import subprocess, time\n"
        f"p = subprocess.Popen(['sleep', '300']); open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(300)\n"
    )
    root = _project(tmp_path, hang + CHILD)
    started = time.monotonic()
    result = run("lock", cwd=root, env={"FLOWC_IMPORT_TIMEOUT": "3"})
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert "importing it did not finish within 3s; its processes were stopped" in result.stderr
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the source's own subprocess was left running"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_check_reports_a_source_that_exits_at_import_instead_of_passing(tmp_path: Path) -> None:
    root = _project(tmp_path, CHILD)
    assert run("lock", cwd=root).returncode == 0
    assert run("generate", cwd=root).returncode == 0
    child = root / "flows" / "child.py"
    child.write_text('print("noise")\nimport sys; sys.exit(0)\n' + CHILD)
    result = run("check", "--format", "json", cwd=root)
    assert result.returncode == 1
    assert result.stdout.lstrip().startswith("[") and "noise" not in result.stdout
    assert "sys.exit(0)" in result.stdout
    assert "[test/child] noise" in result.stderr


def test_the_child_interpreter_is_the_projects_python(tmp_path: Path) -> None:
    used = tmp_path / "used"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" > {used}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    root = _project(tmp_path, CHILD, tool=f'python = "{wrapper}"\n')
    result = run("lock", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "introspect.py" in used.read_text()


def test_a_missing_interpreter_is_one_located_error(tmp_path: Path) -> None:
    root = _project(tmp_path, CHILD, tool='python = "/nonexistent/python3.9"\n')
    result = run("lock", cwd=root)
    assert result.returncode == 1
    assert "cannot start the child-flow interpreter '/nonexistent/python3.9'" in result.stderr


def test_drift_in_an_imported_module_is_caught_by_check(tmp_path: Path) -> None:
    files = {
        "flows/__init__.py": "",
        "flows/defaults.py": "N_PARTICLE = 1000\n",
        "flows/child.py": (
            "from prefect import Flow, Parameter, task\nfrom flows.defaults import N_PARTICLE\n\n"
            "@task\ndef double(x):\n    return 2 * x\n\n"
            'with Flow("child") as flow:\n    double(Parameter("n", default=N_PARTICLE))\n'
        ),
    }
    root = make_project(tmp_path / "p", files, {"one": one_flow_spec("one", "flows.child:flow")})
    assert run("lock", cwd=root).returncode == 0
    lock = (root / "specs" / "flows.lock.yaml").read_text()
    assert "    - flows/defaults.py\n" in lock
    assert run("generate", cwd=root).returncode == 0
    assert run("check", cwd=root).returncode == 0
    (root / "flows" / "defaults.py").write_text("N_PARTICLE = 2000\n")
    result = run("check", cwd=root)
    assert result.returncode == 1
    assert "test/child no longer matches its source flows.child:flow: parameter 'n' default 1000 -> 2000" in result.stderr


def test_two_sources_for_one_flow_are_located_errors(tmp_path: Path) -> None:
    files = {"flows/__init__.py": "", "flows/child.py": CHILD, "flows/other.py": CHILD}
    spec = """\
    name: twice
    project_name: test
    composing_flows:
      - name: child
        project_name: test
        source: flows.child:flow
      - name: child
        alias: again
        project_name: test
        source: flows.other:flow
    """
    spec = textwrap.dedent(spec)
    root = make_project(tmp_path / "p", files, {"twice": spec})
    result = run("lock", cwd=root)
    assert result.returncode == 1
    assert "specs/twice.yaml:10:13: error: test/child has source 'flows.other:flow' here but 'flows.child:flow'" in result.stderr
    (root / "specs" / "twice.yaml").write_text(spec.replace("flows.other:flow", "flows.child:flow"))
    assert run("lock", cwd=root).returncode == 0
    (root / "specs" / "twice.yaml").write_text(spec)
    result = run("generate", cwd=root)
    assert result.returncode == 1
    assert "specs/twice.yaml:10:13: error: test/child has source 'flows.other:flow' here but 'flows.child:flow' in composing_flows[0]" in result.stderr


def test_a_spec_source_that_disagrees_with_the_lock_is_a_located_error(tmp_path: Path) -> None:
    files = {"flows/__init__.py": "", "flows/child.py": CHILD, "flows/other.py": CHILD}
    root = make_project(tmp_path / "p", files, {"one": one_flow_spec("one", "flows.child:flow")})
    assert run("lock", cwd=root).returncode == 0
    (root / "specs" / "one.yaml").write_text((root / "specs" / "one.yaml").read_text().replace("flows.child", "flows.other"))
    result = run("generate", cwd=root)
    assert result.returncode == 1
    assert (
        f"specs/one.yaml:{SPEC_SOURCE_LINE}:13: error: the lock captured test/child from 'flows.child:flow', "
        "not 'flows.other:flow'; run `flowc lock`"
    ) in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OFFLINE_SPEC = """\
name: offline
project_name: test
composing_flows:
  - name: child
    project_name: test
    source: flows.child:flow
  - name: registered
    project_name: test
"""


def test_offline_lock_keeps_the_entry_of_a_flow_without_source(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"flows/__init__.py": "", "flows/child.py": CHILD}, {"offline": OFFLINE_SPEC})
    lock = root / "specs" / "flows.lock.yaml"
    lock.write_text(
        "version: 2\nflows:\n  test/registered:\n    parameters:\n    - {name: y, default: 3, required: false}\n"
        "    tasks:\n      t:\n        slugs:\n          t-1: {result: PrefectResult, loadable: anywhere}\n"
    )
    env = {"PREFECT__SERVER__ENDPOINT": f"http://127.0.0.1:{_closed_port()}/graphql", "PREFECT__BACKEND": "server"}
    started = time.monotonic()
    result = run("lock", cwd=root, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "test/registered: the Prefect backend at http://127.0.0.1:" in notes[0]
    assert notes[0].endswith("kept its current entry")
    assert "test/registered:" in lock.read_text() and "name: y" in lock.read_text()
    assert "test/child:" in lock.read_text()
    assert elapsed < 30, f"{elapsed:.1f} s: Prefect's retries were not avoided"


def test_offline_lock_without_an_entry_fails_fast_at_the_spec(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"flows/__init__.py": "", "flows/child.py": CHILD}, {"offline": OFFLINE_SPEC})
    env = {"PREFECT__SERVER__ENDPOINT": f"http://127.0.0.1:{_closed_port()}/graphql", "PREFECT__BACKEND": "server"}
    started = time.monotonic()
    result = run("lock", cwd=root, env=env)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert re.search(
        r"specs/offline.yaml:7:11: error: test/registered has no source and the Prefect backend could not provide it: "
        r"the Prefect backend at http://127\.0\.0\.1:\d+/graphql cannot be reached",
        result.stderr,
    ), result.stderr


@pytest.mark.parametrize(
    ("default", "message"),
    [
        ("{1: 'a'}", "mapping keys must be strings"),
        ("float('nan')", "nan is not accepted"),
        ("float('inf')", "inf is not accepted"),
        ("Colour.RED", "the enum member Colour.RED is not accepted"),
        ("10 ** 5000", "integers are limited to 4300 digits"),
    ],
    ids=["int_key", "nan", "inf", "enum", "huge_int"],
)
def test_a_default_that_cannot_be_a_literal_is_refused_at_lock_time(tmp_path: Path, default: str, message: str) -> None:
    child = (
        "import enum\nfrom prefect import Flow, Parameter, task\n\n"
        "class Colour(enum.Enum):\n    RED = 'red'\n\nclass Metres(float):\n    pass\n\n"
        "@task\ndef show(x):\n    return x\n\n"
        f'with Flow("child") as flow:\n    show(Parameter("x", default={default}))\n'
    )
    root = _project(tmp_path, child)
    result = run("lock", cwd=root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "the default of parameter 'x' is not accepted: " in result.stderr and message in result.stderr, result.stderr
    assert not (root / "specs" / "flows.lock.yaml").exists()


def test_lock_check_writes_nothing_and_fails_on_a_hand_edit(tmp_path: Path) -> None:
    root = _project(tmp_path, CHILD)
    assert run("lock", cwd=root).returncode == 0
    lock = root / "specs" / "flows.lock.yaml"
    result = run("lock", "--check", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    edited = lock.read_text().replace("default: 1\n", "default: 5\n")
    assert edited != lock.read_text()
    lock.write_text(edited)
    result = run("lock", "--check", cwd=root)
    assert result.returncode == 1
    assert "-      default: 5\n+      default: 1\n" in result.stdout
    assert re.search(r"specs/flows\.lock\.yaml:\d+:1: error: the lock differs from what its sources give now", result.stderr)
    assert lock.read_text() == edited, "--check writes nothing"


def test_lock_check_fails_on_a_missing_lock(tmp_path: Path) -> None:
    root = _project(tmp_path, CHILD)
    result = run("lock", "--check", cwd=root)
    assert result.returncode == 1
    assert "+++ b/specs/flows.lock.yaml" in result.stdout
    assert not (root / "specs" / "flows.lock.yaml").exists()


def test_interrupted_lock_leaves_no_process(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    hang = f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
    root = _project(tmp_path, hang + CHILD)
    import subprocess

    process = subprocess.Popen([sys.executable, "-m", "compiler", "lock"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode != 0
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the importing process outlived flowc lock"


def test_a_tuple_or_float_subclass_default_is_locked_as_the_value_a_run_receives(tmp_path: Path) -> None:
    child = (
        "from prefect import Flow, Parameter, task\n\nclass Metres(float):\n    pass\n\n"
        "@task\ndef show(x):\n    return x\n\n"
        'with Flow("child") as flow:\n    show(Parameter("x", default=(1, 2)))\n    show(Parameter("y", default=Metres(2.5)))\n'
    )
    root = _project(tmp_path, child)
    result = run("lock", cwd=root)
    assert result.returncode == 0, result.stderr
    text = (root / "specs" / "flows.lock.yaml").read_text()
    assert "- name: x\n      default:\n      - 1\n      - 2\n" in text
    assert "- name: y\n      default: 2.5\n" in text
    assert run("generate", cwd=root).returncode == 0


def test_lume_python39_captures_the_same_lock_as_flowcs_own_interpreter(tmp_path: Path) -> None:
    """LUME-services' environment (Python 3.9, pydantic 1.9) runs the capture: introspect.py needs
    only prefect 1.4.1 and the standard library there."""
    import os

    python = os.environ.get("FLOWC_LUME_PYTHON")
    if not python:
        if os.environ.get("FLOWC_INTEGRATION") == "1":
            pytest.fail("FLOWC_INTEGRATION=1 but FLOWC_LUME_PYTHON is not set (scripts/lume-env.sh build)")
        pytest.skip("FLOWC_LUME_PYTHON is not set (scripts/lume-env.sh build makes LUME's Python 3.9 env)")
    child = CHILD.replace("@task\n", "@task(result=LocalResult(dir='results'))\n").replace(
        "from prefect import Flow, Parameter, task\n", "from prefect import Flow, Parameter, task\nfrom prefect.engine.results import LocalResult\n"
    )
    own = _project(tmp_path / "own", child)
    lume = _project(tmp_path / "lume", child, tool=f'python = "{python}"\n')
    for root in (own, lume):
        result = run("lock", cwd=root)
        assert result.returncode == 0, result.stderr
    assert (lume / "specs" / "flows.lock.yaml").read_text() == (own / "specs" / "flows.lock.yaml").read_text()
    assert "result: LocalResult" in (lume / "specs" / "flows.lock.yaml").read_text()
