"""The baseline of benchmark 5: a composition's child flows run by hand, one after another.

Reads a recipe (JSON, written by bench.py from the spec's plan) and does what a user without
flowc would type: import each child flow, `flow.run()` it with its parameters, take the mapped
values out of the parents' task results (loading db results), in the plan's order.
Imports only prefect, the child flows and compiler.runtime, as `flowc run`'s children do.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any


def main(recipe_path: str) -> int:
    started = time.perf_counter()
    with open(recipe_path, encoding="utf-8") as handle:
        steps: list[dict[str, Any]] = json.load(handle)
    from compiler.runtime import fetch_result_value

    results: dict[str, dict[str, Any]] = {}  # alias -> slug -> result
    for step in steps:
        module_name, _, attribute = step["source"].partition(":")
        flow = getattr(importlib.import_module(module_name), attribute)
        parameters = dict(step["parameters"])
        for mapped in step["inputs"]:
            value = results[mapped["parent"]][mapped["slug"]]
            if mapped["map_type"] == "db":
                value = fetch_result_value(value, mapped["attribute_index"])
            parameters[mapped["parameter"]] = value
        state = flow.run(parameters=parameters)
        if not state.is_successful():
            print(f"{step['alias']} failed: {state.message}", file=sys.stderr)
            return 1
        slugs = {task: slug for task, slug in flow.slugs.items()}
        results[step["alias"]] = {slugs[task]: task_state.result for task, task_state in state.result.items()}
    print(f"{len(steps)} flows in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
