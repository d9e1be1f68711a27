"""The child side of `flowc lock`: import one source in this process and describe its flow.

flowc starts this file in a process of its own, from `[tool.flowc] python` (DESIGN.md "Child flows:
where they run"), loaded by path so that nothing of flowc need be installed there. It runs on
Python 3.9-3.11 with prefect 1.4.1 and the standard library only. The answer is one JSON document
written to the file named on the command line, never to stdout: sources print at import.

    python -c BOOT introspect.py REQUEST.json ANSWER.json

The request names the project root and either a `source` (module:attribute or path.py:attribute)
or a flow registered with the Prefect backend (`project_name`, `name`).
"""

from __future__ import annotations

import enum
import importlib.util
import json
import math
import os
import socket
import sys
import traceback
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

# Where another flow run can load a task's persisted result from.
ANYWHERE = "anywhere"
ONE_MACHINE = "one-machine"
NOWHERE = "no"

BACKEND_PROBE_TIMEOUT_S = 3.0


class Refused(Exception):
    """The source cannot be described; the message says why, for the user."""


def main(argv: List[str]) -> int:
    request_path, answer_path = argv[0], argv[1]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        if request.get("source"):
            answer = describe_source(request["root"], request["source"])
        else:
            answer = describe_backend(request["project_name"], request["name"])
    except Refused as error:
        answer = {"ok": False, "error": str(error)}
    except SystemExit as error:  # sys.exit() at import: a located error, never a silent success
        answer = {"ok": False, "error": f"the source called sys.exit({error.code!r}) while being imported"}
    except BaseException as error:  # noqa: BLE001 - anything a child module raises is reported
        answer = {"ok": False, "error": _exception_line(error)}
    _write_answer(answer_path, answer)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip atexit hooks and non-daemon threads a source may have started: the answer is written.
    os._exit(0)


def _write_answer(path: str, answer: Dict[str, Any]) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(answer, handle, allow_nan=False)
    os.replace(partial, path)


def _exception_line(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    inside = [f for f in frames if not f.filename.endswith("introspect.py")]
    where = f" ({os.path.basename(inside[-1].filename)}:{inside[-1].lineno})" if inside else ""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:500]}{where}"


# Importing --------------------------------------------------------------------------------------


def describe_source(root: str, source: str) -> Dict[str, Any]:
    root = os.path.realpath(root)
    sources = _sources()
    target, attribute = sources.split_source(source)
    try:
        module = sources.import_target(root, target)
    except sources.SourceMissing as error:
        raise Refused(str(error)) from None
    flow = getattr(module, attribute, None)
    import prefect

    if not isinstance(flow, prefect.Flow):
        kind = "missing" if flow is None else type(flow).__name__
        raise Refused(f"{source} is not a prefect.Flow ({attribute!r} is {kind})")
    # As `prefect register -p FILE` / `-m MODULE` would store it: Local or Module storage.
    answer = describe_flow(flow, "Local" if target.endswith(".py") else "Module")
    answer["files"] = project_files(root)
    return answer


def _sources() -> Any:
    """compiler/runtime/sources.py, the loader `flowc run`'s children use too, loaded by path
    like this file (its directory never goes on sys.path)."""
    path = os.path.join(os.path.dirname(os.path.realpath(__file__)), "sources.py")
    spec = importlib.util.spec_from_file_location("_flowc_sources", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"flowc's runtime is incomplete: no {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_files(root: str) -> List[str]:
    """The import closure inside the project: every loaded module whose file lies under the root,
    except flowc's own package (its runtime is part of the toolchain) and installed packages."""
    flowc_package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    prefix = root.rstrip(os.sep) + os.sep
    found = set()
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str):
            continue
        path = os.path.realpath(filename)
        if not path.startswith(prefix) or path.startswith(flowc_package + os.sep):
            continue
        relative = path[len(prefix):]
        parts = relative.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts or "__pycache__" in parts:
            continue
        if os.path.isfile(path):
            found.add("/".join(parts))
    return sorted(found)


# The backend ------------------------------------------------------------------------------------


def describe_backend(project_name: str, name: str) -> Dict[str, Any]:
    """A registered flow, read from the Prefect backend; unreachable is said at once (no retries)."""
    import prefect

    backend = prefect.config.backend
    endpoint = prefect.config.cloud.api if backend == "cloud" else prefect.config.server.endpoint
    reachable, why = _reachable(str(endpoint))
    if not reachable:
        return {"ok": False, "unreachable": True, "error": f"the Prefect backend at {endpoint} cannot be reached ({why})"}
    from prefect.backend import FlowView

    try:
        view = FlowView.from_flow_name(name, project_name=project_name)
    except ValueError as error:
        raise Refused(f"the Prefect backend has no flow {project_name}/{name}: {error}") from None
    answer = describe_flow(view.flow)
    answer["files"] = []
    return answer


def _reachable(url: str) -> Tuple[bool, str]:
    parts = urlsplit(url)
    if not parts.hostname:
        return False, "not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=BACKEND_PROBE_TIMEOUT_S):
            return True, ""
    except OSError as error:
        return False, error.strerror or type(error).__name__


# Describing a flow ------------------------------------------------------------------------------


def describe_flow(flow: Any, register_storage: Optional[str] = None) -> Dict[str, Any]:
    """Parameters and tasks of `flow`; `register_storage` is the storage `prefect register` gives a
    flow that has none (Local for a file, Module for a module; None: Prefect's default class)."""
    from prefect import Parameter

    parameters = []
    problems = []
    policy = _values_policy()
    for parameter in sorted(flow.parameters(), key=lambda p: p.name):
        value, problem = policy(parameter.default)
        if problem:
            problems.append(f"the default of parameter {parameter.name!r} {problem}")
        parameters.append({"name": parameter.name, "default": value, "required": bool(parameter.required)})
    if problems:
        raise Refused("; ".join(problems))
    storage_result, storage_label = _storage_result(flow, register_storage)
    tasks: Dict[str, Dict[str, Any]] = {}
    for task in flow.get_tasks():
        if isinstance(task, Parameter):
            continue
        slug = flow.slugs.get(task) or task.slug
        result, origin = _resolved_result(task, flow, storage_result, storage_label)
        entry = {"result": _result_name(result), "origin": origin, "loadable": loadable(result)}
        if task.checkpoint is False:
            entry["checkpoint"] = False
            entry["loadable"] = NOWHERE
        tasks.setdefault(task.name, {})[slug] = entry
    return {"ok": True, "name": flow.name, "parameters": parameters, "tasks": tasks}


def _storage_result(flow: Any, register_storage: Optional[str]) -> Tuple[Any, str]:
    """What `prefect register` makes the flow's result when it has none: its storage's default.
    A flow without storage gets Local storage (a LocalResult) from `prefect register -p FILE` and
    `flow.register()`, Module storage (no result) from `prefect register -m MODULE`."""
    storage = flow.storage
    if storage is not None:
        return getattr(storage, "result", None), type(storage).__name__
    from prefect.engine.results import LocalResult
    import prefect

    kind = register_storage or str(prefect.config.flows.defaults.storage.default_class).rsplit(".", 1)[-1]
    if kind == "Local":
        return LocalResult.__new__(LocalResult), "Local"
    return None, kind


def _resolved_result(task: Any, flow: Any, storage_result: Any, storage_label: str) -> Tuple[Any, str]:
    if task.result is not None:
        return task.result, "task"
    if flow.result:
        return flow.result, "flow"
    return storage_result, f"storage {storage_label}"


def _result_name(result: Any) -> Optional[str]:
    if result is None:
        return None
    kind = type(result)
    if kind.__module__.startswith("prefect."):
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


def loadable(result: Any) -> str:
    """Whether another flow run can read this Result back, and from where."""
    from prefect.engine import results
    from prefect.engine.result import Result

    if result is None:
        return NOWHERE
    if isinstance(result, results.LocalResult):
        return ONE_MACHINE
    shared = tuple(
        getattr(results, name)
        for name in ("PrefectResult", "S3Result", "GCSResult", "AzureResult")
        if hasattr(results, name)
    )
    if isinstance(result, shared):
        return ANYWHERE
    refused = tuple(
        getattr(results, name) for name in ("ConstantResult", "SecretResult") if hasattr(results, name)
    )
    if isinstance(result, refused) or type(result) is Result:
        return NOWHERE
    # A Result class of the author's own that writes and reads somewhere: trusted, and named in the lock.
    custom = type(result)
    if custom.write is not Result.write and custom.read is not Result.read:
        return ANYWHERE
    return NOWHERE


def _values_policy() -> Any:
    """flowc's VALUES POLICY (compiler/values.py, standard library only), loaded by path like this
    file; plain_value below when that file is not beside it."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "values.py")
    spec = importlib.util.spec_from_file_location("_flowc_values", path) if os.path.isfile(path) else None
    if spec is None or spec.loader is None:
        return plain_value
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def normalized(value: Any) -> Tuple[Any, Optional[str]]:
        try:
            return module.normalize(value), None
        except module.ValueRejected as error:
            return None, f"is not accepted: {error}"

    return normalized


def plain_value(value: Any, depth: int = 0) -> Tuple[Any, Optional[str]]:
    """`value` as plain JSON data, or why it cannot be a literal in flow.py (VALUES POLICY: until
    compiler/values.py decides more, only YAML's plain types are accepted)."""
    if depth > 64:
        return None, "is nested deeper than 64 levels"
    kind = type(value)
    if value is None or kind in (bool, str):
        return value, None
    if kind is int:
        if value.bit_length() > 13000:  # about 4000 digits: Python's str() limit is 4300
            return None, "is an integer too large for a literal"
        return value, None
    if kind is float:
        if not math.isfinite(value):
            return None, f"is {value!r}, which YAML and JSON cannot hold; use a finite number or null"
        return value, None
    if kind is list:
        items = []
        for item in value:
            plain, problem = plain_value(item, depth + 1)
            if problem:
                return None, problem
            items.append(plain)
        return items, None
    if kind is dict:
        mapping = {}
        for key, item in value.items():
            if type(key) is not str:
                return None, f"has the key {_short(key)} ({type(key).__name__}); only string keys are accepted"
            plain, problem = plain_value(item, depth + 1)
            if problem:
                return None, problem
            mapping[key] = plain
        return mapping, None
    if isinstance(value, enum.Enum):
        return None, f"is the Enum member {_short(value)}; use its value ({_short(value.value)})"
    if isinstance(value, tuple):
        return None, f"is the tuple {_short(value)}; use a list"
    return None, f"is a {kind.__name__} ({_short(value)}); only null, booleans, numbers, strings, lists and string-keyed mappings are accepted"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr of the author's own class can fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:50] + "..."


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
