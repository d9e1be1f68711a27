"""`flowc runtime`: flowc's runtime as a distribution of its own, for child-flow interpreters.

The runtime (`compiler/__init__.py`, `compiler/keys.py` and `compiler/runtime/**`) needs Prefect 1 and the standard
library only, and runs on Python 3.9-3.11; flowc itself needs 3.10+ and pydantic 2. So the
interpreter named by `[tool.flowc] python` (LUME-services' is 3.9 with pydantic 1.9) gets the
runtime alone: `flowc runtime install --python PATH` builds the wheel `flowc-runtime` from
this flowc's own sources and pip-installs it there, offline and without touching anything else.
Its version carries a digest of those sources (`0.1.0+r<digest>`), so installing again is a
no-op while they are unchanged and a reinstall as soon as they change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import compiler

DIST_NAME = "flowc-runtime"
WHEEL_STEM = "flowc_runtime"
REQUIRES_PYTHON = ">=3.9"
REQUIRES_DIST = ("prefect>=1.4,<2",)
# zip entries carry this timestamp, so the same sources always give the same wheel bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_PROBE = """
import json, sys
info = {"version": list(sys.version_info[:3]), "prefect": None, "installed": None, "flowc": False}
try:
    import importlib.metadata as metadata
except ImportError:
    metadata = None
try:
    import prefect
    info["prefect"] = prefect.__version__
except Exception as exc:
    info["prefect_error"] = "%s: %s" % (type(exc).__name__, exc)
if metadata is not None:
    for name, key in (("flowc-runtime", "installed"), ("flowc", "flowc")):
        try:
            info[key] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
print(json.dumps(info))
"""


class RuntimeInstallError(RuntimeError):
    """The runtime cannot be installed into that interpreter; the message says why."""


def package_root() -> Path:
    """The directory holding the `compiler` package this flowc runs from."""
    return Path(compiler.__file__).resolve().parent


def runtime_sources(root: Path | None = None) -> list[tuple[str, bytes]]:
    """(path inside the wheel, content) of every file of the runtime, sorted."""
    root = root or package_root()
    # keys.py: the run keys, which the runtime's run_child_flow computes (standard library only).
    files = [root / "__init__.py", root / "keys.py"]
    files += sorted(
        path
        for path in (root / "runtime").rglob("*.py")
        if "__pycache__" not in path.parts
    )
    return [
        (f"compiler/{path.relative_to(root).as_posix()}", path.read_bytes())
        for path in files
    ]


def runtime_version(sources: list[tuple[str, bytes]] | None = None) -> str:
    """flowc's version with a digest of the runtime's sources as its local label."""
    digest = hashlib.sha256()
    for name, content in sources if sources is not None else runtime_sources():
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return f"{compiler.__version__}+r{digest.hexdigest()[:12]}"


def _record_hash(content: bytes) -> str:
    encoded = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
    return f"sha256={encoded.decode()}"


def build_wheel(directory: Path) -> Path:
    """Write `flowc_runtime-<version>-py3-none-any.whl` into `directory`; return its path."""
    sources = runtime_sources()
    version = runtime_version(sources)
    dist_info = f"{WHEEL_STEM}-{version}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {DIST_NAME}",
            f"Version: {version}",
            "Summary: flowc's runtime alone (compiler.runtime), for child-flow interpreters",
            f"Requires-Python: {REQUIRES_PYTHON}",
            *(f"Requires-Dist: {requirement}" for requirement in REQUIRES_DIST),
            "",
        ]
    )
    wheel = "\n".join(
        [
            "Wheel-Version: 1.0",
            f"Generator: flowc {compiler.__version__}",
            "Root-Is-Purelib: true",
            "Tag: py3-none-any",
            "",
        ]
    )
    entries = [
        *sources,
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel.encode()),
    ]
    record = "".join(
        f"{name},{_record_hash(content)},{len(content)}\n" for name, content in entries
    )
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    path = Path(directory) / f"{WHEEL_STEM}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return path


@dataclass(frozen=True)
class InstallOutcome:
    python: str
    version: str
    changed: bool
    message: str


def _run(python: str, args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    # From a neutral directory: a checkout's compiler/ or flowc.egg-info in the working
    # directory would otherwise be what `python -c` imports and reports.
    return subprocess.run(
        [python, *args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


def _probe(python: str, cwd: str) -> dict:
    try:
        completed = _run(python, ["-c", _PROBE], cwd)
    except OSError as exc:
        raise RuntimeInstallError(f"cannot run {python}: {exc.strerror or exc}") from None
    if completed.returncode != 0:
        raise RuntimeInstallError(
            f"{python} failed to start: {completed.stderr.strip()[-500:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def install_runtime(python: str, force: bool = False) -> InstallOutcome:
    """Install this flowc's runtime into the interpreter `python` (a path or a command)."""
    with tempfile.TemporaryDirectory(prefix="flowc-runtime-") as scratch:
        return _install(python, force, scratch)


def _install(python: str, force: bool, scratch: str) -> InstallOutcome:
    info = _probe(python, scratch)
    major, minor, _ = info["version"]
    shown = ".".join(str(part) for part in info["version"])
    if (major, minor) < (3, 9):
        raise RuntimeInstallError(f"{python} is Python {shown}; the runtime needs 3.9 or newer")
    if info["prefect"] is None:
        raise RuntimeInstallError(
            f"{python} cannot import prefect ({info.get('prefect_error', 'not installed')}); "
            "install Prefect 1 there first (pip install prefect==1.4.1)"
        )
    if not str(info["prefect"]).startswith("1."):
        raise RuntimeInstallError(
            f"{python} has prefect {info['prefect']}; this runtime is for Prefect 1"
        )
    if info["flowc"]:
        raise RuntimeInstallError(
            f"{python} has flowc {info['flowc']} itself, whose runtime it already imports; "
            "flowc-runtime is for interpreters without flowc"
        )
    version = runtime_version()
    if info["installed"] == version and not force:
        return InstallOutcome(python, version, False, f"flowc-runtime {version} is up to date in {python}")
    wheel = build_wheel(Path(scratch))
    pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    completed = _run(python, [*pip, "--no-deps", "--no-index", "--force-reinstall", str(wheel)], scratch)
    if completed.returncode != 0:
        raise RuntimeInstallError(
            f"pip could not install flowc-runtime into {python}:\n"
            f"{(completed.stderr or completed.stdout).strip()[-2000:]}"
        )
    check = _run(python, ["-c", "import compiler.runtime, compiler.runtime.tasks"], scratch)
    if check.returncode != 0:
        raise RuntimeInstallError(
            f"flowc-runtime {version} is installed in {python} but does not import there:\n"
            f"{check.stderr.strip()[-2000:]}"
        )
    was = f" (was {info['installed']})" if info["installed"] else ""
    return InstallOutcome(python, version, True, f"installed flowc-runtime {version}{was} into {python}")
