"""The backends: one per target, each turning the same target-neutral Plan into its project.

Kept light (no jinja2, black or prefect): the fast path of generate/check asks which files a
target writes and which inputs its output depends on; a backend's renderer is imported only
when a spec of that target is compiled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from compiler.diagnostics import Diagnostic
    from compiler.lock import Lock
    from compiler.plan import Plan
    from compiler.spec import ParsedSpec

TARGETS = ("prefect1", "prefect3")
DEFAULT_TARGET = "prefect1"

# The files each target writes under generated/<name>/.
GENERATED_FILES = {
    "prefect1": ("flow.py", "Dockerfile", "README.md"),
    "prefect3": ("flow.py", "prefect.yaml", "Dockerfile", "README.md"),
}
# Templates (relative to templates/) and package files (relative to compiler/) whose content
# shapes a target's output or image, beyond what every target shares; hashed into headers.
TEMPLATES = {
    "prefect1": ("prefect1/flow.py.j2", "prefect1/Dockerfile.j2", "prefect1/README.md.j2"),
    "prefect3": ("prefect3/flow.py.j2", "prefect3/prefect.yaml.j2", "prefect3/Dockerfile.j2", "prefect3/README.md.j2"),
}
SOURCES = {
    "prefect1": ("__init__.py", "keys.py", "runtime/*.py"),
    # The prefect3 runtime shares the Prefect-free document and reference modules of compiler/runtime.
    "prefect3": (
        "__init__.py",
        "runtime/__init__.py",
        "runtime/files.py",
        "runtime/results.py",
        "targets/__init__.py",
        "targets/prefect3/*.py",
        "targets/prefect3/runtime/*.py",
    ),
}


def effective_target(spec_target: object, default: str) -> str:
    """The spec's own `target:` when it names one, else the project's `[tool.flowc] target`."""
    return spec_target if isinstance(spec_target, str) and spec_target in TARGETS else default


def render(plan: Plan, target: str) -> dict[str, str]:
    """The generated project's files, relative to generated/<name>/."""
    return _renderer(target)(plan)


def check(plan: Plan, parsed: ParsedSpec, lock: Lock, target: str) -> list[Diagnostic]:
    """What the spec asks for that this target has no form for, located in the spec."""
    if target == "prefect3":
        from compiler.targets.prefect3.checks import check_plan
    elif target == "prefect1":
        from compiler.targets.prefect1.checks import check_plan
    else:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    return check_plan(plan, parsed, lock)


def _renderer(target: str) -> Callable[[Plan], dict[str, str]]:
    if target == "prefect3":
        from compiler.targets.prefect3.render import render_plan
    elif target == "prefect1":
        from compiler.targets.prefect1.render import render_plan
    else:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    return render_plan
