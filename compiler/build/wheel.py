"""flowc's own wheel, which every image installs (the runtime flow.py imports): built once per
source tree and cached on this machine."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from compiler.build.common import BUILD_LOG_TAIL_LINES, WHEEL_SOURCE_DATE_EPOCH, BuildFailure, Progress, show_tail
from compiler.rendercache import cache_dir


class WheelProvider:
    """flowc's own wheel, made once per run and only when an image is really built."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._wheel: Path | None = None

    def get(self) -> Path:
        if self._wheel is None:
            self._wheel = flowc_wheel(self.progress)
        return self._wheel


def flowc_source_tree() -> Path | None:
    """The checkout flowc runs from (an editable install), or None for an installed wheel."""
    import compiler

    root = Path(compiler.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        with pyproject.open("rb") as handle:
            name = tomllib.load(handle).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if name == "flowc" else None


def wheel_sources(root: Path) -> list[Path]:
    """What `pip wheel` needs: pyproject.toml, the README it names, the compiler package (through
    its symlinks: compiler/templates is the repository's templates/, shipped as package data)."""
    files = [root / "pyproject.toml"]
    if (root / "README.md").is_file():
        files.append(root / "README.md")
    package = root / "compiler"
    for directory, subdirectories, names in os.walk(package, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                files.append(Path(directory) / name)
    return files


def flowc_wheel(progress: Progress) -> Path:
    """$FLOWC_WHEEL, else a wheel built from flowc's source tree, cached by the sources' digest."""
    explicit = os.environ.get("FLOWC_WHEEL")
    if explicit:
        wheel = Path(explicit)
        if not (wheel.is_file() and wheel.name.endswith(".whl")):
            raise BuildFailure(f"FLOWC_WHEEL={explicit} is not a wheel file")
        return wheel
    root = flowc_source_tree()
    if root is None:
        raise BuildFailure(
            "flowc is not installed from a source tree, so it cannot build its own wheel for the images; "
            "set FLOWC_WHEEL to a flowc-*.whl of this version"
        )
    # Read once: the digest names exactly the bytes that go into the wheel.
    sources = {path.relative_to(root).as_posix(): path.read_bytes() for path in wheel_sources(root)}
    digest = hashlib.sha256()
    for name, data in sources.items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    target = cache_dir() / "wheels" / digest.hexdigest()[:24]
    cached = sorted(target.glob("flowc-*.whl")) if target.is_dir() else []
    if cached:
        return cached[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    progress.say(f"building flowc's wheel from {root}")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        source = Path(scratch) / "src"
        for name, data in sources.items():
            destination = source / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        out = Path(scratch) / "out"
        env = {**os.environ, "SOURCE_DATE_EPOCH": WHEEL_SOURCE_DATE_EPOCH, "PIP_NO_INPUT": "1"}
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=scratch)
        wheels = sorted(out.glob("flowc-*.whl"))
        if result.returncode != 0 or not wheels:
            show_tail((result.stdout + result.stderr).splitlines()[-BUILD_LOG_TAIL_LINES:])
            raise BuildFailure(f"`pip wheel` could not build flowc's wheel from {root} (exit {result.returncode})")
        try:
            os.rename(out, target)
        except OSError:
            if not sorted(target.glob("flowc-*.whl")):  # not a concurrent build that won the race
                raise
    return sorted(target.glob("flowc-*.whl"))[0]
