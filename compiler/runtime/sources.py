"""Importing a child flow's source: the one loader of `flowc lock` (introspect.py) and `flowc run` (child.py).

A source is `module.name:attribute` or `path/to/file.py:attribute` (from the project root). A file
is imported as `python path/to/file.py` sees its neighbours: its own directory first on sys.path,
then the project root, under its file name as the module name, so `import helper` finds the
`helper.py` beside it both when the lock captures the flow and when a child runs it. A module
name is imported with the project root on sys.path.
Standard library only, Python 3.9-3.11: introspect.py loads this file by path (its neighbours
must not shadow a child's own modules), child.py imports it as `compiler.runtime.sources`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Tuple


class SourceMissing(Exception):
    """The source names no importable file; the message says why, for the user."""


def split_source(source: str) -> Tuple[str, str]:
    """`target:attribute` -> (target, attribute); either empty when the source is not of that form."""
    target, _, attribute = source.rpartition(":")
    return target, attribute


def import_target(root: str, target: str) -> ModuleType:
    """Import a source's module (`pkg.module` or `dir/file.py`); what the module raises propagates."""
    root = os.path.realpath(root) if root else os.getcwd()
    if not target.endswith(".py"):
        _prepend_path(root)
        return importlib.import_module(target)
    path = os.path.realpath(target if os.path.isabs(target) else os.path.join(root, target))
    if not os.path.isfile(path):
        raise SourceMissing(f"no file {target!r} under the project root")
    _prepend_path(root)
    _prepend_path(os.path.dirname(path))
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SourceMissing(f"{target!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def module_name(path: str) -> str:
    """The file's own name, as its neighbours and pickles see it; a private name only when that
    name already belongs to another loaded module (a source called `json.py`)."""
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is None or os.path.realpath(getattr(loaded, "__file__", None) or "") == path:
        return name
    return "flowc_source_" + hashlib.sha256(path.encode("utf-8")).hexdigest()[:12]


def _prepend_path(directory: str) -> None:
    if directory not in sys.path:
        sys.path.insert(0, directory)
