"""`flowc lock`: capture every composed flow's interface and (re)write the lock, or --check it."""

from __future__ import annotations

import sys

from compiler import console
from compiler.commands.common import fail
from compiler.config import Project
from compiler.diagnostics import CompileError


def run_lock(project: Project, check_only: bool) -> None:
    """Writes the lock, or says it is up to date; exits 1 on problems (or a --check difference)."""
    from compiler.lock import relock, render_lock, wanted_flows
    from compiler.output import atomic_write, load_lock, unified_diff
    from compiler.targets.prefect3.capture import capturer

    wanted, problems = wanted_flows(project)
    try:
        current = load_lock(project)
    except CompileError as error:
        problems.extend(error.diagnostics)
        current = None
    if problems:
        fail(problems, "text")
    relocked = relock(wanted, current, project.root, project.python, capture3=capturer(project))
    for note in relocked.notes:
        console.note(note)
    if relocked.problems:
        fail(relocked.problems, "text")
    flows = relocked.flows
    text = render_lock(flows)
    display = project.relative(project.lock_path)
    before = project.lock_path.read_text(encoding="utf-8") if project.lock_path.is_file() else None
    if before == text:
        console.info(f"{display} is up to date ({len(flows)} flows)")
        return
    if check_only:
        console.out(unified_diff(display, before, text), nl=False)
        line = _first_difference(before or "", text)
        console.error(f"{display}:{line}:1: error: the lock differs from what its sources give now; run `flowc lock`")
        sys.exit(1)
    try:
        atomic_write(project.lock_path, text)
    except OSError as error:
        console.error(f"{display}:1:1: error: cannot write the lock: {error.strerror or error}; it is unchanged")
        sys.exit(1)
    console.info(f"wrote {display} ({len(flows)} flows)")


def _first_difference(before: str, after: str) -> int:
    old, new = before.splitlines(), after.splitlines()
    return next((i for i, (a, b) in enumerate(zip(old, new), start=1) if a != b), min(len(old), len(new)) + 1)
