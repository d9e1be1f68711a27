"""Where things are: `[tool.flowc]` of pyproject.toml, relative to the project root."""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {"specs": "specs", "generated": "generated", "lock": "specs/flows.lock.yaml", "target": "prefect1"}
TARGETS = ("prefect1", "prefect3")
PREFECT3_PYTHON_ENV = "FLOWC_PREFECT3_PYTHON"


@dataclass(frozen=True)
class Project:
    root: Path
    specs_dir: Path
    generated_dir: Path
    lock_path: Path
    # The interpreter that imports and runs child flows (DESIGN.md "Child flows: where they run"):
    # `[tool.flowc] python`, relative to the root or absolute; default: the one running flowc.
    python: str = sys.executable
    # The default target of the project's specs; a spec's own `target:` overrides it.
    target: str = "prefect1"
    # The interpreter of the Prefect 3 children (prefect3 specs): `[tool.flowc.prefect3] python`,
    # else `FLOWC_PREFECT3_PYTHON`, else `python` (a project whose children are all Prefect 3).
    prefect3_python: str | None = None

    def children_python(self, target: str) -> str:
        """The interpreter that imports and runs the children of a spec of `target`."""
        return (self.prefect3_python or self.python) if target == "prefect3" else self.python

    def relative(self, path: Path) -> str:
        """A path as headers and diagnostics show it: relative to the root, with '/'."""
        # The path as named first (a spec linked in from outside the project is still
        # specs/x.yaml), then as resolved (a path given through a symlinked directory).
        for candidate in (lambda: Path(os.path.abspath(path)), path.resolve):
            try:
                return candidate().relative_to(self.root).as_posix()
            except ValueError:
                continue
        return path.as_posix()

    def spec_files(self) -> list[Path]:
        """Every spec in specs/, in a stable order; the lock is not a spec."""
        lock = self.lock_path.resolve()
        # Only a file of the lock's name, or a link, can resolve to the lock (resolving each
        # spec would cost a warm check a tenth of its time).
        return sorted(
            p
            for pattern in ("*.yaml", "*.yml")
            for p in self.specs_dir.glob(pattern)
            if not ((p.name == lock.name or p.is_symlink()) and p.resolve() == lock)
        )


class ConfigError(Exception):
    """pyproject.toml cannot be read; the message is one `path:line:col: error:` line."""


def find_project(start: Path | None = None) -> Project:
    """The nearest directory upwards with a pyproject.toml (else the start) is the root."""
    here = (start or Path.cwd()).resolve()
    root = next((d for d in (here, *here.parents) if (d / "pyproject.toml").is_file()), here)
    settings = dict(DEFAULTS)
    pyproject = root / "pyproject.toml"
    prefect3: dict[str, object] = {}
    if pyproject.is_file():
        try:
            with pyproject.open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            # TOMLDecodeError says "(at line L, column C)"; the message keeps it.
            raise ConfigError(f"{pyproject}:1:1: error: cannot read pyproject.toml: {error}") from None
        table = document.get("tool", {}).get("flowc", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{pyproject}:1:1: error: [tool.flowc] must be a table")
        settings.update({k: str(v) for k, v in table.items() if k in DEFAULTS or k == "python"})
        prefect3 = table.get("prefect3") if isinstance(table.get("prefect3"), dict) else {}
    python = settings.get("python")
    prefect3_python = os.environ.get(PREFECT3_PYTHON_ENV) or (str(prefect3["python"]) if "python" in prefect3 else None)
    return Project(
        root=root,
        specs_dir=root / settings["specs"],
        generated_dir=root / settings["generated"],
        lock_path=root / settings["lock"],
        python=_interpreter(root, python) if python else sys.executable,
        target=settings["target"],
        prefect3_python=_interpreter(root, prefect3_python) if prefect3_python else None,
    )


def _interpreter(root: Path, python: str) -> str:
    """A path (relative to the root, or absolute) or a command name on PATH."""
    return str(root / python) if "/" in python or python.startswith(".") else python
