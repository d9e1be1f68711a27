"""Runtime faults, really caused: each fails its task inside a Prefect flow run with a message
naming what was missing, and store outages are retried by Prefect before the task fails.

Nothing here raises a fault by hand: results are really absent, stores really unreachable (a
closed port, a path that cannot be a directory), files really gone or unreadable. A pass-through
wrapper only counts how often the task body ran.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import prefect
import pytest
from prefect import Flow, Parameter

import compiler.runtime.tasks as runtime_tasks
from compiler.runtime import (
    MongoResultsStore,
    load_db_result,
    load_file,
    save_db_result,
    save_file,
)

OUTPUTS = {"end_norm_emit_x": 4.5e-7, "screens": [{"sigma_x": 0.001}]}
QUICK_RETRY = timedelta(milliseconds=100)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


@pytest.fixture(params=["sqlite", "mongodb"])
def store_url(request: pytest.FixtureRequest, runtime_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each fault against both real stores: SQLite, and MongoDB's protocol (nx-27017)."""
    if request.param == "sqlite":
        url = f"sqlite:///{runtime_env / 'results.db'}"
    else:
        url = request.getfixturevalue("mongo_url")
    monkeypatch.setenv("FLOWC_RESULTS_DB", url)
    return url


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times each store task's body ran (the store code itself is untouched)."""
    calls = {"fetch_result_value": 0, "store_result": 0, "read_file": 0}

    def counting(name: str) -> Callable[..., Any]:
        real = getattr(runtime_tasks, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(runtime_tasks, name, counting(name))
    return calls


def _run(task: prefect.Task, **parameters: Any) -> tuple[prefect.engine.state.State, float]:
    """Run `task` alone in a flow, its arguments as flow parameters; its final state and the wall time."""
    with Flow("fault") as flow:
        result = task(**{name: Parameter(name) for name in parameters})
    started = time.monotonic()
    with prefect.context(project_name="lume"):
        state = flow.run(parameters=parameters)
    return state.result[result], time.monotonic() - started


def _quick(task: prefect.Task) -> prefect.Task:
    """The shipped task with its retry settings, only waiting less between attempts."""
    assert task.max_retries >= 1 and task.retry_on, "the store tasks retry store outages"
    return task.copy(retry_delay=QUICK_RETRY)


# Missing results and wrong attribute paths ------------------------------------------------------


def test_a_missing_db_result_fails_its_task_naming_the_query_without_retrying(
    store_url: str, counted: dict[str, int]
) -> None:
    saved = save_db_result.run({"k": 1}, OUTPUTS, "lume")
    missing = {**saved, "query": {"unique_hash": "f" * 64}}
    state, _ = _run(_quick(load_db_result), result_rep=missing, attribute_index=["outputs", "end_norm_emit_x"])
    assert state.is_failed()
    assert f"no result matches {{'unique_hash': '{'f' * 64}'}} in collection 'lume'" in state.message
    assert counted["fetch_result_value"] == 1, "a missing result is not worth retrying"


@pytest.mark.parametrize(
    ("attribute_index", "missing"),
    [
        (["outputs", "end_norm_emit_y"], "'outputs' -> 'end_norm_emit_y' (missing key 'end_norm_emit_y'; available: end_norm_emit_x, screens)"),
        (["output", "end_norm_emit_x"], "'output' (missing key 'output'; available: date_modified, flow_id, inputs, outputs"),
        (["outputs", "screens", 3, "sigma_x"], "'outputs' -> 'screens' -> 3 (index 3 out of range for a list of length 1)"),
        (["outputs", "screens", 0, "sigma_y"], "(missing key 'sigma_y'; available: sigma_x)"),
    ],
)
def test_a_wrong_attribute_path_fails_its_task_naming_the_result_and_the_path(
    store_url: str, counted: dict[str, int], attribute_index: list, missing: str
) -> None:
    saved = save_db_result.run({"k": 1}, OUTPUTS, "lume")
    state, _ = _run(_quick(load_db_result), result_rep=saved, attribute_index=attribute_index)
    assert state.is_failed()
    assert f"result {saved['query']!r} in collection 'lume' has no " in state.message
    assert missing in state.message
    assert "KeyError" not in state.message and "IndexError" not in state.message
    assert counted["fetch_result_value"] == 1


# Unreachable stores -------------------------------------------------------------------------------


def test_an_unreachable_mongodb_is_retried_then_fails_the_task_in_bounded_time(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]
) -> None:
    pytest.importorskip("pymongo")
    port = _closed_port()
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"mongodb://127.0.0.1:{port}/results?serverSelectionTimeoutMS=300")
    reference = {"project_name": "lume", "result_type_string": "x", "query": {"unique_hash": "a" * 64}}
    task = _quick(load_db_result)
    state, seconds = _run(task, result_rep=reference, attribute_index=["outputs", "x"])
    assert state.is_failed()
    assert "results database 'results' is unreachable" in state.message
    assert f"127.0.0.1:{port}" in state.message
    assert counted["fetch_result_value"] == task.max_retries + 1
    # Each attempt waits at most the server-selection timeout; the retries add their delay.
    attempts = task.max_retries + 1
    assert seconds < attempts * 0.3 + task.max_retries * QUICK_RETRY.total_seconds() + 5


def test_saving_to_an_unreachable_mongodb_is_retried_then_fails_naming_the_store(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]
) -> None:
    pytest.importorskip("pymongo")
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"mongodb://127.0.0.1:{_closed_port()}/lume_results?serverSelectionTimeoutMS=300")
    task = _quick(save_db_result)
    state, _ = _run(task, inputs={"k": 1}, outputs=OUTPUTS)
    assert state.is_failed()
    assert "results database 'lume_results' is unreachable" in state.message
    assert counted["store_result"] == task.max_retries + 1


def test_a_mongodb_url_without_a_timeout_still_gives_up_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pymongo")
    store = MongoResultsStore(f"mongodb://127.0.0.1:{_closed_port()}/results")
    try:
        assert store._client.options.server_selection_timeout <= 5
    finally:
        store.close()


@pytest.fixture
def blocked_sqlite(runtime_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite store whose directory cannot be created: a plain file stands where it would be."""
    blocker = runtime_env / "store"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"sqlite:///{blocker / 'results.db'}")
    yield blocker


def test_an_unreachable_sqlite_store_is_retried_then_fails_naming_the_database(
    blocked_sqlite: Path, counted: dict[str, int]
) -> None:
    task = _quick(save_db_result)
    state, _ = _run(task, inputs={"k": 1}, outputs=OUTPUTS)
    assert state.is_failed()
    assert f"cannot open results database {str(blocked_sqlite / 'results.db')!r}" in state.message
    assert counted["store_result"] == task.max_retries + 1


def test_a_store_that_comes_back_between_retries_lets_the_task_succeed(
    blocked_sqlite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outage is real and ends on its own: the blocker goes away after the first attempt."""
    real_store_result = runtime_tasks.store_result
    attempts: list[str] = []

    def store_result_then_recover(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_store_result(*args, **kwargs)
        except Exception as error:
            attempts.append(type(error).__name__)
            raise
        finally:
            if blocked_sqlite.is_file():
                blocked_sqlite.unlink()  # the store's disk is back for the next attempt

    monkeypatch.setattr(runtime_tasks, "store_result", store_result_then_recover)
    state, _ = _run(_quick(save_db_result), inputs={"k": 1}, outputs=OUTPUTS)
    assert attempts == ["StoreUnavailableError"]
    assert state.is_successful(), state.message
    assert state.result["query"]["unique_hash"]
    assert load_db_result.run(state.result, ["outputs", "end_norm_emit_x"]) == 4.5e-7


# Files -----------------------------------------------------------------------------------------


def test_a_missing_file_reference_fails_its_task_naming_the_reference_and_path(
    runtime_env: Path, counted: dict[str, int]
) -> None:
    reference = save_file.run({"x": [1, 2]}, "out/distribution.json")
    (runtime_env / "out" / "distribution.json").unlink()
    state, _ = _run(load_file, file_rep=reference)
    assert state.is_failed()
    assert f"cannot load file reference {reference!r}: no file at {str(runtime_env / 'out' / 'distribution.json')!r}" in (
        state.message
    )
    assert counted["read_file"] == 1


def test_an_unreadable_file_reference_fails_its_task_naming_the_reference_and_why(runtime_env: Path) -> None:
    reference = save_file.run({"x": 1}, "unreadable.json")
    path = runtime_env / "unreadable.json"
    path.unlink()
    path.mkdir()  # readable by nobody as a file, root included
    state, _ = _run(load_file, file_rep=reference)
    assert state.is_failed()
    assert f"cannot load file reference {reference!r}: cannot read {str(path)!r}: Is a directory" in state.message


def test_a_corrupt_file_reference_fails_its_task_naming_the_format(runtime_env: Path) -> None:
    reference = save_file.run("some text", "notes.txt", "text")
    (runtime_env / "notes.txt").write_bytes(b"\xff\xfe not utf-8")
    state, _ = _run(load_file, file_rep=reference)
    assert state.is_failed()
    assert "notes.txt' is not a valid text file" in state.message


def test_a_mounted_reference_without_the_mount_fails_naming_the_setting(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWC_MOUNT", f"{runtime_env / 'host'}:/mnt/lume")
    reference = save_file.run([1], "a.json")
    assert reference["filesystem_identifier"] == "mounted"
    monkeypatch.delenv("FLOWC_MOUNT")
    state, _ = _run(load_file, file_rep=reference)
    assert state.is_failed()
    assert "is on the mounted filesystem, but FLOWC_MOUNT is not set" in state.message
    assert "/mnt/lume/a.json" in state.message
