"""The prefect1 target's own checks: what a prefect1 spec may not ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.diagnostics import Diagnostic

if TYPE_CHECKING:
    from compiler.lock import Lock
    from compiler.plan import Plan
    from compiler.spec import ParsedSpec


def check_plan(plan: Plan, parsed: ParsedSpec, lock: Lock) -> list[Diagnostic]:
    """The keys that only mean something to prefect3, and Prefect 3 children, in a prefect1 spec."""
    where = parsed.where
    problems = []
    if ("work_pool",) in where.values:
        problems.append(where.at(("work_pool",), "`work_pool` applies to target prefect3 only", key=True))
    for index, flow in enumerate(parsed.spec.composing_flows):
        if ("composing_flows", index, "deployment") in where.values:
            problems.append(
                where.at(("composing_flows", index, "deployment"), "`deployment` applies to target prefect3 only", key=True)
            )
        interface = lock.get(flow.project_name, flow.name)
        if interface is not None and interface.prefect != 1:
            problems.append(
                where.at(
                    ("composing_flows", index, "name"),
                    f"flow {flow.lock_key!r} is a Prefect {interface.prefect} flow in the lock; "
                    "compose it from a spec with `target: prefect3`",
                )
            )
    return problems
