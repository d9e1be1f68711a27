"""Loading a value a child reported: through the task's own Result class, from its location.

Only Prefect's, flowc's runtime's and the standard library's classes are unpickled here, so
loading a Result never imports a child's module into flowc's process.
"""

from __future__ import annotations

import base64
import io
import pickle
import sys
from typing import Any

from prefect.engine.result import Result

_TRUSTED_PREFIXES = ("prefect", "compiler.runtime", "pendulum", "cloudpickle", "marshmallow")


class _ResultUnpickler(pickle.Unpickler):
    """Unpickles a Result object only from Prefect, flowc's runtime and the standard library,
    so loading a result never imports a child's module into flowc."""

    def find_class(self, module: str, name: str) -> Any:
        top = module.split(".", 1)[0]
        if module.startswith(_TRUSTED_PREFIXES) or top in sys.stdlib_module_names:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not one of Prefect's classes")


def load_result(entry: dict[str, Any] | None, described: str) -> Any:
    """The value a task persisted, read through its own Result class from its location."""
    if entry is None or (entry.get("location") is None and entry.get("location_file") is None):
        if entry is not None and entry.get("has_value"):
            raise ValueError(
                f"{described} returned a value but did not persist it ({entry['class'].rsplit('.', 1)[-1]}), so "
                "another flow run cannot load it; give the task result=PrefectResult() and checkpoint=True"
            )
        return None
    location = entry.get("location")
    if location is None:
        with open(entry["location_file"], encoding="utf-8") as handle:
            location = handle.read()
    if not entry.get("pickle"):
        raise ValueError(f"{described}: its Result ({entry['class']}) could not be handed to flowc")
    try:
        result = _ResultUnpickler(io.BytesIO(base64.b64decode(entry["pickle"]))).load()
    except Exception as error:
        raise ValueError(f"{described}: cannot load its Result ({entry['class']}): {error}") from None
    if not isinstance(result, Result):
        raise ValueError(f"{described}: {entry['class']} is not a Prefect Result")
    try:
        return result.read(location).value
    except Exception as error:  # a file gone, a store down: the message names the run and where
        kind = entry["class"].rsplit(".", 1)[-1]
        raise ValueError(f"{described}: cannot read its {kind} at {location!r}: {type(error).__name__}: {error}") from None
