"""`flowc check` of many specs, cold and warm: issue 11's goals (200 specs: cold ≤ 3 s, warm ≤ 0.3 s).

Cold is a fresh clone (CI): an empty render cache, so check renders every spec (on every core,
as generate does). Warm is this machine after a generate: its cache (compiler/rendercache.py)
records each spec's bytes -> inputs digest and each render, so check parses and renders nothing.
Each run is a fresh `flowc check -q` process on an up-to-date tree of synthetic six-step specs
(benchmarks/synthetic.py); printed: median wall clock, median CPU seconds (flowc and its
workers), and the load average before and after, since the machine may be shared.

    python benchmarks/bench_check.py [--specs 200] [--repeat 5] [--jobs auto,1]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import FLOWC, many_specs, write_project  # noqa: E402

GOALS = {"cold": 3.0, "warm": 0.3}  # seconds, at 200 specs on 2 cores


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", default="auto,1", help="FLOWC_JOBS for the cold runs: auto (every core) and/or numbers")
    parser.add_argument("--keep", help="a directory to keep the project and caches in")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="flowc-bench-check-"))
    root = work / f"many{args.specs}"
    if not root.exists():
        write_project(root, many_specs(args.specs))
    # As users run it: bytecode cached (a test runner's PYTHONDONTWRITEBYTECODE would make every
    # run compile flowc's modules again).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "FLOWC_JOBS")}
    warm_cache = work / "cache-warm"
    timed(FLOWC + ["generate", "-q"], root, {**env, "FLOWC_CACHE_DIR": str(warm_cache)})
    rows = []
    try:
        load_before = os.getloadavg()
        timed(FLOWC + ["check", "-q"], root, {**env, "FLOWC_CACHE_DIR": str(warm_cache)})  # bytecode, page cache
        samples = [timed(FLOWC + ["check", "-q"], root, {**env, "FLOWC_CACHE_DIR": str(warm_cache)}) for _ in range(args.repeat)]
        rows.append(("warm", "-", samples))
        for jobs in args.jobs.split(","):
            cold_env = {**env, "FLOWC_CACHE_DIR": str(work / "cache-cold")}
            if jobs != "auto":
                cold_env["FLOWC_JOBS"] = jobs
            samples = []
            for _ in range(args.repeat):
                shutil.rmtree(work / "cache-cold", ignore_errors=True)
                samples.append(timed(FLOWC + ["check", "-q"], root, cold_env))
            rows.append(("cold", jobs, samples))
        load_after = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"flowc check, {args.specs} up-to-date specs, {cores} cores, medians of {args.repeat}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| check | FLOWC_JOBS | wall | CPU (all processes) | goal (200 specs, 2 cores) |")
    print("|---|---|---:|---:|---:|")
    for kind, jobs, samples in rows:
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        goal = f"≤ {GOALS[kind]} s" if args.specs == 200 else ""
        print(f"| {kind} | {jobs} | {wall:.2f} s | {cpu:.2f} s | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
