"""This machine's record of what this flowc rendered: inputs digest -> the digests of the files.

`flowc check` and `generate` may skip rendering a spec only when this record says that exactly
these inputs (the spec's data, its lock entries, its path and flowc's own sources: the inputs
digest) were rendered by this flowc into files whose bytes have exactly the digests found on
disk now. The record lives outside the repository (`$FLOWC_CACHE_DIR`, else
`$XDG_CACHE_HOME/flowc`, else `~/.cache/flowc`), so a header -- or anything else a commit can
carry -- never vouches for itself, and a fresh clone renders everything.

Standard library only: an up-to-date check imports no renderer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
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


def _entry_path(inputs_digest: str) -> Path | None:
    hexdigest = inputs_digest.removeprefix("sha256:")
    if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        return None
    return cache_dir() / "renders" / hexdigest[:2] / hexdigest


def recorded(inputs_digest: str) -> dict[str, str] | None:
    """{relative path: file digest} this flowc rendered from these inputs, or None (not known)."""
    path = _entry_path(inputs_digest)
    if path is None:
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
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
    path = _entry_path(inputs_digest)
    if path is None:
        return
    entry = {
        "format": FORMAT,
        "inputs": inputs_digest,
        "files": {name: file_digest(text.encode("utf-8")) for name, text in sorted(files.items())},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".entry.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(entry, stream, sort_keys=True)
            os.rename(temp, path)  # atomic on POSIX, like os.replace (which generate's transaction uses)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        return
