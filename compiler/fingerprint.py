"""The inputs' digest and the headers that carry it.

Kept free of pydantic, jinja2, black and prefect: with compiler.rendercache, `flowc check` on an
up-to-date tree decides without rendering. The digest in a header is for people and for the cache
key; it never vouches for the file it is in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
import importlib.util
from pathlib import Path
from typing import Any, Iterable, Mapping

from compiler import __version__

# The repository's templates/, seen through the compiler/templates symlink, which a wheel
# turns into package data: a checkout and an installed flowc read the same files.
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PACKAGE_DIR = Path(__file__).resolve().parent

_HEADER = re.compile(
    r"(?:# |<!-- )flowc: inputs=(?P<inputs>sha256:[0-9a-f]{64}) output=(?P<output>sha256:[0-9a-f]{64})"
)


@lru_cache(maxsize=1)
def toolchain_digest() -> str:
    """Everything of flowc that turns the same spec into other text or another image: every file
    of the compiler package (its Python sources, the templates through compiler/templates, the
    runtime the image holds) and the versions of black and jinja2. Any change to the compiler
    changes every header: regenerate (`flowc generate`) and commit the result."""
    digest = hashlib.sha256()
    digest.update(f"flowc {__version__}\n".encode())
    for package in ("black", "jinja2"):
        digest.update(f"{package} {installed_version(package)}\n".encode())
    for name, path in compiler_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_version(package: str) -> str:
    """A package's version from its .dist-info directory's name, found beside the package without
    importing it or importlib.metadata (which alone costs a warm check a fifth of its time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return "missing"
    package_dir = Path(spec.origin).parent
    for site in (package_dir.parent, package_dir):
        names = sorted(site.glob(f"{package}-*.dist-info")) + sorted(site.glob(f"{package.capitalize()}-*.dist-info"))
        if names:
            return names[0].name[len(package) + 1 : -len(".dist-info")]
    try:
        from importlib import metadata

        return metadata.version(package)
    except Exception:  # noqa: BLE001 - any failure means: not known
        return "unknown"


def compiler_files() -> list[tuple[str, Path]]:
    """(name relative to the package, path) of every source file of flowc, sorted by name."""
    files = []
    for directory, subdirectories, names in os.walk(PACKAGE_DIR, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__" and not d.startswith("."))
        for name in names:
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            path = Path(directory) / name
            files.append((path.relative_to(PACKAGE_DIR).as_posix(), path))
    return sorted(files)


def spec_data(text: str) -> Any:
    """The spec as plain, bounded data; None when it does not parse or is too large to trust.

    YAML aliases are shared, not copied, by the loader: an alias bomb loads quickly but would
    expand when hashed, so its expanded size is bounded before anything walks it.
    """
    import yaml  # here: a warm check parses no YAML and need not import it

    from compiler.yamlsafe import YamlLimitError, expands_within_bounds, load_bounded

    try:
        data = load_bounded(text)
    except (yaml.YAMLError, YamlLimitError, RecursionError, ValueError):  # ValueError: a huge int
        return None
    return data if expands_within_bounds(data) else None


def files_digest(root: Path, files: Iterable[str]) -> str | None:
    """sha256 over each file's name and bytes (a lock entry's `source_digest` over its
    `source_files`); None when one of them cannot be read."""
    digest = hashlib.sha256()
    for name in files:
        try:
            data = (root / name).read_bytes()
        except OSError:
            return None
        digest.update(name.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0" + data)
    return "sha256:" + digest.hexdigest()


def used_lock_keys(data: Any) -> list[str]:
    """Which lock entries a spec reads, read leniently from the raw data."""
    keys = []
    flows = data.get("composing_flows") if isinstance(data, dict) else None
    for flow in flows if isinstance(flows, list) else ():
        if isinstance(flow, dict):
            keys.append(f"{flow.get('project_name')}/{flow.get('name')}")
    return sorted(set(keys))


def inputs_digest(spec_path: str, data: Any, lock_entries: Mapping[str, Any], target: str = "prefect1") -> str:
    """sha256 over everything a generated file depends on; comments in the spec do not count.

    Mapping order counts: the output keeps the spec's order (mapped parameters, dict defaults),
    so two orders are two inputs, and equal digests mean equal bytes.
    """
    document = [
        ["toolchain", toolchain_digest()],
        ["spec_path", spec_path],
        ["spec", data],
        ["lock", [[key, lock_entries.get(key)] for key in used_lock_keys(data)]],
    ]
    if target != "prefect1":  # the spec's effective target; prefect1 digests are as before targets
        document.append(["target", target])
    try:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        # Data no spec may hold (dates, sets, non-string keys, huge integers): the spec will be
        # rejected, so the digest only needs to be deterministic.
        text = "rejected:" + repr(document)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def digest_context(lock_entries: Mapping[str, Any], default_target: str) -> str | None:
    """What, besides a spec's path and bytes, its inputs digest depends on: flowc's sources, the
    lock entries and the project's target (compiler.rendercache.spec_key); None when the
    entries have no JSON form (then every spec is parsed)."""
    try:
        entries = json.dumps(lock_entries, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    digest = hashlib.sha256(f"{toolchain_digest()}\0{default_target}\0".encode())
    digest.update(entries.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def body_digest(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Header:
    inputs: str
    output: str


def header_lines(spec_path: str, inputs: str, body: str, *, comment: str) -> str:
    """The two header lines for a file whose text after them is `body`."""
    if comment == "#":
        first = f"# Code generated by flowc from {spec_path}. DO NOT EDIT.\n"
        second = f"# flowc: inputs={inputs} output={body_digest(body)}\n"
    else:
        first = f"<!-- Code generated by flowc from {spec_path}. DO NOT EDIT. -->\n"
        second = f"<!-- flowc: inputs={inputs} output={body_digest(body)} -->\n"
    return first + second


def read_header(text: str) -> tuple[Header, str] | None:
    """(header, body) of a generated file, or None when it carries no flowc header."""
    first_end = text.find("\n")
    second_end = text.find("\n", first_end + 1)
    if first_end < 0 or second_end < 0 or "Code generated by flowc" not in text[:first_end]:
        return None
    match = _HEADER.match(text, first_end + 1, second_end)
    if match is None:
        return None
    return Header(inputs=match["inputs"], output=match["output"]), text[second_end + 1 :]


def edited_by_hand(text: str) -> bool:
    """True when a generated file's content no longer matches the digest in its own header."""
    parsed = read_header(text)
    return parsed is not None and parsed[0].output != body_digest(parsed[1])
