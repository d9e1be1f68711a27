"""flowc's benchmarks: medians over repeated runs, printed as Markdown tables (`make bench`).

Every case builds its synthetic project in a temp dir (benchmarks/synthetic.py) and times what a
user would run, in a fresh process, wall clock: `flowc check`, `flowc generate`, importing a
generated flow, `flow.serialize()`, `prefect build`, `flowc run`. Adding a size or a shape is one
more entry in `cases()`; `--json FILE` keeps the raw numbers for comparisons (issue 7).

    python benchmarks/bench.py                 # everything, at 50, 200 and 500 (a few minutes)
    python benchmarks/bench.py --sizes 50,200,500,1000 --quick   # issue 7 sizes; --quick skips Prefect cases above 500
    python benchmarks/bench.py --only check,generate --repeat 9
"""

from __future__ import annotations

import argparse
import json
import math
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
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import synthetic  # noqa: E402  (benchmarks/ is not a package)
from synthetic import FLOWC, PREFECT  # noqa: E402


class Timeout(Exception):
    pass


def run(command: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float, ok: int = 0) -> str:
    """Run a command; its stdout. Fails loudly on an unexpected exit code."""
    try:
        done = subprocess.run(
            command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise Timeout from None
    if done.returncode != ok:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode} in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wall(command: list[str], cwd: Path, **kwargs: object) -> float:
    started = time.perf_counter()
    run(command, cwd, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - started


# Cases ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One measurement: `measure()` returns seconds; `setup()` runs once, untimed."""

    group: str  # rows of one group at several sizes form a growth series
    size: int
    measure: Callable[[], float]
    setup: Callable[[], None] = lambda: None
    goal: float | None = None  # seconds, where the issue sets one
    slow: bool = False  # minutes at this size: skipped by --quick
    unit: str = "s"
    note: str = ""
    samples: list[float] = field(default_factory=list)
    skipped: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


class Cases:
    def __init__(self, work: Path, timeout: float) -> None:
        self.work = work
        self.timeout = timeout

    # 1 and 2: many specs ---------------------------------------------------------------------

    def _many(self, count: int) -> Path:
        """A project of `count` six-step specs (written on first use); its root."""
        root = self.work / f"many{count}"
        if not root.exists():
            synthetic.write_project(root, synthetic.many_specs(count))
        return root

    def check(self, count: int) -> Case:
        """Warm: this machine's render cache (its own FLOWC_CACHE_DIR) holds every spec's render."""
        root = self.work / f"many{count}"
        env = {"FLOWC_CACHE_DIR": str(self.work / f"cache{count}")}

        def setup() -> None:
            run(FLOWC + ["generate"], self._many(count), env=env, timeout=self.timeout)

        return Case(
            "flowc check, up-to-date tree, warm render cache (specs)",
            count,
            lambda: wall(FLOWC + ["check"], root, env=env, timeout=self.timeout),
            setup,
            goal=0.3 if count == 200 else None,
        )

    def check_cold(self, count: int) -> Case:
        """Cold: a fresh clone (CI) -- an empty render cache, so check renders every spec."""
        root = self.work / f"many{count}"
        cache = self.work / f"cold-cache{count}"

        def setup() -> None:
            run(FLOWC + ["generate"], self._many(count), env={"FLOWC_CACHE_DIR": str(cache)}, timeout=self.timeout)

        def measure() -> float:
            shutil.rmtree(cache, ignore_errors=True)
            return wall(FLOWC + ["check"], root, env={"FLOWC_CACHE_DIR": str(cache)}, timeout=self.timeout)

        return Case(
            "flowc check, up-to-date tree, fresh clone (specs)",
            count,
            measure,
            setup,
            goal=3.0 if count == 200 else None,
        )

    def generate(self, count: int, jobs: int | None = None) -> Case:
        root = self.work / f"many{count}"
        env = {"FLOWC_JOBS": str(jobs)} if jobs else {}

        def measure() -> float:
            shutil.rmtree(root / "generated", ignore_errors=True)
            return wall(FLOWC + ["generate"], root, env=env, timeout=self.timeout)

        group = "flowc generate from scratch (specs)" + (f", FLOWC_JOBS={jobs}" if jobs else "")
        return Case(group, count, measure, lambda: self._many(count), goal=5.0 if count == 200 and not jobs else None)

    # 3 and 4: one spec of many steps -----------------------------------------------------------

    def _flow_py(self, shape: str, steps: int) -> Path:
        name = f"{shape}{steps}"
        return self.work / name / "generated" / name / "flow.py"

    def _composition(self, shape: str, steps: int) -> None:
        """A project holding one `shape` spec of `steps` flows, generated (on first use)."""
        name = f"{shape}{steps}"
        root = self.work / name
        if not self._flow_py(shape, steps).exists():
            text = synthetic.chain_spec(name, steps) if shape == "chain" else synthetic.fan_in_spec(name, steps)
            synthetic.write_project(root, {name: text}, gather_widths=(steps - 1,) if shape == "fan_in" else ())
            run(FLOWC + ["generate"], root, timeout=self.timeout)

    def compile(self, shape: str, steps: int) -> Case:
        root = self.work / f"{shape}{steps}"

        def measure() -> float:
            shutil.rmtree(root / "generated", ignore_errors=True)
            return wall(FLOWC + ["generate", f"specs/{shape}{steps}.yaml"], root, timeout=self.timeout)

        return Case(
            f"flowc generate, one {shape} spec (steps)",
            steps,
            measure,
            lambda: self._composition(shape, steps),
            goal=3.0 if steps == 500 else None,
        )

    def _in_process(self, flow_py: Path, what: str) -> float:
        """Time one step inside a fresh interpreter that has already imported prefect."""
        script = textwrap.dedent(
            f"""
            import json, runpy, sys, time
            import prefect
            started = time.perf_counter()
            flow = runpy.run_path({str(flow_py)!r}, run_name="flowc_bench")["flow"]
            built = time.perf_counter()
            if {what!r} == "serialize":
                flow.serialize(build=False)
            print(json.dumps({{"build": built - started, "serialize": time.perf_counter() - built}}))
            """
        )
        out = run([sys.executable, "-c", script], flow_py.parent, timeout=self.timeout)
        return float(json.loads(out.splitlines()[-1])[what])

    def import_build(self, shape: str, steps: int) -> Case:
        flow_py = self._flow_py(shape, steps)
        script = f"import runpy; runpy.run_path({str(flow_py)!r}, run_name='flowc_bench')['flow']"
        return Case(
            f"import + build generated flow, fresh process ({shape}, steps)",
            steps,
            lambda: wall([sys.executable, "-c", script], flow_py.parent, timeout=self.timeout),
            lambda: self._composition(shape, steps),
            goal=2.0 if steps == 500 else None,
        )

    def build_only(self, shape: str, steps: int) -> Case:
        flow_py = self._flow_py(shape, steps)
        return Case(
            f"build generated flow, prefect already imported ({shape}, steps)",
            steps,
            lambda: self._in_process(flow_py, "build"),
            lambda: self._composition(shape, steps),
        )

    def serialize(self, shape: str, steps: int) -> Case:
        flow_py = self._flow_py(shape, steps)
        return Case(
            f"flow.serialize() ({shape}, steps)",
            steps,
            lambda: self._in_process(flow_py, "serialize"),
            lambda: self._composition(shape, steps),
            slow=steps > 500,
            note="issue 7",
        )

    def prefect_build(self, shape: str, steps: int) -> Case:
        flow_py = self._flow_py(shape, steps)
        output = flow_py.parent / "flows.json"
        return Case(
            f"prefect build -p flow.py ({shape}, steps)",
            steps,
            lambda: wall(PREFECT + ["build", "-p", str(flow_py), "-o", str(output)], flow_py.parent, timeout=self.timeout),
            lambda: self._composition(shape, steps),
            slow=steps > 500,
            note="issue 7",
        )

    # 5: flowc run against the children by hand -------------------------------------------------

    def _example_copy(self) -> Path:
        """The repository's specs, generated files and child flows, copied (on first use)."""
        root = self.work / "example"
        if not root.exists():
            root.mkdir()
            shutil.copy(REPO / "pyproject.toml", root)
            for folder in ("specs", "generated", "examples"):
                shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        return root

    def run_env(self) -> dict[str, str]:
        root = self.work / "example"
        path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        return {"FLOWC_RESULTS_DB": f"sqlite:///{root / 'results.db'}", "PYTHONPATH": path}

    def flowc_run(self, spec: str) -> Case:
        root = self.work / "example"

        def setup() -> None:
            _require_runner()
            self._example_copy()

        return Case(
            f"flowc run specs/{spec}.yaml",
            0,
            lambda: wall(FLOWC + ["run", f"specs/{spec}.yaml"], root, env=self.run_env(), timeout=self.timeout),
            setup,
        )

    def direct_run(self, spec: str) -> Case:
        root = self.work / "example"
        recipe = root / f"{spec}.recipe.json"

        def setup() -> None:
            self._example_copy()
            recipe.write_text(json.dumps(_recipe(root, spec), indent=2))

        return Case(
            f"its child flows run by hand, one after another ({spec})",
            0,
            lambda: wall(
                [sys.executable, str(HERE / "direct_run.py"), str(recipe)], root, env=self.run_env(), timeout=self.timeout
            ),
            setup,
        )


    # Hostile specs: one clear error, bounded time and memory -------------------------------------

    def hostile(self, name: str) -> Case:
        import hostile

        root = self.work / "hostile" / f"h{sorted(hostile.corpus()).index(name):02d}"
        case = Case(f"hostile: {name}", 0, lambda: 0.0)

        def setup() -> None:
            (root / "specs").mkdir(parents=True, exist_ok=True)
            (root / "pyproject.toml").write_text("[tool.flowc]\n")
            (root / "specs" / "hostile.yaml").write_text(hostile.corpus()[name].text, encoding="utf-8")

        def measure() -> float:
            started = time.perf_counter()
            process = subprocess.Popen(FLOWC + ["generate"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 1:
                raise RuntimeError(f"hostile spec {name!r}: flowc generate exited {process.returncode}")
            case.note = f"peak {usage.ru_maxrss / 1024:.0f} MB"
            return time.perf_counter() - started

        case.setup, case.measure = setup, measure
        return case

    # Where one big compile spends its time ------------------------------------------------------

    def stages(self, shape: str, steps: int) -> list[Case]:
        """parse+validate, plan, Jinja2, layout (format_python), and black on the same source for
        comparison (it is no longer on the path): one fresh process measures all five."""
        root = self.work / f"{shape}{steps}"
        results: dict[str, float] = {}
        script = textwrap.dedent(
            f"""
            import json, time
            from compiler.config import find_project
            from compiler.output import load_lock
            from compiler.compile import spec_digest, lock_entries
            from compiler.spec import parse_spec
            from compiler.planner import build_plan
            from compiler.targets import common
            from compiler.targets.prefect1 import render
            project = find_project()
            lock = load_lock(project)
            text = open("specs/{shape}{steps}.yaml").read()
            import black, jinja2, pydantic  # imports are not the stages' cost
            import gc
            gc.disable()  # as compile_spec does
            times = {{}}
            t = time.perf_counter(); parsed = parse_spec(text, "specs/{shape}{steps}.yaml"); times["parse"] = time.perf_counter() - t
            t = time.perf_counter(); plan = build_plan(parsed, lock, spec_digest(text, "specs/x.yaml", lock_entries(lock))); times["plan"] = time.perf_counter() - t
            t = time.perf_counter(); source = common.template("prefect1/flow.py.j2").render(render._flow_view(plan)); times["jinja2"] = time.perf_counter() - t
            t = time.perf_counter(); common.format_python(source); times["layout"] = time.perf_counter() - t
            t = time.perf_counter(); common.format_with_black(source); times["black"] = time.perf_counter() - t
            print(json.dumps(times))
            """
        )

        def measure_all() -> None:
            if not results:
                out = run([sys.executable, "-c", script], root, timeout=self.timeout)
                results.update(json.loads(out.splitlines()[-1]))

        def stage(name: str) -> Case:
            def measure() -> float:
                results.clear()
                measure_all()
                return results[name]

            return Case(f"compile stage: {name} ({shape}, steps)", steps, measure, lambda: self._composition(shape, steps))

        return [stage(name) for name in ("parse", "plan", "jinja2", "layout", "black")]


def _require_runner() -> None:
    done = subprocess.run(FLOWC + ["run", "--help"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SkipCase("`flowc run` is not available yet")


class SkipCase(Exception):
    pass


def _recipe(root: Path, spec: str) -> list[dict[str, object]]:
    """What direct_run.py needs from the spec's plan: sources, parameters, mappings, in order."""
    from compiler.compile import compile_plan
    from compiler.config import find_project
    from compiler.output import load_lock

    project = find_project(root)
    path = project.specs_dir / f"{spec}.yaml"
    plan = compile_plan(path.read_text(), project.relative(path), load_lock(project))
    return [
        {
            "alias": step.alias,
            "source": step.source,
            "parameters": {p.child_parameter: p.default for p in step.parameters},
            "inputs": [
                {
                    "parameter": m.parameter,
                    "parent": m.parent,
                    "slug": m.task_slug,
                    "map_type": m.map_type,
                    "attribute_index": list(m.attribute_index),
                }
                for m in step.inputs
            ],
        }
        for step in plan.steps
    ]


def cases(work: Path, timeout: float, sizes: tuple[int, ...] = (50, 200, 500)) -> dict[str, list[Case]]:
    """Every benchmark, by the name `--only` selects it with."""
    c = Cases(work, timeout)
    shapes = ("chain", "fan_in")
    return {
        "check": [c.check(n) for n in sizes] + [c.check_cold(n) for n in sizes],
        "generate": [c.generate(n) for n in sizes] + [c.generate(200, jobs=1)],
        "compile": [c.compile(shape, n) for shape in shapes for n in sizes],
        "import": [c.import_build(shape, n) for shape in shapes for n in sizes]
        + [c.build_only(shape, n) for shape in shapes for n in sizes],
        "serialize": [c.serialize(shape, n) for shape in shapes for n in sizes]
        + [c.prefect_build(shape, n) for shape in shapes for n in sizes],
        "stages": [case for shape in shapes for n in sizes for case in c.stages(shape, n)],
        "run": [c.flowc_run("impact_pipeline"), c.direct_run("impact_pipeline")],
        "hostile": [c.hostile(name) for name in sorted(_hostile_names())],
    }


def _hostile_names() -> list[str]:
    import hostile

    return list(hostile.corpus())


# Running and reporting ---------------------------------------------------------------------------


def sample(case: Case, repeat: int, budget: float) -> None:
    """`repeat` runs, fewer when they would take more than `budget` seconds (at least one)."""
    try:
        case.setup()
        spent = 0.0
        while len(case.samples) < repeat and (not case.samples or spent + case.samples[0] <= budget):
            seconds = case.measure()
            case.samples.append(seconds)
            spent += seconds
    except Timeout:
        case.skipped = "timed out"
    except SkipCase as reason:
        case.skipped = str(reason)


def fmt(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def report(selected: dict[str, list[Case]], timeout: float) -> str:
    lines = [
        "| benchmark | size | median (s) | min (s) | runs | goal (s) | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for group in selected.values():
        for case in group:
            size = str(case.size) if case.size else ""
            goal = f"≤ {case.goal:g}" if case.goal else ""
            if case.skipped:
                shown = f"> {timeout:g}" if case.skipped == "timed out" else "—"
                lines.append(f"| {case.group} | {size} | {shown} | | 0 | {goal} | {case.skipped} |")
                continue
            verdict = ("ok" if case.median <= case.goal else "MISSED") if case.goal else case.note
            lines.append(
                f"| {case.group} | {size} | {fmt(case.median)} | {fmt(min(case.samples))} | {len(case.samples)} "
                f"| {goal} | {verdict} |"
            )
    lines += ["", *growth(selected), *ratio(selected)]
    return "\n".join(lines)


def growth(selected: dict[str, list[Case]]) -> list[str]:
    """Per series: time per unit at each size, and the exponent k of t ~ n^k between the two
    largest sizes (fixed costs such as start-up make k < 1 at small sizes)."""
    series: dict[str, list[Case]] = {}
    for group in selected.values():
        for case in group:
            if case.size and case.samples:
                series.setdefault(case.group, []).append(case)
    lines = ["| growth | sizes | ms per unit | k | |", "|---|---|---|---:|---|"]
    for name, points in series.items():
        points.sort(key=lambda c: c.size)
        sizes = " / ".join(str(c.size) for c in points)
        per_unit = " / ".join(f"{1000 * c.median / c.size:.2f}" for c in points)
        if len(points) >= 2:
            small, large = points[-2], points[-1]
            k = math.log(large.median / small.median) / math.log(large.size / small.size)
            verdict = "linear" if k <= 1.15 else f"superlinear (~n^{k:.1f})"
            lines.append(f"| {name} | {sizes} | {per_unit} | {k:.2f} | {verdict} |")
        else:
            lines.append(f"| {name} | {sizes} | {per_unit} | | |")
    return lines if len(lines) > 2 else []


def ratio(selected: dict[str, list[Case]]) -> list[str]:
    flowc_run, direct = (selected.get("run") or [None, None])[:2]
    if not flowc_run or not direct or not flowc_run.samples or not direct.samples:
        return []
    value = flowc_run.median / direct.median
    verdict = "ok" if value <= 1.25 else "MISSED"
    return ["", f"flowc run / children by hand: {value:.2f}x (goal ≤ 1.25x) {verdict}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median reported); default 5")
    parser.add_argument("--budget", type=float, default=60.0, help="stop repeating a case after this many seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on one run after this many seconds")
    parser.add_argument("--quick", action="store_true", help="skip the cases that take minutes")
    parser.add_argument(
        "--only", default="", help="comma-separated: check,generate,compile,import,serialize,stages,run,hostile"
    )
    parser.add_argument("--sizes", default="50,200,500", help="spec counts and step counts; default 50,200,500")
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="flowc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        every = cases(work, args.timeout, tuple(int(n) for n in args.sizes.split(",")))
        wanted = [name.strip() for name in args.only.split(",") if name.strip()] or list(every)
        unknown = set(wanted) - set(every)
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(every)}")
        selected = {name: every[name] for name in wanted}
        print(f"flowc benchmarks on {os.cpu_count()} cores, python {sys.version.split()[0]}; work dir {work}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (numbers mean little above ~0.5)")
        for group in selected.values():
            for case in group:
                if case.slow and args.quick:
                    case.skipped = "skipped (--quick)"
                    continue
                label = f"{case.group} [{case.size}]" if case.size else case.group
                print(f"  {label} ...", end="", flush=True)
                sample(case, args.repeat, args.budget)
                print(f" {case.skipped or fmt(case.median) + ' s'}", flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        print(report(selected, args.timeout))
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {"benchmark": c.group, "size": c.size, "samples": c.samples, "goal": c.goal, "skipped": c.skipped}
                        for group in selected.values()
                        for c in group
                    ],
                    indent=2,
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
