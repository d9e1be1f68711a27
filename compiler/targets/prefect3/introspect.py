"""The child side of `flowc lock` for Prefect 3 (and 2.14) flows: import one source, describe it.

flowc starts this file in a process of its own, from the interpreter of the Prefect 3 children,
loaded by path (nothing of flowc need be installed there); Prefect and the standard library only,
Python 3.9-3.11. It speaks the Prefect 1 introspection's protocol: a request file in, one JSON
answer file out (sources may print at import).

    python introspect.py REQUEST.json ANSWER.json

A Prefect 3 flow has no static graph: its tasks are the `Task` objects its function refers to by
name (globals and closures, nested functions included). Each is one task of that name; its result
is loadable by another run when it persists it (`persist_result=True`, or inherited from the flow),
on one machine with the default local storage, anywhere with a storage block. The flow's own
return value is the task `return`, loadable when the flow persists its result.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import math
import os
import sys
import traceback
import types
from typing import Any, Dict, Iterator, List, Optional, Tuple

ANYWHERE = "anywhere"
ONE_MACHINE = "one-machine"
NOWHERE = "no"
RETURN_TASK = "return"


class Refused(Exception):
    """The source cannot be described; the message says why, for the user."""


def main(argv: List[str]) -> int:
    request_path, answer_path = argv[0], argv[1]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        if not request.get("source"):
            raise Refused("a Prefect 3 flow is locked from its `source:` (module:attribute or path.py:attribute)")
        answer = describe_source(request["root"], request["source"])
    except Refused as error:
        answer = {"ok": False, "error": str(error)}
    except SystemExit as error:
        answer = {"ok": False, "error": f"the source called sys.exit({error.code!r}) while being imported"}
    except BaseException as error:  # noqa: BLE001 - anything a child module raises is reported
        answer = {"ok": False, "error": _exception_line(error)}
    partial = answer_path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(answer, handle, allow_nan=False)
    os.replace(partial, answer_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exception_line(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    inside = [f for f in frames if not f.filename.endswith("introspect.py")]
    where = f" ({os.path.basename(inside[-1].filename)}:{inside[-1].lineno})" if inside else ""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:500]}{where}"


def describe_source(root: str, source: str) -> Dict[str, Any]:
    root = os.path.realpath(root)
    target, _, attribute = source.rpartition(":")
    if root not in sys.path:
        sys.path.insert(0, root)
    if target.endswith(".py"):
        path = os.path.realpath(os.path.join(root, target))
        if not os.path.isfile(path):
            raise Refused(f"no file {target!r} under the project root")
        sys.path.insert(0, os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise Refused(f"{target!r} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    from prefect import Flow

    flow = getattr(module, attribute, None)
    if not isinstance(flow, Flow):
        kind = "missing" if flow is None else type(flow).__name__
        raise Refused(f"{source} is not a Prefect 3 flow ({attribute!r} is {kind})")
    answer = describe_flow(flow)
    answer["files"] = project_files(root)
    return answer


def describe_flow(flow: Any) -> Dict[str, Any]:
    parameters = []
    problems = []
    for name, parameter in sorted(inspect.signature(flow.fn).parameters.items()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise Refused(f"flow {flow.name!r} takes *{name}: a composed flow's parameters are named")
        required = parameter.default is inspect.Parameter.empty
        default, problem = (None, None) if required else plain_value(parameter.default)
        if problem:
            problems.append(f"the default of parameter {name!r} {problem}")
        parameters.append({"name": name, "default": default, "required": required})
    if problems:
        raise Refused("; ".join(problems))
    tasks: Dict[str, Dict[str, Any]] = {}
    for task in _tasks_of(flow.fn):
        entry = _result_entry(task.persist_result, flow.persist_result, task.result_storage or flow.result_storage)
        previous = tasks.get(task.name)
        if previous is not None and previous[task.name]["loadable"] != entry["loadable"]:
            entry = {**entry, "loadable": NOWHERE, "origin": "several tasks of this name"}
        tasks[task.name] = {task.name: entry}
    if RETURN_TASK in tasks:
        raise Refused(f"flow {flow.name!r} has a task named {RETURN_TASK!r}, which flowc means the flow's return value")
    tasks[RETURN_TASK] = {RETURN_TASK: _result_entry(flow.persist_result, None, flow.result_storage)}
    return {"ok": True, "prefect": 3, "name": flow.name, "parameters": parameters, "tasks": tasks}


def _result_entry(own: Optional[bool], inherited: Optional[bool], storage: Any) -> Dict[str, Any]:
    persists = own if own is not None else bool(inherited)
    origin = "task" if own is not None else ("flow" if inherited is not None else "none")
    if not persists:
        return {"result": None, "origin": origin, "loadable": NOWHERE}
    if storage is None:
        return {"result": "LocalFileSystem", "origin": origin, "loadable": ONE_MACHINE}
    kind = type(storage).__name__ if not isinstance(storage, str) else storage.split("/")[0]
    local = kind in ("LocalFileSystem", "local-file-system")
    return {"result": kind, "origin": origin, "loadable": ONE_MACHINE if local else ANYWHERE}


def _tasks_of(function: Any) -> Iterator[Any]:
    """Every Task object the flow function (or a function it defines) refers to, once each."""
    from prefect import Task

    seen = set()
    code_objects = [function.__code__]
    scope = dict(function.__globals__)
    for cell_name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
        try:
            scope[cell_name] = cell.cell_contents
        except ValueError:
            continue
    while code_objects:
        code = code_objects.pop()
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                code_objects.append(constant)
        for name in sorted(set(code.co_names) | set(code.co_freevars)):
            value = scope.get(name)
            if isinstance(value, Task) and id(value) not in seen:
                seen.add(id(value))
                yield value


def project_files(root: str) -> List[str]:
    """The import closure inside the project, except flowc's own package and installed packages."""
    flowc_package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    prefix = root.rstrip(os.sep) + os.sep
    found = set()
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str):
            continue
        path = os.path.realpath(filename)
        if not path.startswith(prefix) or path.startswith(flowc_package + os.sep):
            continue
        parts = path[len(prefix):].split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts or "__pycache__" in parts:
            continue
        if os.path.isfile(path):
            found.add("/".join(parts))
    return sorted(found)


def plain_value(value: Any, depth: int = 0) -> Tuple[Any, Optional[str]]:
    """`value` as plain JSON data, or why it cannot be a literal in flow.py."""
    if depth > 64:
        return None, "is nested deeper than 64 levels"
    kind = type(value)
    if value is None or kind in (bool, str, int):
        return value, None
    if kind is float:
        if not math.isfinite(value):
            return None, f"is {value!r}, which YAML and JSON cannot hold"
        return value, None
    if kind in (list, dict):
        items = value.items() if kind is dict else enumerate(value)
        plain: Any = {} if kind is dict else []
        for key, item in items:
            if kind is dict and type(key) is not str:
                return None, f"has the key {key!r}; only string keys are accepted"
            converted, problem = plain_value(item, depth + 1)
            if problem:
                return None, problem
            if kind is dict:
                plain[key] = converted
            else:
                plain.append(converted)
        return plain, None
    return None, f"is a {kind.__name__}; only null, booleans, numbers, strings, lists and mappings are accepted"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
