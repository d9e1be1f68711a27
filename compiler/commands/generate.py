"""`flowc generate`: one pass over the specs, written atomically under a lock (also run by build)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler import console
from compiler.commands.common import fail
from compiler.config import Project
from compiler.diagnostics import CompileError


def run_generate(
    project: Project,
    spec_paths: list[Path] | None,
    style: str,
    quiet: bool = False,
    fail_on_change: bool = False,
    counts: bool = True,
) -> int:
    """One generate pass; returns the exit code. Shared by `generate` and `build` (which says only
    what it wrote: `counts=False` drops the summary line)."""
    from filelock import FileLock

    from compiler.lockview import LockView
    from compiler.output import build_tree, write_tree

    with FileLock(_generate_lock_path(project)):
        try:
            lock = LockView(project)  # parsed only if a spec must be compiled
            with console.progress_bar("generating") as progress:
                tree = build_tree(project, spec_paths, lock, progress)
        except CompileError as error:  # a malformed lock
            fail(error.diagnostics, style)
        if tree.diagnostics:
            fail(tree.diagnostics, style)
        try:
            report = write_tree(project, tree)
        except OSError as error:  # disk full, permissions: write_tree has put everything back
            unchanged = project.relative(project.generated_dir)
            click.echo(f"error: cannot write generated files: {error}; {unchanged}/ is unchanged", err=True)
            sys.exit(1)
    # People read these on stderr; with --format json, stdout holds the (empty) diagnostics only.
    if style == "json":
        console.out("[]")
    if not quiet:
        for path in report.written:
            edited = " (overwrote a hand edit: change the spec instead)" if path in report.hand_edited else ""
            console.info(f"wrote {path}{edited}")
        for path in report.removed:
            console.info(f"removed {path}")
        console.detail(f"{tree.skipped} spec(s) taken from this machine's render cache, not rendered")
        if counts:
            console.info(
                f"{tree.specs} spec{'s' if tree.specs != 1 else ''}: {len(report.written)} file(s) written, "
                f"{report.unchanged} unchanged, {len(report.removed)} removed"
            )
    return 1 if fail_on_change and (report.written or report.removed) else 0


def _generate_lock_path(project: Project) -> str:
    """Where concurrent generates serialise: .flowc/ in the project, else (a read-only root) this
    machine's cache."""
    state = project.root / ".flowc"
    try:
        state.mkdir(exist_ok=True)
        return str(state / "generate.lock")
    except OSError:
        import hashlib

        from compiler.rendercache import cache_dir

        locks = cache_dir() / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
        except OSError:
            import tempfile

            locks = Path(tempfile.gettempdir())
        return str(locks / f"generate-{hashlib.sha256(str(project.root).encode()).hexdigest()[:16]}.lock")
