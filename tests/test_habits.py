"""The command line's habits: streams kept apart, -q/-v, --color with NO_COLOR/FORCE_COLOR, check's
presentation (folded digest lines, --stat), completion, and the pymongo extra's message."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.diffview import file_diff
from tests.helpers import REPO, copy_project, flowc, tree

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(extra)
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "p", examples=True)


def _stale(project: Path) -> None:
    spec = project / "specs" / "impact_pipeline.yaml"
    spec.write_text(spec.read_text().replace("n_particle: 2000", "n_particle: 3000"))


# Streams ----------------------------------------------------------------------------------------


def test_generate_says_what_it_wrote_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p", generated=False)
    result = flowc("generate", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "wrote generated/fan_in/flow.py" in result.stderr
    assert re.search(r"\d+ specs: \d+ file\(s\) written", result.stderr)


def test_generate_format_json_prints_one_json_document_and_no_wrote_lines(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p", generated=False)
    result = flowc("generate", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "wrote" not in result.stdout and "wrote generated/" in result.stderr
    (project / "specs" / "fan_in.yaml").write_text("name: fan_in\nproject_name: lume\ncomposing_flows: []\n")
    failed = flowc("generate", "--format", "json", cwd=project)
    assert failed.returncode == 1
    problems = json.loads(failed.stdout)
    assert problems and problems[0]["path"] == "specs/fan_in.yaml"


def test_check_format_json_is_one_document_with_the_diffs_kept_off_stdout(project: Path) -> None:
    _stale(project)
    result = flowc("check", "--format", "json", cwd=project)
    assert result.returncode == 1
    assert [p["path"] for p in json.loads(result.stdout)] == [
        "generated/impact_pipeline/Dockerfile",
        "generated/impact_pipeline/README.md",
        "generated/impact_pipeline/flow.py",
    ]


def test_check_format_github_prints_only_annotations_on_stdout(project: Path) -> None:
    _stale(project)
    result = flowc("check", "--format", "github", cwd=project)
    assert result.returncode == 1
    assert result.stdout and all(line.startswith("::error ") for line in result.stdout.splitlines())
    assert "+++ b/generated/impact_pipeline/flow.py" in result.stderr


# -q and -v --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("generate",), ("check",), ("lock",)])
def test_quiet_prints_nothing_on_success(project: Path, args: tuple[str, ...]) -> None:
    result = flowc(*args, "-q", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_quiet_still_prints_errors(project: Path) -> None:
    _stale(project)
    result = flowc("check", "-q", cwd=project)
    assert result.returncode == 1
    assert "out of date with its spec" in result.stderr


def test_verbose_says_what_was_skipped(project: Path) -> None:
    result = flowc("generate", "-v", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "spec(s) taken from this machine's render cache, not rendered" in result.stderr


# Colour -----------------------------------------------------------------------------------------


def test_the_diff_is_plain_in_a_pipe_and_coloured_when_asked(project: Path) -> None:
    _stale(project)
    plain = flowc("check", cwd=project, env=_env())
    assert plain.returncode == 1 and not ANSI.search(plain.stdout + plain.stderr)
    always = flowc("check", "--color", "always", cwd=project, env=_env(NO_COLOR="1"))
    assert "\x1b[31m-" in always.stdout and "\x1b[32m+" in always.stdout
    forced = flowc("check", cwd=project, env=_env(FORCE_COLOR="1"))
    assert ANSI.search(forced.stdout)
    no_color = flowc("check", cwd=project, env=_env(FORCE_COLOR="1", NO_COLOR="1"))
    assert not ANSI.search(no_color.stdout + no_color.stderr)
    never = flowc("check", "--color", "never", cwd=project, env=_env(FORCE_COLOR="1"))
    assert not ANSI.search(never.stdout + never.stderr)


# check's presentation ---------------------------------------------------------------------------


def test_a_one_value_change_shows_its_lines_and_folds_digests_and_tags(project: Path) -> None:
    _stale(project)
    result = flowc("check", "specs/impact_pipeline.yaml", cwd=project)
    flow_diff = result.stdout.split("--- a/generated/impact_pipeline/flow.py", 1)[1].split("\n--- ", 1)[0]
    changed = [line for line in flow_diff.splitlines() if line and line[0] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        '-    distgen_n_particle = Parameter("distgen-n_particle", default=2000)',
        '+    distgen_n_particle = Parameter("distgen-n_particle", default=3000)',
    ]
    assert "generated/impact_pipeline/flow.py: and 2 lines where only digests and image tags changed" in result.stdout


def test_a_header_only_change_is_one_line_per_file(project: Path) -> None:
    # Spelling out a default changes the spec's data (so every digest and the image tag) but not the code.
    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("project_name: lume\n", "project_name: lume\nlabels: [lume-services]\n", 1))
    result = flowc("check", "specs/fan_in.yaml", cwd=project)
    assert result.returncode == 1
    for name in ("flow.py", "Dockerfile", "README.md"):
        assert re.search(rf"^generated/fan_in/{re.escape(name)}: only digests and image tags changed \(\d+ lines?\)$",
                         result.stdout, re.M), result.stdout
    assert "@@" not in result.stdout


def test_stat_lists_files_only(project: Path) -> None:
    _stale(project)
    (project / "specs" / "quad_scan.yaml").unlink()
    result = flowc("check", "--stat", cwd=project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "@@" not in result.stdout and "+++" not in result.stdout
    assert any(re.match(r"generated/impact_pipeline/flow.py +\| stale +\+1 -1 \(2 digest/tag lines\)$", l) for l in lines), lines
    assert any(re.match(r"generated/quad_scan/flow.py +\| orphaned", l) for l in lines), lines


def test_file_diff_folds_digests_even_when_lines_move() -> None:
    a = "# flowc: inputs=sha256:" + "a" * 64 + "\nIMAGE = 'x:" + "a" * 16 + "'\nvalue = 1\n"
    b = "# flowc: inputs=sha256:" + "b" * 64 + "\nIMAGE = 'x:" + "b" * 16 + "'\nvalue = 2\n"
    diff = file_diff("f.py", a, b)
    assert diff.folded == 2 and (diff.added, diff.removed) == (1, 1)
    assert "-value = 1\n+value = 2\n" in diff.text
    assert file_diff("f.py", a, a.replace("value = 1", "value = 1")).text == ""
    missing = file_diff("f.py", None, b)
    assert missing.text.startswith("--- /dev/null\n+++ b/f.py\n@@ -0,0 +1,3 @@\n")


# Completion -------------------------------------------------------------------------------------


def _complete(words: str, cwd: Path) -> list[str]:
    env = _env(_FLOWC_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    done = subprocess.run([sys.executable, "-c", "from compiler.cli import main; main(prog_name='flowc')"],
                          cwd=cwd, env=env, capture_output=True, text=True)
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]


def test_completion_offers_spec_paths_and_parameter_names(project: Path) -> None:
    assert "specs/fan_in.yaml" in _complete("flowc check specs/f", project)
    names = _complete("flowc run specs/fan_in.yaml -p ", project)
    assert "start-factor=" in names and "combine-a=" not in names  # a is mapped, not a parameter
    assert _complete("flowc run specs/fan_in.yaml -p left-", project) == ["left-factor="]


# pymongo is an extra ------------------------------------------------------------------------------


def test_a_mongodb_store_without_pymongo_says_which_extra_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pymongo'] = None\n"
        "from compiler.runtime.results import MongoResultsStore\n"
        "try:\n    MongoResultsStore('mongodb://user:secret@127.0.0.1:1/results')\n"
        "except ImportError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "pip install 'flowc[mongo]'" in done.stdout, done.stdout + done.stderr
    assert "secret" not in done.stdout and "user:***@" in done.stdout


# Setup faults -------------------------------------------------------------------------------------


def test_run_against_a_results_store_that_is_down_is_one_line_saying_what_to_start(project: Path) -> None:
    env = _env(FLOWC_RESULTS_DB="mongodb://127.0.0.1:9/results")
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: the results store at FLOWC_RESULTS_DB=mongodb://127.0.0.1:9/results does not answer")
    assert "start MongoDB" in lines[0] and "unset FLOWC_RESULTS_DB" in lines[0]


# Progress on a terminal -----------------------------------------------------------------------------


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; (exit code, everything it drew)."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler", *args], cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=follower, stderr=follower, env=_env(COLUMNS="100", TERM="xterm"),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(), b"".join(chunks).decode(errors="replace")


def test_a_long_generate_draws_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p", generated=False)
    source = (project / "specs" / "fan_in.yaml").read_text()
    for number in range(12):
        (project / "specs" / f"copy{number}.yaml").write_text(source.replace("name: fan_in", f"name: copy{number}", 1))
    code, drawn = _on_a_terminal(["generate"], project)
    assert code == 0, drawn
    assert "generating" in drawn and re.search(r"\d+/[12][0-9]", drawn), drawn
    drawn_tree = tree(project / "generated")
    shutil.rmtree(project / "generated")
    piped = flowc("generate", cwd=project)
    assert piped.returncode == 0 and "generating" not in piped.stdout + piped.stderr
    assert tree(project / "generated") == drawn_tree  # the same bytes, bar or not


def test_the_same_change_in_many_files_is_shown_once(project: Path) -> None:
    # The same hand edit in every flow.py stands for a template change over many specs.
    line = "from prefect import Parameter\n"
    flows = [f for f in sorted((project / "generated").glob("*/flow.py")) if line in f.read_text()]
    assert len(flows) > 2
    for flow in flows:
        flow.write_text(flow.read_text().replace(line, "from prefect import  Parameter\n"))
    result = flowc("check", cwd=project)
    assert result.returncode == 1
    assert result.stdout.count("-from prefect import  Parameter") == 1
    first = flows[0].relative_to(project).as_posix()
    assert f"{first}: the same change in {len(flows) - 1} more file(s):" in result.stdout


# Machine output with noisy children ---------------------------------------------------------------


def test_run_json_is_one_document_on_stdout_while_children_print_and_log(tmp_path: Path) -> None:
    root = tmp_path / "noisy"
    assert flowc("init", str(root), "-q", cwd=tmp_path).returncode == 0
    produce = root / "noisy_flows" / "produce.py"
    produce.write_text(
        produce.read_text().replace(
            "    return 2 * x\n",
            "    import logging, sys\n"
            "    print('noise on stdout {')\n"
            "    sys.stdout.write('[1, 2\\n')\n"
            "    logging.getLogger('prefect').warning('a warning from the child')\n"
            "    return 2 * x\n",
        )
    )
    assert flowc("lock", "-q", cwd=root).returncode == 0
    assert flowc("generate", "-q", cwd=root).returncode == 0
    done = flowc("run", "specs/noisy.yaml", "--json", cwd=root, env=_env(FLOWC_RESULTS_DB=f"sqlite:///{tmp_path}/r.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)  # what `| jq` needs: one document, nothing else
    assert summary["ok"] is True
    assert "noise on stdout" in done.stderr  # the child's output is kept, on stderr


# flowc run: said to a person on stderr, -q, the live line -----------------------------------------


def test_run_says_everything_on_stderr_and_nothing_at_all_under_quiet(project: Path) -> None:
    env = _env(FLOWC_RESULTS_DB=f"sqlite:///{project}/r.db")
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "✔ combine" in done.stderr and "fan_in: Success" in done.stderr
    assert "running:" not in done.stderr  # no live line in a pipe
    quiet = flowc("run", "specs/fan_in.yaml", "-q", cwd=project, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert len(list((project / ".flowc" / "runs").glob("*/combine.log"))) == 2  # the logs are still kept


def _init_with_produce(tmp_path: Path, name: str, body: str) -> Path:
    """`flowc init` a project whose `produce` child runs `body` before returning."""
    root = tmp_path / name
    assert flowc("init", str(root), "-q", cwd=tmp_path).returncode == 0
    produce = root / f"{name}_flows" / "produce.py"
    produce.write_text(produce.read_text().replace("    return 2 * x\n", f"{body}    return 2 * x\n"))
    assert flowc("lock", "-q", cwd=root).returncode == 0
    assert flowc("generate", "-q", cwd=root).returncode == 0
    return root


def test_a_quiet_run_that_fails_still_prints_its_summary(tmp_path: Path) -> None:
    root = _init_with_produce(tmp_path, "broken", "    print('chatter from produce')\n    raise ValueError('no good')\n")
    done = flowc("run", "specs/broken.yaml", "-q", cwd=root, env=_env(FLOWC_RESULTS_DB=f"sqlite:///{tmp_path}/r.db"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "▶" not in done.stderr and "chatter from produce" not in done.stderr  # no progress, no children's output
    assert re.search(r"produce: Failed: .*no good", " ".join(done.stderr.split())), done.stderr
    assert "broken: Failed" in done.stderr


def test_a_running_child_shows_a_live_line_with_its_elapsed_time_on_a_terminal(tmp_path: Path) -> None:
    root = _init_with_produce(tmp_path, "slow", "    import time\n    print('produce is thinking')\n    time.sleep(3)\n")
    code, drawn = _on_a_terminal(["run", "specs/slow.yaml"], root)
    assert code == 0, drawn
    assert re.search(r"running: produce [1-9]\d*s", drawn), drawn
    plain = ANSI.sub("", drawn)
    assert "[produce] produce is thinking" in plain and "slow: Success" in plain


def test_the_live_line_leaves_json_on_stdout_alone(tmp_path: Path) -> None:
    root = _init_with_produce(tmp_path, "slowjson", "    import time\n    time.sleep(2)\n")
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(  # stderr on a terminal, stdout into a pipe (`flowc run --json | jq`)
        [sys.executable, "-m", "compiler", "run", "specs/slowjson.yaml", "--json"], cwd=root,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=_env(COLUMNS="100", TERM="xterm"),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    assert process.wait() == 0, stdout
    drawn = b"".join(chunks).decode(errors="replace")
    assert re.search(r"running: produce \d+s", drawn), drawn
    assert json.loads(stdout)["ok"] is True  # one document, no escape codes, no live line
