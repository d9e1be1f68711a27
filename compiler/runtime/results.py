"""The results store: LUME-shaped result documents in SQLite (default) or MongoDB.

Plain functions, no Prefect: the tasks in `compiler.runtime.tasks` wrap them, and tests and the
local runner call them directly. The store is chosen by the `FLOWC_RESULTS_DB` URL, read at call
time so one process can switch stores between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

RESULTS_DB_ENV = "FLOWC_RESULTS_DB"
DEFAULT_RESULTS_DB = "sqlite:///.flowc/results.db"
DEFAULT_MONGODB_DATABASE = "results"
DEFAULT_PROJECT_NAME = "default"
# What LUME-services writes for its generic result (`f"{module}.{class}"`, with a dot): LUME's
# LoadDBResult imports the class named here. Earlier flowc releases wrote the colon form; flowc
# loads a result by its query alone, so references of either form load.
GENERIC_RESULT_TYPE = "lume_services.results.generic.Result"
LEGACY_GENERIC_RESULT_TYPE = "lume_services.results.generic:Result"
# The fields LUME's Result hashes into unique_hash, in its order (`Result.unique_on`).
UNIQUE_ON = ("inputs", "outputs", "flow_id")
RESULT_FIELDS = (
    "flow_id",
    "inputs",
    "outputs",
    "date_modified",
    "unique_hash",
    "result_type_string",
)
# Fail fast on an unreachable server; Prefect retries the task instead of pymongo waiting 30 s.
MONGODB_SERVER_SELECTION_TIMEOUT_MS = 5000


class StoreUnavailableError(ConnectionError):
    """The store could not be reached or was busy: worth retrying, unlike a missing result."""


class ResultLookupError(LookupError):
    """A result reference or its attribute path does not resolve; never worth retrying."""


class ResultsStore(Protocol):
    """What the tasks need from a store: LUME's results database reduced to two calls."""

    def insert(self, collection: str, document: Mapping[str, Any]) -> None: ...

    def find_one(
        self, collection: str, query: Mapping[str, Any]
    ) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def results_db_url(url: str | None = None) -> str:
    """The store URL in force: the argument, else `FLOWC_RESULTS_DB`, else the SQLite default."""
    return url or os.environ.get(RESULTS_DB_ENV) or DEFAULT_RESULTS_DB


def results_store(url: str | None = None) -> ResultsStore:
    """Open the store named by `url` (default: `results_db_url()`); close it when done."""
    url = results_db_url(url)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SQLiteResultsStore(_sqlite_path(url))
    if scheme in ("mongodb", "mongodb+srv"):
        return MongoResultsStore(url)
    raise ValueError(
        f"{RESULTS_DB_ENV}={url!r} is not a results store URL: "
        "use sqlite:///PATH or mongodb://HOST:PORT/DATABASE"
    )


@contextmanager
def open_results_store(url: str | None = None) -> Iterator[ResultsStore]:
    """`results_store` as a context manager, so connections never outlive a task."""
    store = results_store(url)
    try:
        yield store
    finally:
        store.close()


def _sqlite_path(url: str) -> Path:
    """`sqlite:///rel/path` is relative to the working directory, `sqlite:////abs` absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        raise ValueError(
            f"{RESULTS_DB_ENV}={url!r}: a SQLite store is written sqlite:///PATH"
        )
    path = url[len(prefix) :]
    if path == ":memory:":
        raise ValueError(
            f"{RESULTS_DB_ENV}={url!r}: an in-memory database would forget every result "
            "between tasks; name a file"
        )
    return Path(path).absolute()


def _encode_extended(value: object) -> object:
    """Keep datetimes typed in JSON the way MongoDB's extended JSON does."""
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_extended(obj: dict[str, Any]) -> object:
    if len(obj) == 1 and "$date" in obj and isinstance(obj["$date"], str):
        return datetime.fromisoformat(obj["$date"])
    return obj


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Equality on top-level or dotted fields: the subset of MongoDB queries LUME uses."""
    for key, expected in query.items():
        value: object = document
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return False
            value = value[part]
        if value != expected:
            return False
    return True


class SQLiteResultsStore:
    """One table of JSON documents keyed by collection and unique_hash.

    A connection per call, WAL and a busy timeout let threads and processes write at once.
    """

    BUSY_TIMEOUT_S = 30.0

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"SQLiteResultsStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(
                f"cannot open results database {str(self.path)!r}: {exc}"
            ) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " collection TEXT NOT NULL,"
                " unique_hash TEXT,"
                " document TEXT NOT NULL,"
                " UNIQUE (collection, unique_hash))"
            )
            with conn:
                yield conn
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(
                f"results database {str(self.path)!r} is unavailable: {exc}"
            ) from exc
        finally:
            conn.close()

    def insert(self, collection: str, document: Mapping[str, Any]) -> None:
        """Insert, replacing a document with the same unique_hash (reruns are idempotent)."""
        text = json.dumps(dict(document), default=_encode_extended, sort_keys=True)
        unique_hash = document.get("unique_hash")
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO results (collection, unique_hash, document) VALUES (?, ?, ?)"
                " ON CONFLICT (collection, unique_hash) DO UPDATE"
                " SET document = excluded.document",
                (collection, unique_hash, text),
            )

    def find_one(
        self, collection: str, query: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        with self._connect() as conn:
            if set(query) == {"unique_hash"}:
                rows = conn.execute(
                    "SELECT document FROM results WHERE collection = ? AND unique_hash = ?",
                    (collection, query["unique_hash"]),
                )
            else:
                rows = conn.execute(
                    "SELECT document FROM results WHERE collection = ? ORDER BY id",
                    (collection,),
                )
            for (text,) in rows:
                document = json.loads(text, object_hook=_decode_extended)
                if _matches(document, query):
                    return document
        return None

    def collections(self) -> list[str]:
        """Collection names, sorted; for tests and inspection."""
        with self._connect() as conn:
            return [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT collection FROM results ORDER BY collection"
                )
            ]

    def close(self) -> None:
        """Nothing to close: each call opened and closed its own connection."""


class MongoResultsStore:
    """LUME-services' results database: one collection per project, same documents."""

    def __init__(self, url: str) -> None:
        try:
            import pymongo  # lazily: only deployments that use MongoDB need the driver
        except ImportError:
            raise ImportError(
                f"{RESULTS_DB_ENV}={redacted_url(url)} needs the MongoDB driver, which is not installed: "
                "pip install 'flowc[mongo]' (or pymongo; in an image, use a base image that has it), "
                "or unset it to use the embedded SQLite store"
            ) from None

        options = {k.lower() for k in parse_qs(urlsplit(url).query)}
        kwargs: dict[str, Any] = {"tz_aware": True}
        if "serverselectiontimeoutms" not in options:
            kwargs["serverSelectionTimeoutMS"] = MONGODB_SERVER_SELECTION_TIMEOUT_MS
        self.url = url
        self._client = pymongo.MongoClient(url, **kwargs)
        self._database = self._client.get_default_database(
            default=DEFAULT_MONGODB_DATABASE
        )

    def __repr__(self) -> str:
        return f"MongoResultsStore(database={self._database.name!r})"

    @contextmanager
    def _unavailable_as_retryable(self) -> Iterator[None]:
        from pymongo.errors import ConnectionFailure

        try:
            yield
        except ConnectionFailure as exc:
            raise StoreUnavailableError(
                f"results database {self._database.name!r} is unreachable: {exc}"
            ) from exc

    def insert(self, collection: str, document: Mapping[str, Any]) -> None:
        """Insert, replacing a document with the same unique_hash (reruns are idempotent)."""
        document = dict(document)  # pymongo adds `_id` to what it is given
        with self._unavailable_as_retryable():
            table = self._database[collection]
            existing = None
            if "unique_hash" in document:
                existing = table.find_one({"unique_hash": document["unique_hash"]}, {"_id": 1})
            if existing is None:
                # insert_one, as LUME does: `_id` leads the document, on any server.
                table.insert_one(document)
            else:
                table.replace_one({"_id": existing["_id"]}, document)

    def find_one(
        self, collection: str, query: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        with self._unavailable_as_retryable():
            document = self._database[collection].find_one(dict(query), {"_id": 0})
        return None if document is None else dict(document)

    def collections(self) -> list[str]:
        with self._unavailable_as_retryable():
            return sorted(self._database.list_collection_names())

    def close(self) -> None:
        self._client.close()


def _lume_jsonable(value: object) -> object:
    """LUME's `get_jsonable_dict`: arrays become lists and data frames their JSON, in dicts.

    Recognised by type name, so neither NumPy nor pandas is imported for it.
    """
    kind = type(value)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return value.tolist()  # type: ignore[attr-defined]
    if kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas"):
        return value.to_json()  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {key: _lume_jsonable(item) for key, item in value.items()}
    return value


def unique_result_hash(
    inputs: Mapping[str, Any], outputs: Mapping[str, Any], flow_id: str
) -> str:
    """The `unique_hash` LUME-services gives a result, computed the way it computes it.

    LUME's `fingerprint_dict` of `{inputs, outputs, flow_id}` (`Result.unique_on`, in that
    order): the md5 of `json.dumps` with its default separators, keys in the order given.
    So the same values saved by LUME and by flowc under the same flow_id get the same hash.
    Values JSON cannot hold fail as they do in LUME, but for datetimes (MongoDB's `$date`).
    """
    fields = {"inputs": dict(inputs), "outputs": dict(outputs), "flow_id": flow_id}
    text = json.dumps(_lume_jsonable(fields), default=_encode_extended)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def result_document(
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    flow_id: str,
    result_type_string: str = GENERIC_RESULT_TYPE,
    date_modified: datetime | None = None,
) -> dict[str, Any]:
    """The document LUME-services' generic Result stores, with exactly its fields."""
    if date_modified is None:
        now = datetime.now(timezone.utc)
        # MongoDB keeps milliseconds; truncating here makes both stores return equal documents.
        date_modified = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return {
        "flow_id": flow_id,
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "date_modified": date_modified,
        "unique_hash": unique_result_hash(inputs, outputs, flow_id),
        "result_type_string": result_type_string,
    }


def store_result(
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    project_name: str,
    flow_id: str,
    url: str | None = None,
) -> dict[str, Any]:
    """Insert a result document into collection `project_name` and return its reference."""
    if not isinstance(inputs, Mapping) or not isinstance(outputs, Mapping):
        raise TypeError(
            "save_db_result takes dicts: inputs is "
            f"{type(inputs).__name__}, outputs is {type(outputs).__name__}"
        )
    if not project_name:
        raise ValueError("save_db_result needs a project_name to name the collection")
    document = result_document(inputs, outputs, flow_id=flow_id)
    with open_results_store(url) as store:
        store.insert(project_name, document)
    return {
        "project_name": project_name,
        "result_type_string": document["result_type_string"],
        "query": {"unique_hash": document["unique_hash"]},
    }


def _describe_path(path: Sequence[object]) -> str:
    return " -> ".join(repr(part) for part in path)


def _index_into(
    value: object, index: object, reference: str, path: Sequence[object]
) -> object:
    """One step of LUME's attribute_index: a dict key, or an int (or digit string) list index."""
    where = f"{reference} has no {_describe_path(path)}"
    if isinstance(value, Mapping):
        if isinstance(index, Hashable) and index in value:
            return value[index]
        if isinstance(index, int) and str(index) in value:
            return value[str(index)]
        available = ", ".join(sorted(str(key) for key in value)) or "none"
        raise ResultLookupError(
            f"{where} (missing key {index!r}; available: {available})"
        )
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        try:
            position = int(index)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ResultLookupError(
                f"{where} (a list is indexed by integers, not {index!r})"
            ) from None
        if not -len(value) <= position < len(value):
            raise ResultLookupError(
                f"{where} (index {position} out of range for a list of length {len(value)})"
            )
        return value[position]
    raise ResultLookupError(
        f"{where} ({_describe_path(path[:-1])} is a {type(value).__name__}, "
        "which cannot be indexed)"
    )


def fetch_result_value(
    result_rep: Mapping[str, Any],
    attribute_index: Sequence[object],
    url: str | None = None,
) -> object:
    """Find the result a reference names and follow `attribute_index` into it (LUME semantics)."""
    if not (
        isinstance(result_rep, Mapping)
        and isinstance(result_rep.get("project_name"), str)
        and isinstance(result_rep.get("query"), Mapping)
    ):
        raise ResultLookupError(
            f"{result_rep!r} is not a result reference: expected a dict with "
            "'project_name' and 'query', as save_db_result returns"
        )
    if isinstance(attribute_index, (str, bytes)) or not attribute_index:
        raise ValueError(
            f"attribute_index must be a non-empty list whose first item names a field of the "
            f"result ({', '.join(RESULT_FIELDS)}), got {attribute_index!r}"
        )
    collection = result_rep["project_name"]
    query = dict(result_rep["query"])
    with open_results_store(url) as store:
        document = store.find_one(collection, query)
    if document is None:
        raise ResultLookupError(
            f"no result matches {query!r} in collection {collection!r}"
        )
    reference = f"result {query!r} in collection {collection!r}"
    value: object = document
    path: list[object] = []
    for index in attribute_index:
        path.append(index)
        value = _index_into(value, index, reference, path)
    return value


def redacted_url(url: str) -> str:
    """A store URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
