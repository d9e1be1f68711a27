"""`flowc generate --watch`: regenerate whenever a spec, the lock or a template changes.

Each pass prints one line (time, trigger, counts, duration); a pass that finds spec errors prints
them first and writes nothing, and watching goes on until the user stops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import click

from compiler import console
from compiler.config import Project
from compiler.diagnostics import CompileError, Diagnostic, format_diagnostics
from compiler.fingerprint import TEMPLATES_DIR, toolchain_digest

SPEC_SUFFIXES = (".yaml", ".yml")
MAX_NAMES = 5  # generated projects named in a run's line; the rest are counted


@dataclass(frozen=True)
class Pass:
    """What one generate pass did, for its one-line report."""

    specs: int
    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    diagnostics: tuple[Diagnostic, ...]
    seconds: float

    def summary(self) -> str:
        if self.diagnostics:
            count = len(set(self.diagnostics))
            return f"{count} error{'s' if count != 1 else ''}; nothing was written ({self.seconds:.2f}s)"
        changed = sorted({path.split("/")[-2] for path in (*self.written, *self.removed) if "/" in path})
        shown = ", ".join(changed[:MAX_NAMES]) + (
            f" and {len(changed) - MAX_NAMES} more" if len(changed) > MAX_NAMES else ""
        )
        names = f": {shown}" if changed else ""
        return (
            f"{self.specs} spec{'s' if self.specs != 1 else ''}, {len(self.written)} written, "
            f"{self.unchanged} unchanged, {len(self.removed)} removed ({self.seconds:.2f}s){names}"
        )


def generate_pass(project: Project, spec_paths: list[Path] | None) -> Pass:
    """One generate pass that reports problems as data instead of exiting."""
    from filelock import FileLock

    from compiler.output import build_tree, load_lock, write_tree

    started = time.perf_counter()
    # Templates may have changed since the last pass; their digest is cached per process.
    toolchain_digest.cache_clear()
    try:
        lock = load_lock(project)
    except CompileError as error:
        return Pass(0, (), (), 0, tuple(error.diagnostics), time.perf_counter() - started)
    state = project.root / ".flowc"
    state.mkdir(exist_ok=True)
    with FileLock(str(state / "generate.lock")):
        tree = build_tree(project, spec_paths, lock)
        if tree.diagnostics:
            return Pass(tree.specs, (), (), 0, tuple(tree.diagnostics), time.perf_counter() - started)
        report = write_tree(project, tree)
    return Pass(
        specs=tree.specs,
        written=tuple(report.written),
        removed=tuple(report.removed),
        unchanged=report.unchanged,
        diagnostics=(),
        seconds=time.perf_counter() - started,
    )


def watched_roots(project: Project, spec_paths: list[Path] | None) -> list[Path]:
    """The directories to watch: where the specs, the lock and the templates live."""
    candidates = [project.lock_path.parent, TEMPLATES_DIR]
    if spec_paths is None:
        candidates.append(project.specs_dir)
    else:
        candidates.extend(path.resolve().parent for path in spec_paths)
    roots: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_dir() and resolved not in roots:
            roots.append(resolved)
    return roots


class InputFilter:
    """Accepts changes to exactly the files a generate pass reads."""

    def __init__(self, project: Project, spec_paths: list[Path] | None) -> None:
        self.lock_path = project.lock_path.resolve()
        self.templates = TEMPLATES_DIR.resolve()
        self.specs_dir = project.specs_dir.resolve()
        self.spec_files = None if spec_paths is None else {path.resolve() for path in spec_paths}

    def __call__(self, change: object, path: str) -> bool:
        return self.accepts(Path(path))

    def accepts(self, path: Path) -> bool:
        if path.name.startswith(".") or path.name.endswith("~"):
            return False  # editors' swap files and our own staging files
        resolved = path.resolve()
        if resolved == self.lock_path:
            return True
        if resolved.parent == self.templates:
            return True
        if self.spec_files is not None:
            return resolved in self.spec_files
        return resolved.parent == self.specs_dir and resolved.suffix in SPEC_SUFFIXES


def watch_and_generate(project: Project, spec_paths: list[Path] | None, style: str) -> None:
    """Generate now, then again after every change, until interrupted."""
    from watchfiles import watch

    roots = watched_roots(project, spec_paths)
    input_filter = InputFilter(project, spec_paths)
    started = False
    try:
        # The watcher exists from the first (possibly empty) yield on, so the first pass runs then:
        # a change made while it runs is not lost.
        changes_stream = watch(
            *roots, watch_filter=input_filter, debounce=300, step=50, rust_timeout=250, yield_on_timeout=True
        )
        for changes in changes_stream:
            if not started:
                started = True
                _report(project, "start", generate_pass(project, spec_paths), style)
            elif changes:
                trigger = _trigger(project, (Path(path) for _, path in changes))
                _report(project, trigger, generate_pass(project, spec_paths), style)
    except KeyboardInterrupt:
        pass


def _trigger(project: Project, paths: Iterable[Path]) -> str:
    names = sorted({project.relative(path) for path in paths})
    if not names:
        return "change"
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return f"{names[0]}{more} changed"


def _report(project: Project, trigger: str, result: Pass, style: str) -> None:
    if result.diagnostics:
        click.echo(format_diagnostics(result.diagnostics, style), err=style == "text")
    stamp = time.strftime("%H:%M:%S")
    console.info(f"[{stamp}] {trigger}: {result.summary()}")  # for people: stderr, like generate's summary
