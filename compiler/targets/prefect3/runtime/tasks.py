"""The Prefect 3 tasks: the Prefect 1 runtime's four, with the same documents and references.

Each is named as its function. `save_db_result` and `save_file` persist their references as
JSON (`persist_result=True`), so the composite can read them back from the child's flow run by
task name. Store access is retried here on `StoreUnavailableError` only, the same way on 2.14
(which has no `retry_condition_fn`) and 3.x; a missing result fails at once.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional, TypeVar

from prefect import task

from compiler.runtime.files import read_file, write_file
from compiler.runtime.results import (
    DEFAULT_PROJECT_NAME,
    StoreUnavailableError,
    fetch_result_value,
    store_result,
)

DB_MAX_RETRIES_ENV = "FLOWC_DB_MAX_RETRIES"
DB_RETRY_DELAY_ENV = "FLOWC_DB_RETRY_DELAY"
# Prefect 3 has no projects: the results collection is this variable's, else `default`.
PROJECT_NAME_ENV = "FLOWC_PROJECT_NAME"
DEFAULT_DB_MAX_RETRIES = 2
DEFAULT_DB_RETRY_DELAY_S = 2.0

T = TypeVar("T")


def _with_store_retries(call: Callable[[], T]) -> T:
    retries = int(os.environ.get(DB_MAX_RETRIES_ENV, DEFAULT_DB_MAX_RETRIES))
    delay = float(os.environ.get(DB_RETRY_DELAY_ENV, DEFAULT_DB_RETRY_DELAY_S))
    for attempt in range(max(retries, 0) + 1):
        try:
            return call()
        except StoreUnavailableError:
            if attempt >= retries:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def current_project_name() -> str:
    return os.environ.get(PROJECT_NAME_ENV) or DEFAULT_PROJECT_NAME


def current_flow_id() -> str:
    """The deployment's id when the flow runs from one, else the flow's name (a local call)."""
    from prefect.runtime import deployment, flow_run

    return str(deployment.id or flow_run.flow_name or "local")


@task(name="save_db_result", persist_result=True, result_serializer="json")
def save_db_result(inputs: Dict[str, Any], outputs: Dict[str, Any], project_name: Optional[str] = None) -> Dict[str, Any]:
    """Store a LUME-shaped result in collection `project_name` and return its reference.

    The reference is `{"project_name", "result_type_string", "query": {"unique_hash"}}`;
    `project_name` defaults to `FLOWC_PROJECT_NAME`, else `default`.
    """
    return _with_store_retries(
        lambda: store_result(
            inputs, outputs, project_name=project_name or current_project_name(), flow_id=current_flow_id()
        )
    )


@task(name="load_db_result")
def load_db_result(result_rep: Dict[str, Any], attribute_index: list) -> Any:
    """Load one value of a stored result: `attribute_index[0]` names a field, the rest index in.

    A missing result, field or index raises `ResultLookupError` naming the reference and path.
    """
    return _with_store_retries(lambda: fetch_result_value(result_rep, attribute_index))


@task(name="save_file", persist_result=True, result_serializer="json")
def save_file(obj: Any, filename: str, file_type: str = "json") -> Dict[str, str]:
    """Write `obj` to `filename` and return the file reference another flow loads it with.

    `file_type`: `text`, `json` or `bytes`, as in `compiler.runtime.files`; the filesystem is
    `mounted` when `FLOWC_MOUNT` is set, else `local`.
    """
    return write_file(obj, filename, file_type)


@task(name="load_file")
def load_file(file_rep: Dict[str, Any]) -> Any:
    """Load what a file reference names; a missing or unreadable file names the reference."""
    return read_file(file_rep)
