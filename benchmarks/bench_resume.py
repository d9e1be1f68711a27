"""Issue 13: `flowc run --resume` of a chain where nothing changed runs nothing (goal ≤ 3 s at 500 steps).

For each size: a synthetic chain project (benchmarks/synthetic.py: each step maps `x` from the one
before), locked and generated; one `flowc run --json` that records every child; then `--repeat`
runs of `flowc run --resume --json`, each a fresh process, wall clock. Each resumed run must
report every child reused and start none (checked from its JSON and from the records: no new
child run ids). Printed as a Markdown table; `--json FILE` keeps the samples.

    python benchmarks/bench_resume.py                       # chain of 500, 5 resumes
    python benchmarks/bench_resume.py --sizes 50,500 --repeat 3 --keep /tmp/resume-bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import bench_large  # noqa: E402  (benchmarks/ is not a package)
from synthetic import FLOWC  # noqa: E402

GOAL_S = 3.0  # issue 13: `--resume` of a 500-step chain where nothing changed


def flowc_run(root: Path, name: str, *extra: str) -> tuple[float, dict[str, Any]]:
    """One `flowc run --json` in a fresh process: (wall seconds, its summary)."""
    started = time.perf_counter()
    done = subprocess.run(
        FLOWC + ["run", f"specs/{name}.yaml", "--json", *extra],
        cwd=root,
        env={**bench_large.os.environ, **bench_large.run_env(root)},
        capture_output=True,
        text=True,
        timeout=7200,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"flowc run {' '.join(extra)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return took, json.loads(done.stdout)


def measure(work: Path, size: int, repeat: int) -> dict[str, Any]:
    root = bench_large.make_project(work, "chain", size)
    name = f"chain{size}"
    first, summary = flowc_run(root, name)
    assert summary["ok"] and len(summary["children"]) == size, summary["message"]
    print(f"  chain{size}: first run {first:.1f} s ({size} children)", file=sys.stderr, flush=True)
    resumed = []
    for _ in range(repeat):
        took, summary = flowc_run(root, name, "--resume")
        reused = [c for c in summary["children"] if c["reused"]]
        assert len(reused) == size and summary["ok"], f"{len(reused)} of {size} reused"
        assert not list((root / summary["run_dir"]).glob("*.log")), "a resumed run started a child"
        resumed.append(took)
        print(f"  chain{size}: --resume {took:.2f} s", file=sys.stderr, flush=True)
    return {"size": size, "first_run_s": first, "resume_s": resumed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500", help="chain lengths, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="resumed runs per size")
    parser.add_argument("--json", dest="json_path", help="write the samples here")
    parser.add_argument("--keep", help="build the projects here and keep them")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="flowc-bench-resume-") as scratch:
        work = Path(args.keep) if args.keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure(work, size, args.repeat) for size in sizes]
    print("| chain | first `flowc run` | `--resume`, nothing changed: median (min-max) | goal | |")
    print("|---:|---:|---:|---:|---|")
    for result in results:
        samples = result["resume_s"]
        median = statistics.median(samples)
        verdict = "" if result["size"] != 500 else ("ok" if median <= GOAL_S else "missed")
        print(
            f"| {result['size']} | {result['first_run_s']:.1f} s | {median:.2f} s ({min(samples):.2f}-{max(samples):.2f}) "
            f"| {'≤ 3 s' if result['size'] == 500 else ''} | {verdict} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
