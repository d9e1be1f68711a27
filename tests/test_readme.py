"""The README's install, quick start and "Your first pipeline" commands, run verbatim in a fresh venv.

A copy of this checkout is installed with the README's own commands (`python3 -m venv .venv`,
`pip install .`: the dependencies come from pip's cache or index, as for a user), then the quick
start runs in that copy and the first pipeline in an empty directory beside it, all in one bash
script with `set -e`, so any failing command fails the test with its output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.helpers import REPO

README = REPO / "README.md"
INSTALL_TIMEOUT_S = 1500


def sh_blocks(section: str) -> list[str]:
    """The ```sh blocks of one `## section` of the README, in order."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README.md has no section '## {section}'"
    return re.findall(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)


def _copy_checkout(target: Path) -> None:
    """The files git tracks (what a clone holds), else the tree without local state."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            source = REPO / name
            if name and (source.is_file() or source.is_symlink()):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                if source.is_symlink():
                    os.symlink(os.readlink(source), target / name)
                else:
                    shutil.copy2(source, target / name)
        return
    shutil.copytree(  # pragma: no cover - a source tree without git
        REPO, target, symlinks=True, dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".git", ".venv", ".flowc", "__pycache__", "*.egg-info", "build"),
    )


def test_sections_hold_the_commands_a_user_runs() -> None:
    install = "\n".join(sh_blocks("Install"))
    assert "python3 -m venv .venv" in install and "pip install ." in install
    first = "\n".join(sh_blocks("Your first pipeline"))
    for command in ("flowc lock", "flowc generate", "flowc check", "flowc run specs/pipeline.yaml"):
        assert command in first


def test_install_quick_start_and_first_pipeline_run_verbatim_in_a_fresh_venv(tmp_path: Path) -> None:
    checkout = tmp_path / "flowc"
    checkout.mkdir()
    _copy_checkout(checkout)
    work = tmp_path / "work"
    work.mkdir()
    script = "\n".join(
        [
            "set -euo pipefail",
            f"cd {checkout}",
            *sh_blocks("Install"),
            *sh_blocks("Quick start"),
            f"cd {work}",
            *sh_blocks("Your first pipeline"),
            "echo FIRST-PIPELINE-DONE",
        ]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "FLOWC_RESULTS_DB")}
    env["PIP_PROGRESS_BAR"] = "off"
    env["HOME"] = str(tmp_path / "home")  # nothing global is written (caches, prefect config)
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["PREFECT__HOME_DIR"] = str(tmp_path / "home" / ".prefect")
    # Leave the test's own virtualenv off PATH, so `python3` is the system's, as for a user.
    if os.environ.get("VIRTUAL_ENV"):
        venv_bin = str(Path(os.environ["VIRTUAL_ENV"]) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )
    output = f"exit {done.returncode}\nstdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-6000:]}"
    assert done.returncode == 0, output
    assert done.stdout.rstrip().endswith("FIRST-PIPELINE-DONE"), output
    project = work / "first-pipeline"
    assert (project / "specs" / "flows.lock.yaml").is_file()
    assert {p.name for p in (project / "generated" / "pipeline").iterdir()} >= {"flow.py", "Dockerfile", "README.md"}
    assert ".flowc/" in (project / ".gitignore").read_text()
    # The run passed produce's result to consume: 2 * 2.5, formatted by consume's report task.
    assert "succeeded" in (done.stdout + done.stderr).lower(), output
