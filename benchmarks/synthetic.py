"""Synthetic flowc projects for the benchmarks: specs, a lock and a child flow, in a temp dir.

Everything is generated from a size and a seed, so two runs measure the same input. New shapes
(issue 7's 1000-step chains, other fan-ins) are one more function returning spec text.
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from compiler.lock import FlowInterface, Lock, ParameterInterface, TaskInterface, render_lock
from compiler.lockfile import ANYWHERE, SlugResult, files_digest

# The console scripts next to this interpreter: a pyenv shim would add ~50 ms to every call.
_BIN = Path(sys.executable).parent
FLOWC = [str(_BIN / "flowc")] if (_BIN / "flowc").exists() else [sys.executable, "-m", "compiler"]
PREFECT = [str(_BIN / "prefect")] if (_BIN / "prefect").exists() else [sys.executable, "-m", "prefect"]

PROJECT = "bench"
CHILD_MODULE = "bench_children"
CHILD_SOURCE = f"{CHILD_MODULE}:flow"

# A real Prefect 1 child flow, so `flowc check` hashes a real source file (the drift check) and
# `flowc lock` could capture it. It is never imported by compile, generate or check.
CHILD_FLOW_PY = '''"""sim: the synthetic child flow every benchmark step composes."""

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="result", result=PrefectResult(), checkpoint=True)
def result(x, scale):
    return x * scale


@task(name="save_db_result", result=PrefectResult(), checkpoint=True)
def save_db_result(value, label):
    return {"label": label, "value": value}


@task(name="save_file", result=PrefectResult(), checkpoint=True)
def save_file(value, label):
    return f"{label}-{value}.txt"


with Flow("sim") as flow:
    x = Parameter("x", default=1.0)
    scale = Parameter("scale", default=1.0)
    label = Parameter("label", default="sim")
    value = result(x, scale)
    save_db_result(value, label)
    save_file(value, label)
'''

PYPROJECT = """[tool.flowc]
specs = "specs"
generated = "generated"
lock = "specs/flows.lock.yaml"
"""


def _persisting(name: str) -> TaskInterface:
    """A task as `flowc lock` captures it: one slug whose PrefectResult any process can load."""
    return TaskInterface.of(name, [SlugResult(f"{name}-1", "PrefectResult", ANYWHERE, origin="task")])


def sim_interface(source_digest: str | None = None) -> FlowInterface:
    """The child every chain and mixed spec composes: one value in, three kinds of result out."""
    return FlowInterface(
        project_name=PROJECT,
        name="sim",
        source=CHILD_SOURCE,
        source_digest=source_digest,
        source_files=(f"{CHILD_MODULE}.py",) if source_digest else None,
        parameters=(
            ParameterInterface("label", "sim", False),
            ParameterInterface("scale", 1.0, False),
            ParameterInterface("x", 1.0, False),
        ),
        tasks=(_persisting("result"), _persisting("save_db_result"), _persisting("save_file")),
    )


def gather_interface(width: int) -> FlowInterface:
    """A child with one parameter per parent, the end of a fan-in `width` wide."""
    return FlowInterface(
        project_name=PROJECT,
        name=f"gather{width}",
        source=None,
        parameters=tuple(ParameterInterface(f"in_{i}", None, True) for i in range(width)),
        tasks=(_persisting("result"),),
    )


def _dump(spec: dict) -> str:
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=False, width=100)


def _step(alias: str) -> dict:
    return {"name": "sim", "project_name": PROJECT, "alias": alias, "source": CHILD_SOURCE}


def chain_spec(name: str, steps: int) -> str:
    """`steps` flows in a line, each taking `x` from the one before."""
    flows = []
    for i in range(steps):
        step = _step(f"s{i}")
        if i:
            step["mapped_parameters"] = {"x": {"parent_flow_name": f"s{i - 1}", "parent_task_name": "result"}}
        flows.append(step)
    return _dump({"name": name, "project_name": PROJECT, "composing_flows": flows})


def fan_in_spec(name: str, steps: int) -> str:
    """`steps - 1` independent flows, all feeding one gather flow."""
    width = steps - 1
    flows = [_step(f"s{i}") for i in range(width)]
    flows.append(
        {
            "name": f"gather{width}",
            "project_name": PROJECT,
            "alias": "gather",
            "mapped_parameters": {
                f"in_{i}": {"parent_flow_name": f"s{i}", "parent_task_name": "result"} for i in range(width)
            },
        }
    )
    return _dump({"name": name, "project_name": PROJECT, "composing_flows": flows})


def mixed_spec(name: str, steps: int, seed: int) -> str:
    """A random DAG of `steps` flows with raw, file and db mappings and depends_on, in shuffled order."""
    rng = random.Random(seed)
    flows = []
    for i in range(steps):
        step = _step(f"s{i}")
        step["parameters"] = {"scale": round(rng.uniform(0.5, 2.0), 3)}
        parents = rng.sample(range(i), k=min(i, rng.randint(0, 2)))
        if parents:
            kind = rng.choice(["raw", "file", "db"])
            mapping = {"parent_flow_name": f"s{parents[0]}", "map_type": kind}
            if kind == "raw":
                mapping["parent_task_name"] = "result"
            elif kind == "file":
                mapping["parent_task_name"] = "save_file"
                mapping["map_type"] = "file"
            else:
                mapping["parent_task_slug"] = "save_db_result-1"
                mapping["attribute_index"] = ["outputs", "value"]
            step["mapped_parameters"] = {"x": mapping}
        if len(parents) > 1:
            step["depends_on"] = [f"s{p}" for p in parents[1:]]
        flows.append(step)
    rng.shuffle(flows)
    return _dump({"name": name, "project_name": PROJECT, "labels": ["bench"], "composing_flows": flows})


@dataclass(frozen=True)
class SyntheticProject:
    root: Path
    specs: dict[str, Path]  # spec name -> path

    @property
    def generated(self) -> Path:
        return self.root / "generated"


def write_project(root: Path, specs: dict[str, str], gather_widths: tuple[int, ...] = ()) -> SyntheticProject:
    """A flowc project at `root`: pyproject.toml, the child flow, specs/ and their lock."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    child = root / f"{CHILD_MODULE}.py"
    child.write_text(CHILD_FLOW_PY)
    digest = files_digest(root, [child.name])
    specs_dir = root / "specs"
    specs_dir.mkdir(exist_ok=True)
    paths = {}
    for name, text in specs.items():
        path = specs_dir / f"{name}.yaml"
        path.write_text(text)
        paths[name] = path
    flows = [sim_interface(digest), *(gather_interface(w) for w in sorted(set(gather_widths)))]
    (specs_dir / "flows.lock.yaml").write_text(render_lock(flows))
    return SyntheticProject(root=root, specs=paths)


def synthetic_lock(gather_widths: tuple[int, ...] = ()) -> Lock:
    """The same lock in memory, for compiling without a project on disk."""
    flows = [sim_interface(), *(gather_interface(w) for w in sorted(set(gather_widths)))]
    return Lock(path="specs/flows.lock.yaml", flows={f.key: f for f in flows})


def many_specs(count: int, steps: int = 6) -> dict[str, str]:
    """`count` mixed specs of `steps` flows each, as a repository of many compositions holds."""
    return {f"spec{i:03d}": mixed_spec(f"spec{i:03d}", steps, seed=i) for i in range(count)}
