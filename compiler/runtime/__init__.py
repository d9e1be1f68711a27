"""What generated flows and child-flow authors import at run time.

Depends on prefect and the standard library only (pymongo is imported when a `mongodb://` store
is used), never on the compiler's stages, so an image needs nothing else to run a flow.

Environment:
- `FLOWC_RESULTS_DB`: `sqlite:///PATH` (default `sqlite:///.flowc/results.db`, relative to the
  working directory) or `mongodb://HOST:PORT/DATABASE` (default database `results`).
- `FLOWC_MOUNT`: `HOST_PATH:MOUNT_ALIAS` for the `mounted` filesystem (see `files`).
- `FLOWC_DB_MAX_RETRIES` (default 2), `FLOWC_DB_RETRY_DELAY` (seconds, default 2): retries of
  the store tasks when the store is unreachable; read when this package is imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.runtime.files import (
        FILE_TYPES,
        LUME_FILE_TYPE_STRINGS,
        MOUNT_ENV,
        BytesFile,
        FileReferenceError,
        FileType,
        HDF5File,
        ImageFile,
        JSONFile,
        Mount,
        TextFile,
        YAMLFile,
        file_path,
        read_file,
        write_file,
    )
    from compiler.runtime.children import run_child_flow
    from compiler.runtime.executor import LocalThreadExecutor
    from compiler.runtime.flow import IndexedFlow
    from compiler.runtime.results import (
        DEFAULT_RESULTS_DB,
        GENERIC_RESULT_TYPE,
        LEGACY_GENERIC_RESULT_TYPE,
        RESULT_FIELDS,
        RESULTS_DB_ENV,
        MongoResultsStore,
        ResultLookupError,
        ResultsStore,
        SQLiteResultsStore,
        StoreUnavailableError,
        fetch_result_value,
        open_results_store,
        result_document,
        results_db_url,
        results_store,
        store_result,
        unique_result_hash,
    )
    from compiler.runtime.scans import (
        MAX_SCAN_POINTS,
        ScanError,
        ScanSlots,
        expand_points,
        point_name,
        point_names,
        point_parameters,
        scan_parameters,
        scan_points,
    )
    from compiler.runtime.tasks import load_db_result, load_file, save_db_result, save_file

# Which submodule defines each name. The names are imported on first use (PEP 562), so that the
# Prefect-free modules (`files`, `results`) import without Prefect 1: the prefect3 runtime
# (compiler/targets/prefect3/runtime) shares them.
_SUBMODULES = {
    "files": (
        "FILE_TYPES",
        "LUME_FILE_TYPE_STRINGS",
        "MOUNT_ENV",
        "BytesFile",
        "FileReferenceError",
        "FileType",
        "HDF5File",
        "ImageFile",
        "JSONFile",
        "Mount",
        "TextFile",
        "YAMLFile",
        "file_path",
        "read_file",
        "write_file",
    ),
    "children": ("run_child_flow",),
    "executor": ("LocalThreadExecutor",),
    "flow": ("IndexedFlow",),
    "results": (
        "DEFAULT_RESULTS_DB",
        "GENERIC_RESULT_TYPE",
        "LEGACY_GENERIC_RESULT_TYPE",
        "RESULT_FIELDS",
        "RESULTS_DB_ENV",
        "MongoResultsStore",
        "ResultLookupError",
        "ResultsStore",
        "SQLiteResultsStore",
        "StoreUnavailableError",
        "fetch_result_value",
        "open_results_store",
        "result_document",
        "results_db_url",
        "results_store",
        "store_result",
        "unique_result_hash",
    ),
    "scans": (
        "MAX_SCAN_POINTS",
        "ScanError",
        "ScanSlots",
        "expand_points",
        "point_name",
        "point_names",
        "point_parameters",
        "scan_parameters",
        "scan_points",
    ),
    "tasks": (
        "load_db_result",
        "load_file",
        "save_db_result",
        "save_file",
    ),
}
_MODULE_OF = {name: module for module, names in _SUBMODULES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_RESULTS_DB",
    "FILE_TYPES",
    "GENERIC_RESULT_TYPE",
    "LEGACY_GENERIC_RESULT_TYPE",
    "LUME_FILE_TYPE_STRINGS",
    "MAX_SCAN_POINTS",
    "MOUNT_ENV",
    "RESULTS_DB_ENV",
    "RESULT_FIELDS",
    "BytesFile",
    "FileReferenceError",
    "FileType",
    "HDF5File",
    "ImageFile",
    "IndexedFlow",
    "JSONFile",
    "LocalThreadExecutor",
    "MongoResultsStore",
    "Mount",
    "ResultLookupError",
    "ResultsStore",
    "ScanError",
    "ScanSlots",
    "SQLiteResultsStore",
    "StoreUnavailableError",
    "TextFile",
    "YAMLFile",
    "expand_points",
    "fetch_result_value",
    "file_path",
    "load_db_result",
    "load_file",
    "open_results_store",
    "point_name",
    "point_names",
    "point_parameters",
    "read_file",
    "result_document",
    "results_db_url",
    "results_store",
    "run_child_flow",
    "save_db_result",
    "save_file",
    "scan_parameters",
    "scan_points",
    "store_result",
    "unique_result_hash",
    "write_file",
]
