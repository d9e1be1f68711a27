"""tests/hostile/: every input of issue 11 that once crashed flowc or fooled `check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import copy_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's project (specs, lock, generated/, examples) with its own cache."""
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "cache"))
    return copy_project(tmp_path / "project", generated=True, examples=True)


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output
