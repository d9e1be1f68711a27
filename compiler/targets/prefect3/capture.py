"""`flowc lock` for Prefect 3 children: introspect.py in a process of the children's interpreter.

The process is its own process group, started in the project root; what it prints goes to
flowc's stderr prefixed with the flow; its answer is a JSON file in a private directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.lock import CaptureError, FlowInterface

if TYPE_CHECKING:
    from compiler.config import Project
    from compiler.lock import Capture3

INTROSPECT = Path(__file__).resolve().parent / "introspect.py"


def interpreter_missing(python: str) -> bool:
    from shutil import which

    return which(python) is None and not os.access(python, os.X_OK)


def capture_prefect3(project_name: str, name: str, source: str, python: str, root: Path) -> FlowInterface:
    """The interface of the Prefect 3 flow `source` names, as the lock records it (`prefect: 3`)."""
    from dataclasses import replace

    from compiler.capture import Answer, Request
    from compiler.lock import interface_from_answer

    data = _introspect(source, python, root, f"{project_name}/{name}")
    flow = interface_from_answer(Answer(Request(project_name, name, source), data), root)
    return replace(flow, prefect=3)


def _introspect(source: str, python: str, root: Path, label: str) -> dict[str, Any]:
    from compiler.capture import import_timeout, run_isolated

    with tempfile.TemporaryDirectory(prefix="flowc-lock3-") as scratch:
        request, answer = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        request.write_text(json.dumps({"root": str(root), "source": source}), encoding="utf-8")
        command = [python, str(INTROSPECT), str(request), str(answer)]
        outcome = run_isolated(command, root, label, import_timeout(), env={"PYTHONPATH": _pythonpath(root)})
        try:
            data = json.loads(answer.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            why = outcome or f"the Prefect 3 interpreter {python!r} did not describe {source}"
            raise CaptureError(f"{label}: {why}") from None
    if not data.get("ok"):
        raise CaptureError(f"cannot lock {label} from {source}: {data.get('error')}")
    return data


def _pythonpath(root: Path) -> str:
    """The project root, as `python -m` sees it; flowc's runtime is installed in that environment
    (`pip install --no-deps flowc`), never taken from flowc's own, which holds Prefect 1."""
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(root)] + ([existing] if existing else []))


def capturer(project: Project) -> Capture3:
    """`flowc lock`'s capture of the project's Prefect 3 children.

    A child whose source file is unchanged since it was locked (same digest) keeps its entry
    without being imported: each import is a process of the Prefect 3 interpreter, seconds of
    Prefect's own imports. A changed one needs that interpreter; without it, the error names the
    setting to fix.
    """
    from compiler.lock import source_changed

    python = project.children_python("prefect3")

    def capture(project_name: str, name: str, source: str | None, kept: FlowInterface | None) -> FlowInterface:
        key = f"{project_name}/{name}"
        if not source:
            raise CaptureError(f"{key}: a Prefect 3 flow is locked from its source; give it a `source:`")
        if kept is not None and kept.prefect == 3 and kept.source == source and not source_changed(kept, project.root):
            return kept
        if interpreter_missing(python):
            raise CaptureError(
                f"{key}: no Prefect 3 interpreter {python!r} to import {source} in; set "
                "[tool.flowc.prefect3] python (or FLOWC_PREFECT3_PYTHON) to one with Prefect 3 and flowc's runtime"
            )
        return capture_prefect3(project_name, name, source, python, project.root)

    return capture
