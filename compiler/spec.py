"""YAML text -> Spec: the flow-of-flows spec model, with the source position of every value."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from compiler.diagnostics import CompileError, Diagnostic, did_you_mean
from compiler.lockfile import SOURCE
from compiler.sourcemap import MAX_DIAGNOSTICS, Loaded, Path, SourceMap, _more, _shown, load_yaml
from compiler.values import ValueRejected, normalize


DEFAULT_BASE_IMAGE = "prefecthq/prefect:1.4.1-python3.10"
DEFAULT_LABELS = ("lume-services",)


IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
MAX_NAME_LENGTH = 100  # spec names and aliases: directory names, image repositories, variables
MAX_IMAGE_NAME_LENGTH = 255  # Docker's limit for an image name (registry and path, without the tag)
# Prefect names, labels and project names: printable, no quotes or shell/template metacharacters.
PREFECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}\Z")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\Z")
TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 ._:/<>-]{0,199}\Z")
MODULE_ATTR = SOURCE  # module:attribute (a module may start with a digit) or a .py path:attribute
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Docker's reference grammar, restricted to what a Dockerfile FROM line can hold safely.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
_REPO = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
IMAGE_REPOSITORY = re.compile(rf"{_DOMAIN}?{_REPO}\Z")
IMAGE_REFERENCE = re.compile(
    rf"{_DOMAIN}?{_REPO}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?\Z"
)


def _short_name(value: str) -> str:
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{_shown(value)} is longer than {MAX_NAME_LENGTH} characters "
            "(it names a directory, an image and Python variables)"
        )
    return value


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{_shown(value)} is not a valid {what}")
        return value

    return AfterValidator(check)


def _docker_name_length(value: str) -> None:
    name = value.split("@", 1)[0]
    name = name[: name.rfind(":")] if name.rfind(":") > name.rfind("/") else name  # without the tag
    if len(name) > MAX_IMAGE_NAME_LENGTH:
        raise ValueError(
            f"{_shown(value)}: an image name is at most {MAX_IMAGE_NAME_LENGTH} characters (Docker's limit)"
        )


def _image_repository(value: str) -> str:
    if IMAGE_REPOSITORY.match(value):
        _docker_name_length(value)
        return value
    if IMAGE_REFERENCE.match(value):
        raise ValueError(
            f"{_shown(value)}: give the image repository without a tag; flowc computes the tag"
        )
    raise ValueError(f"{_shown(value)} is not a valid image repository")


def _pinned_base_image(value: str) -> str:
    """A base image with a tag (not `latest`) or a digest: the image tag is a content hash of
    the inputs, which means nothing if FROM can move (and hadolint warns: DL3006, DL3007)."""
    if not IMAGE_REFERENCE.match(value):
        raise ValueError(f"{_shown(value)} is not a valid image reference")
    _docker_name_length(value)
    last = value.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if "@" not in value and tag in (None, "latest"):
        raise ValueError(
            f"base_image {_shown(value)} is not pinned; give a tag other than latest (or a digest), "
            f"e.g. {DEFAULT_BASE_IMAGE!r}"
        )
    return value


def _json_value(value: Any) -> Any:
    """Parameter defaults follow the values policy (compiler/values.py), as lock and -p do."""
    try:
        return normalize(value)
    except ValueRejected as error:
        raise ValueError(str(error)) from None


DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(s|m|h)?\Z")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}
MAX_DURATION_S = 30 * 24 * 3600  # a month: longer is a typo, not a simulation


def duration_seconds(value: int | float | str) -> float:
    """`45`, `30s`, `5m`, `2h` -> seconds (a bare number is seconds); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (45, 30s, 5m, 2h)")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION.match(value.strip())
        if match is None:
            raise ValueError(f"{_shown(value)} is not a duration (45, 30s, 5m, 2h)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION_S:
        raise ValueError(f"{_shown(str(value))} is not a duration between 0 and 30 days")
    return seconds


def _duration(value: Any) -> Any:
    duration_seconds(value)
    return value


def _schema_pattern(pattern: re.Pattern[str]) -> Any:
    """The same rule for editors: a JSON Schema `pattern` (ECMA-262 anchors) beside the check."""
    return Field(json_schema_extra={"pattern": "^" + pattern.pattern.replace("\\Z", "$")})


Identifier = Annotated[
    StrictStr, _schema_pattern(IDENTIFIER), _matching(IDENTIFIER, "name (letters, digits, '_'; starts with a letter)"), AfterValidator(_short_name)
]
PrefectName = Annotated[StrictStr, _schema_pattern(PREFECT_NAME), _matching(PREFECT_NAME, "Prefect name (letters, digits, ' ._-')")]
# A child flow's name in Prefect: any printable text; it reaches flow.py only as a string literal.
FLOW_NAME = re.compile(r"(?=.*[^ ])[^\x00-\x1f\x7f]{1,200}\Z", re.DOTALL)
FlowName = Annotated[StrictStr, _schema_pattern(FLOW_NAME), _matching(FLOW_NAME, "Prefect flow name (printable, at most 200 characters)")]
Label = Annotated[StrictStr, _schema_pattern(LABEL), _matching(LABEL, "label (letters, digits, '._/-')")]
TaskName = Annotated[StrictStr, _schema_pattern(TASK_NAME), _matching(TASK_NAME, "task name")]
Source = Annotated[StrictStr, _schema_pattern(MODULE_ATTR), _matching(MODULE_ATTR, "source (module.path:attribute or path/file.py:attribute)")]
Duration = Annotated[
    Union[StrictInt, pydantic.StrictFloat, StrictStr],
    Field(json_schema_extra={"examples": [45, "30s", "5m", "2h"]}),
    AfterValidator(_duration),
]
EnvName = Annotated[StrictStr, _schema_pattern(ENV_NAME), _matching(ENV_NAME, "environment variable name")]
EnvValue = Annotated[StrictStr, Field(max_length=4096, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
ParameterName = Annotated[StrictStr, _schema_pattern(TASK_NAME), _matching(TASK_NAME, "parameter name")]
ImageRepository = Annotated[StrictStr, _schema_pattern(IMAGE_REPOSITORY), AfterValidator(_image_repository)]
ImageReference = Annotated[StrictStr, AfterValidator(_pinned_base_image)]
AttributeKey = Union[StrictInt, Annotated[StrictStr, Field(max_length=200)]]

JsonValue = Annotated[pydantic.JsonValue, AfterValidator(_json_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MappedParameter(_Model):
    """A child parameter fed from a task result of another flow in the composition."""

    parent_flow_name: FlowName = Field(description="Alias (or name) of the flow that produces the value.")
    parent_task_name: TaskName | None = Field(None, description="Name of the parent's task whose result is taken.")
    parent_task_slug: TaskName | None = Field(None, description="Slug of that task, e.g. save_db_result-1.")
    parent_project_name: PrefectName | None = Field(None, description="LUME-services: the parent's project (checked).")
    map_type: Literal["raw", "file", "db"] = Field("raw", description="raw value, file reference, or db result.")
    attribute: AttributeKey | None = Field(None, description="LUME-services: prepended to attribute_index.")
    attribute_index: list[AttributeKey] | None = Field(
        None, description="db only: field of the stored result, then keys into it."
    )

    @property
    def full_attribute_index(self) -> tuple[str | int, ...]:
        head = () if self.attribute is None else (self.attribute,)
        return head + tuple(self.attribute_index or ())


MAX_SCAN_POINTS = 10_000  # per step; the runtime's own bound is the same (compiler.runtime.scans)
ScanValues = Annotated[list[JsonValue], Field(min_length=1)]


class Scan(_Model):
    """Run a child once per point: every combination of the lists (grid) or their i-th items (zip)."""

    mode: Literal["grid", "zip"] = Field("grid", description="grid: every combination, first parameter slowest; zip: lists of equal length, item by item.")
    parameters: dict[ParameterName, ScanValues] = Field(
        min_length=1, description="Child parameter -> list of values; each becomes the composite parameter <alias>-<param>."
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=MAX_SCAN_POINTS, strict=True, description="At most this many of this step's child runs alive at once."
    )


class ComposingFlow(_Model):
    """One step of the composition: an existing Prefect flow and how its parameters are fed."""

    name: FlowName = Field(description="The child flow's name in Prefect (needs an alias unless it is an identifier).")
    project_name: PrefectName = Field(description="The child flow's Prefect project.")
    alias: Identifier | None = Field(None, description="The step's name; defaults to name.")
    source: Source | None = Field(None, description="module:attribute of the prefect.Flow, for `flowc lock` and local runs.")
    parameters: dict[ParameterName, JsonValue] = Field(
        default_factory=dict, description="New defaults for this child's composite parameters."
    )
    mapped_parameters: dict[ParameterName, MappedParameter] = Field(
        default_factory=dict, description="Child parameters fed from other flows' task results."
    )
    depends_on: list[FlowName] = Field(default_factory=list, description="Steps to wait for, without data.")
    labels: list[Label] | None = Field(None, description="This child's runs get these labels (default: the child flow's own).")
    retries: int = Field(0, ge=0, le=100, strict=True, description="A failed child run is started again (a new run), at most this many times.")
    retry_delay: Duration = Field(0, description="Between those runs: 45, 30s, 5m, 2h (seconds if bare).")
    timeout: Duration | None = Field(None, description="A child run still going after this is stopped and fails.")
    deployment: PrefectName | None = Field(None, description="prefect3: the child's deployment name (default: its flow name).")
    scan: Scan | None = Field(None, description="Run this child once per point of a grid or zip of parameter values.")
    for_each: PrefectName | None = Field(
        None, description="Run once per point of this scanned step (or of a step that is for_each of one)."
    )

    @property
    def step_name(self) -> str:
        return self.alias or self.name

    @property
    def lock_key(self) -> str:
        return f"{self.project_name}/{self.name}"


class Spec(_Model):
    """A flow of flows: the root of `specs/<name>.yaml`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "flowc flow-of-flows spec"},
    )

    name: Identifier = Field(description="Names generated/<name>/ and the Prefect flow.")
    project_name: PrefectName = Field(description="The Prefect project to register into.")
    labels: list[Label] = Field(default_factory=lambda: list(DEFAULT_LABELS), description="Agent labels.")
    image: ImageRepository | None = Field(None, description="Image repository; the tag is computed.")
    base_image: ImageReference = Field(DEFAULT_BASE_IMAGE, description="Image the project is built FROM.")
    run_config: Literal["docker", "kubernetes"] = Field("docker", description="DockerRun or KubernetesRun.")
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, description="Environment of the flow run.")
    composing_flows: list[ComposingFlow] = Field(min_length=1, description="The child flows, in any order.")
    target: Literal["prefect1", "prefect3"] | None = Field(None, description="Overrides [tool.flowc] target.")
    work_pool: PrefectName | None = Field(None, description="prefect3: work pool of the composite's deployment (default: default).")

    @property
    def image_repository(self) -> str:
        return self.image or self.name.lower()


@dataclass(frozen=True)
class ParsedSpec:
    spec: Spec
    where: SourceMap
    text: str


def parse_spec(text: str, path: str, loaded: Loaded | None = None) -> ParsedSpec:
    """Parse and validate one spec; raises CompileError with every problem found.

    `loaded`, when given, is sourcemap.load_once(text, path), already computed by the caller.
    """
    if isinstance(loaded, CompileError):
        raise CompileError(list(loaded.diagnostics))
    data, where = load_yaml(text, path) if loaded is None else loaded
    if not isinstance(data, dict):
        raise CompileError([where.at((), "a spec is a mapping with keys name, project_name, composing_flows")])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise CompileError(_pydantic_diagnostics(error, data, where)) from None
    return ParsedSpec(spec=spec, where=where, text=text)


def _pydantic_diagnostics(error: ValidationError, data: Any, where: SourceMap) -> list[Diagnostic]:
    errors = error.errors()
    # Suggestions cost a difflib search each: compute them for the problems that are shown.
    shown = _pydantic_diagnostics_of(errors[:MAX_DIAGNOSTICS], data, where)
    if len(errors) > MAX_DIAGNOSTICS:
        first_omitted = where.at(_document_path(tuple(errors[MAX_DIAGNOSTICS]["loc"]), data), "", key=True)
        shown.append(_more(max(first_omitted, max(shown)), len(errors) - MAX_DIAGNOSTICS))
    return shown


def _pydantic_diagnostics_of(errors: list[Any], data: Any, where: SourceMap) -> list[Diagnostic]:
    diagnostics = []
    for item in errors:
        loc = tuple(item["loc"])
        kind = item["type"]
        # Drop pydantic's union/validator path segments that are not keys of the document.
        path = _document_path(loc, data)
        if kind == "extra_forbidden":
            key = path[-1] if path else ""
            allowed = _allowed_keys(path[:-1], data)
            message = f"unknown key {_shown(str(key))}{did_you_mean(str(key), allowed)}"
            diagnostics.append(where.at(path, message, key=True))
        elif kind == "missing":
            field_name = loc[-1]
            diagnostics.append(where.at(path[:-1], f"missing required key {field_name!r}"))
        else:
            diagnostics.append(where.at(path, _message(item, path)))
    return diagnostics


def _document_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep the part of a pydantic error location that walks the YAML document.

    pydantic adds segments for union members and validators; those name no key and are dropped,
    except a last segment, which names a missing key.
    """
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            path.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _allowed_keys(path: Path, data: Any) -> list[str]:
    depth = [p for p in path if isinstance(p, str)]
    if not depth:
        return list(Spec.model_fields)
    if depth[-1] == "composing_flows" or (len(depth) == 1 and depth[0] == "composing_flows"):
        return list(ComposingFlow.model_fields)
    if len(depth) >= 2 and depth[-2] == "mapped_parameters":
        return list(MappedParameter.model_fields)
    if depth[-1] == "scan":
        return list(Scan.model_fields)
    return []


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "list_type": "a list",
    "dict_type": "a mapping",
    "bool_type": "true or false",
    "model_type": "a mapping",
}


def _message(item: dict[str, Any], path: Path) -> str:
    names = [p for p in path if isinstance(p, str)]
    where_name = names[-1] if names else "spec"
    kind = item["type"]
    if kind == "value_error":
        return str(item["msg"]).removeprefix("Value error, ")
    if kind in _TYPE_NAMES:
        return f"{where_name}: expected {_TYPE_NAMES[kind]}, got {_describe(item.get('input'))}"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        got = item.get("input")
        shown = _shown(got) if isinstance(got, str) else repr(got)
        return f"{where_name}: expected one of {expected}, got {shown}{did_you_mean(str(got), _literals(expected))}"
    if kind == "too_short":
        return f"{where_name}: must not be empty"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = item.get("ctx", {}).get("ge" if kind == "greater_than_equal" else "le")
        return f"{where_name}: must be at {'least' if kind == 'greater_than_equal' else 'most'} {bound}"
    if kind == "string_pattern_mismatch":
        return f"{where_name}: control characters are not allowed"
    if kind == "string_too_long":
        return f"{where_name}: value is too long"
    return f"{where_name}: {item['msg']}"


def _literals(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec format, for editors (`flowc schema`)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
