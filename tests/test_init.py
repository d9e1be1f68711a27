"""`flowc init`: an empty directory becomes a project that generates, checks, runs and passes
pre-commit at once; nothing that exists is ever overwritten."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import flowc, tree


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT", "FLOWC_")) and k != "PYTHONPATH"}
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = flowc test\n\temail = flowc-test@example.invalid\n")
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # this flowc, this pre-commit
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        PRE_COMMIT_COLOR="never",
    )
    return env


def test_init_then_generate_check_run_and_pre_commit_are_green(tmp_path: Path) -> None:
    env = _env(tmp_path)
    root = tmp_path / "my-pipeline"
    root.mkdir()
    created = flowc("init", "my-pipeline", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""
    assert "flowc run specs/my_pipeline.yaml" in created.stderr  # the next steps
    assert sorted(tree(root)) == [
        ".gitignore",
        ".pre-commit-config.yaml",
        "my_pipeline_flows/__init__.py",
        "my_pipeline_flows/consume.py",
        "my_pipeline_flows/produce.py",
        "pyproject.toml",
        "specs/flowc.schema.json",
        "specs/flows.lock.yaml",
        "specs/my_pipeline.yaml",
    ]
    assert ".flowc/" in (root / ".gitignore").read_text().splitlines()
    assert "[tool.flowc]" in (root / "pyproject.toml").read_text()
    # The lock is flowc lock's own: locking again changes nothing.
    lock_text = (root / "specs" / "flows.lock.yaml").read_text()
    relocked = flowc("lock", cwd=root, env=env)
    assert relocked.returncode == 0 and "is up to date (2 flows)" in relocked.stderr, relocked.stderr
    assert (root / "specs" / "flows.lock.yaml").read_text() == lock_text
    assert "loadable: anywhere" in lock_text  # the results the spec maps can be loaded by another process

    for args in (("generate",), ("check",)):
        done = flowc(*args, cwd=root, env=env)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    ran = flowc("run", "specs/my_pipeline.yaml", "-p", "produce-x=2.5", "--json", cwd=root, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["ok"] is True
    consume = next(child for child in summary["children"] if child["alias"] == "consume")
    assert consume["parameters"]["y"] == 5.0

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=root, env=env, capture_output=True, text=True, timeout=600)

    assert run("git", "init", "-q", "-b", "main").returncode == 0
    assert run("git", "add", ".").returncode == 0
    status = run("git", "status", "--porcelain").stdout
    assert ".flowc" not in status  # ignored
    hooks = run(sys.executable, "-m", "pre_commit", "run", "--all-files")
    assert hooks.returncode == 0, hooks.stdout + hooks.stderr
    assert re.search(r"flowc generate\.+Passed", hooks.stdout) and re.search(r"flowc check\.+Passed", hooks.stdout)


@pytest.mark.parametrize("existing", ["pyproject.toml", ".gitignore", "specs/flows.lock.yaml", "specs/here.yaml"])
def test_init_refuses_to_overwrite_anything_and_writes_nothing(tmp_path: Path, existing: str) -> None:
    root = tmp_path / "here"
    (root / existing).parent.mkdir(parents=True, exist_ok=True)
    (root / existing).write_text("mine\n")
    before = tree(root)
    refused = flowc("init", str(root), cwd=tmp_path, env=_env(tmp_path))
    assert refused.returncode == 1
    assert existing in refused.stderr and "nothing was written" in refused.stderr
    assert refused.stdout == ""
    assert tree(root) == before


def test_init_without_an_argument_scaffolds_the_current_directory(tmp_path: Path) -> None:
    root = tmp_path / "Demo Project"
    root.mkdir()
    (root / "notes.txt").write_text("unrelated files stay\n")
    done = flowc("init", "-q", cwd=root, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert (root / "specs" / "demo_project.yaml").is_file()
    assert (root / "notes.txt").read_text() == "unrelated files stay\n"
