"""The pure pipeline: spec text + lock -> generated files. No I/O happens here."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

from compiler.diagnostics import CompileError, Diagnostic
from compiler.fingerprint import inputs_digest, spec_data
from compiler.lock import Lock

if TYPE_CHECKING:
    from compiler.plan import Plan

SAFE_SPEC_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml\Z")


def lock_entries(lock: Lock) -> dict[str, Any]:
    """What of each lock entry generated files depend on."""
    return {key: {"source": flow.source, **flow.interface_data()} for key, flow in lock.flows.items()}


def spec_digest(text: str, spec_path: str, entries: Mapping[str, Any]) -> str:
    return inputs_digest(spec_path, spec_data(text), entries)


def compile_spec(text: str, spec_path: str, lock: Lock, entries: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Compile one spec into {"<name>/<file>": text}; raises CompileError listing every problem.

    `spec_path` is the spec's path relative to the project root, as it appears in headers.
    """
    from compiler.plan import build_plan
    from compiler.render import render_plan
    from compiler.spec import parse_spec

    _check_spec_path(spec_path)
    parsed = parse_spec(text, spec_path)
    digest = spec_digest(text, spec_path, entries if entries is not None else lock_entries(lock))
    plan = build_plan(parsed, lock, digest)
    return {f"{plan.name}/{name}": body for name, body in render_plan(plan).items()}


def compile_plan(text: str, spec_path: str, lock: Lock) -> Plan:
    """The validated plan of one spec (same checks as compile_spec, without rendering)."""
    from compiler.plan import build_plan
    from compiler.spec import parse_spec

    _check_spec_path(spec_path)
    parsed = parse_spec(text, spec_path)
    return build_plan(parsed, lock, spec_digest(text, spec_path, lock_entries(lock)))


def _check_spec_path(spec_path: str) -> None:
    """The path is written into headers and a Dockerfile label, so it must be plain."""
    if not SAFE_SPEC_PATH.match(spec_path) or ".." in spec_path.split("/"):
        raise CompileError(
            [Diagnostic(spec_path, 1, 1, "spec file paths may hold only letters, digits and '_./-', and end in .yaml")]
        )
