"""Which files under generated/ are flowc's, read without ever following a symlink.

flowc owns a file under generated/ only if it could have written it: the path is
`<name>/<file>` (two levels, `<name>` an identifier), the file is a regular file, and it starts
with flowc's two header lines whose `output=` digest matches the rest of the file, byte for byte.
Only such files are ever removed as orphans; anything else (a hand-written file, a generated file
edited by hand, the lock, a spec) is left alone. Symlinks and other non-regular files where
flowc writes are one error each: their target is never read, printed or replaced.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Union

from compiler.config import Project
from compiler.diagnostics import Diagnostic
from compiler.fingerprint import body_digest, read_header

MAX_OWNED_BYTES = 16 * 1024 * 1024  # larger files are not flowc's output


class Unsafe:
    """Marks a path that is a symlink or not a regular file (or lies below such a directory)."""

    def __init__(self, relative: str, reason: str) -> None:
        self.relative = relative  # the first component that is unsafe
        self.reason = reason


Read = Union[bytes, None, Unsafe]


def _lstat(path: Path | str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def inspect(project: Project, relative: str) -> Unsafe | None:
    """Whether writing or reading generated/<relative> would go through a symlink or onto a
    non-regular file; None when it is safe (including when it does not exist yet)."""
    parts = relative.split("/")
    current = str(project.generated_dir)  # plain strings: a warm check inspects every file
    for depth, part in enumerate(parts):
        current = os.path.join(current, part)
        info = _lstat(current)
        if info is None:
            return None
        shown = "/".join(parts[: depth + 1])
        if stat.S_ISLNK(info.st_mode):
            return Unsafe(shown, "is a symbolic link; flowc never follows links under generated/")
        last = depth == len(parts) - 1
        if last and not stat.S_ISREG(info.st_mode):
            return Unsafe(shown, "is not a regular file")
        if not last and not stat.S_ISDIR(info.st_mode):
            return Unsafe(shown, "is not a directory")
    return None


def read_generated(project: Project, relative: str) -> Read:
    """The bytes of generated/<relative>; None when missing; Unsafe instead of following a link."""
    unsafe = inspect(project, relative)
    if unsafe is not None:
        return unsafe
    path = os.path.join(str(project.generated_dir), relative)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as error:
        return Unsafe(relative, f"cannot be read ({error.strerror})")
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # swapped since inspect()
            return Unsafe(relative, "is not a regular file")
        return stream.read()


def unsafe_targets(project: Project, relatives: Iterable[str]) -> list[Diagnostic]:
    """One error per symlink or non-regular file where flowc would read or write."""
    found: dict[str, str] = {}
    for relative in relatives:
        unsafe = inspect(project, relative)
        if unsafe is not None:
            found.setdefault(unsafe.relative, unsafe.reason)
    return [
        Diagnostic(
            project.relative(project.generated_dir / relative),
            1,
            1,
            f"{reason}: remove it, then run `flowc generate`",
        )
        for relative, reason in sorted(found.items())
    ]


def owned_orphans(project: Project, expected: set[str]) -> list[str]:
    """Files flowc wrote under generated/ (see the module docstring) that no spec produces now."""
    root = project.generated_dir
    if not root.is_dir():
        return []
    orphans = []
    for directory in sorted(_entries(str(root)), key=lambda entry: entry.name):
        if not directory.name.isidentifier() or not directory.is_dir(follow_symlinks=False):
            continue
        for entry in sorted(_entries(directory.path), key=lambda entry: entry.name):
            relative = f"{directory.name}/{entry.name}"
            if relative in expected:
                continue
            info = _lstat(entry.path)
            if info is None or not stat.S_ISREG(info.st_mode) or info.st_size > MAX_OWNED_BYTES:
                continue
            data = read_generated(project, relative)
            if isinstance(data, bytes) and written_by_flowc(data):
                orphans.append(relative)
    # The lock and the specs are never removed (with `generated = "."` they are under it).
    inputs = {_identity(p) for p in (project.lock_path, *project.spec_files())} if orphans else set()
    return [relative for relative in orphans if _identity(root / relative) not in inputs]


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as found:
            return list(found)
    except OSError:
        return []


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def written_by_flowc(data: bytes) -> bool:
    """flowc's header, and the rest of the file exactly what that header's digest says."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    parsed = read_header(text)
    return parsed is not None and parsed[0].output == body_digest(parsed[1])
