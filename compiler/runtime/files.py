"""File references: how one flow run hands a file to another, in LUME-services' format.

A reference is the JSON-able dict `{"filename", "file_type_string", "filesystem_identifier"}`
that LUME-services' `File.jsonable_dict()` writes, so it can travel as a task result and a flow
parameter. File types (`file_type` argument -> `file_type_string`):

- `text`:  `lume_services.files.file:TextFile` (LUME's own, so LUME-services can read it); a str.
- `json`:  `compiler.runtime.files:JSONFile`; any JSON-serializable value.
- `bytes`: `compiler.runtime.files:BytesFile`; bytes.

Filesystems (`filesystem_identifier`):

- `local`: the filename is an absolute path on this machine.
- `mounted`: as LUME-services' MountedFilesystem, a host directory is mounted into containers
  at an alias path, and references name files by their alias path, so they mean the same file
  in every container that has the mount. `FLOWC_MOUNT=HOST_PATH:MOUNT_ALIAS` tells a process
  where it sees the mount: on the host `FLOWC_MOUNT=/data/lume:/mnt/lume`, inside a container
  that mounts it at the alias `FLOWC_MOUNT=/mnt/lume` (short for `/mnt/lume:/mnt/lume`).
  When `FLOWC_MOUNT` is set, `save_file` writes to the mounted filesystem by default.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

MOUNT_ENV = "FLOWC_MOUNT"
LOCAL_FILESYSTEM = "local"
MOUNTED_FILESYSTEM = "mounted"
FILESYSTEMS = (LOCAL_FILESYSTEM, MOUNTED_FILESYSTEM)
FILE_REFERENCE_KEYS = ("filename", "file_type_string", "filesystem_identifier")


class FileReferenceError(OSError):
    """A file reference that cannot be written or loaded; the message names the reference."""


class FileType:
    """How one kind of file turns into bytes and back; `type_string` names it in references."""

    name: ClassVar[str]
    type_string: ClassVar[str]

    @classmethod
    def serialize(cls, obj: object) -> bytes:
        raise NotImplementedError

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        raise NotImplementedError


class TextFile(FileType):
    """Text, UTF-8 encoded; the type string is LUME-services' own TextFile."""

    name = "text"
    type_string = "lume_services.files.file:TextFile"

    @classmethod
    def serialize(cls, obj: object) -> bytes:
        if not isinstance(obj, str):
            raise TypeError(f"a text file holds a str, not {type(obj).__name__}")
        return obj.encode("utf-8")

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return data.decode("utf-8")


class JSONFile(FileType):
    """Any JSON value; the format child flows exchange data in by default."""

    name = "json"
    type_string = "compiler.runtime.files:JSONFile"

    @classmethod
    def serialize(cls, obj: object) -> bytes:
        return json.dumps(obj, sort_keys=True).encode("utf-8")

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return json.loads(data.decode("utf-8"))


class BytesFile(FileType):
    """Opaque bytes, for outputs that have their own format (images, HDF5, archives)."""

    name = "bytes"
    type_string = "compiler.runtime.files:BytesFile"

    @classmethod
    def serialize(cls, obj: object) -> bytes:
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes file holds bytes, not {type(obj).__name__}")
        return bytes(obj)

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return data


FILE_TYPES: dict[str, type[FileType]] = {
    file_type.name: file_type for file_type in (TextFile, JSONFile, BytesFile)
}
_FILE_TYPES_BY_STRING: dict[str, type[FileType]] = {
    **{file_type.type_string: file_type for file_type in FILE_TYPES.values()},
    "compiler.runtime.files:TextFile": TextFile,
}


def file_type_for(file_type: str) -> type[FileType]:
    """A file type by its short name (`json`) or its type string."""
    found = FILE_TYPES.get(file_type) or _FILE_TYPES_BY_STRING.get(file_type)
    if found is None:
        raise ValueError(
            f"unknown file type {file_type!r}; known: {', '.join(sorted(FILE_TYPES))}"
        )
    return found


@dataclass(frozen=True)
class Mount:
    """Where this process sees the mounted filesystem (`host_path`) and what references call it."""

    host_path: Path
    mount_alias: str

    @classmethod
    def from_env(cls) -> Mount | None:
        """Parse `FLOWC_MOUNT=HOST_PATH:MOUNT_ALIAS` (or `FLOWC_MOUNT=PATH` for both)."""
        value = os.environ.get(MOUNT_ENV, "")
        if not value:
            return None
        parts = value.split(":")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"{MOUNT_ENV}={value!r} must be HOST_PATH:MOUNT_ALIAS (or one path for both)"
            )
        host, alias = parts
        if not posixpath.isabs(alias):
            raise ValueError(f"{MOUNT_ENV}={value!r}: the mount alias must be absolute")
        return cls(Path(host).absolute(), posixpath.normpath(alias))

    def alias_path(self, filename: str) -> str:
        """The alias path naming `filename`: relative to the mount, or absolute inside it."""
        if not posixpath.isabs(filename):
            candidate = posixpath.normpath(posixpath.join(self.mount_alias, filename))
        elif self._inside(posixpath.normpath(filename), self.mount_alias):
            candidate = posixpath.normpath(filename)
        elif _is_within(Path(filename), self.host_path):
            relative = Path(os.path.normpath(filename)).relative_to(self.host_path)
            candidate = posixpath.join(self.mount_alias, relative.as_posix())
        else:
            candidate = ""
        if not candidate or not self._inside(candidate, self.mount_alias):
            raise ValueError(
                f"{filename!r} is outside the mounted filesystem "
                f"({MOUNT_ENV} maps {str(self.host_path)!r} to {self.mount_alias!r})"
            )
        return candidate

    def host_file(self, alias_path: str) -> Path:
        """Where this process opens the file a reference names by its alias path."""
        normalized = posixpath.normpath(alias_path)
        if not self._inside(normalized, self.mount_alias):
            raise ValueError(
                f"{alias_path!r} is not under the mount alias {self.mount_alias!r}"
            )
        relative = posixpath.relpath(normalized, self.mount_alias)
        return self.host_path if relative == "." else self.host_path / relative

    @staticmethod
    def _inside(path: str, root: str) -> bool:
        return path == root or path.startswith(root.rstrip("/") + "/")


def _is_within(path: Path, root: Path) -> bool:
    normalized = Path(os.path.normpath(path))
    return normalized == root or root in normalized.parents


def _require_mount(what: str) -> Mount:
    mount = Mount.from_env()
    if mount is None:
        raise FileReferenceError(
            f"{what} is on the mounted filesystem, but {MOUNT_ENV} is not set "
            "(HOST_PATH:MOUNT_ALIAS)"
        )
    return mount


def default_filesystem() -> str:
    """`mounted` when a mount is configured, so files reach other containers; else `local`."""
    return MOUNTED_FILESYSTEM if os.environ.get(MOUNT_ENV) else LOCAL_FILESYSTEM


def write_file(
    obj: object,
    filename: str,
    file_type: str = "json",
    filesystem_identifier: str | None = None,
) -> dict[str, str]:
    """Serialize `obj` into `filename` and return its reference.

    Parents are created and the file is replaced atomically, so a reader never sees half a file.
    """
    kind = file_type_for(file_type)
    filesystem = filesystem_identifier or default_filesystem()
    if filesystem == LOCAL_FILESYSTEM:
        path = Path(filename).absolute()
        reference_name = str(path)
    elif filesystem == MOUNTED_FILESYSTEM:
        mount = _require_mount(f"file {filename!r}")
        reference_name = mount.alias_path(str(filename))
        path = mount.host_file(reference_name)
    else:
        raise ValueError(
            f"unknown filesystem {filesystem!r}; known: {', '.join(FILESYSTEMS)}"
        )
    data = kind.serialize(obj)
    reference = {
        "filename": reference_name,
        "file_type_string": kind.type_string,
        "filesystem_identifier": filesystem,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(
                temporary, 0o644
            )  # mkstemp's 0600 would hide it from other containers
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise FileReferenceError(
            f"cannot write file reference {reference!r} to {str(path)!r}: "
            f"{exc.strerror or exc}"
        ) from exc
    return reference


def file_path(file_rep: Mapping[str, Any]) -> Path:
    """Where this process finds the file a reference names."""
    if not isinstance(file_rep, Mapping) or not all(
        isinstance(file_rep.get(key), str) for key in FILE_REFERENCE_KEYS
    ):
        raise FileReferenceError(
            f"{file_rep!r} is not a file reference: expected a dict with "
            f"{', '.join(FILE_REFERENCE_KEYS)}, as save_file returns"
        )
    filesystem = file_rep["filesystem_identifier"]
    if filesystem == LOCAL_FILESYSTEM:
        return Path(file_rep["filename"])
    if filesystem == MOUNTED_FILESYSTEM:
        mount = _require_mount(f"file reference {dict(file_rep)!r}")
        try:
            return mount.host_file(file_rep["filename"])
        except ValueError as exc:
            raise FileReferenceError(
                f"cannot load file reference {dict(file_rep)!r}: {exc}"
            ) from None
    raise FileReferenceError(
        f"cannot load file reference {dict(file_rep)!r}: unknown filesystem "
        f"{filesystem!r}; known: {', '.join(FILESYSTEMS)}"
    )


def read_file(file_rep: Mapping[str, Any]) -> object:
    """Load the object a file reference names; every failure names the reference."""
    path = file_path(file_rep)
    described = f"file reference {dict(file_rep)!r}"
    try:
        kind = file_type_for(file_rep["file_type_string"])
    except ValueError as exc:
        raise FileReferenceError(f"cannot load {described}: {exc}") from None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileReferenceError(
            f"cannot load {described}: no file at {str(path)!r}"
        ) from None
    except OSError as exc:
        raise FileReferenceError(
            f"cannot load {described}: cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        return kind.deserialize(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileReferenceError(
            f"cannot load {described}: {str(path)!r} is not a valid {kind.name} file: {exc}"
        ) from None
