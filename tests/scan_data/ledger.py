"""ledger: a child flow that records its point two ways, either of which one point can spoil,
for the tests of a point whose own loader fails (tests/test_scan_run.py).

`record` stores `{"value": 10 * label}` in the results store (a `db` mapping loads it), except
for `lose_field_on`, whose outputs lack "value"; `kept` persists `0.01 * label` in a file of its own
(a raw mapping loads it), which `lose_file_on`'s run deletes after persisting it. The run itself
succeeds either way: only the composite's loader of that one point fails.
Copied into a test project's examples/flows/ by tests/test_scan_run.py.
"""

from __future__ import annotations

import os

from prefect import Flow, Parameter, task
from prefect.engine.results import LocalResult

from compiler.runtime import save_db_result

KEPT_DIR = os.path.abspath(".flowc/ledger")  # the project's (a child runs in the project root)
KEPT = "kept-{parameters[label]}.json"


@task(name="outputs")
def outputs(label: object, lose_field_on: object) -> dict:
    return {} if label == lose_field_on else {"value": 10 * label}  # type: ignore[operator]


@task(name="kept", result=LocalResult(dir=KEPT_DIR, location=KEPT), checkpoint=True)
def kept(label: object) -> object:
    return 0.01 * label  # type: ignore[operator]


@task(name="lose")
def lose(value: object, label: object, lose_file_on: object) -> None:
    """Delete this run's persisted `kept` value (its location, as `kept` wrote it)."""
    if label == lose_file_on:
        import prefect

        os.remove(os.path.join(KEPT_DIR, KEPT.format(parameters=prefect.context.parameters)))


with Flow("ledger") as flow:
    label = Parameter("label", default=0)
    lose_field_on = Parameter("lose_field_on", default=None)
    lose_file_on = Parameter("lose_file_on", default=None)
    save_db_result({"label": label}, outputs(label, lose_field_on))
    lose(kept(label), label, lose_file_on)
