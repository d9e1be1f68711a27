"""The Prefect 1 tasks generated flows and child flows import.

Each task is named as its function, so the first `save_db_result` in a flow gets the slug
`save_db_result-1`. The tasks that return references (`save_db_result`, `save_file`) persist
them with `PrefectResult`, so another flow run can load them with `get_task_run_result`.
Store access retries on `StoreUnavailableError` only (`retry_on`): a missing result fails at once.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import prefect
from prefect import task
from prefect.engine.results import PrefectResult

from compiler.runtime.files import read_file, write_file
from compiler.runtime.results import (
    DEFAULT_PROJECT_NAME,
    StoreUnavailableError,
    fetch_result_value,
    store_result,
)

DB_MAX_RETRIES_ENV = "FLOWC_DB_MAX_RETRIES"
DB_RETRY_DELAY_ENV = "FLOWC_DB_RETRY_DELAY"
DEFAULT_DB_MAX_RETRIES = 2
DEFAULT_DB_RETRY_DELAY_S = 2.0


def _store_retry_args() -> dict[str, Any]:
    """Retry settings for the tasks that reach the store; read once, when the flow is built."""
    retries = int(os.environ.get(DB_MAX_RETRIES_ENV, DEFAULT_DB_MAX_RETRIES))
    delay = float(os.environ.get(DB_RETRY_DELAY_ENV, DEFAULT_DB_RETRY_DELAY_S))
    if retries <= 0:
        return {}
    return {
        "max_retries": retries,
        "retry_delay": timedelta(seconds=delay),
        "retry_on": {StoreUnavailableError},
    }


def current_project_name() -> str:
    """The Prefect project of the running flow, else `default` (a local run has none)."""
    return prefect.context.get("project_name") or DEFAULT_PROJECT_NAME


def current_flow_id() -> str:
    """The registered flow's id; a local `flow.run()` only has its name."""
    return prefect.context.get("flow_id") or prefect.context.get("flow_name") or "local"


@task(
    name="save_db_result",
    result=PrefectResult(),
    checkpoint=True,
    **_store_retry_args(),
)
def save_db_result(
    inputs: dict, outputs: dict, project_name: str | None = None
) -> dict:
    """Store a LUME-shaped result in collection `project_name` and return its reference.

    The reference is `{"project_name", "result_type_string", "query": {"unique_hash"}}`;
    `project_name` defaults to the running flow's project.
    """
    return store_result(
        inputs,
        outputs,
        project_name=project_name or current_project_name(),
        flow_id=current_flow_id(),
    )


@task(name="load_db_result", **_store_retry_args())
def load_db_result(result_rep: dict, attribute_index: list) -> Any:
    """Load one value of a stored result: `attribute_index[0]` names a field, the rest index in.

    A missing result, field or index raises `ResultLookupError` naming the reference and path.
    """
    return fetch_result_value(result_rep, attribute_index)


@task(name="save_file", result=PrefectResult(), checkpoint=True)
def save_file(obj: Any, filename: str, file_type: str = "json") -> dict:
    """Write `obj` to `filename` and return the file reference another flow loads it with.

    `file_type`: LUME-services' own `text` (a str), `yaml`, `image` and `hdf5`, whose references
    LUME's LoadFile reads, or flowc's `json` (any JSON value) and `bytes`. The filesystem is
    `mounted` when `FLOWC_MOUNT` is set, else `local`; see `compiler.runtime.files`.
    """
    return write_file(obj, filename, file_type)


@task(name="load_file")
def load_file(file_rep: dict) -> Any:
    """Load what a file reference names; a missing or unreadable file names the reference."""
    return read_file(file_rep)
