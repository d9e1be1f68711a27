"""Run keys: one digest per child run (per scan point) of what determines its result.

A key covers the child's identity (project, flow name, and a version: the digest of its source
closure for local runs, the registered flow's id on a server), the parameter values it is started
with (mapped values by their content, or by the reference a file/db mapping passes), and its scan
point. It does not cover what a child reads by itself (environment variables, files it opens,
databases it queries, the clock) nor the side effects of an order-only `depends_on` parent;
`flowc run --resume` therefore re-runs every descendant of a child that ran again.

Target-neutral and standard library only: the compiler, the local runner and the runtimes of both
targets import it (it runs inside flow images and LUME's Python 3.9 environment too).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

KEY_VERSION = 1
KEY_PREFIX = "sha256:"


def child_identity(project_name: str, flow_name: str, version: str | None) -> dict[str, Any]:
    """Who a child is: `version` is its source digest (local) or registered flow id (server)."""
    return {"project": project_name, "flow": flow_name, "version": version}


def run_key(
    identity: Mapping[str, Any],
    parameters: Mapping[str, Any],
    point: Mapping[str, Any] | None = None,
) -> str:
    """The key of one child run: equal inputs give equal keys in any process, on any machine."""
    document = {
        "key_version": KEY_VERSION,
        "child": canonical(identity),
        "parameters": canonical(dict(parameters)),
        "point": canonical(dict(point)) if point is not None else None,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return KEY_PREFIX + hashlib.sha256(encoded.encode("ascii")).hexdigest()


def idempotency_key(scope: str, step: str, key: str, attempt: int) -> str:
    """The backend idempotency key of attempt `attempt` (0, 1, ...) at `key` in one composite run.

    `scope` is the composite's own flow run id: a retried or restarted orchestrator (same flow
    run) asks for the same keys, so it finds the child runs it already started; another run of
    the composite starts its own. Backends never let a key be reused for a new run (prefect#8847),
    so a failed run is left behind by moving to the next attempt's key.
    """
    digest = key[len(KEY_PREFIX) :] if key.startswith(KEY_PREFIX) else key
    return f"flowc/{scope}/{step}/{digest}/{attempt}"


def canonical(value: Any) -> Any:
    """A JSON value that encodes `value` without ambiguity and without depending on hash order.

    JSON-like values stay as they are (tuples become lists); everything else becomes a tagged
    object: `{"$float": "nan"}`, `{"$bytes": hex}`, `{"$set": [...]}` (sorted),
    `{"$map": [[k, v], ...]}` for mappings with keys that are not strings (sorted),
    `{"$datetime": iso}`, and `{"$object": "module.Type", "repr": repr(value)}` as a last resort.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: canonical(v) for k, v in value.items()}
        pairs = [[canonical(k), canonical(v)] for k, v in value.items()]
        return {"$map": sorted(pairs, key=_sort_key)}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((canonical(item) for item in value), key=_sort_key)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return {"$datetime": value.isoformat()}
    kind = type(value)
    return {"$object": f"{kind.__module__}.{kind.__qualname__}", "repr": repr(value)}


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
