"""`flowc check`: render in memory, compare with generated/ and the lock, write nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from compiler import console
from compiler.commands.common import fail
from compiler.config import Project
from compiler.diagnostics import CompileError, Diagnostic, format_diagnostics

if TYPE_CHECKING:
    from compiler.lock import Drift
    from compiler.lockview import LockView


def run_check(project: Project, spec_paths: list[Path] | None, style: str, stat: bool) -> None:
    """Exits 1 when anything is stale, missing, orphaned or drifted; returns when all is current."""
    from compiler.lockview import LockView
    from compiler.output import build_tree, stale_files

    try:
        view = LockView(project)  # parsed only when a spec must be compiled or a source changed
        tree = build_tree(project, spec_paths, view)
        if tree.diagnostics:
            fail(tree.diagnostics, style)
        drift = _drift(project, view)
    except CompileError as error:  # a malformed lock
        fail(error.diagnostics, style)
    stale = stale_files(project, tree)
    changes = [(item.path, item.current, item.expected) for item in stale]
    problems = [item.diagnostic() for item in stale]
    notes = _drift_problems(project, view, drift, problems, changes) if drift is not None else ()
    if style == "json":
        console.out(format_diagnostics(problems, "json"))
    else:
        for note in notes:
            console.note(note)
        if changes:
            from compiler.diffview import show_changes

            show_changes(changes, stat, to_stderr=style == "github")
        if problems:
            if style == "text":
                console.error(format_diagnostics(problems, style))
            else:
                console.out(format_diagnostics(problems, style))
    if problems:
        if style == "text":
            console.error(
                f"{len(problems)} problem(s): run `flowc generate` for generated files, `flowc lock` for the lock"
            )
        sys.exit(1)
    if style == "text":
        console.detail(f"{tree.skipped} of {tree.specs} spec(s) taken from this machine's render cache, not rendered")
        if tree.specs == 0:
            where = project.relative(project.specs_dir)
            console.info(f"nothing to check: no specs in {where}/ ({project.specs_dir}); see [tool.flowc] specs")
        else:
            console.info(f"{tree.specs} spec(s) up to date")


def _drift(project: Project, view: LockView) -> Drift | None:
    """The lock's drift check; None, without parsing the lock, when this machine recorded these
    lock bytes and every locked source still has its recorded digest."""
    if view.sources_unchanged():
        return None
    from compiler.lock import drifted
    from compiler.targets.prefect3.capture import capturer

    return drifted(view.lock, project.root, project.python, capture3=capturer(project))


def _drift_problems(
    project: Project, view: LockView, drift: Drift, problems: list[Diagnostic], changes: list[tuple[str, str, str]]
) -> tuple[str, ...]:
    """Adds the drifted and failed flows to `problems`, the lock's new text to `changes`; the notes."""
    lock_display = project.relative(project.lock_path)
    lock_text = project.lock_path.read_text(encoding="utf-8") if project.lock_path.exists() else ""
    for key, changes_of_flow in sorted(drift.changes.items()):
        source = view.lock.flows[key].source
        message = f"{key} no longer matches its source {source}: {'; '.join(changes_of_flow)}; run `flowc lock`"
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, message))
    for key, error in sorted(drift.failed.items()):
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, error))
    if drift.lock is not None:
        from compiler.lock import render_lock

        changes.append((lock_display, lock_text, render_lock(drift.lock.flows.values())))
    return drift.notes


def _lock_line(lock_text: str, key: str) -> int:
    """The line of a flow's entry in the lock, so annotations land on it."""
    for number, line in enumerate(lock_text.splitlines(), start=1):
        if line.strip() in (f"{key}:", f"'{key}':", f'"{key}":'):
            return number
    return 1
