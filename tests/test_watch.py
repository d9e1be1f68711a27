"""`flowc generate --watch`: a real watcher process regenerates on change, one line per run."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, SPECS, copy_project

N = len(SPECS)  # the example specs
# What they write: three files each, four for a prefect3 spec (its prefect.yaml).
FILES = sum(1 for p in (REPO / "generated").rglob("*") if p.is_file())
LAST = sum(1 for p in (REPO / "generated" / "quad_scan").iterdir())  # the spec the test removes

WAIT_S = 30.0
RUN_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] (?P<trigger>.+?): (?P<summary>.+)\Z")


class Watcher:
    """`flowc generate --watch` in a subprocess, its output read line by line."""

    def __init__(self, project: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "compiler", "generate", "--watch"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_run(self) -> tuple[str, str, list[str]]:
        """The next run's (trigger, summary) and any diagnostics printed before it."""
        before: list[str] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            match = RUN_LINE.match(line)
            if match:
                return match["trigger"], match["summary"], before
            before.append(line)
        raise AssertionError(f"no run reported within {WAIT_S}s; output so far: {self.seen}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[tuple[Path, Watcher]]:
    project = copy_project(tmp_path / "project", generated=False)
    running = Watcher(project)
    try:
        yield project, running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_watch_regenerates_on_change_reporting_each_run_in_one_line(watcher: tuple[Path, Watcher]) -> None:
    project, running = watcher
    flow = project / "generated" / "fan_in" / "flow.py"
    spec = project / "specs" / "fan_in.yaml"

    trigger, summary, before = running.next_run()
    assert (trigger, before) == ("start", [])
    assert re.fullmatch(rf"{N} specs, {FILES} written, 0 unchanged, 0 removed \(\d+\.\d\ds\): .+", summary)
    assert flow.is_file()

    edit(spec, "factor: 3.0", "factor: 4.0")
    trigger, summary, before = running.next_run()
    assert (trigger, before) == ("specs/fan_in.yaml changed", [])
    assert re.fullmatch(rf"{N} specs, 3 written, {FILES - 3} unchanged, 0 removed \(\d+\.\d\ds\): fan_in", summary)
    assert 'Parameter("left-factor", default=4.0)' in flow.read_text()

    edit(spec, "parent_flow_name: start", "parent_flow_name: strat")
    trigger, summary, before = running.next_run()
    assert trigger == "specs/fan_in.yaml changed"
    assert re.fullmatch(r"1 error; nothing was written \(\d+\.\d\ds\)", summary)
    assert len(before) == 1 and re.match(
        r"specs/fan_in\.yaml:\d+:\d+: error: flow 'strat' is not a step", before[0]
    )
    assert 'Parameter("left-factor", default=4.0)' in flow.read_text()

    edit(spec, "parent_flow_name: strat", "parent_flow_name: start")
    edit(spec, "factor: 4.0", "factor: 5.0")
    trigger, summary, _ = running.next_run()
    assert trigger == "specs/fan_in.yaml changed"
    assert summary.endswith(": fan_in") and "3 written" in summary
    assert 'Parameter("left-factor", default=5.0)' in flow.read_text()

    assert running.stop() == 0
    assert all(RUN_LINE.match(line) or ": error: " in line for line in running.seen)


def test_watch_reacts_to_the_lock_and_to_a_removed_spec(watcher: tuple[Path, Watcher]) -> None:
    project, running = watcher
    running.next_run()

    lock = project / "specs" / "flows.lock.yaml"
    text = lock.read_text()
    entry = text.index("  lume/combine:")
    lock.write_text(text[:entry] + text[entry:].replace("required: true", "required: false", 1))
    trigger, summary, _ = running.next_run()
    assert trigger == "specs/flows.lock.yaml changed"
    assert re.search(r", [1-9]\d* written, ", summary), summary

    (project / "specs" / "quad_scan.yaml").unlink()
    trigger, summary, _ = running.next_run()
    assert trigger == "specs/quad_scan.yaml changed"
    assert re.fullmatch(rf"{N - 1} specs, 0 written, {FILES - LAST} unchanged, {LAST} removed \(\d+\.\d\ds\): quad_scan", summary)
    assert not (project / "generated" / "quad_scan").exists()

    # Files that are no spec do not start a run.
    (project / "specs" / "notes.txt").write_text("not a spec\n")
    (project / "specs" / "fan_in.yaml").write_text((project / "specs" / "fan_in.yaml").read_text())
    trigger, _, _ = running.next_run()
    assert trigger == "specs/fan_in.yaml changed"
    assert running.stop() == 0
