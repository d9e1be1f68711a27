"""The hooks, run by real pre-commit at `git commit` in a temporary repository that is a flowc project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, SPECS, copy_project, flowc

MANIFEST = REPO / ".pre-commit-hooks.yaml"
CONFIG = REPO / ".pre-commit-config.yaml"
INTEGRATION = os.environ.get("FLOWC_INTEGRATION") == "1"


class Repo:
    """A git repository with this repository's pre-commit config installed as its hook."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("git", *args, check=check)

    def commit(self, message: str) -> tuple[int, str]:
        """`git commit`, which runs the installed pre-commit hook; (exit code, what the hooks said)."""
        result = self.git("commit", "-m", message, check=False)
        return result.returncode, result.stdout + result.stderr

    def status(self) -> list[str]:
        return self.git("status", "--porcelain", "--untracked-files=all").stdout.splitlines()

    def head(self, path: str) -> str:
        return self.git("show", f"HEAD:{path}").stdout


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = copy_project(tmp_path / "repo", generated=False, examples=True)
    generated = flowc("generate", cwd=root)
    assert generated.returncode == 0, generated.stderr
    shutil.copy(CONFIG, root / ".pre-commit-config.yaml")
    (root / ".gitignore").write_text(".flowc/\n__pycache__/\n")
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = flowc test\n\temail = flowc-test@example.invalid\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "PRE_COMMIT")) and key != "PYTHONPATH"
    }
    env.update(
        # `flowc` and `pre-commit` of this interpreter come first, as after `pip install -e .[test]`.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        PRE_COMMIT_COLOR="never",
    )
    repo = Repo(root, env)
    repo.git("init", "-q", "-b", "main")
    repo.run(sys.executable, "-m", "pre_commit", "install")
    assert (root / ".git" / "hooks" / "pre-commit").is_file()
    repo.git("add", ".")
    code, output = repo.commit("a flowc project")
    assert code == 0, output
    assert re.search(r"flowc generate\.+Passed", output) and re.search(r"flowc check\.+Passed", output)
    assert repo.status() == []
    return repo


def test_spec_edited_without_regenerating_fails_the_commit_and_regenerates(repo: Repo) -> None:
    spec = repo.root / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("factor: 3.0", "factor: 4.0"))
    repo.git("add", "specs/fan_in.yaml")

    code, output = repo.commit("change a default")
    assert code != 0
    assert re.search(r"flowc generate\.+Failed", output)
    assert "files were modified by this hook" in output
    assert "wrote generated/fan_in/flow.py" in output
    assert repo.git("log", "--format=%s").stdout.splitlines() == ["a flowc project"]
    # The regenerated files are left behind, ready to be added.
    flow = (repo.root / "generated" / "fan_in" / "flow.py").read_text()
    assert 'Parameter("left-factor", default=4.0)' in flow
    assert " M generated/fan_in/flow.py" in repo.status()

    repo.git("add", "generated")
    code, output = repo.commit("change a default")
    assert code == 0, output
    assert repo.status() == []
    assert 'Parameter("left-factor", default=4.0)' in repo.head("generated/fan_in/flow.py")


def test_hand_edit_of_a_generated_file_fails_the_commit(repo: Repo) -> None:
    target = repo.root / "generated" / "fan_in" / "flow.py"
    original = target.read_text()
    target.write_text(original.replace('LABELS = ["lume-services"]', 'LABELS = ["my-agent"]'))
    repo.git("add", "generated/fan_in/flow.py")

    code, output = repo.commit("retarget the agent by hand")
    assert code != 0
    assert re.search(r"flowc generate\.+Failed", output)
    assert "wrote generated/fan_in/flow.py (overwrote a hand edit" in output
    assert repo.git("log", "--format=%s").stdout.splitlines() == ["a flowc project"]
    assert target.read_text() == original, "the hook puts the generated text back"


def test_new_spec_fails_the_commit_until_its_project_is_added(repo: Repo) -> None:
    """pre-commit sees modified tracked files by itself; new files fail through --fail-on-change."""
    source = (repo.root / "specs" / "fan_in.yaml").read_text()
    (repo.root / "specs" / "fan_in_copy.yaml").write_text(source.replace("name: fan_in", "name: fan_in_copy"))
    repo.git("add", "specs/fan_in_copy.yaml")

    code, output = repo.commit("a second fan-in")
    assert code != 0
    assert "wrote generated/fan_in_copy/flow.py" in output
    assert "?? generated/fan_in_copy/flow.py" in repo.status()

    repo.git("add", "generated")
    code, output = repo.commit("a second fan-in")
    assert code == 0, output


def test_changed_child_flow_interface_fails_the_commit_through_flowc_check(repo: Repo) -> None:
    child = repo.root / "examples" / "flows" / "scale.py"
    child.write_text(child.read_text().replace('Parameter("factor"', 'Parameter("gain"'))
    repo.git("add", "examples/flows/scale.py")

    code, output = repo.commit("rename a child parameter")
    assert code != 0
    assert re.search(r"flowc generate\.+\(no files to check\)Skipped", output)
    assert re.search(r"flowc check\.+Failed", output)
    assert "lume/scale no longer matches its source" in output
    assert "parameter 'gain' added (default 2.0); parameter 'factor' removed" in output


def test_commit_without_flowc_files_skips_the_hooks(repo: Repo) -> None:
    (repo.root / "NOTES.md").write_text("notes\n")
    repo.git("add", "NOTES.md")
    code, output = repo.commit("notes")
    assert code == 0, output
    assert re.search(r"flowc generate\.+\(no files to check\)Skipped", output)


def test_repository_config_uses_the_published_hooks() -> None:
    """The local hooks here are the published ones, run from the working tree's flowc."""
    published = {hook["id"]: hook for hook in yaml.safe_load(MANIFEST.read_text())}
    (local,) = yaml.safe_load(CONFIG.read_text())["repos"]
    assert local["repo"] == "local"
    hooks = {hook["id"]: hook for hook in local["hooks"]}
    assert sorted(hooks) == sorted(published) == ["flowc-check", "flowc-generate"]
    for hook_id, hook in hooks.items():
        manifest = published[hook_id]
        assert manifest["language"] == "python" and hook["language"] == "system"
        for key in ("name", "entry", "pass_filenames", "require_serial"):
            assert hook[key] == manifest[key], (hook_id, key)
        assert hook["files"].startswith(manifest["files"]), hook_id


def test_published_manifest_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(MANIFEST)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _snapshot_of_this_repository(target: Path, env: dict[str, str]) -> Path:
    """This working tree's files (tracked and new, not ignored) committed in a fresh repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not os.path.lexists(source):
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), destination)
        else:
            shutil.copy2(source, destination)
    snapshot = Repo(target, env)
    snapshot.git("init", "-q", "-b", "main")
    snapshot.git("add", ".")
    snapshot.git("commit", "-q", "--no-verify", "-m", "snapshot")
    return target


def test_published_hooks_install_from_the_repository_and_pass(repo: Repo, tmp_path: Path) -> None:
    """What another repository gets: pre-commit pip-installs flowc (language: python) and runs it."""
    source = _snapshot_of_this_repository(tmp_path / "flowc-source", repo.env)
    # Compare with the snapshot's own code, not the working tree, which may change meanwhile.
    snapshot_env = {**repo.env, "PYTHONPATH": str(source)}

    def snapshot_flowc(*args: str) -> subprocess.CompletedProcess[str]:
        return Repo(repo.root, snapshot_env).run(sys.executable, "-m", "compiler", *args, check=False)

    assert snapshot_flowc("generate").returncode == 0
    repo.git("add", ".")
    repo.git("commit", "-q", "--no-verify", "--allow-empty", "-m", "generated by the snapshot")

    assert "PYTHONPATH" not in repo.env, "the hooks must run the installed flowc"
    result = repo.run(sys.executable, "-m", "pre_commit", "try-repo", str(source), "--all-files", check=False)
    output = result.stdout + result.stderr
    assert "Installing environment for" in output
    hooks_ran = re.search(r"flowc (generate|check)\.{3,}", output)
    if "An unexpected error has occurred" in output and not hooks_ran:  # installing flowc failed
        message = f"pre-commit could not install flowc and its dependencies:\n{output[-3000:]}"
        if INTEGRATION:
            pytest.fail(message)
        pytest.skip(message)
    assert result.returncode == 0, output
    assert re.search(r"flowc generate\.+Passed", output) and re.search(r"flowc check\.+Passed", output)

    # The installed flowc renders exactly what the source does: a stale spec is regenerated to it.
    spec = repo.root / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("factor: 3.0", "factor: 4.0"))
    assert snapshot_flowc("check").returncode == 1
    result = repo.run(
        sys.executable,
        "-m",
        "pre_commit",
        "try-repo",
        str(source),
        "flowc-generate",
        "--all-files",
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "files were modified by this hook" in output
    files = sum(1 for p in (REPO / "generated").rglob("*") if p.is_file())
    assert f"{len(SPECS)} specs: 3 file(s) written, {files - 3} unchanged" in output
    check = snapshot_flowc("check")
    assert check.returncode == 0, check.stdout + check.stderr
