"""Setup checks before a command starts work: one line saying what to start, not a traceback later.

A `flowc run` against a MongoDB results store that is down used to fail after ~20 s with three
tracebacks from inside the children; asking the store once, with a short timeout, before any
child starts turns that into one line.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

PING_TIMEOUT_MS = 2000


def results_store_problem() -> str | None:
    """Why the configured results store cannot be used, or None (SQLite needs no server)."""
    from compiler.runtime.results import RESULTS_DB_ENV, redacted_url

    url = os.environ.get(RESULTS_DB_ENV, "")
    if urlsplit(url).scheme not in ("mongodb", "mongodb+srv"):
        return None
    shown = f"{RESULTS_DB_ENV}={redacted_url(url)}"
    try:
        import pymongo
    except ImportError:
        return (
            f"{shown} needs the MongoDB driver: pip install 'flowc[mongo]', "
            f"or unset {RESULTS_DB_ENV} to use the embedded SQLite store"
        )
    try:
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=PING_TIMEOUT_MS, connectTimeoutMS=PING_TIMEOUT_MS)
        try:
            client.admin.command("ping")
        finally:
            client.close()
    except Exception as error:  # noqa: BLE001 - pymongo's ConnectionFailure, ConfigurationError, ...
        # pymongo appends its timeouts and topology to the cause; the cause is what helps.
        reason = " ".join(str(error).split()).split(" (configured timeouts")[0].split(", Timeout:")[0]
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        return (
            f"the results store at {shown} does not answer ({reason}); start MongoDB there "
            f"(this repository: `bash scripts/mongo.sh start`), or unset {RESULTS_DB_ENV} to use the "
            "embedded SQLite store"
        )
    return None
