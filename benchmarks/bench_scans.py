"""Scans at 10 / 100 / 1,000 points: generate, `prefect build`, `flowc run` to the first child,
and the run's cost per point against running the same trivial children by hand.

The composition: `s` scanned over `x` (N points), `e` for_each s (taking the same point's value),
and `g` once, gathering e's results into a list. The child writes the wall-clock time it starts
into a file of its own, so "to the first child" is measured from the children's side, together
with the CPU seconds flowc's process (and the fork server's) had used by then, read from /proc:
on a shared, loaded machine the wall-clock columns grow with the load, the `_cpu_s` ones do not.
Every command's own CPU (`*_cpu_s`: user + system of it and every process it waited for) is
reported beside its wall-clock time.

    python benchmarks/bench_scans.py [--points 10,100,1000] [--skip-run] [--skip-by-hand]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import FLOWC, PREFECT, PROJECT, PYPROJECT  # noqa: E402

CHILD_MODULE = "scan_children"
CHILD_PY = '''"""scan_children: trivial children that note when they run (benchmarks/bench_scans.py)."""

import json
import os
import time

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult

LOG = os.environ.get("SCAN_BENCH_LOG", "scan-bench.log")
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """(parent pid, CPU seconds, command line) of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().replace(b"\\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None, None, ""
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, command


def _flowc_cpu():
    """CPU seconds used so far by flowc's process and by the fork server this child came from."""
    parent, server_cpu, command = _stat(os.getppid())
    if "compiler.runtime.forkserver" not in command:
        return server_cpu, None
    return _stat(parent)[1], server_cpu


@task(name="result", result=PrefectResult(), checkpoint=True)
def result(x, label):
    started = time.time()
    flowc_cpu, server_cpu = _flowc_cpu()
    with open(LOG, "a") as log:
        log.write(json.dumps({"label": label, "x": x, "at": started, "flowc_cpu": flowc_cpu, "server_cpu": server_cpu}) + "\\n")
    return x * 2 if not isinstance(x, list) else len(x)


with Flow("sim") as flow:
    result(Parameter("x", default=1.0), Parameter("label", default="sim"))
'''


def spec_text(points: int) -> str:
    values = [round(0.001 * i, 3) for i in range(points)]
    sim = {"name": "sim", "project_name": PROJECT, "source": f"{CHILD_MODULE}:flow"}
    flows = [
        {**sim, "alias": "s", "scan": {"parameters": {"x": values}}},
        {
            **sim,
            "alias": "e",
            "for_each": "s",
            "mapped_parameters": {"x": {"parent_flow_name": "s", "parent_task_name": "result"}},
        },
        {**sim, "alias": "g", "mapped_parameters": {"x": {"parent_flow_name": "e", "parent_task_name": "result"}}},
    ]
    return yaml.safe_dump({"name": f"scan{points}", "project_name": PROJECT, "composing_flows": flows}, sort_keys=False)


def make_project(root: Path, points: int) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / f"{CHILD_MODULE}.py").write_text(CHILD_PY)
    (root / "specs").mkdir()
    (root / "specs" / f"scan{points}.yaml").write_text(spec_text(points))
    return root


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, env: dict[str, str], keep: Path | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds the command took (CPU: it and every process it waited for);
    its stdout goes to `keep` when given."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if keep is not None:
        keep.write_text(done.stdout)
    return elapsed, _children_cpu() - cpu


BY_HAND = f'''
import json, sys, time
sys.path.insert(0, ".")
from {CHILD_MODULE} import flow
values = json.loads(sys.argv[1])
results = []
for x in values:
    s = flow.run(parameters={{"x": x, "label": "s"}})
    value = [v.result for t, v in s.result.items() if t.name == "result"][0]
    e = flow.run(parameters={{"x": value, "label": "e"}})
    results.append([v.result for t, v in e.result.items() if t.name == "result"][0])
flow.run(parameters={{"x": results, "label": "g"}})
'''


def bench(points: int, skip_run: bool, skip_by_hand: bool = False) -> dict[str, float]:
    root = make_project(Path(tempfile.mkdtemp(prefix="flowc-bench-scans-")) / "p", points)
    env = {**os.environ, "PYTHONPATH": str(root), "SCAN_BENCH_LOG": str(root / "run.log")}
    env["FLOWC_RESULTS_DB"] = f"sqlite:///{root / 'results.db'}"
    row: dict[str, float] = {"points": points, "load_1min": os.getloadavg()[0]}
    timed([*FLOWC, "lock"], root, env)
    row["generate_s"], row["generate_cpu_s"] = timed([*FLOWC, "generate"], root, env)
    flow_py = root / "generated" / f"scan{points}" / "flow.py"
    row["flow_py_bytes"] = flow_py.stat().st_size
    build = [*PREFECT, "build", "-p", str(flow_py), "-o", str(root / "flows.json")]
    row["prefect_build_s"], row["prefect_build_cpu_s"] = timed(build, root, env)
    if skip_run:
        return row
    started = time.time()
    run = [*FLOWC, "run", f"specs/scan{points}.yaml", "--json"]
    row["flowc_run_s"], row["flowc_run_cpu_s"] = timed(run, root, env, root / "run.json")
    report = json.loads((root / "run.json").read_text())
    entries = [c for c in report["children"] if c["point_index"] is not None]
    assert report["ok"] and len(entries) == 2 * points, (report["state"], len(entries))
    # From the run's start in flowc (after the checks, before flow.py is loaded) to the first child.
    first = min(datetime.fromisoformat(c["started_at"]) for c in report["children"] if c["started_at"])
    row["first_child_in_run_s"] = (first - datetime.fromisoformat(report["started_at"])).total_seconds()
    starts = [json.loads(line) for line in (root / "run.log").read_text().splitlines()]
    assert len(starts) == 2 * points + 1, len(starts)
    first_child = min(starts, key=lambda entry: entry["at"])
    row["to_first_child_s"] = first_child["at"] - started
    # CPU flowc's process had used when the first child started (the fork server's besides).
    row["to_first_child_cpu_s"] = first_child["flowc_cpu"]
    row["server_at_first_child_cpu_s"] = first_child["server_cpu"]
    (root / "run.log").unlink()
    row["run_cpu_per_point_ms"] = 1000 * row["flowc_run_cpu_s"] / points
    if skip_by_hand:
        return row
    values = json.dumps([round(0.001 * i, 3) for i in range(points)])
    row["by_hand_s"], row["by_hand_cpu_s"] = timed([sys.executable, "-c", BY_HAND, values], root, env)
    row["ratio"] = row["flowc_run_s"] / row["by_hand_s"]
    row["cpu_ratio"] = row["flowc_run_cpu_s"] / row["by_hand_cpu_s"]
    row["run_per_point_ms"] = 1000 * row["flowc_run_s"] / points
    row["by_hand_per_point_ms"] = 1000 * row["by_hand_s"] / points
    row["overhead_per_point_ms"] = row["run_per_point_ms"] - row["by_hand_per_point_ms"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="10,100,1000")
    parser.add_argument("--skip-run", action="store_true", help="only generate and prefect build")
    parser.add_argument("--skip-by-hand", action="store_true", help="no loop of the same children by hand")
    args = parser.parse_args()
    rows = [bench(int(n), args.skip_run, args.skip_by_hand) for n in args.points.split(",")]
    # One line per measure, one column per point count: the columns read as growth.
    print("| measure | " + " | ".join(f"{row['points']} points" for row in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in rows[0]:
        if key == "points":
            continue
        cells = [row.get(key) for row in rows]
        print(f"| {key} | " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
