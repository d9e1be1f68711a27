"""Issue 10, `flowc run` with every child in a process of its own: a chain of trivial children.

For each size, in fresh processes, wall clock, medians of `--repeat` runs:
- the floor: `benchmarks/direct_run.py`, the same children's `flow.run()` one after another in one
  process, values passed by hand (what a user without flowc would type);
- `flowc run --json` with each child start method (`FLOWC_CHILD_START=fork`, the default: a warm
  server forks each child; `spawn`: a new interpreter per child), whole process;
- from that run's reports: the first child's start (seconds from the command to the child's first
  line of flowc's code), and each child's start overhead (from flowc's launch to the child process
  running, before it imports its source), median and 90th percentile;
- CPU seconds (user + system) of each whole process tree, flowc's against the floor's, which stay
  meaningful on a busy machine, and per step (medians from the reports): flowc's launch to the child
  running, its import, its flow.run() and report, its end to flowc seeing it, and the next start.

    python benchmarks/bench_run.py                          # chain of 500, fork and spawn, 3 runs
    python benchmarks/bench_run.py --sizes 50,500 --start fork --repeat 5 --json run.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import bench_large  # noqa: E402  (benchmarks/ is not a package)
from bench import _recipe  # noqa: E402
from synthetic import FLOWC  # noqa: E402

GOALS = {"first child": 2.0, "start overhead": 0.010, "ratio": 1.5}


def direct(root: Path, name: str) -> tuple[float, float, float]:
    """The floor: (whole process, the runs themselves, CPU of the process), seconds."""
    recipe = root / f"{name}.recipe.json"
    if not recipe.exists():
        recipe.write_text(json.dumps(_recipe(root, name)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / "direct_run.py"), str(recipe)],
        cwd=root,
        env={**bench_large.os.environ, **bench_large.run_env(root)},
        capture_output=True,
        text=True,
    )
    whole = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    inner = float(done.stderr.strip().splitlines()[-1].split(" in ")[-1].rstrip("s"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return whole, inner, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def flowc_run(root: Path, name: str, start: str) -> dict[str, Any]:
    """One `flowc run --json`: whole wall time, the run's own time, first child, start overheads."""
    env = {**bench_large.os.environ, **bench_large.run_env(root), "FLOWC_CHILD_START": start}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    with tempfile.TemporaryFile() as errors:
        began = time.time()
        started = time.perf_counter()
        done = subprocess.run(FLOWC + ["run", f"specs/{name}.yaml", "--json"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        whole = time.perf_counter() - started
        if done.returncode != 0:
            errors.seek(0)
            raise RuntimeError(errors.read()[-3000:].decode())
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(done.stdout)
    run_dir = root / summary["run_dir"]
    overheads = []
    first_entered = None
    steps = []  # per child: launched, entered, imported, finished (its report), ended (as flowc saw it)
    for child in summary["children"]:
        report = json.loads((run_dir / f"{child['alias']}.report.json").read_text())
        timing = report["timing"]
        entered = timing["entered"]
        launched = datetime.fromisoformat(child["started_at"]).timestamp()
        overheads.append(entered - launched)
        first_entered = entered if first_entered is None else min(first_entered, entered)
        ended = launched + child["duration_s"]
        steps.append((launched, entered, timing.get("imported", entered), timing["finished"], ended))
    steps.sort()
    return {
        "cpu": cpu.ru_utime + cpu.ru_stime - cpu_before,
        "per_step": {
            "launch to running": statistics.median(s[1] - s[0] for s in steps),
            "import": statistics.median(s[2] - s[1] for s in steps),
            "flow.run and report": statistics.median(s[3] - s[2] for s in steps),
            "child end to flowc": statistics.median(s[4] - s[3] for s in steps),
            "next start": statistics.median(b[0] - a[4] for a, b in zip(steps, steps[1:])) if len(steps) > 1 else 0.0,
        },
        "whole": whole,
        "run": summary["duration_s"],
        "first_child": (first_entered or began) - began,
        "overhead_median": statistics.median(overheads),
        "overhead_p90": sorted(overheads)[int(0.9 * (len(overheads) - 1))],
        "children": len(overheads),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500")
    parser.add_argument("--start", default="fork,spawn")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    starts = args.start.split(",")
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flowc-bench-run-") as work:
        for size in sizes:
            root = bench_large.make_project(Path(work), "chain", size)
            name = f"chain{size}"
            floors = [direct(root, name) for _ in range(args.repeat)]
            raw[f"{name} direct"] = floors
            runs = {start: [flowc_run(root, name, start) for _ in range(args.repeat)] for start in starts}
            raw[name] = runs
            floor_whole = statistics.median(f[0] for f in floors)
            floor_inner = statistics.median(f[1] for f in floors)
            floor_cpu = statistics.median(f[2] for f in floors)
            print(f"\n### chain of {size} trivial children, medians of {args.repeat}\n")
            print("| | whole process | the runs | ratio (whole) | first child | start overhead median / p90 |")
            print("|---|---:|---:|---:|---:|---:|")
            print(f"| by hand, one process (`direct_run.py`) | {floor_whole:.2f} s | {floor_inner:.2f} s | 1.00 | | |")
            for start, samples in runs.items():
                whole = statistics.median(s["whole"] for s in samples)
                inner = statistics.median(s["run"] for s in samples)
                first = statistics.median(s["first_child"] for s in samples)
                median = statistics.median(s["overhead_median"] for s in samples)
                p90 = statistics.median(s["overhead_p90"] for s in samples)
                print(
                    f"| `flowc run`, {start} | {whole:.2f} s | {inner:.2f} s | {whole / floor_whole:.2f} | "
                    f"{first:.2f} s | {median * 1000:.1f} / {p90 * 1000:.1f} ms |"
                )
            for start, samples in runs.items():
                cpu = statistics.median(s["cpu"] for s in samples)
                parts = ", ".join(
                    f"{name} {statistics.median(s['per_step'][name] for s in samples) * 1000:.1f} ms"
                    for name in samples[0]["per_step"]
                )
                print(
                    f"\n`{start}`: CPU of flowc and its children {cpu:.2f} s ({cpu / size * 1000:.0f} ms a step), "
                    f"{cpu / floor_cpu:.2f}x the CPU by hand ({floor_cpu:.2f} s); per step, medians: {parts}"
                )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
