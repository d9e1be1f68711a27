"""Issue 7, large compositions: a generated chain and fan-in at 50 / 200 / 500 / 1000 steps.

For each, in fresh processes, wall clock, medians of `--repeat` runs:
- `prefect build -p generated/<name>/flow.py` (the unmodified Prefect CLI),
- `flowc build --no-image --json FILE <spec>` (generate pass on an up-to-date tree, load, serialize),
- `flowc run <spec>` until its first child flow starts (the run is then stopped by its PID),
and, inside one process that has imported prefect: building the flow object, and `validate()` with
the generated `IndexedFlow` against Prefect's own `Flow` on the same module (`--baseline N`: up
to N steps only, since Prefect's own takes minutes at 500). Growth is judged by the cost per
added step between sizes: linear when it stays flat.

    python benchmarks/bench_large.py                        # 50,200,500,1000; 5 runs each
    python benchmarks/bench_large.py --sizes 50,200 --repeat 3 --baseline 200
    python benchmarks/bench_large.py --json large.json      # keep the raw numbers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import synthetic  # noqa: E402  (benchmarks/ is not a package)
from synthetic import FLOWC, PREFECT  # noqa: E402

SHAPES = ("chain", "fan_in")
GOALS = {"prefect build": 5.0, "flowc build --json": 5.0, "flowc run -> first child": 2.0}  # at 500 steps
GOAL_SIZE = 500
# What `flowc run` prints when a child flow starts (compiler/local/summary.py: Progress).
CHILD_STARTED_MARK = "▶"

GATHER_FLOW_PY = '''"""gather: the end of a synthetic fan-in, one parameter per parent."""

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="result", result=PrefectResult(), checkpoint=True)
def result(values):
    return sum(values)


with Flow("gather{width}") as flow:
    result([Parameter(f"in_{{i}}") for i in range({width})])
'''


@dataclass
class Series:
    """One measurement of one shape at every size: seconds per run, by size."""

    what: str
    shape: str
    samples: dict[int, list[float]] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)

    def median(self, size: int) -> float | None:
        values = self.samples.get(size)
        return statistics.median(values) if values else None


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode} in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wall(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    run(command, cwd, env)
    return time.perf_counter() - started


# The projects -----------------------------------------------------------------------------------


def make_project(work: Path, shape: str, steps: int) -> Path:
    """One generated project holding one `shape` spec of `steps` flows, every child with a source."""
    name = f"{shape}{steps}"
    root = work / name
    if shape == "chain":
        text = synthetic.chain_spec(name, steps)
        synthetic.write_project(root, {name: text})
    else:
        width = steps - 1
        spec = yaml.safe_load(synthetic.fan_in_spec(name, steps))
        spec["composing_flows"][-1]["source"] = "bench_gather:flow"  # so `flowc run` can import it
        (root).mkdir(parents=True, exist_ok=True)
        (root / "bench_gather.py").write_text(GATHER_FLOW_PY.format(width=width))
        synthetic.write_project(root, {name: yaml.safe_dump(spec, sort_keys=False)}, gather_widths=(width,))
    run(FLOWC + ["lock"], root)  # capture every child from its source, as a user would
    started = time.perf_counter()
    run(FLOWC + ["generate"], root)
    print(f"  generated {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return root


def run_env(root: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"FLOWC_RESULTS_DB": f"sqlite:///{root / 'results.db'}", "PYTHONPATH": path}


# The measurements -------------------------------------------------------------------------------


def prefect_build(root: Path, name: str) -> float:
    flow_py = root / "generated" / name / "flow.py"
    return wall(PREFECT + ["build", "-p", str(flow_py), "-o", str(root / "prefect-build.json")], root)


def flowc_build_json(root: Path, name: str) -> float:
    return wall(FLOWC + ["build", "--no-image", "--json", "flowc-build.json", f"specs/{name}.yaml"], root)


def first_child_start(root: Path, name: str, timeout: float = 600) -> float:
    """Seconds from starting `flowc run` to its first `started` line; then the run is stopped."""
    # `flowc run` refuses a stale flow.py; flowc's runtime sources are among its inputs, so a
    # change to them while the benchmark runs needs a (untimed) regeneration first.
    run(FLOWC + ["generate", f"specs/{name}.yaml"], root)
    started = time.perf_counter()
    process = subprocess.Popen(  # progress lines are on stderr (stdout is only --json's)
        FLOWC + ["run", f"specs/{name}.yaml"],
        cwd=root,
        env={**os.environ, **run_env(root), "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            if CHILD_STARTED_MARK in line and "started" in line:
                return time.perf_counter() - started
            seen.append(line)
            if time.perf_counter() - started > timeout:
                break
        process.wait()
        raise RuntimeError(f"flowc run {name}: no child started (exit {process.returncode}):\n{''.join(seen[-50:])}")
    finally:
        process.kill()  # this run only, by its PID
        process.wait()
        errors.close()


IN_PROCESS = textwrap.dedent(
    """
    import json, sys, time
    import prefect
    import compiler.runtime
    from compiler.runtime import IndexedFlow

    path, baseline = sys.argv[1], sys.argv[2] == "1"
    source = compile(open(path).read(), path, "exec")

    def build(cls):
        compiler.runtime.IndexedFlow = cls  # what `from compiler.runtime import IndexedFlow` binds
        namespace = {"__name__": "flowc_bench"}
        started = time.perf_counter()
        exec(source, namespace)
        return namespace["flow"], time.perf_counter() - started

    flow, built = build(IndexedFlow)
    started = time.perf_counter()
    flow.validate()
    out = {"build": built, "validate": time.perf_counter() - started, "tasks": len(flow.tasks),
           "edges": len(flow.edges)}
    if baseline:
        plain, _ = build(prefect.Flow)
        started = time.perf_counter()
        plain.validate()
        out["validate_prefect"] = time.perf_counter() - started
    print(json.dumps(out))
    """
)


def in_process(root: Path, name: str, baseline: bool) -> dict[str, float]:
    flow_py = root / "generated" / name / "flow.py"
    out = run([sys.executable, "-c", IN_PROCESS, str(flow_py), "1" if baseline else "0"], root)
    return json.loads(out.splitlines()[-1])


# Reporting --------------------------------------------------------------------------------------


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.0f}"


def table(series: list[Series], sizes: list[int]) -> list[str]:
    head = "| measurement | shape | " + " | ".join(f"{n} steps" for n in sizes) + " | goal | per added step (ms) |"
    lines = [head, "|---|---|" + "---:|" * len(sizes) + "---|---|"]
    for s in series:
        cells = []
        for n in sizes:
            cell = fmt(s.median(n))
            if n in s.notes:
                cell += f" ({s.notes[n]})"
            cells.append(cell)
        goal = GOALS.get(s.what)
        verdict = ""
        if goal is not None and s.median(GOAL_SIZE) is not None:
            verdict = f"≤ {goal:g} s at {GOAL_SIZE}: " + ("ok" if s.median(GOAL_SIZE) <= goal else "MISSED")
        lines.append(f"| {s.what} | {s.shape} | " + " | ".join(cells) + f" | {verdict} | {marginal(s, sizes)} |")
    return lines


def marginal(s: Series, sizes: list[int]) -> str:
    """Cost of each added step between consecutive sizes; flat means linear growth."""
    points = [(n, s.median(n)) for n in sizes if s.median(n) is not None]
    if len(points) < 2:
        return ""
    costs = [1000 * (t2 - t1) / (n2 - n1) for (n1, t1), (n2, t2) in zip(points, points[1:])]
    text = " / ".join(f"{ms:.2f}" for ms in costs)
    # The first interval is mostly fixed costs and noise; judge from the second when there are more.
    judged = costs[1:] if len(costs) >= 3 else costs
    if len(judged) >= 2:
        low, high = min(judged), max(judged)
        # Flat within 60 % (or 0.3 ms a step, below which it is noise): linear.
        if low <= 0:
            verdict = "flat within noise"
        else:
            verdict = "linear" if high <= 1.6 * low + 0.3 else f"grows {high / low:.1f}x"
        text += f" ({verdict})"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200,500,1000", help="steps per composition, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per measurement (median)")
    parser.add_argument("--baseline", type=int, default=200, help="Prefect's own validate() up to this many steps")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--no-run", action="store_true", help="skip the `flowc run` start measurement")
    parser.add_argument("--json", dest="json_path", help="write the raw samples here")
    parser.add_argument("--keep", help="build the projects in this directory and keep them")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    shapes = [s for s in args.shapes.split(",") if s]

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="flowc-bench-large-"))
    work.mkdir(parents=True, exist_ok=True)
    measured: list[Series] = []
    try:
        for shape in shapes:
            by_what = {
                what: Series(what, shape)
                for what in (
                    "prefect build",
                    "flowc build --json",
                    "flowc run -> first child",
                    "build the flow object (in process)",
                    "validate(), IndexedFlow (in process)",
                    "validate(), prefect.Flow (in process)",
                )
            }
            for steps in sizes:
                name = f"{shape}{steps}"
                print(f"{name}:", file=sys.stderr, flush=True)
                root = make_project(work, shape, steps)
                for _ in range(args.repeat):
                    by_what["prefect build"].samples.setdefault(steps, []).append(prefect_build(root, name))
                    by_what["flowc build --json"].samples.setdefault(steps, []).append(flowc_build_json(root, name))
                    if not args.no_run:
                        by_what["flowc run -> first child"].samples.setdefault(steps, []).append(
                            first_child_start(root, name)
                        )
                inside = in_process(root, name, baseline=steps <= args.baseline)
                by_what["build the flow object (in process)"].samples[steps] = [inside["build"]]
                by_what["validate(), IndexedFlow (in process)"].samples[steps] = [inside["validate"]]
                by_what["build the flow object (in process)"].notes[steps] = f"{inside['tasks']} tasks"
                if "validate_prefect" in inside:
                    by_what["validate(), prefect.Flow (in process)"].samples[steps] = [inside["validate_prefect"]]
                for what, series in by_what.items():
                    if steps in series.samples:
                        print(f"  {what}: {fmt(series.median(steps))} s", file=sys.stderr, flush=True)
            measured.extend(s for s in by_what.values() if s.samples)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"Large compositions, medians of {args.repeat} fresh processes (in-process rows: one run), seconds:\n")
    print("\n".join(table(measured, sizes)))
    if args.json_path:
        raw = [{"what": s.what, "shape": s.shape, "samples": s.samples} for s in measured]
        Path(args.json_path).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
