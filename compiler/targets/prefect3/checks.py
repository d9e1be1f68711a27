"""What a spec may ask for that has no Prefect 3 form: located errors, before anything renders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.diagnostics import Diagnostic

if TYPE_CHECKING:
    from compiler.lock import Lock
    from compiler.plan import Plan
    from compiler.spec import ParsedSpec

# The spec's default base image is Prefect 1's; a prefect3 spec that names none gets this one
# (pinned, as every base image must be: the image tag is a digest of the inputs).
PREFECT3_BASE_IMAGE = "prefecthq/prefect:3.9.1-python3.11"
PREFECT1_IMAGE_PREFIX = "prefecthq/prefect:1."


def base_image(plan: Plan) -> str:
    from compiler.spec import DEFAULT_BASE_IMAGE

    return PREFECT3_BASE_IMAGE if plan.base_image == DEFAULT_BASE_IMAGE else plan.base_image


def check_plan(plan: Plan, parsed: ParsedSpec, lock: Lock) -> list[Diagnostic]:
    where = parsed.where
    problems = []
    if ("run_config",) in where.values:
        problems.append(
            where.at(
                ("run_config",),
                "`run_config` is Prefect 1's; with target prefect3 the work pool decides where runs go "
                "(`work_pool:`, default 'default')",
                key=True,
            )
        )
    if ("base_image",) in where.values and plan.base_image.startswith(PREFECT1_IMAGE_PREFIX):
        problems.append(
            where.at(("base_image",), f"{plan.base_image!r} is a Prefect 1 image; target prefect3 needs Prefect 2.14 or 3.x")
        )
    for index, flow in enumerate(parsed.spec.composing_flows):
        interface = lock.get(flow.project_name, flow.name)
        if interface is not None and interface.prefect != 3:
            problems.append(
                where.at(
                    ("composing_flows", index, "name"),
                    f"flow {flow.lock_key!r} is a Prefect {interface.prefect} flow in the lock; a prefect3 spec "
                    "composes Prefect 3 flows (locked from a Prefect 3 source)",
                )
            )
        for parameter, mapped in flow.mapped_parameters.items():
            if mapped.parent_task_slug is not None:
                problems.append(
                    where.at(
                        ("composing_flows", index, "mapped_parameters", parameter, "parent_task_slug"),
                        "Prefect 3 tasks have no slugs; name the task with parent_task_name",
                        key=True,
                    )
                )
    return problems
