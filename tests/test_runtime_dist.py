"""`flowc runtime`: the flowc-runtime wheel and its installation into another interpreter."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from compiler.runtime_dist import RuntimeInstallError, build_wheel, install_runtime, runtime_sources, runtime_version
from tests.helpers import REPO, flowc


def test_the_wheel_holds_the_runtime_alone_and_is_reproducible(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_wheel(tmp_path / "a")
    second = build_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    version = runtime_version()
    assert first.name == f"flowc_runtime-{version}-py3-none-any.whl"
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        packaged = sorted(n for n in names if not n.startswith("flowc_runtime-"))
        expected = sorted(
            ["compiler/__init__.py", "compiler/keys.py"]
            + [p.relative_to(REPO).as_posix() for p in (REPO / "compiler" / "runtime").rglob("*.py")]
        )
        assert packaged == expected
        metadata = archive.read(f"flowc_runtime-{version}.dist-info/METADATA").decode()
        assert "Name: flowc-runtime" in metadata and "Requires-Python: >=3.9" in metadata
        assert "Requires-Dist: prefect>=1.4,<2" in metadata
        assert "pydantic" not in metadata and "click" not in metadata
        record = archive.read(f"flowc_runtime-{version}.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            content = archive.read(name)
            encoded = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={encoded}" and int(size) == len(content)
        assert len(record) == len(names)


def test_the_version_follows_the_runtime_sources() -> None:
    sources = runtime_sources()
    changed = [(name, content + b"\n# changed\n" if name.endswith("files.py") else content) for name, content in sources]
    assert runtime_version(sources) == runtime_version()
    assert runtime_version(changed) != runtime_version(sources)
    assert runtime_version().startswith("0.1.0+r")


def test_install_refuses_flowcs_own_interpreter() -> None:
    with pytest.raises(RuntimeInstallError, match="has flowc .* itself"):
        install_runtime(sys.executable)


def test_install_refuses_an_interpreter_without_prefect(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = tmp_path / "bare" / "bin" / "python"
    result = flowc("runtime", "install", "--python", str(bare), cwd=REPO)
    assert result.returncode == 1
    assert "cannot import prefect" in result.stderr and "pip install prefect==1.4.1" in result.stderr
    result = flowc("runtime", "install", "--python", str(tmp_path / "nope"), cwd=REPO)
    assert result.returncode == 1 and "cannot run" in result.stderr


def test_runtime_wheel_command_prints_the_wheel(tmp_path: Path) -> None:
    result = flowc("runtime", "wheel", "-o", str(tmp_path / "out"), cwd=REPO)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == tmp_path / "out" and path.is_file()
