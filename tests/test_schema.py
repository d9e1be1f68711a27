"""The JSON Schema for editors: committed beside the specs, accepting every example, rejecting type errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from compiler.cli import main
from compiler.diagnostics import CompileError
from compiler.spec import parse_spec, spec_json_schema
from tests.helpers import REPO, SPECS

SCHEMA_PATH = REPO / "specs" / "flowc.schema.json"
SCHEMA_COMMENT = "# yaml-language-server: $schema=./flowc.schema.json"
CORPUS = Path(__file__).parent / "bad_specs"
# The corpus specs whose problem is one of shape or type, which a JSON Schema can see; the others
# (unknown tasks, cycles, unsafe names, duplicate keys, ...) need the lock or flowc's own checks.
CORPUS_TYPE_ERRORS = ("bad_map_type", "empty_flows", "missing_key", "unknown_key", "unknown_top_key")

VALID_HEAD = "name: typed\nproject_name: lume\n"
# Type errors an editor should underline while the spec is being written.
TYPE_ERRORS = {
    "name_not_a_string": "name: 42\nproject_name: lume\ncomposing_flows: [{name: a, project_name: lume}]\n",
    "labels_not_a_list": VALID_HEAD
    + "labels: lume-services\ncomposing_flows: [{name: a, project_name: lume}]\n",
    "flows_not_a_list": VALID_HEAD + "composing_flows: {name: a, project_name: lume}\n",
    "flow_not_a_mapping": VALID_HEAD + "composing_flows: [distgen]\n",
    "parameters_not_a_mapping": VALID_HEAD
    + "composing_flows: [{name: a, project_name: lume, parameters: [1, 2]}]\n",
    "depends_on_not_a_list": VALID_HEAD + "composing_flows: [{name: a, project_name: lume, depends_on: b}]\n",
    "map_type_not_a_string": VALID_HEAD
    + "composing_flows:\n  - name: a\n    project_name: lume\n"
    + "    mapped_parameters: {x: {parent_flow_name: b, parent_task_name: t, map_type: 3}}\n",
    "attribute_index_not_a_list": VALID_HEAD
    + "composing_flows:\n  - name: a\n    project_name: lume\n"
    + "    mapped_parameters:\n      x: {parent_flow_name: b, parent_task_name: t, map_type: db, attribute_index: outputs}\n",
    "attribute_index_item_not_a_key": VALID_HEAD
    + "composing_flows:\n  - name: a\n    project_name: lume\n"
    + "    mapped_parameters:\n      x: {parent_flow_name: b, parent_task_name: t, map_type: db, attribute_index: [[1]]}\n",
    "run_config_unknown": VALID_HEAD + "run_config: ecs\ncomposing_flows: [{name: a, project_name: lume}]\n",
    "project_name_missing": "name: typed\ncomposing_flows: [{name: a, project_name: lume}]\n",
    "flow_key_unknown": VALID_HEAD + "composing_flows: [{name: a, project_name: lume, alais: b}]\n",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_committed_schema_is_what_flowc_schema_prints() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert (
        SCHEMA_PATH.read_text(encoding="utf-8") == result.output
    ), "specs/flowc.schema.json is stale: run `flowc schema > specs/flowc.schema.json`"


def test_schema_is_draft_2020_12_with_a_title(validator: jsonschema.protocols.Validator) -> None:
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert validator.schema["required"] == ["name", "project_name", "composing_flows"]
    assert validator.schema["additionalProperties"] is False


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_example_spec_points_editors_at_the_committed_schema(spec: Path) -> None:
    first_line = spec.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == SCHEMA_COMMENT
    assert (spec.parent / "flowc.schema.json").resolve() == SCHEMA_PATH


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_schema_accepts_example_spec(spec: Path, validator: jsonschema.protocols.Validator) -> None:
    errors = list(validator.iter_errors(yaml.safe_load(spec.read_text(encoding="utf-8"))))
    assert errors == [], [error.message for error in errors]


@pytest.mark.parametrize("name", CORPUS_TYPE_ERRORS)
def test_schema_rejects_type_error_of_bad_spec_corpus(
    name: str, validator: jsonschema.protocols.Validator
) -> None:
    data = yaml.safe_load((CORPUS / f"{name}.yaml").read_text(encoding="utf-8"))
    assert not validator.is_valid(data)


@pytest.mark.parametrize("name", sorted(TYPE_ERRORS))
def test_schema_and_flowc_both_reject_type_error(
    name: str, validator: jsonschema.protocols.Validator
) -> None:
    text = TYPE_ERRORS[name]
    assert not validator.is_valid(yaml.safe_load(text))
    with pytest.raises(CompileError):
        parse_spec(text, f"specs/{name}.yaml")


def test_type_error_specs_differ_from_a_valid_one_only_in_the_error(
    validator: jsonschema.protocols.Validator,
) -> None:
    """The negative cases above fail for their one error, not because the base is broken."""
    valid = (
        VALID_HEAD + "composing_flows: [{name: a, project_name: lume, parameters: {n: 1}, depends_on: []}]\n"
    )
    assert validator.is_valid(yaml.safe_load(valid))
    parse_spec(valid, "specs/typed.yaml")


@pytest.mark.parametrize(
    "bad_name",
    ["tests/bad_specs/unsafe_spec_name.yaml", "tests/bad_specs/unsafe_alias.yaml",
     "tests/bad_specs/unsafe_label.yaml",
     "tests/bad_specs/unsafe_image.yaml"],
)
def test_schema_carries_the_name_rules_so_editors_flag_unsafe_names(
    bad_name: str, validator: jsonschema.protocols.Validator
) -> None:
    data = yaml.safe_load((REPO / bad_name).read_text(encoding="utf-8"))
    errors = list(validator.iter_errors(data))
    # Optional fields fail as anyOf [pattern, null]: the pattern is among the reasons.
    reasons = [reason for error in errors for reason in (error, *error.context)]
    assert errors and any(reason.validator == "pattern" for reason in reasons), bad_name


# Every key of the schema is documented in docs/spec.md -------------------------------------------

SPEC_DOCS = REPO / "docs" / "spec.md"


def schema_key_paths(schema: dict | None = None) -> dict[str, str]:
    """Every key path of the spec's JSON Schema -> the model that defines it.

    `composing_flows[].alias` is a key of each item of a list, `mapped_parameters.*.map_type` a key
    of each value of a mapping; union members and $refs are followed.
    """
    schema = schema if schema is not None else spec_json_schema()
    definitions = schema.get("$defs", {})
    keys: dict[str, str] = {}

    def alternatives(node: dict, owner: str) -> list[tuple[dict, str]]:
        found, stack = [], [(node, owner)]
        while stack:
            current, owner = stack.pop()
            if "$ref" in current:
                name = current["$ref"].rsplit("/", 1)[-1]
                stack.append((definitions[name], name))
                continue
            for combinator in ("anyOf", "oneOf", "allOf"):
                stack.extend((option, owner) for option in current.get(combinator, []))
            found.append((current, owner))
        return found

    def walk(node: dict, prefix: str, owner: str, depth: int) -> None:
        if depth > 20:  # a recursive model: its keys are documented once
            return
        for current, model in alternatives(node, owner):
            for key, value in current.get("properties", {}).items():
                path = f"{prefix}.{key}" if prefix else key
                keys.setdefault(path, model)
                walk(value, path, model, depth + 1)
            if isinstance(current.get("items"), dict) and prefix:
                walk(current["items"], prefix + "[]", model, depth + 1)
            values = [v for v in current.get("patternProperties", {}).values() if isinstance(v, dict)]
            if isinstance(current.get("additionalProperties"), dict):
                values.append(current["additionalProperties"])
            for value in values:
                if prefix:
                    walk(value, prefix + ".*", model, depth + 1)

    walk(schema, "", "Spec", 0)
    return keys


def test_schema_key_paths_cover_nested_models() -> None:
    keys = schema_key_paths()
    assert keys["name"] == "Spec"
    assert keys["composing_flows[].alias"] == "ComposingFlow"
    assert keys["composing_flows[].mapped_parameters.*.map_type"] == "MappedParameter"


def test_every_schema_key_has_a_section_in_the_spec_docs() -> None:
    documented = set(re.findall(r"^### `([^`]+)`", SPEC_DOCS.read_text(encoding="utf-8"), re.M))
    keys = schema_key_paths()
    missing = [
        f"### `{path}`   (field {path.rsplit('.', 1)[-1].removesuffix('[]')!r} of {owner} in compiler/spec.py)"
        for path, owner in keys.items()
        if path not in documented
    ]
    assert not missing, (
        "spec keys without documentation: add these sections to docs/spec.md (under 'Top-level keys' or "
        "'Keys of each composing flow'), each saying what the key does, its default and an example:\n  "
        + "\n  ".join(missing)
    )
    stale = sorted(documented - set(keys))
    assert not stale, f"docs/spec.md has sections for keys the schema no longer has; remove them: {stale}"
