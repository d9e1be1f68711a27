"""`flowc run -p ALIAS-PARAM=VALUE`: each value read as YAML within the spec's bounds, held to the
values policy (compiler/values.py) and checked against the parameter's type before anything runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from compiler.diagnostics import CompileError, did_you_mean
from compiler.scanplan import scan_value_problems
from compiler.values import ValueRejected, normalize, type_mismatch

if TYPE_CHECKING:
    from compiler.plan import Plan

# YAML 1.1 (the spec's dialect) reads `1e-6` as a string; on a command line it means a number.
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+\Z")
_NULLS = frozenset({"~", "null", "Null", "NULL"})


def parse_value(raw: str) -> Any:
    """A `-p` value as YAML reads it (`1000` int, `true` bool, `[1, 2]` list, `''` empty string).

    Read like a spec (compiler.sourcemap.load_yaml: the same size, nesting and alias bounds, no
    duplicate keys, no tags, no dates), then held to the values policy; ValueError says why not.
    """
    from compiler.sourcemap import load_yaml

    stripped = raw.strip()
    if _EXPONENT_FLOAT.match(stripped):
        value: Any = float(stripped)
    elif not stripped:
        return ""
    else:
        try:
            value, _ = load_yaml(raw, "-p")
        except CompileError as error:
            raise ValueError(_problem(raw, error)) from None
        if value is None and stripped not in _NULLS:
            raise ValueError(f"{_shown(raw)} reads as YAML null; quote it to pass a string, or write null")
    try:
        return normalize(value)
    except ValueRejected as error:
        raise ValueError(f"{_shown(raw)}: {error}") from None


def _problem(raw: str, error: CompileError) -> str:
    first = error.diagnostics[0]
    where = f" (line {first.line}, column {first.col})" if "\n" in raw else ""
    message = first.message
    if message == "spec is empty":
        message = "no value"
    message = message.replace("spec is larger", "value is larger").replace("a spec holds one", "a value is one")
    hint = "; quote it to pass a string" if message.startswith("YAML syntax") else ""
    return f"{_shown(raw)} is not accepted{where}: {message}{hint}"


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 60 else repr(raw[:45]) + f"... ({len(raw)} characters)"


def parse_overrides(params: tuple[str, ...], plan: Plan) -> dict[str, Any]:
    """`-p ALIAS-PARAM=VALUE` -> {name: value}; every problem in one usage error (exit 2)."""
    known = {p.name: p for p in plan.parameters}
    mapped = {
        f"{step.alias}-{value.parameter}": f"{value.parent}.{value.task_name}"
        for step in plan.steps
        for value in step.inputs
    }
    problems: list[str] = []
    overrides: dict[str, Any] = {}
    given: set[str] = set()
    for item in params:
        name, equals, raw = item.partition("=")
        name = name.strip()
        given.add(name)
        if not equals or not name:
            problems.append(f"-p {_shown(item)}: expected ALIAS-PARAM=VALUE")
            continue
        if name in mapped:
            problems.append(
                f"-p {name}: this value is mapped from {mapped[name]}, not a parameter of the composition"
            )
            continue
        if name not in known:
            hint = did_you_mean(name, known) or (
                f"; it has {', '.join(sorted(known))}" if known else "; it has no parameters"
            )
            problems.append(f"-p {name}: {plan.name} has no parameter {name!r}{hint}")
            continue
        if name in overrides:
            problems.append(f"-p {name}: given more than once")
            continue
        try:
            value = parse_value(raw)
        except ValueError as error:
            problems.append(f"-p {name}: {error}")
            continue
        parameter = known[name]
        mismatch = None if parameter.required else type_mismatch(parameter.default, value)
        if mismatch is not None:
            problems.append(f"-p {name}: {mismatch}")
            continue
        overrides[name] = value
    for parameter in plan.parameters:
        if parameter.required and parameter.name not in given:
            problems.append(
                f"missing required parameter {parameter.name!r} "
                f"(pass -p {parameter.name}=VALUE; {parameter.step}'s flow has no default for it)"
            )
    if not problems:
        problems += scan_value_problems(plan, overrides)  # the points those lists make
    if problems:
        raise click.UsageError("\n".join(problems))
    return overrides
