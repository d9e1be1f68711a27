"""What reviewers see: the Mermaid graph (parsed back, also by Mermaid itself), DOT, the README tables."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from filelock import FileLock

from compiler.cli import main
from compiler.compile import compile_plan, compile_spec
from compiler.config import find_project
from compiler.output import load_lock
from compiler.plan import MappedInput, Plan, Step
from compiler.graph import dot, mermaid, mermaid_ids
from tests.helpers import PREFECT1_SPECS, REPO, SPECS, copy_project

MERMAID_DIR = Path(__file__).parent / "mermaid"
INTEGRATION = os.environ.get("FLOWC_INTEGRATION") == "1"

# Aliases that are Mermaid keywords (and one that collides with the first escape) still draw.
KEYWORD_SPEC = """\
name: keywords
project_name: lume
composing_flows:
  - {name: scale, project_name: lume, alias: end, parameters: {value: 1.0}}
  - name: scale
    project_name: lume
    alias: graph
    mapped_parameters: {value: {parent_flow_name: end, parent_task_name: scale}}
  - name: scale
    project_name: lume
    alias: end_
    mapped_parameters: {value: {parent_flow_name: graph, parent_task_name: scale}}
  - {name: scale, project_name: lume, alias: class, parameters: {value: 2.0}, depends_on: [end_]}
"""


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, str]  # id -> text
    edges: list[tuple[str, str, str, bool]]  # (from, to, label, dotted)


def parse_mermaid(text: str) -> Graph:
    """The subset of Mermaid flowcharts flowc writes; anything else is an error, not skipped."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR", lines[0]
    node = re.compile(r'    (?P<id>[A-Za-z][A-Za-z0-9_]*)\["(?P<text>[^"]*)"\]\Z')
    edge = re.compile(
        r'    (?P<a>[A-Za-z][A-Za-z0-9_]*) (?P<arrow>-->|-\.->)\|"(?P<label>[^"]*)"\| (?P<b>[A-Za-z][A-Za-z0-9_]*)\Z'
    )
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str, bool]] = []
    for line in lines[1:]:
        if match := node.match(line):
            assert match["id"] not in nodes, f"node {match['id']} declared twice"
            nodes[match["id"]] = _unescape(match["text"])
        elif match := edge.match(line):
            assert match["a"] in nodes and match["b"] in nodes, f"edge to an undeclared node: {line}"
            edges.append((match["a"], match["b"], _unescape(match["label"]), match["arrow"] == "-.->"))
        else:
            raise AssertionError(f"not flowc's Mermaid: {line!r}")
    return Graph(nodes, edges)


def _unescape(text: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m[1])), text)


def fan(mapped: MappedInput) -> str:
    """How a mapping between scans reads in the README and the graphs."""
    return ", per point" if mapped.per_point else ", gathered" if mapped.gathered else ""


def expected_graph(plan: Plan) -> Graph:
    """The plan's graph, in the terms the drawing must show: a node per step, an edge per mapping."""
    ids = mermaid_ids(plan)
    def points(step: Step) -> str:  # a scanned step and its for_each steps: `impact × 6`
        return f" × {plan.point_count(step)}" if step.per_point else ""

    nodes = {ids[step.alias]: f"{step.alias}{points(step)}<br/>{step.flow_name}" for step in plan.steps}
    edges = [
        (ids[mapped.parent], ids[step.alias], f"{mapped.parameter} ({mapped.map_type}{fan(mapped)})", False)
        for step in plan.steps
        for mapped in step.inputs
    ] + [
        (ids[parent], ids[step.alias], "depends_on", True)
        for step in plan.steps
        for parent in step.depends_on
    ] + [
        (ids[step.for_each], ids[step.alias], "for_each", True)
        for step in plan.steps
        if step.for_each is not None and not any(m.parent == step.for_each for m in step.inputs)
    ]
    return Graph(nodes, edges)


@pytest.fixture(scope="module")
def lock():  # noqa: ANN201 - compiler.lock.Lock
    return load_lock(find_project(REPO))


@pytest.fixture(scope="module")
def plans(lock) -> dict[str, Plan]:  # noqa: ANN001
    found = {
        spec.stem: compile_plan(spec.read_text(encoding="utf-8"), f"specs/{spec.name}", lock)
        for spec in SPECS
    }
    found["keywords"] = compile_plan(KEYWORD_SPEC, "specs/keywords.yaml", lock)
    return found


PLAN_NAMES = [spec.stem for spec in SPECS] + ["keywords"]


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_mermaid_parses_back_to_the_plan(name: str, plans: dict[str, Plan]) -> None:
    plan = plans[name]
    graph = parse_mermaid(mermaid(plan))
    expected = expected_graph(plan)
    assert graph.nodes == expected.nodes
    assert sorted(graph.edges) == sorted(expected.edges)
    assert len([e for e in graph.edges if not e[3]]) == sum(len(step.inputs) for step in plan.steps)


def test_keyword_aliases_get_ids_mermaid_accepts(plans: dict[str, Plan]) -> None:
    assert mermaid_ids(plans["keywords"]) == {
        "end": "end__",
        "graph": "graph_",
        "end_": "end_",
        "class": "class_",
    }


@pytest.fixture(scope="session")
def mermaid_parser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mermaid's own parser, installed once from npm (pinned by tests/mermaid/package-lock.json)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return _unavailable("node and npm are not installed")
    lock_text = (MERMAID_DIR / "package-lock.json").read_bytes()
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowc-tests"
    cache = cache_root / f"mermaid-{hashlib.sha256(lock_text).hexdigest()[:16]}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache) + ".lock"):
        if not (cache / "node_modules" / "mermaid" / "package.json").is_file():
            cache.mkdir(exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy(MERMAID_DIR / name, cache / name)
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=cache,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                return _unavailable(f"npm ci failed:\n{result.stdout}\n{result.stderr}")
        shutil.copy(MERMAID_DIR / "parse.mjs", cache / "parse.mjs")
    return cache / "parse.mjs"


def _unavailable(reason: str) -> Path:
    if INTEGRATION:
        pytest.fail(f"Mermaid's parser is needed with FLOWC_INTEGRATION=1: {reason}")
    pytest.skip(reason)


def run_mermaid(script: Path, texts: list[str]) -> list[dict]:
    result = subprocess.run(
        ["node", script.name],
        cwd=script.parent,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("MERMAID-RESULT ")), None)
    assert line is not None, result.stdout + result.stderr
    return json.loads(line.removeprefix("MERMAID-RESULT "))


def test_mermaid_itself_parses_every_graph_to_the_plan(mermaid_parser: Path, plans: dict[str, Plan]) -> None:
    results = run_mermaid(mermaid_parser, [mermaid(plans[name]) for name in PLAN_NAMES])
    for name, result in zip(PLAN_NAMES, results):
        assert "error" not in result, (name, result.get("error"))
        expected = expected_graph(plans[name])
        # Mermaid normalises <br/> to <br> and leaves entities for the renderer.
        nodes = {
            n["id"]: html.unescape(_unescape(n["text"])).replace("<br>", "<br/>") for n in result["nodes"]
        }
        assert nodes == expected.nodes, name
        edges = sorted(
            (e["start"], e["end"], html.unescape(_unescape(e["text"])), e["stroke"] == "dotted")
            for e in result["edges"]
        )
        assert edges == sorted(expected.edges), name


def test_mermaid_parser_rejects_what_github_would_not_draw(mermaid_parser: Path) -> None:
    """The real parser can fail: a keyword as a node id is an error."""
    (result,) = run_mermaid(
        mermaid_parser, ['flowchart LR\n    end["end<br/>scale"]\n    a -->|"x (raw)"| end']
    )
    assert "Parse error" in result.get("error", "")


def parse_dot(text: str) -> Graph:
    lines = text.splitlines()
    assert (
        re.fullmatch(r'digraph "[A-Za-z0-9_]+" \{', lines[0])
        and lines[1] == "    rankdir=LR;"
        and lines[-1] == "}"
    )
    node = re.compile(r'    (?P<id>"[^"]*") \[label=(?P<label>"[^"]*")\];\Z')
    edge = re.compile(
        r'    (?P<a>"[^"]*") -> (?P<b>"[^"]*") \[label=(?P<label>"[^"]*")(?P<dashed>, style=dashed)?\];\Z'
    )
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str, bool]] = []
    for line in lines[2:-1]:
        if match := node.match(line):
            nodes[json.loads(match["id"])] = json.loads(match["label"])
        elif match := edge.match(line):
            edges.append(
                (
                    json.loads(match["a"]),
                    json.loads(match["b"]),
                    json.loads(match["label"]),
                    bool(match["dashed"]),
                )
            )
        else:
            raise AssertionError(f"not flowc's DOT: {line!r}")
    return Graph(nodes, edges)


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_dot_parses_back_to_the_plan(name: str, plans: dict[str, Plan]) -> None:
    plan = plans[name]
    graph = parse_dot(dot(plan))
    points = {step.alias: f" × {plan.point_count(step)}" if step.per_point else "" for step in plan.steps}
    assert graph.nodes == {step.alias: f"{step.alias}{points[step.alias]}\n{step.flow_name}" for step in plan.steps}
    ids = {v: k for k, v in mermaid_ids(plan).items()}
    expected = expected_graph(plan)
    assert sorted(graph.edges) == sorted(
        (ids[a], ids[b], label, dotted) for a, b, label, dotted in expected.edges
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_flowc_graph_prints_the_plan(
    spec: Path, plans: dict[str, Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    runner = CliRunner()
    default = runner.invoke(main, ["graph", f"specs/{spec.name}"])
    assert default.exit_code == 0, default.output
    assert default.output == mermaid(plans[spec.stem]) + "\n"
    as_dot = runner.invoke(main, ["graph", f"specs/{spec.name}", "--format", "dot"])
    assert as_dot.exit_code == 0, as_dot.output
    assert as_dot.output == dot(plans[spec.stem]) + "\n"


def test_flowc_graph_usage_and_spec_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_project(tmp_path / "project", generated=False)
    monkeypatch.chdir(project)
    runner = CliRunner()
    assert runner.invoke(main, ["graph", "specs/fan_in.yaml", "--format", "svg"]).exit_code == 2
    broken = project / "specs" / "broken.yaml"
    text = (project / "specs" / "fan_in.yaml").read_text()
    broken.write_text(text.replace("parent_flow_name: start", "parent_flow_name: strat", 1))
    result = runner.invoke(main, ["graph", "specs/broken.yaml"])
    assert result.exit_code == 1
    line = next(n for n, x in enumerate(broken.read_text().splitlines(), start=1) if "strat" in x)
    assert f"specs/broken.yaml:{line}:" in result.output
    assert "error: flow 'strat' is not a step of this spec; did you mean 'start'?" in result.output


@pytest.mark.parametrize("spec", PREFECT1_SPECS, ids=lambda p: p.stem)
def test_readme_shows_graph_parameters_mappings_image_and_labels(
    spec: Path, plans: dict[str, Plan], lock
) -> None:  # noqa: ANN001
    plan = plans[spec.stem]
    files = compile_spec(spec.read_text(encoding="utf-8"), f"specs/{spec.name}", lock)
    readme = files[f"{plan.name}/README.md"]
    assert f"```mermaid\n{mermaid(plan)}\n```" in readme
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    for parameter in plan.parameters:
        default = "" if parameter.required else f"`{json.dumps(parameter.default)}`"
        required = "yes" if parameter.required else "no"
        assert f"| `{parameter.name}` | {default} | {required} |" in rows
    for step in plan.steps:
        for mapped in step.inputs:
            index = f"`{json.dumps(list(mapped.attribute_index))}`" if mapped.attribute_index else ""
            assert (
                f"| `{step.alias}.{mapped.parameter}` | `{mapped.parent}.{mapped.task_name}` | "
                f"`{mapped.task_slug}` | {mapped.map_type}{fan(mapped).replace('gathered', 'gathered (list)')} | {index} |"
            ) in rows
            if mapped.map_type == "db":
                assert mapped.attribute_index, "a db mapping shows its attribute_index"
    assert f"- Image: `{plan.image}`" in readme
    assert all(f"`{label}`" in readme for label in plan.labels)


def test_db_mapping_row_shows_its_attribute_index(plans: dict[str, Plan], lock) -> None:  # noqa: ANN001
    spec = REPO / "specs" / "impact_pipeline.yaml"
    readme = compile_spec(spec.read_text(encoding="utf-8"), "specs/impact_pipeline.yaml", lock)[
        "impact_pipeline/README.md"
    ]
    assert '| db | `["outputs", "end_norm_emit_x"]` |' in readme


def test_gitattributes_fold_generated_files_in_review() -> None:
    result = subprocess.run(
        [
            "git",
            "check-attr",
            "linguist-generated",
            "--",
            "generated/fan_in/flow.py",
            "generated/x/README.md",
            "specs/flows.lock.yaml",
            "specs/fan_in.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "generated/fan_in/flow.py: linguist-generated: true",
        "generated/x/README.md: linguist-generated: true",
        "specs/flows.lock.yaml: linguist-generated: true",
        "specs/fan_in.yaml: linguist-generated: unspecified",
    ]
