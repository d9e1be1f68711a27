"""The child flows' interfaces: capture them for `flowc lock`, and find drift for `check` and `run`.

Compiling reads only the lock (compiler/lockfile.py). Capturing imports each child source in a
process of its own (compiler/capture.py); `flowc check` does so only for flows whose source
files (the import closure the lock records) no longer match the lock's digest.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from compiler.diagnostics import CompileError, Diagnostic
from compiler.targets import effective_target
from compiler.lockfile import (  # noqa: F401 - the lock's model, re-exported for its users
    LOCK_HEADER,
    LOCK_VERSION,
    NOWHERE,
    FlowInterface,
    Lock,
    ParameterInterface,
    SlugResult,
    TaskInterface,
    files_digest,
    render_lock,
)
from compiler.lockread import read_lock, read_lock_file  # noqa: F401 - re-exported for its users

if TYPE_CHECKING:
    from compiler.capture import Answer
    from compiler.config import Project

# Captures a Prefect 3 child (project, name, source, its current entry) in its own interpreter.
Capture3 = Callable[[str, str, "str | None", "FlowInterface | None"], "FlowInterface"]


class CaptureError(Exception):
    """A child flow could not be imported or described; the message says which and why."""


def ensure_importable(root: Path) -> None:
    """Child flow modules are named relative to the project root, as `python -m` would see them."""
    text = str(root)
    if text not in sys.path:
        sys.path.insert(0, text)


def interface_from_answer(answer: Answer, root: Path) -> FlowInterface:
    """The lock entry for what a child process described; CaptureError when it cannot be one."""
    request, data = answer.request, answer.data or {}
    if request.source and data.get("name") != request.name:
        raise CaptureError(
            f"{request.source} defines the flow {data.get('name')!r}, but the spec composes {request.name!r}"
        )
    files = tuple(data.get("files") or ()) if request.source else None
    flow = FlowInterface(
        project_name=request.project_name,
        name=request.name,
        source=request.source,
        source_digest=files_digest(root, files) if files is not None else None,
        source_files=files,
        parameters=tuple(
            ParameterInterface(p["name"], p.get("default"), bool(p["required"])) for p in data.get("parameters", ())
        ),
        tasks=tuple(
            TaskInterface.of(
                name,
                (
                    SlugResult(
                        slug=slug,
                        result=info.get("result"),
                        loadable=str(info.get("loadable")),
                        origin=info.get("origin"),
                        checkpoint=info.get("checkpoint", True) is not False,
                    )
                    for slug, info in sorted(slugs.items())
                ),
            )
            for name, slugs in sorted((data.get("tasks") or {}).items())
        ),
    )
    # What is written must read back: the same validating reader checks the entry.
    try:
        read_lock(render_lock([flow]), "lock")
    except CompileError as error:
        reasons = "; ".join(d.message for d in error.diagnostics[:3])
        raise CaptureError(f"its interface cannot be written to the lock: {reasons}") from None
    return flow


# Writing and checking the lock ----------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """A flow some spec composes, with the source that spec names (if any)."""

    project_name: str
    name: str
    source: str | None
    where: Diagnostic  # the spec position that asked for it, for error messages
    target: str = "prefect1"  # the asking spec's: prefect3 children are Prefect 3 flows


def wanted_flows(project: Project) -> tuple[list[Wanted], list[Diagnostic]]:
    """Every flow the project's specs compose, with where each asks for it."""
    from compiler.spec import parse_spec

    wanted: list[Wanted] = []
    problems: list[Diagnostic] = []
    for path in project.spec_files():
        display = project.relative(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else f"not UTF-8 ({error.reason} at byte {error.start})"
            problems.append(Diagnostic(display, 1, 1, f"cannot read spec: {reason}"))
            continue
        try:
            parsed = parse_spec(text, display)
        except CompileError as error:
            problems.extend(error.diagnostics)
            continue
        for index, flow in enumerate(parsed.spec.composing_flows):
            where = parsed.where.at(("composing_flows", index, "source" if flow.source else "name"), "")
            wanted.append(Wanted(flow.project_name, flow.name, flow.source, where, effective_target(parsed.spec.target, project.target)))
    return wanted, problems


@dataclass(frozen=True)
class Relocked:
    flows: list[FlowInterface]
    problems: list[Diagnostic]
    notes: list[str]


def relock(
    wanted: Iterable[Wanted], current: Lock | None, root: Path, python: str, capture3: Capture3 | None = None
) -> Relocked:
    """Capture every wanted flow: from its source, else the backend; an unreachable backend keeps
    the current entry (with a note)."""
    by_key: dict[str, Wanted] = {}
    problems: list[Diagnostic] = []
    for item in wanted:
        key = f"{item.project_name}/{item.name}"
        seen = by_key.get(key)
        if seen is not None and item.source and seen.source and item.source != seen.source:
            problems.append(_moved(item.where, f"{key} has source {item.source!r} here but {seen.source!r} at {seen.where.path}:{seen.where.line}; one flow has one source"))
            continue
        if seen is None or (item.source and not seen.source):
            by_key[key] = item
    prefect3 = {k: w for k, w in by_key.items() if w.target == "prefect3" and capture3 is not None}
    from compiler.capture import Request, capture_all  # threads and subprocesses: only when capturing

    answers = capture_all((Request(w.project_name, w.name, w.source) for k, w in by_key.items() if k not in prefect3), python, root)
    flows: list[FlowInterface] = []
    notes: list[str] = []
    for key, item in sorted(prefect3.items()):
        kept = current.flows.get(key) if current is not None else None
        try:
            flows.append(capture3(item.project_name, item.name, item.source, kept))  # type: ignore[misc]
        except CaptureError as error:
            problems.append(_moved(item.where, _failure(item.project_name, item.name, item.source, str(error))))
    for key, item in sorted(by_key.items()):
        if key in prefect3:
            continue
        answer = answers[key]
        kept = current.flows.get(key) if current is not None else None
        if answer.data is None and answer.unreachable and kept is not None:
            notes.append(f"{key}: {answer.error}; kept its current entry")
            flows.append(kept)
            continue
        try:
            if answer.data is None:
                raise CaptureError(answer.error or "no answer")
            flows.append(interface_from_answer(answer, root))
        except CaptureError as error:
            problems.append(_moved(item.where, _failure(item.project_name, item.name, item.source, str(error))))
    return Relocked(flows, problems, notes)


def _failure(project_name: str, name: str, source: str | None, reason: str) -> str:
    if source:
        return f"cannot capture {project_name}/{name} from {source}: {reason}"
    return f"{project_name}/{name} has no source and the Prefect backend could not provide it: {reason}"


def _moved(where: Diagnostic, message: str) -> Diagnostic:
    return Diagnostic(where.path, where.line, where.col, message)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def interface_changes(locked: FlowInterface, current: FlowInterface) -> list[str]:
    """What differs between the locked interface and the source's, in words a reviewer reads."""
    changes: list[str] = []
    before = {p.name: p for p in locked.parameters}
    after = {p.name: p for p in current.parameters}
    for name in sorted(after.keys() - before.keys()):
        required = " (required)" if after[name].required else f" (default {_shown(after[name].default)})"
        changes.append(f"parameter {name!r} added{required}")
    for name in sorted(before.keys() - after.keys()):
        changes.append(f"parameter {name!r} removed")
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if old.required != new.required:
            changes.append(f"parameter {name!r} is {'now' if new.required else 'no longer'} required")
        elif old.default != new.default or type(old.default) is not type(new.default):
            changes.append(f"parameter {name!r} default {_shown(old.default)} -> {_shown(new.default)}")
    old_tasks = {t.name: t for t in locked.tasks}
    new_tasks = {t.name: t for t in current.tasks}
    for name in sorted(new_tasks.keys() - old_tasks.keys()):
        changes.append(f"task {name!r} added")
    for name in sorted(old_tasks.keys() - new_tasks.keys()):
        changes.append(f"task {name!r} gone")
    for name in sorted(old_tasks.keys() & new_tasks.keys()):
        old_task, new_task = old_tasks[name], new_tasks[name]
        if old_task.slugs != new_task.slugs:
            changes.append(f"task {name!r} slugs {list(old_task.slugs)} -> {list(new_task.slugs)}")
        for slug in (s for s in new_task.slugs if s in old_task.slugs):
            old_result, new_result = old_task.slug_result(slug), new_task.slug_result(slug)
            label = f"task {name!r}" if len(new_task.slugs) == 1 else f"task {name!r} ({slug})"
            if (old_result.loadable == NOWHERE) != (new_result.loadable == NOWHERE):
                state = "now persists" if new_result.loadable != NOWHERE else "no longer persists"
                changes.append(f"{label} {state} its result ({new_result.result})")
            elif old_result.result != new_result.result:
                changes.append(f"{label} result {old_result.result} -> {new_result.result}")
            elif old_result != new_result:
                changes.append(f"{label} result is now {new_result.loadable} ({new_result.origin})")
    return changes


@dataclass(frozen=True)
class Drift:
    lock: Lock | None  # the lock as it should be, when an interface changed
    notes: tuple[str, ...]  # changed files whose interface did not change
    errors: tuple[str, ...]  # sources that no longer import or no longer define the flow
    changes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # flow key -> what differs
    failed: Mapping[str, str] = field(default_factory=dict)  # flow key -> why it could not be captured


def source_changed(flow: FlowInterface, root: Path) -> bool:
    """Whether any file of the source's recorded import closure differs from the lock's digest."""
    if not flow.source:
        return False
    if flow.source_files is None:  # a version 1 entry: it recorded no closure
        return True
    return files_digest(root, flow.source_files) != flow.source_digest


def drifted(lock: Lock, root: Path | None = None, python: str | None = None, capture3: Capture3 | None = None) -> Drift:
    """Re-capture the flows whose source files changed since the lock was written; only those are
    imported, each in a process of its own."""
    base = root if root is not None else Path.cwd()
    changed = [flow for flow in lock.flows.values() if source_changed(flow, base)]
    if not changed:
        return Drift(lock=None, notes=(), errors=())
    from compiler.capture import Request, capture_all  # threads and subprocesses: only when capturing

    answers = capture_all(
        (Request(f.project_name, f.name, f.source) for f in changed if f.prefect == 1 or capture3 is None),
        python or sys.executable,
        base,
    )
    notes: list[str] = []
    errors: list[str] = []
    changes: dict[str, tuple[str, ...]] = {}
    failed: dict[str, str] = {}
    updated = dict(lock.flows)
    for flow in changed:
        try:
            if flow.prefect != 1 and capture3 is not None:
                fresh = capture3(flow.project_name, flow.name, flow.source, None)
            else:
                answer = answers[flow.key]
                if answer.data is None:
                    raise CaptureError(answer.error or "no answer")
                fresh = interface_from_answer(answer, base)
        except CaptureError as error:
            message = _failure(flow.project_name, flow.name, flow.source, str(error))
            errors.append(message)
            failed[flow.key] = message
            continue
        if fresh.interface_data() != flow.interface_data():
            updated[flow.key] = fresh
            changes[flow.key] = tuple(interface_changes(flow, fresh)) or ("interface changed",)
        else:
            notes.append(f"{flow.key}: {flow.source} changed but its interface did not; `flowc lock` refreshes its digest")
    new_lock = Lock(path=lock.path, flows=updated) if changes else None
    return Drift(lock=new_lock, notes=tuple(notes), errors=tuple(errors), changes=changes, failed=failed)
