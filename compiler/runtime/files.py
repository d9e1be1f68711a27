"""File references: how one flow run hands a file to another, in LUME-services' format.

A reference is the JSON-able dict `{"filename", "file_type_string", "filesystem_identifier"}`
that LUME-services' `File.jsonable_dict()` writes (its `SaveFile` task returns it and its
`LoadFile` task reads it), so it can travel as a task result and a flow parameter. File types
(`file_type` argument -> `file_type_string`); the first four are LUME-services' own, written and
read the way its serializers do, so either side loads what the other saved:

- `text`:  `lume_services.files.file:File[TextSerializer]` (LUME's `TextFile`); a str, UTF-8.
- `yaml`:  `lume_services.files.file:File[YAMLSerializer]` (LUME's `YAMLFile`); any value YAML's
  safe dumper holds, loaded with `yaml.safe_load` (PyYAML comes with Prefect).
- `image`: `lume_services.files.file:File[ImageSerializer]` (LUME's `ImageFile`); saves an
  image's encoded bytes as they are, or a Pillow image in the format of the file's extension;
  loads a Pillow image (Pillow is imported then, and only then).
- `hdf5`:  `lume_services.files.file:File[HDF5Serializer]` (LUME's `HDF5File`); bytes of an
  HDF5 file, saved and loaded as they are (LUME's serializer archives lume-base objects into
  HDF5 and reads them back as such; flowc hands the file on without interpreting it).
- `json`:  `compiler.runtime.files:JSONFile`; any JSON-serializable value (flowc's own type:
  LUME-services has no JSON file and cannot load this one).
- `bytes`: `compiler.runtime.files:BytesFile`; bytes (flowc's own, like `json`).

References written by older flowc releases (`lume_services.files.file:TextFile`,
`compiler.runtime.files:TextFile`) still load as text.

Filesystems (`filesystem_identifier`):

- `local`: the filename is an absolute path on this machine.
- `mounted`: as LUME-services' MountedFilesystem, a host directory is mounted into containers
  at an alias path, and references name files by their alias path, so they mean the same file
  in every container that has the mount. `FLOWC_MOUNT=HOST_PATH:MOUNT_ALIAS` tells a process
  where it sees the mount: on the host `FLOWC_MOUNT=/data/lume:/mnt/lume`, inside a container
  that mounts it at the alias `FLOWC_MOUNT=/mnt/lume` (short for `/mnt/lume:/mnt/lume`).
  When `FLOWC_MOUNT` is set, `save_file` writes to the mounted filesystem by default.
  (LUME-services itself opens a mounted file at its alias path as it stands, so it reads and
  writes them only where the alias is where the mount is: inside the containers.)
"""

from __future__ import annotations

import io
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


LUME_FILE_MODULE = "lume_services.files.file"
# HDF5's format signature; a file may carry a user block of 512 * 2**k bytes before it.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class FileType:
    """How one kind of file turns into bytes and back; `type_string` names it in references."""

    name: ClassVar[str]
    type_string: ClassVar[str]

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        """The file's bytes; `filename` is where they go (some formats follow its extension)."""
        raise NotImplementedError

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        raise NotImplementedError


class TextFile(FileType):
    """Text, UTF-8 encoded: LUME-services' `TextFile` (its TextSerializer writes and reads text)."""

    name = "text"
    type_string = f"{LUME_FILE_MODULE}:File[TextSerializer]"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        if not isinstance(obj, str):
            raise TypeError(f"a text file holds a str, not {type(obj).__name__}")
        return obj.encode("utf-8")

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return data.decode("utf-8")


class YAMLFile(FileType):
    """YAML: LUME-services' `YAMLFile`, loaded with `yaml.safe_load` as its YAMLSerializer does."""

    name = "yaml"
    type_string = f"{LUME_FILE_MODULE}:File[YAMLSerializer]"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        import yaml  # PyYAML: a dependency of Prefect 1

        try:
            text = yaml.safe_dump(obj, default_flow_style=False, allow_unicode=True)
        except yaml.YAMLError as exc:
            raise TypeError(
                f"a yaml file holds what YAML's safe dumper represents, "
                f"not {type(obj).__name__}: {exc}"
            ) from None
        return text.encode("utf-8")

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        import yaml

        try:
            return yaml.safe_load(data.decode("utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None


class ImageFile(FileType):
    """An image: LUME-services' `ImageFile` (a Pillow image, in the format of its extension)."""

    name = "image"
    type_string = f"{LUME_FILE_MODULE}:File[ImageSerializer]"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)  # already encoded (PNG, JPEG, ...): written as it is
        if not callable(getattr(obj, "save", None)):
            raise TypeError(
                f"an image file holds a Pillow image or encoded image bytes, "
                f"not {type(obj).__name__}"
            )
        image_module = _pillow("saving a Pillow image")
        extension = posixpath.splitext(filename)[1].lower()
        image_format = image_module.registered_extensions().get(extension)
        if image_format is None:
            raise ValueError(
                f"cannot tell an image format from the extension of {filename!r}"
            )
        buffer = io.BytesIO()
        obj.save(buffer, format=image_format)  # type: ignore[attr-defined]
        return buffer.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        image_module = _pillow("loading an image file")
        try:
            image = image_module.open(io.BytesIO(data))
            image.load()
        except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(str(exc)) from None
        return image


def _pillow(what: str) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ModuleNotFoundError(
            f"{what} needs Pillow, which is not installed here (pip install Pillow)"
        ) from None
    return Image


def _is_hdf5(data: bytes) -> bool:
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= len(data):
        if data[offset : offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


class HDF5File(FileType):
    """An HDF5 file's bytes: LUME-services' `HDF5File`, handed on without interpreting it."""

    name = "hdf5"
    type_string = f"{LUME_FILE_MODULE}:File[HDF5Serializer]"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise TypeError(f"an hdf5 file holds bytes, not {type(obj).__name__}")
        if not _is_hdf5(bytes(obj)):
            raise ValueError("the bytes given for an hdf5 file have no HDF5 signature")
        return bytes(obj)

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        if not _is_hdf5(data):
            raise ValueError("no HDF5 signature")
        return data


class JSONFile(FileType):
    """Any JSON value; the format child flows exchange data in by default (flowc's own)."""

    name = "json"
    type_string = "compiler.runtime.files:JSONFile"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        return json.dumps(obj, sort_keys=True).encode("utf-8")

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return json.loads(data.decode("utf-8"))


class BytesFile(FileType):
    """Opaque bytes, for outputs that have their own format (flowc's own)."""

    name = "bytes"
    type_string = "compiler.runtime.files:BytesFile"

    @classmethod
    def serialize(cls, obj: object, filename: str = "") -> bytes:
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes file holds bytes, not {type(obj).__name__}")
        return bytes(obj)

    @classmethod
    def deserialize(cls, data: bytes) -> object:
        return data


FILE_TYPES: dict[str, type[FileType]] = {
    file_type.name: file_type
    for file_type in (TextFile, YAMLFile, ImageFile, HDF5File, JSONFile, BytesFile)
}
# The type strings LUME-services' LoadFile accepts: exactly those of its four File types.
LUME_FILE_TYPE_STRINGS = tuple(
    file_type.type_string for file_type in (TextFile, YAMLFile, ImageFile, HDF5File)
)
_FILE_TYPES_BY_STRING: dict[str, type[FileType]] = {
    **{file_type.type_string: file_type for file_type in FILE_TYPES.values()},
    # What earlier flowc releases wrote for text.
    f"{LUME_FILE_MODULE}:TextFile": TextFile,
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
    data = kind.serialize(obj, reference_name)
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
