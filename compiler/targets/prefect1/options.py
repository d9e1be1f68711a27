"""The per-child run options of a step (DESIGN.md "Per-child run options") as flow.py passes them
to `run_child_flow` and as the generated README's steps table shows them."""

from __future__ import annotations

from typing import Callable

from compiler.plan import Step
from compiler.values import literal


def run_options(step: Step, wrap: Callable[[str], str]) -> list[dict[str, str]]:
    """`run_child_flow`'s per-child options, only those the spec sets (DESIGN.md); `wrap` makes
    each value `unmapped(...)` for a per-point step."""
    options = []
    if step.labels is not None:
        options.append({"name": "labels", "value": wrap(literal(list(step.labels)))})
    if step.retries:
        options.append({"name": "retries", "value": wrap(literal(step.retries))})
        if step.retry_delay_s:
            options.append({"name": "retry_delay", "value": wrap(literal(float(step.retry_delay_s)))})
    if step.timeout_s is not None:
        options.append({"name": "timeout", "value": wrap(literal(float(step.timeout_s)))})
    return options


def retries_cell(step: Step) -> str:
    if not step.retries:
        return "0"
    return f"{step.retries}, {duration_text(step.retry_delay_s)} apart" if step.retry_delay_s else str(step.retries)


def duration_text(seconds: float) -> str:
    """`7200.0` -> `2 h`, `90.0` -> `90 s`: the largest unit that divides it."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
