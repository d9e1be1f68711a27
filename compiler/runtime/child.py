"""The child side of `flowc run`: one child flow run, in a process of its own.

`flowc run` starts every child flow in a fresh process of the project's child interpreter
(`[tool.flowc] python`), either forked from a warm server that has imported Prefect once
(`compiler.runtime.forkserver`) or spawned as `python -m compiler.runtime.child REQUEST`. Here,
and only here, the child's source is imported; then `flow.run(parameters=...)` runs with
checkpointing, as an agent runs a deployed flow. What flowc needs back goes into a report file
(never stdout, which belongs to the child and Prefect's logs): the final state, every task's
state, and for each task that persisted a result its Result object (pickled, without its value)
and location, so that flowc loads a mapped value through the task's own Result class. Values
shown in summaries are bounded (`bounded()`): larger ones are given by type, size and sha256.

A child that orchestrates flows itself (`create_flow_run`, `wait_for_flow_run`,
`get_task_run_result`, `StartFlowRun`) talks to flowc over a private socket (`ParentChannel`):
flowc starts those runs as children of the composition, supervised like every other one.
Runs on Python 3.9-3.11 with prefect 1.4.1 and the standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import socket
import sys
import threading
import time
import traceback
from datetime import timedelta
from typing import Any, Callable, Dict, List, Optional, Tuple

REPORT_VERSION = 1
SUMMARY_LIMIT = 64 * 1024  # bytes of a value's canonical form shown as is in summaries
LOCATION_LIMIT = 64 * 1024  # a longer result location goes to a file of its own
MESSAGE_LIMIT = 2000  # characters of a state message kept in a report


# Values in summaries -------------------------------------------------------------------------


def canonical_bytes(value: Any) -> bytes:
    """What a value's size and digest are taken over: a str's UTF-8, bytes as they are, else JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return json.dumps(value, sort_keys=True, default=repr).encode("utf-8", "surrogatepass")


def bounded(value: Any, limit: int = SUMMARY_LIMIT) -> Any:
    """`value` when its canonical form fits in `limit` bytes; else `{type, size, sha256}` of it."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    data = canonical_bytes(value)
    if len(data) <= limit:
        return value
    return {"type": type(value).__name__, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _short(text: Any) -> Optional[str]:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


# Importing the source ---------------------------------------------------------------------------


class SourceError(Exception):
    """The child's source did not give the flow it should; the message says why."""


# Flows a fork server imported before forking this process (compiler.runtime.forkserver: a
# server per source, started only once every step upstream of the children it serves ended).
PRELOADED: Dict[Tuple[str, str, str], Any] = {}


def load_flow(source: str, root: str, flow_name: str) -> Any:
    """Import `module:attribute` (or `path/to/file.py:attribute`, from the project root) with the
    loader the lock's capture uses (compiler.runtime.sources), and check it gives the step's flow."""
    import prefect

    from compiler.runtime.sources import SourceMissing, import_target, split_source

    target, attribute = split_source(source)
    if not target or not attribute:
        raise SourceError(f"source {source!r} is not module:attribute")
    try:
        module = import_target(root, target)
    except SourceMissing as error:
        raise SourceError(f"cannot import {target!r}: {error}") from None
    except Exception as error:  # a child module can fail in any way; report which and why
        traceback.print_exc()
        raise SourceError(f"cannot import {target!r}: {type(error).__name__}: {error}") from None
    flow = getattr(module, attribute, None)
    if not isinstance(flow, prefect.Flow):
        raise SourceError(f"{source} is not a prefect.Flow")
    if flow.name != flow_name:
        raise SourceError(f"{source} defines the flow {flow.name!r}, not {flow_name!r}")
    return flow


# The report ----------------------------------------------------------------------------------


def _result_entry(state: Any, side_file: Callable[[], str]) -> Optional[Dict[str, Any]]:
    """How flowc can load a task state's value: its Result (pickled, without the value) and location."""
    result = getattr(state, "_result", None)
    if result is None:
        return None
    location = getattr(result, "location", None)
    entry: Dict[str, Any] = {
        "class": f"{type(result).__module__}.{type(result).__qualname__}",
        "has_value": getattr(result, "value", None) is not None,
        "location": None,
        "location_file": None,
        "pickle": None,
    }
    if location is None:
        return entry
    if len(location) > LOCATION_LIMIT:
        path = side_file()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(location)
        entry["location_file"] = path
    else:
        entry["location"] = location
    try:
        import copy

        empty = copy.copy(result)
        empty.value = None
        empty.location = None
        # A callable location (LUME's SaveFile: `PrefectResult(location=_unique_file_location)`) is
        # a function of the child's own module: flowc's unpickler rightly refuses it, and the
        # location it produced is already in the entry.
        empty._formatter = None
        entry["pickle"] = base64.b64encode(pickle.dumps(empty, protocol=4)).decode("ascii")
    except Exception:  # flowc then loads it through the class by name, if it can
        entry["pickle"] = None
    return entry


def build_report(flow: Any, state: Any, report_path: str) -> Dict[str, Any]:
    """The final state, per-task states, persisted results and bounded values of a finished run."""
    from prefect import Parameter
    from prefect.engine.state import TriggerFailed

    task_states = state.result if isinstance(getattr(state, "result", None), dict) else {}
    counter = [0]

    def side_file() -> str:
        counter[0] += 1
        return f"{report_path}.location-{counter[0]}"

    tasks: Dict[str, Any] = {}
    causes: List[str] = []
    values: Dict[str, Any] = {}
    for task, task_state in task_states.items():
        slug = flow.slugs.get(task) or task.slug
        entry: Dict[str, Any] = {
            "name": task.name,
            "parameter": isinstance(task, Parameter),
            "state": type(task_state).__name__,
            "message": _short(task_state.message),
            "finished": task_state.is_finished(),
            "successful": task_state.is_successful(),
            "failed": task_state.is_failed(),
            "mapped": task_state.is_mapped(),
            "result": None,
            "map": None,
        }
        if task_state.is_failed() and not isinstance(task_state, TriggerFailed):
            causes.append(f"{task.name}: {task_state.message}")
        if task_state.is_mapped():
            entry["map"] = [
                {
                    "state": type(child).__name__,
                    "message": _short(child.message),
                    "finished": child.is_finished(),
                    "failed": child.is_failed(),
                    "result": _result_entry(child, side_file),
                }
                for child in task_state.map_states
            ]
        else:
            entry["result"] = _result_entry(task_state, side_file)
            persisted = entry["result"] is not None and (
                entry["result"]["location"] is not None or entry["result"]["location_file"] is not None
            )
            if persisted and task_state.is_successful() and not entry["parameter"]:
                values[slug] = bounded(task_state.result)
        tasks[slug] = entry
    return {
        "version": REPORT_VERSION,
        "state": type(state).__name__,
        "message": _short(state.message),
        "successful": state.is_successful(),
        "failed": state.is_failed(),
        "failure": _short("; ".join(sorted(causes))) if causes else None,
        "slugs": sorted(set(flow.slugs.values())),
        "tasks": tasks,
        "results": dict(sorted(values.items())),
    }


def write_report(path: str, report: Dict[str, Any]) -> None:
    """Atomically: flowc reads either nothing (the child died first) or the whole report."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(report, handle, default=repr)
    os.replace(temporary, path)


def failure_report(message: str) -> Dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "state": "Failed",
        "message": _short(message),
        "successful": False,
        "failed": True,
        "failure": _short(message),
        "slugs": [],
        "tasks": {},
        "results": {},
    }


# Running ------------------------------------------------------------------------------------


def run_request(request: Dict[str, Any], channel_fd: Optional[int] = None) -> None:
    """Import the source, run the flow, write the report. SystemExit propagates (the exit status)."""
    timing = {"entered": time.time()}
    report_path = request["report_file"]

    def report(content: Dict[str, Any]) -> None:
        timing["finished"] = time.time()
        content["timing"] = timing
        write_report(report_path, content)

    try:
        key = (request["source"], request.get("root") or "", request["flow_name"])
        flow = PRELOADED.get(key)
        if flow is None:
            flow = load_flow(*key)
    except SourceError as error:
        report(failure_report(f"flow run could not start: {error}"))
        return
    timing["imported"] = time.time()
    with open(request["parameters_file"], "rb") as handle:
        parameters = pickle.load(handle)
    channel = ParentChannel(channel_fd) if channel_fd is not None else None
    from compiler.runtime.local import install_nested_runs

    install_nested_runs(flow, channel)
    context = {
        "flow_run_id": request["run_id"],
        "project_name": request["project_name"],
        "checkpointing": True,
    }
    if request.get("run_name"):
        context["flow_run_name"] = request["run_name"]
    context.update(request.get("context") or {})
    try:
        state = flow.run(parameters=parameters, run_on_schedule=False, context=context)
    except Exception as error:  # parameters the flow rejects, or a crash in its runner
        traceback.print_exc()
        report(failure_report(f"flow run could not start: {type(error).__name__}: {error}"))
        return
    if state is None:
        report(failure_report("the flow run returned no state"))
        return
    report(build_report(flow, state, report_path))


def exit_code(error: SystemExit) -> int:
    """The status the interpreter would exit with for this SystemExit."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream: nothing more to say
            pass


# Talking to flowc from a child that orchestrates flows itself --------------------------------


class ParentChannel:
    """Requests to flowc over a private socket (JSON lines); one reader thread, many callers."""

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._reader = self._socket.makefile("rb")
        self._lock = threading.Lock()
        self._pending: Dict[int, List[Any]] = {}
        self._next = 0
        self._thread: Optional[threading.Thread] = None

    def call(self, op: str, **arguments: Any) -> Dict[str, Any]:
        event = threading.Event()
        with self._lock:
            self._next += 1
            number = self._next
            self._pending[number] = [event, None]
            if self._thread is None:
                self._thread = threading.Thread(target=self._read, name="flowc-parent-channel", daemon=True)
                self._thread.start()
            line = json.dumps({"id": number, "op": op, **arguments}, default=repr) + "\n"
            self._socket.sendall(line.encode("utf-8"))
        event.wait()
        with self._lock:
            reply = self._pending.pop(number)[1]
        if reply is None:
            raise RuntimeError("flowc ended the connection before answering")
        if reply.get("error"):
            raise RuntimeError(reply["error"])
        return reply

    def _read(self) -> None:
        for raw in self._reader:
            try:
                reply = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                waiting = self._pending.get(reply.get("id"))
                if waiting is not None:
                    waiting[1] = reply
                    waiting[0].set()
        with self._lock:
            for waiting in self._pending.values():
                waiting[0].set()


def timedelta_seconds(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def main(argv: List[str]) -> int:
    """`python -m compiler.runtime.child REQUEST_FILE [CHANNEL_FD]`: one child run, spawned."""
    with open(argv[0], encoding="utf-8") as handle:
        request = json.load(handle)
    channel_fd = int(argv[1]) if len(argv) > 1 and argv[1] != "-" else None
    try:
        run_request(request, channel_fd)
    finally:
        flush_output()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
