"""Targets: one spec format and one plan, a backend per target, chosen per spec or per project."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import black
import pytest

from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import read_lock
from compiler.targets.common import BLACK_MODE_ARGS
from tests.helpers import PREFECT1_SPECS, REPO, copy_project, flowc, tree

LOCK = read_lock((REPO / "specs" / "flows.lock.yaml").read_text(), "specs/flows.lock.yaml")
PREFECT3_SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if "target: prefect3" in p.read_text())
MODE = black.Mode(target_versions={black.TargetVersion.PY310}, **BLACK_MODE_ARGS)
SMALL = """\
name: small
project_name: lume3
{target}composing_flows:
  - name: scale
    project_name: lume3
    source: examples.prefect3.scale:scale_flow
    parameters: {{value: 1.5}}
"""


def test_the_repository_holds_prefect3_examples() -> None:
    assert [p.name for p in PREFECT3_SPECS] == ["fan_in3.yaml", "impact_pipeline3.yaml", "scan3.yaml"]


@pytest.mark.parametrize("spec", PREFECT3_SPECS, ids=lambda p: p.stem)
def test_prefect3_project_has_four_files_and_black_formatted_python(spec: Path) -> None:
    files = compile_spec(spec.read_text(), f"specs/{spec.name}", LOCK)
    name = spec.stem
    assert sorted(files) == [f"{name}/Dockerfile", f"{name}/README.md", f"{name}/flow.py", f"{name}/prefect.yaml"]
    flow = files[f"{name}/flow.py"]
    assert black.format_str(flow, mode=MODE) == flow
    compile(flow, f"{name}/flow.py", "exec")


def test_spec_target_overrides_the_project_default() -> None:
    prefect1 = compile_spec(SMALL.format(target=""), "specs/small.yaml", LOCK, default_target="prefect3")
    assert "small/prefect.yaml" in prefect1
    explicit = SMALL.format(target="target: prefect1\n")
    with pytest.raises(CompileError) as error:
        compile_spec(explicit, "specs/small.yaml", LOCK, default_target="prefect3")
    assert "is a Prefect 3 flow in the lock" in str(error.value)


def test_the_project_target_applies_to_specs_without_their_own(tmp_path: Path) -> None:
    """[tool.flowc] target decides for a spec without `target:`, and only for it."""
    project = copy_project(tmp_path / "project", examples=True)
    (project / "specs" / "small.yaml").write_text(SMALL.format(target=""))
    for name in (p.name for p in PREFECT1_SPECS):
        text = (project / "specs" / name).read_text()
        (project / "specs" / name).write_text(text.replace("\nname:", "\ntarget: prefect1\nname:", 1))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('lock = "specs/flows.lock.yaml"\n', 'lock = "specs/flows.lock.yaml"\ntarget = "prefect3"\n', 1))
    assert flowc("generate", cwd=project).returncode == 0
    assert (project / "generated" / "small" / "prefect.yaml").is_file()
    before = tree(project / "generated")
    check = flowc("check", cwd=project)
    assert check.returncode == 0, check.stdout + check.stderr
    pyproject.write_text(pyproject.read_text().replace('target = "prefect3"\n', ""))
    stale = flowc("check", cwd=project)
    assert stale.returncode == 1
    # Only small follows the default; as a prefect1 spec it may not compose a Prefect 3 flow.
    errors = [line for line in stale.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stale.stderr
    assert errors[0].startswith("specs/small.yaml:4:11: error: flow 'lume3/scale' is a Prefect 3 flow in the lock")
    assert tree(project / "generated") == before


def test_check_passes_for_the_mixed_repository_and_renders_nothing_when_current() -> None:
    """prefect1 and prefect3 specs side by side; the fast path knows prefect3's four files."""
    probe = textwrap.dedent(
        """
        import sys
        from compiler.cli import main
        try:
            main(args=["check"], prog_name="flowc")
        except SystemExit as stop:
            print("code", stop.code or 0)
        print("heavy", sorted({m.split(".")[0] for m in sys.modules} & {"jinja2", "black", "pydantic", "prefect"}))
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "code 0" in result.stdout, result.stdout + result.stderr
    assert "heavy []" in result.stdout


def test_an_unknown_project_target_is_one_located_error(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", generated=False)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('[tool.flowc]\n', '[tool.flowc]\ntarget = "prefect2"\n', 1))
    result = flowc("generate", cwd=project)
    assert result.returncode == 1
    assert "pyproject.toml:1:1: error: [tool.flowc] target 'prefect2' is not a target; known: prefect1, prefect3" in result.stdout + result.stderr


# Layout ------------------------------------------------------------------------------------------

STDLIB = set(sys.stdlib_module_names)
FRONT_END = ("compiler.spec", "compiler.lock", "compiler.plan", "compiler.yamlsafe", "compiler.diagnostics",
             "compiler.fingerprint", "compiler.config", "compiler.compile")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_front_end_and_plan_import_no_backend() -> None:
    """Importing the stages (and planning) loads neither renderer, templates engine nor Prefect."""
    code = (
        f"import sys\nimport {', '.join(FRONT_END)}\n"
        "print(sorted(m for m in sys.modules if m.startswith(('compiler.graph', 'compiler.targets.', "
        "'compiler.runtime', 'prefect', 'jinja2', 'black'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    for module in FRONT_END:
        path = REPO / (module.replace(".", "/") + ".py")
        assert not {n for n in _imports(path) if n.startswith(("compiler.graph", "compiler.targets.", "compiler.runtime"))}, module


@pytest.mark.parametrize(
    ("runtime", "own"),
    [
        ("compiler/runtime", ("compiler.runtime", "compiler.keys")),  # keys: the run keys, Prefect-free
        (
            "compiler/targets/prefect3/runtime",
            ("compiler.targets.prefect3.runtime", "compiler.runtime.files", "compiler.runtime.results", "compiler.runtime.points", "compiler.keys"),
        ),
    ],
)
def test_each_runtime_imports_only_its_prefect_and_the_standard_library(runtime: str, own: tuple[str, ...]) -> None:
    for path in sorted((REPO / runtime).glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            allowed = top in STDLIB or top == "prefect" or name == "compiler" or name.startswith(own)
            # Imported lazily inside a function, for one store or file type only.
            allowed = allowed or (top == "pymongo" and path.name == "results.py") or (top in ("yaml", "PIL") and path.name == "files.py")
            assert allowed, f"{path.relative_to(REPO)} imports {name}"
    if runtime == "compiler/targets/prefect3/runtime":
        for path in sorted((REPO / "compiler" / "runtime").glob("*.py")):
            if path.stem in ("files", "results", "points"):
                assert not {n for n in _imports(path) if n.split(".")[0] not in STDLIB | {"compiler", "pymongo", "yaml", "PIL"}}, path


def test_no_backend_imports_another() -> None:
    for path in sorted((REPO / "compiler" / "targets" / "prefect3").rglob("*.py")):
        imported = _imports(path)
        assert "compiler.runtime.tasks" not in imported and "compiler.runtime" not in imported, path
        assert not any(n.startswith("compiler.targets.prefect1") for n in imported), path


@pytest.mark.parametrize("spec", PREFECT3_SPECS, ids=lambda p: p.stem)
def test_prefect_yaml_and_readme_say_what_the_plan_decided(spec: Path) -> None:
    import yaml

    from compiler.compile import compile_plan
    from compiler.graph import mermaid

    plan = compile_plan(spec.read_text(), f"specs/{spec.name}", LOCK)
    files = compile_spec(spec.read_text(), f"specs/{spec.name}", LOCK)
    document = yaml.safe_load(files[f"{plan.name}/prefect.yaml"])
    (deployment,) = document["deployments"]
    assert deployment["name"] == plan.name and deployment["entrypoint"] == f"flow.py:{plan.name}"
    assert deployment["work_pool"] == {"name": plan.work_pool, "job_variables": {"image": plan.image}}
    assert deployment["parameters"] == {"parameters": {p.name: p.default for p in plan.parameters if not p.required}}
    assert deployment["tags"] == list(plan.labels)
    assert document["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/flowc"}}]
    readme = files[f"{plan.name}/README.md"]
    assert f"```mermaid\n{mermaid(plan)}\n```" in readme
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    for step in plan.steps:
        for mapped in step.inputs:
            source = mapped.parent if mapped.task_name == "return" else f"{mapped.parent}.{mapped.task_name}"
            assert any(row.startswith(f"| `{step.alias}.{mapped.parameter}` | `{source}` |") for row in rows), step.alias
    flow = files[f"{plan.name}/flow.py"]
    for step in plan.steps:
        deployment = f"{step.flow_name}/{step.deployment or step.flow_name}"
        if step.per_point:  # flowc.run_points calls run_deployment once per point, keyed per point
            assert f'return flowc.run_points(\n        "{step.alias}",\n        "{deployment}",' in flow
            continue
        assert f'run_deployment(\n        "{deployment}",' in flow
        assert f'idempotency_key=flowc.child_key("{step.alias}", "{deployment}", parameters)' in flow


def test_flowc_run_refuses_resume_and_timeout_for_a_prefect3_spec_at_its_target(tmp_path: Path) -> None:
    """A local prefect3 run keeps no run records and flowc does not bound it: exit 2, located,
    before any server starts; `--fresh` (what every prefect3 run does) goes on to the run."""
    project = copy_project(tmp_path / "p")
    refused = flowc("run", "specs/fan_in3.yaml", "--resume", "--timeout", "5m", cwd=project)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert [line.split(" error: ")[0] for line in lines] == ["specs/fan_in3.yaml:6:1:"] * 2, lines
    assert lines[0].endswith("keeps no run records, so every child runs (as with --fresh); on a server, retrying the "
                             "composite's flow run reuses the children that finished (idempotency keys)")
    assert "--timeout is not available for prefect3 specs (its `target: prefect3`)" in lines[1]
    assert not (project / ".flowc" / "prefect3").exists() and refused.stdout == ""

    # The project's default target instead of the spec's: the spec's first line, naming pyproject.toml.
    text = (project / "specs" / "fan_in3.yaml").read_text().replace("target: prefect3\n", "")
    (project / "specs" / "fan_in3.yaml").write_text(text)
    pyproject = (project / "pyproject.toml").read_text()
    assert "[tool.flowc]\n" in pyproject
    pyproject = pyproject.replace("[tool.flowc]\n", '[tool.flowc]\ntarget = "prefect3"\n', 1)
    missing = str(tmp_path / "no-such-python")
    pyproject = pyproject.replace('python = "/var/tmp/flowc-prefect3/bin/python"', f"python = {missing!r}")
    (project / "pyproject.toml").write_text(pyproject)
    refused = flowc("run", "specs/fan_in3.yaml", "--resume", cwd=project)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        'specs/fan_in3.yaml:1:1: error: --resume is not available for prefect3 specs ([tool.flowc] target = "prefect3"'
    ), refused.stderr
    assert flowc("generate", "specs/fan_in3.yaml", cwd=project).returncode == 0
    fresh = flowc("run", "specs/fan_in3.yaml", "--fresh", cwd=project)
    assert fresh.returncode == 1 and f"no Prefect 3 interpreter {missing!r}" in fresh.stderr, fresh.stderr


def test_a_local_prefect3_run_names_each_child_by_its_step_or_its_point() -> None:
    from compiler.targets.prefect3.local import child_alias

    assert child_alias("scan3", {"name": "scan3.total", "deployment": "total"}) == "total"
    assert child_alias("scan3", {"name": "scaled[value=1.0]", "deployment": "scale"}) == "scaled[value=1.0]"
    assert child_alias("scan3", {"name": None, "deployment": "scale"}) == "scale"
