"""The values policy: which values a parameter default or override may hold, and the one Python
literal each becomes in flow.py.

Spec defaults, lock defaults (captured from child flows) and `flowc run -p` overrides all go
through `normalize`, so the three agree. A value is kept as JSON data -- None, bool, int, float,
str, list, and dict with string keys -- because that is what Prefect sends as flow parameters;
`literal` turns such data into Python source that imports and equals it. README "Values" has the
table of what is accepted, converted or rejected, and why.

Standard library only, Python 3.9+: a lock capture may import this inside a child flow's
interpreter.
"""

from __future__ import annotations

import datetime
import enum
import math
from typing import Any, List, Tuple, Union

# Python converts an int of more than this many decimal digits to text (repr, str, json) only when
# told to (sys.set_int_max_str_digits, 3.11+); flow.py and every JSON round trip need that text.
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS
# The same bounds a spec's YAML is held to (compiler.yamlsafe): shared values expand when walked.
MAX_VALUES = 200_000
MAX_DEPTH = 64

ValuePath = Tuple[Union[str, int], ...]
JSON_TYPES = "null, true/false, integers, finite numbers, strings, lists and mappings with string keys"
YAML_BOOLEAN_WORDS = ("y", "n", "yes", "no", "on", "off", "true", "false")


class ValueRejected(ValueError):
    """A value the policy does not accept; `path` is where inside it (keys and list indexes)."""

    def __init__(self, message: str, path: ValuePath = ()) -> None:
        super().__init__(message if not path else f"{message} (at {format_path(path)})")
        self.message = message
        self.path = path


def format_path(path: ValuePath) -> str:
    return "".join(f"[{part!r}]" for part in path)


def normalize(value: Any) -> Any:
    """`value` as plain JSON data, or ValueRejected saying what is not accepted and where.

    Converted: tuples to lists (they arrive as lists in any run anyway), subclasses of int, float
    and str (IntEnum members, numpy scalars that subclass float) to the base type. Rejected:
    NaN and infinities, integers of more than MAX_INT_DIGITS digits, dates and times, bytes,
    sets, non-string mapping keys, anything else, and data past MAX_VALUES / MAX_DEPTH (which
    is also what ends a self-referencing YAML alias such as `&a [*a]`).
    """
    counter = [0]
    return _normalize(value, (), counter)


def _normalize(value: Any, path: ValuePath, counter: List[int]) -> Any:
    counter[0] += 1
    if counter[0] > MAX_VALUES:
        raise ValueRejected(f"value holds more than {MAX_VALUES} items (with every YAML alias expanded)", path)
    if len(path) > MAX_DEPTH:
        raise ValueRejected(f"value is nested deeper than {MAX_DEPTH} levels", path)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):  # a bool subclass cannot exist, but numpy.bool_ is not bool
        return bool(value)
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueRejected(
                f"integers are limited to {MAX_INT_DIGITS} digits (Python's limit for turning them into text)",
                path,
            )
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueRejected(
                f"{value!r} is not accepted: parameters travel as JSON, which has no NaN or infinity", path
            )
        return float(value)
    if isinstance(value, str):
        return str.__add__("", value)  # a plain str, also for a subclass (a str-valued Enum member)
    if isinstance(value, (list, tuple)):
        return [_normalize(item, path + (index,), counter) for index, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueRejected(non_string_key_message(key), path)
            key = str.__add__("", key)
            result[key] = _normalize(item, path + (key,), counter)
        return result
    raise ValueRejected(rejected_type_message(value), path)


def non_string_key_message(key: Any, text: str | None = None) -> str:
    """Why a mapping key is refused; `text` is the key as written, when known (a YAML scalar)."""
    written = text if text is not None else (repr(key) if not isinstance(key, bool) else str(key).lower())
    message = f"mapping keys must be strings; {written!r} is {_a_kind(key)}"
    if isinstance(key, bool) or (text is not None and text.lower() in YAML_BOOLEAN_WORDS):
        message += f" (YAML reads an unquoted {written} as a boolean)"
    return message + f"; quote it: '{written}'"


def _a_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def rejected_type_message(value: Any) -> str:
    """Why a value of an unaccepted type is refused, and what to write instead."""
    if isinstance(value, (datetime.date, datetime.time)):
        kind = (
            "a timestamp"
            if isinstance(value, datetime.datetime)
            else "a date" if isinstance(value, datetime.date) else "a time"
        )
        return f"{kind} is not accepted (parameters travel as JSON); quote it to pass a string: '{value}'"
    if isinstance(value, (bytes, bytearray)):
        return "binary data (!!binary) is not accepted (parameters travel as JSON); pass a string (e.g. base64)"
    if isinstance(value, (set, frozenset)):
        return "a set is not accepted (parameters travel as JSON); use a list"
    if isinstance(value, enum.Enum):
        return f"the enum member {type(value).__name__}.{value.name} is not accepted; use its value"
    return f"a value of type {type(value).__name__} is not accepted; use {JSON_TYPES}"


def literal(value: Any) -> str:
    """Python source for normalized data: it imports, and evaluates to a value equal to `value`.

    Mapping order is kept as given (the output reads like the spec; the inputs digest keeps
    order too, so equal digests still mean equal bytes).
    """
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueRejected(f"{value!r} has no Python literal; normalize() first")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(key)}: {literal(item)}" for key, item in value.items()) + "}"
    raise ValueRejected(rejected_type_message(value))


def kind_of(value: Any) -> str:
    """The JSON kind of normalized data, as messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def type_mismatch(default: Any, value: Any) -> str | None:
    """Why an override does not fit a parameter whose default is `default`; None when it does.

    The default's JSON kind is the parameter's type: a null default takes anything, a number
    default takes an integer too, and nothing else converts (a boolean is not a number here).
    """
    if default is None:
        return None
    if isinstance(default, bool) or isinstance(value, bool):
        same = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        same = isinstance(value, (int, float))
    elif isinstance(default, int):
        same = isinstance(value, int)
    else:
        same = type(default) is type(value)
    if same:
        return None
    return f"expected {kind_of(default)} like its default {_short(literal(default))}, got {kind_of(value)}"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
