"""Before a local run: the spec, its generated flow.py, the lock and the `-p` parameters, checked.

The file that runs is `generated/<name>/flow.py` exactly as it is on disk (and committed), after
checking that it is what `flowc generate` would write now: a stale file is refused, never
regenerated in memory, so what runs here is what a reviewer read and what a server registers.
No child flow is imported here: each is imported in its own process when it starts.
"""

from __future__ import annotations

import hashlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.config import Project
from compiler.diagnostics import CompileError
from compiler.lockfile import Lock
from compiler.overrides import parse_overrides

if TYPE_CHECKING:
    import prefect

    from compiler.plan import Plan

class RunSetupError(Exception):
    """Something that stops a run before anything starts; the message is one or more lines."""


@dataclass(frozen=True)
class PreparedRun:
    """Everything checked before the first child starts."""

    project: Project
    plan: Plan
    spec_display: str
    flow_path: Path
    flow_display: str
    flow_bytes: bytes
    overrides: dict[str, Any]
    parameters: dict[str, Any]  # every composite parameter, as the run will see it

    @property
    def flow_sha256(self) -> str:
        return hashlib.sha256(self.flow_bytes).hexdigest()


def prepare_run(project: Project, spec_path: Path, params: tuple[str, ...]) -> PreparedRun:
    """Check the spec, its generated file, the lock and the parameters; import no child."""
    from compiler.compile import compile_plan
    from compiler.output import load_lock

    spec_display = project.relative(spec_path)
    lock = load_lock(project)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunSetupError(f"{spec_display}:1:1: error: cannot read spec: {error}") from None
    plan = compile_plan(text, spec_display, lock)
    overrides = parse_overrides(params, plan)
    flow_path, flow_bytes = _current_flow_file(project, spec_path, plan, lock)
    _check_lock_is_current(plan, lock, project)
    _check_sources(plan, spec_display)
    parameters = {p.name: p.default for p in plan.parameters}
    parameters.update(overrides)
    return PreparedRun(
        project=project,
        plan=plan,
        spec_display=spec_display,
        flow_path=flow_path,
        flow_display=project.relative(flow_path),
        flow_bytes=flow_bytes,
        overrides=overrides,
        parameters=parameters,
    )


def _current_flow_file(project: Project, spec_path: Path, plan: Plan, lock: Lock) -> tuple[Path, bytes]:
    """The generated flow.py's bytes, refused unless `flowc generate` would write them as they are."""
    from compiler.output import build_tree

    path = project.generated_dir / plan.name / "flow.py"
    display = project.relative(path)
    spec_display = project.relative(spec_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunSetupError(
            f"{display}: error: not generated yet; run `flowc generate {spec_display}` first"
        ) from None
    tree = build_tree(project, [spec_path], lock)
    if tree.diagnostics:
        raise CompileError(tree.diagnostics)
    key = f"{plan.name}/flow.py"
    expected = tree.rendered.get(key)
    if key not in tree.fresh and (expected is None or expected.encode("utf-8") != data):
        raise RunSetupError(
            f"{display}: error: out of date with {spec_display} or the lock; "
            f"`flowc run` runs the generated file as committed, so run `flowc generate {spec_display}` "
            "(and review the diff) first"
        )
    return path, data


def _check_lock_is_current(plan: Plan, lock: Lock, project: Project) -> None:
    """A child whose interface changed since the lock would be called with the wrong parameters."""
    from compiler.lock import drifted

    keys = {f"{step.project_name}/{step.flow_name}" for step in plan.steps}
    mine = Lock(path=lock.path, flows={k: v for k, v in lock.flows.items() if k in keys})
    drift = drifted(mine, project.root, project.python)
    problems = [f"{lock.path}: error: {error}" for error in drift.errors]
    if drift.lock is not None:
        for key in sorted(keys):
            if drift.lock.flows.get(key) != mine.flows.get(key):
                problems.append(
                    f"{lock.path}: error: the interface of {key} changed since the lock was written; "
                    "run `flowc lock` and `flowc generate`"
                )
    if problems:
        raise RunSetupError("\n".join(problems))


def _check_sources(plan: Plan, spec_display: str) -> None:
    """Every step needs a source to run locally; it is imported only when that child starts."""
    problems = [
        f"{spec_display}: error: step {step.alias!r} ({step.project_name}/{step.flow_name}) has no `source:`; "
        "a local run imports each child flow from its source (module:attribute), in the child's own process"
        for step in plan.steps
        if not step.source
    ]
    if problems:
        raise RunSetupError("\n".join(problems))


def load_generated_flow(prepared: PreparedRun) -> prefect.Flow:
    """Execute exactly the bytes that were checked (no re-read, no bytecode cache in generated/)."""
    import prefect

    module = types.ModuleType(f"flowc_generated_{prepared.plan.name}")
    module.__file__ = str(prepared.flow_path)
    code = compile(prepared.flow_bytes, str(prepared.flow_path), "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 - the generated file, checked byte for byte above
    flow = module.__dict__.get("flow")
    if not isinstance(flow, prefect.Flow):
        raise RunSetupError(f"{prepared.flow_display}: error: defines no module-level prefect.Flow `flow`")
    return flow
