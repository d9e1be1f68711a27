"""The pure pipeline: spec text + lock -> generated files. No I/O happens here."""

from __future__ import annotations

import gc
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from compiler.diagnostics import CompileError, Diagnostic
from compiler.fingerprint import inputs_digest, spec_data
from compiler.lockfile import Lock
from compiler.targets import DEFAULT_TARGET, effective_target

if TYPE_CHECKING:
    from compiler.plan import Plan
    from compiler.sourcemap import Loaded

SAFE_SPEC_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml\Z")


def lock_entries(lock: Lock) -> dict[str, Any]:
    """What of each lock entry generated files depend on."""
    return {key: {"source": flow.source, **flow.interface_data()} for key, flow in lock.flows.items()}


def spec_target(data: Any, default_target: str = DEFAULT_TARGET) -> str:
    """The target a spec compiles for: its own `target:`, else the project's default."""
    return effective_target(data.get("target") if isinstance(data, dict) else None, default_target)


def spec_digest(text: str, spec_path: str, entries: Mapping[str, Any], default_target: str = DEFAULT_TARGET) -> str:
    data = spec_data(text)
    return inputs_digest(spec_path, data, entries, spec_target(data, default_target))


def compile_spec(
    text: str,
    spec_path: str,
    lock: Lock,
    entries: Mapping[str, Any] | None = None,
    default_target: str = DEFAULT_TARGET,
    digest: str | None = None,
    loaded: Loaded | None = None,
) -> dict[str, str]:
    """Compile one spec into {"<name>/<file>": text}; raises CompileError listing every problem.

    `spec_path` is the spec's path relative to the project root, as it appears in headers;
    `default_target` is the project's `[tool.flowc] target`, which a spec's `target:` overrides;
    `digest`, when the caller computed it already, is the spec's spec_digest (saves a YAML load);
    `loaded`, sourcemap.load_once(text, spec_path) when the caller parsed the spec already.
    """
    from compiler import targets
    from compiler.planner import build_plan
    from compiler.spec import parse_spec

    _check_spec_path(spec_path)
    _check_target(default_target)
    with _no_cycle_collection():
        parsed = parse_spec(text, spec_path, loaded)
        if digest is None:
            digest = spec_digest(text, spec_path, entries if entries is not None else lock_entries(lock), default_target)
        plan = build_plan(parsed, lock, digest)
        target = plan.target or default_target
        problems = targets.check(plan, parsed, lock, target)
        if problems:
            raise CompileError(problems)
        return {f"{plan.name}/{name}": body for name, body in targets.render(plan, target).items()}


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector walks every live object each time it runs, and a large spec's
    syntax trees (YAML nodes, black's) are many live objects: with it on, compiling grew as
    n^1.2 in the number of steps. Compiling creates little cyclic garbage, freed once it is on again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# One spec compiles in ~15-40 ms (black is most of it); below this many, starting workers costs
# more than it saves.
PARALLEL_MIN_SPECS = 8
JOBS_ENV = "FLOWC_JOBS"

Compiled = Union[dict[str, str], list[Diagnostic]]
_shared: tuple[Lock, Mapping[str, Any], str, Mapping[str, Loaded]] | None = None  # what forked workers inherit


def compile_specs(
    specs: Sequence[tuple[str, str] | tuple[str, str, str]],
    lock: Lock,
    entries: Mapping[str, Any],
    progress: Callable[[], None] | None = None,
    default_target: str = DEFAULT_TARGET,
    loaded: Mapping[str, Loaded] | None = None,
) -> list[Compiled]:
    """compile_spec over many (text, spec_path[, digest]): files, or the diagnostics, per spec, in order.

    Specs compile independently, so with enough of them they are spread over the machine's
    cores (forked workers; `FLOWC_JOBS=1` turns that off). Each result is the same pure
    function of its spec whichever process computes it, so the output never depends on it.
    `progress` is called once per compiled spec (a progress bar's tick); `loaded` holds the specs
    the caller parsed already, by spec path (forked workers inherit it: nothing is pickled).
    """
    global _shared
    tick = progress or (lambda: None)
    loaded = loaded or {}
    workers = _worker_count(len(specs))
    if workers <= 1:
        return [_ticked(_compile_one(spec, lock, entries, default_target, loaded), tick) for spec in specs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Compile the first spec here: it imports black, jinja2 and pydantic once, before the fork.
    first = _ticked(_compile_one(specs[0], lock, entries, default_target, loaded), tick)
    _shared = (lock, entries, default_target, loaded)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            chunks = max(1, len(specs) // (workers * 8))
            rest = [_ticked(files, tick) for files in pool.map(_compile_shared, specs[1:], chunksize=chunks)]
    finally:
        _shared = None
    return [first, *rest]


def _ticked(compiled: Compiled, tick: Callable[[], None]) -> Compiled:
    tick()
    return compiled


def _worker_count(specs: int) -> int:
    configured = os.environ.get(JOBS_ENV, "")
    if configured.isdigit() and int(configured) > 0:
        cores = int(configured)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # fork() is only safe while this is the process's only thread (not, e.g., under --watch).
    if specs < PARALLEL_MIN_SPECS or threading.active_count() > 1 or not hasattr(os, "fork"):
        return 1
    return min(cores, specs // (PARALLEL_MIN_SPECS // 2))


def _compile_one(
    spec: tuple[str, str] | tuple[str, str, str],
    lock: Lock,
    entries: Mapping[str, Any],
    default_target: str,
    loaded: Mapping[str, Loaded],
) -> Compiled:
    text, spec_path, *digest = spec
    try:
        return compile_spec(
            text, spec_path, lock, entries, default_target, digest[0] if digest else None, loaded.get(spec_path)
        )
    except CompileError as error:
        return list(error.diagnostics)


def _compile_shared(spec: tuple[str, str] | tuple[str, str, str]) -> Compiled:
    assert _shared is not None, "compile_specs sets the lock before forking"
    return _compile_one(spec, *_shared)


def compile_plan(text: str, spec_path: str, lock: Lock, default_target: str = DEFAULT_TARGET) -> Plan:
    """The validated plan of one spec (same checks as compile_spec, without rendering)."""
    from compiler import targets
    from compiler.planner import build_plan
    from compiler.spec import parse_spec

    _check_spec_path(spec_path)
    _check_target(default_target)
    parsed = parse_spec(text, spec_path)
    plan = build_plan(parsed, lock, spec_digest(text, spec_path, lock_entries(lock), default_target))
    problems = targets.check(plan, parsed, lock, plan.target or default_target)
    if problems:
        raise CompileError(problems)
    return plan


def _check_target(target: str) -> None:
    from compiler.targets import TARGETS

    if target not in TARGETS:
        message = f"[tool.flowc] target {target!r} is not a target; known: {', '.join(TARGETS)}"
        raise CompileError([Diagnostic("pyproject.toml", 1, 1, message)])


def _check_spec_path(spec_path: str) -> None:
    """The path is written into headers and a Dockerfile label, so it must be plain."""
    if spec_path.startswith("/") or ".." in spec_path.split("/"):
        raise CompileError(
            [Diagnostic(spec_path, 1, 1, "spec is outside the project; put it (or a link to it) under specs/")]
        )
    if not SAFE_SPEC_PATH.match(spec_path):
        raise CompileError(
            [Diagnostic(spec_path, 1, 1, "spec file paths may hold only letters, digits and '_./-', and end in .yaml")]
        )
