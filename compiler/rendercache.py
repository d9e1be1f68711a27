"""This machine's record of what this flowc rendered: inputs digest -> the digests of the files.

`flowc check` and `generate` may skip rendering a spec only when this record says that exactly
these inputs (the spec's data, its lock entries, its path and flowc's own sources: the inputs
digest) were rendered by this flowc into files whose bytes have exactly the digests found on
disk now. The record lives outside the repository (`$FLOWC_CACHE_DIR`, else
`$XDG_CACHE_HOME/flowc`, else `~/.cache/flowc`), so a header -- or anything else a commit can
carry -- never vouches for itself, and a fresh clone renders everything.

A second record maps a spec file's bytes (with its path, flowc's sources, the lock entries and
the project's target) to its inputs digest and name, so a warm check does not even parse the YAML.
A third maps the lock's bytes to what a warm check needs of it (its digest context, and each
locked source's files and digest for the drift check), so the lock is parsed only when a spec
must be compiled or a source changed.

Standard library only: an up-to-date check imports no renderer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from functools import lru_cache
from typing import Mapping

FORMAT = 1  # bump when an entry's meaning changes


def cache_dir() -> Path:
    explicit = os.environ.get("FLOWC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flowc"


def file_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


HEX_DIGITS = frozenset("0123456789abcdef")


def _entry_path(digest: str, kind: str = "renders") -> str | None:
    hexdigest = digest.removeprefix("sha256:")
    if len(hexdigest) != 64 or not HEX_DIGITS.issuperset(hexdigest):
        return None
    return os.path.join(_cache_root(), kind, hexdigest[:2], hexdigest)


def _read_entry(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None


def _cache_root() -> str:
    """cache_dir() as a string, computed once per value of the variables it depends on."""
    return _cache_root_for(os.environ.get("FLOWC_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME"))


@lru_cache(maxsize=4)
def _cache_root_for(explicit: str | None, xdg: str | None, home: str | None) -> str:
    return str(cache_dir())


def recorded(inputs_digest: str) -> dict[str, str] | None:
    """{relative path: file digest} this flowc rendered from these inputs, or None (not known)."""
    path = _entry_path(inputs_digest)
    entry = _read_entry(path) if path is not None else None
    files = entry.get("files") if isinstance(entry, dict) and entry.get("format") == FORMAT else None
    if not isinstance(files, dict) or not files:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    if entry.get("inputs") != inputs_digest:
        return None
    return files


def record(inputs_digest: str, files: Mapping[str, str]) -> None:
    """Remember that these inputs rendered to these texts; a cache that cannot be written is
    only a slower next check (read-only home, full disk), never an error."""
    entry = {
        "format": FORMAT,
        "inputs": inputs_digest,
        "files": {name: file_digest(text.encode("utf-8")) for name, text in sorted(files.items())},
    }
    _write(_entry_path(inputs_digest), entry)


def _write(path: str | None, entry: dict[str, object]) -> None:
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".entry.", dir=os.path.dirname(path))
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(entry, stream, sort_keys=True)
            os.rename(temp, path)  # atomic on POSIX, like os.replace (which generate's transaction uses)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        return


def spec_key(display: str, text: str, context: str) -> str:
    """The key of what a spec's bytes give under `context` (flowc's sources, the lock entries and
    the project's target: everything the inputs digest holds besides the spec itself)."""
    digest = hashlib.sha256()
    for part in (f"flowc-spec {FORMAT}", context, display, text):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return "sha256:" + digest.hexdigest()


def recorded_spec(key: str) -> tuple[str, str | None] | None:
    """(inputs digest, spec name or None) recorded for `key`, or None (not known)."""
    path = _entry_path(key, "specs")
    entry = _read_entry(path) if path is not None else None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
        return None
    inputs, name = entry.get("inputs"), entry.get("name")
    if not isinstance(inputs, str) or _entry_path(inputs) is None or not (name is None or isinstance(name, str)):
        return None
    return inputs, name


def record_spec(key: str, inputs_digest: str, name: str | None) -> None:
    _write(_entry_path(key, "specs"), {"format": FORMAT, "key": key, "inputs": inputs_digest, "name": name})


def lock_key(display: str, data: bytes, target: str, toolchain: str) -> str:
    """The key of what the lock's bytes give this flowc for a project of `target`."""
    digest = hashlib.sha256()
    for part in (f"flowc-lock {FORMAT}".encode(), toolchain.encode(), target.encode(), display.encode(), data):
        digest.update(part + b"\0")
    return "sha256:" + digest.hexdigest()


def recorded_lock(key: str) -> tuple[str, list[tuple[list[str], str]]] | None:
    """(digest context, [(source files, their digest)] of every locked source) recorded for
    `key`, or None (not known)."""
    path = _entry_path(key, "locks")
    entry = _read_entry(path) if path is not None else None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
        return None
    context, sources = entry.get("context"), entry.get("sources")
    if not isinstance(context, str) or not isinstance(sources, list):
        return None
    checked = []
    for item in sources:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str) and isinstance(item[0], list)):
            return None
        if not all(isinstance(name, str) for name in item[0]):
            return None
        checked.append((item[0], item[1]))
    return context, checked


def record_lock(key: str, context: str, sources: list[tuple[list[str], str]]) -> None:
    entry = {"format": FORMAT, "key": key, "context": context, "sources": [[list(f), d] for f, d in sources]}
    _write(_entry_path(key, "locks"), entry)
