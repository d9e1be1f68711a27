"""Reading the lock: a validating reader with positions (compiler.lockfile is its model).

Every malformed entry is one `path:line:col: error:` diagnostic; nothing of a hand-edited lock
reaches the compiler unchecked. Imports no pydantic and no prefect (generate's fast path reads
the lock).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from compiler.diagnostics import CompileError, Diagnostic
from compiler.lockfile import (
    DIGEST,
    LOADABLE,
    LOCK_VERSION,
    MAX_LOCK_DIAGNOSTICS,
    NAME_TEXT,
    READABLE_VERSIONS,
    RELATIVE_FILE,
    SOURCE,
    FlowInterface,
    Lock,
    ParameterInterface,
    SlugResult,
    TaskInterface,
    decode_lock,
    read_lock_bytes,
    slug_order,
)
from compiler.yamlsafe import MAX_DEPTH, MAX_NODES, Lines, YamlLimitError, compose_bounded


def read_lock_file(path: Path, display: str) -> Lock:
    """The lock at `path` (an empty lock when there is none); every problem is a located error."""
    data = read_lock_bytes(path, display)
    return Lock(path=display) if data is None else read_lock(decode_lock(data, display), display)


def read_lock(text: str, path: str) -> Lock:
    """Parse and validate the lock's text; raises CompileError with every problem found."""
    lines = Lines(text)
    try:
        root = compose_bounded(text)
    except YamlLimitError as error:
        line, col = lines.at(error.mark)
        raise CompileError([Diagnostic(path, line, col, f"lock: {error.message}")]) from None
    except yaml.MarkedYAMLError as error:
        line, col = lines.at(error.problem_mark or error.context_mark)
        problem = error.problem or error.context or "invalid YAML"
        raise CompileError([Diagnostic(path, line, col, f"lock is not valid YAML: {problem}")]) from None
    except yaml.reader.ReaderError as error:
        line, col = lines.at_index(error.position)
        raise CompileError([Diagnostic(path, line, col, "lock: a character YAML does not allow")]) from None
    except yaml.YAMLError as error:
        raise CompileError([Diagnostic(path, 1, 1, "lock is not valid YAML: " + " ".join(str(error).split()))]) from None
    if root is None:
        return Lock(path=path)
    reader = _LockReader(path, lines)
    flows = reader.lock(root)
    if reader.problems:
        problems = sorted(reader.problems)
        if len(problems) > MAX_LOCK_DIAGNOSTICS:
            rest = len(problems) - MAX_LOCK_DIAGNOSTICS
            first = problems[MAX_LOCK_DIAGNOSTICS]
            problems = [*problems[:MAX_LOCK_DIAGNOSTICS], Diagnostic(path, first.line, first.col, f"... and {rest} more problems from here on")]
        raise CompileError(problems)
    return Lock(path=path, flows=flows)


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN_TYPES = (str, int, float, bool, type(None))


class _Invalid(Exception):
    """One problem at one node; the entry it belongs to is dropped, the reading goes on."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _LockReader:
    def __init__(self, path: str, lines: Lines) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Diagnostic] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.visited = 0
        self.version = LOCK_VERSION

    def report(self, node: yaml.Node, message: str) -> None:
        line, col = self.lines.at(node.start_mark)
        self.problems.append(Diagnostic(self.path, line, col, message))

    # Document ---------------------------------------------------------------------------------

    def lock(self, root: yaml.Node) -> dict[str, FlowInterface]:
        try:
            top = self.fields(root, "the lock", required=("version", "flows"), optional=())
            self.version = self.integer(top["version"], "version")
            if self.version not in READABLE_VERSIONS:
                raise _Invalid(top["version"], f"unknown lock version {self.version} (this flowc reads {', '.join(map(str, READABLE_VERSIONS))}); rewrite it with `flowc lock`")
            entries = self.mapping(top["flows"], "flows")
        except _Invalid as problem:
            self.report(problem.node, problem.message)
            return {}
        flows: dict[str, FlowInterface] = {}
        for key, key_node, value in entries:
            try:
                flows[key] = self.flow(key, key_node, value)
            except _Invalid as problem:
                self.report(problem.node, problem.message)
        return flows

    def flow(self, key: str, key_node: yaml.Node, node: yaml.Node) -> FlowInterface:
        project_name, _, name = key.partition("/")
        if not project_name or not name or not NAME_TEXT.match(key):
            raise _Invalid(key_node, f"lock key {_shown(key)} is not project/name")
        optional = ("source", "source_digest", "source_files", "prefect", "parameters", "tasks")
        entry = self.fields(node, key, required=(), optional=optional)
        source = self.text(entry["source"], "source", SOURCE, "source (module:attribute or path.py:attribute)") if "source" in entry else None
        digest = self.text(entry["source_digest"], "source_digest", DIGEST, "digest (sha256:<64 hex digits>)") if "source_digest" in entry else None
        files = None
        if "source_files" in entry:
            files = tuple(self.text(n, "source_files", RELATIVE_FILE, "path relative to the project root") for n in self.sequence(entry["source_files"], "source_files"))
        parameters = [self.parameter(n) for n in self.sequence(entry["parameters"], "parameters")] if "parameters" in entry else []
        names = [p.name for p in parameters]
        if len(set(names)) != len(names):
            raise _Invalid(entry["parameters"], f"{key}: a parameter name appears twice")
        tasks = [self.task(task, task_node, value) for task, task_node, value in self.mapping(entry["tasks"], "tasks")] if "tasks" in entry else []
        slugs = [s for t in tasks for s in t.slugs]
        if len(set(slugs)) != len(slugs):
            raise _Invalid(entry["tasks"], f"{key}: a slug appears under two tasks")
        return FlowInterface(
            project_name=project_name,
            name=name,
            source=source,
            parameters=tuple(sorted(parameters, key=lambda p: p.name)),
            tasks=tuple(sorted(tasks, key=lambda t: t.name)),
            source_digest=digest,
            source_files=files,
            prefect=self.integer(entry["prefect"], "prefect") if "prefect" in entry else 1,
        )

    def parameter(self, node: yaml.Node) -> ParameterInterface:
        entry = self.fields(node, "a parameter", required=("name", "required"), optional=("default",))
        name = self.text(entry["name"], "name", NAME_TEXT, "parameter name")
        required = self.boolean(entry["required"], "required")
        default = self.value(entry["default"], 0) if "default" in entry else None
        return ParameterInterface(name, default, required)

    def task(self, name: str, name_node: yaml.Node, node: yaml.Node) -> TaskInterface:
        if not NAME_TEXT.match(name):
            raise _Invalid(name_node, f"task name {_shown(name)} is not printable text of at most 200 characters")
        if self.version == 1:
            entry = self.fields(node, name, required=("slugs", "persists_result"), optional=("result",))
            slug_nodes = self.sequence(entry["slugs"], "slugs")
            if not slug_nodes:
                raise _Invalid(entry["slugs"], f"task {_shown(name)}: slugs must not be empty")
            slugs = tuple(sorted((self.text(n, "slugs", NAME_TEXT, "slug") for n in slug_nodes), key=slug_order))
            result = self.optional_text(entry["result"], "result") if "result" in entry else None
            persists = self.boolean(entry["persists_result"], "persists_result")
            return TaskInterface(name, slugs, result, persists)
        entry = self.fields(node, name, required=("slugs",), optional=())
        slug_entries = self.mapping(entry["slugs"], "slugs")
        if not slug_entries:
            raise _Invalid(entry["slugs"], f"task {_shown(name)}: slugs must not be empty")
        results = []
        for slug, slug_node, value in slug_entries:
            if not NAME_TEXT.match(slug):
                raise _Invalid(slug_node, f"slug {_shown(slug)} is not printable text of at most 200 characters")
            fields = self.fields(value, slug, required=("result", "loadable"), optional=("origin", "checkpoint"))
            loadable = self.text(fields["loadable"], "loadable", None, "")
            if loadable not in LOADABLE:
                raise _Invalid(fields["loadable"], f"loadable: expected one of {', '.join(LOADABLE)}, got {_shown(loadable)}")
            results.append(
                SlugResult(
                    slug=slug,
                    result=self.optional_text(fields["result"], "result"),
                    loadable=loadable,
                    origin=self.optional_text(fields["origin"], "origin") if "origin" in fields else None,
                    checkpoint=self.boolean(fields["checkpoint"], "checkpoint") if "checkpoint" in fields else True,
                )
            )
        return TaskInterface.of(name, results)

    # Shapes -----------------------------------------------------------------------------------

    def fields(self, node: yaml.Node, what: str, *, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, yaml.Node]:
        entries = self.mapping(node, what)
        found: dict[str, yaml.Node] = {}
        for key, key_node, value in entries:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.report(key_node, f"unknown key {_shown(key)} in {_shown(what)} (expected {allowed})")
                continue
            found[key] = value
        for key in required:
            if key not in found:
                raise _Invalid(node, f"{_shown(what)}: missing required key {key!r}")
        return found

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        self.count(node)
        if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
            raise _Invalid(node, f"{what}: expected a mapping, got {self.describe(node)}")
        entries = []
        seen: set[str] = set()
        for key_node, value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Invalid(key_node, "YAML merge keys ('<<') are not supported in the lock")
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise _Invalid(key_node, f"{what}: keys must be strings, got {self.describe(key_node)}")
            if key in seen:
                raise _Invalid(key_node, f"duplicate key {_shown(key)}")
            seen.add(key)
            entries.append((key, key_node, value))
        return entries

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        self.count(node)
        if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ:
            raise _Invalid(node, f"{what}: expected a list, got {self.describe(node)}")
        return list(node.value)

    def text(self, node: yaml.Node, what: str, pattern: re.Pattern[str] | None, kind: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str):
            raise _Invalid(node, f"{what}: expected a string, got {self.describe(node)}")
        if pattern is not None and not pattern.match(value):
            raise _Invalid(node, f"{what}: {_shown(value)} is not a valid {kind}")
        return value

    def optional_text(self, node: yaml.Node, what: str) -> str | None:
        value = self.scalar(node)
        if value is None:
            return None
        if not isinstance(value, str) or not NAME_TEXT.match(value):
            raise _Invalid(node, f"{what}: expected a class name or null, got {self.describe(node)}")
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node)
        if not isinstance(value, bool):
            raise _Invalid(node, f"{what}: expected true or false, got {self.describe(node)}")
        return value

    def integer(self, node: yaml.Node, what: str) -> int:
        value = self.scalar(node)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(node, f"{what}: expected an integer, got {self.describe(node)}")
        return value

    def scalar(self, node: yaml.Node) -> Any:
        self.count(node)
        if not isinstance(node, yaml.ScalarNode):
            raise _Invalid(node, f"expected a single value, got {self.describe(node)}")
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            raise _Invalid(node, f"YAML: {error.problem}") from None
        except ValueError as error:  # an integer past Python's digit limit
            raise _Invalid(node, f"value cannot be read: {str(error).split(';')[0]}") from None
        if not isinstance(value, _PLAIN_TYPES):
            raise _Invalid(node, f"unsupported YAML value of type {type(value).__name__} (tag {_shown(node.tag)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid(node, f"{value!r} is not a value a literal can hold (the lock takes finite numbers)")
        return value

    def value(self, node: yaml.Node, depth: int) -> Any:
        """A parameter default: plain YAML data (VALUES POLICY: compiler/values.py when it lands)."""
        if depth > MAX_DEPTH:
            raise _Invalid(node, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, depth + 1) for item in self.sequence(node, "default")]
        if isinstance(node, yaml.MappingNode):
            return {key: self.value(item, depth + 1) for key, _, item in self.mapping(node, "default")}
        return self.scalar(node)

    def count(self, node: yaml.Node) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _Invalid(node, f"the lock expands to more than {MAX_NODES} values (alias bomb?)")

    def describe(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping" if node.tag == _MAP else f"the tag {_shown(node.tag)}"
        if isinstance(node, yaml.SequenceNode):
            return "a list" if node.tag == _SEQ else f"the tag {_shown(node.tag)}"
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError):
            return f"the tag {_shown(node.tag)}"
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "a boolean"
        if isinstance(value, (int, float)):
            return f"the number {_shown(node.value)}"
        if isinstance(value, str):
            return f"the string {_shown(value)}"
        return f"a {type(value).__name__}"


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"
