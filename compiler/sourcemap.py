"""YAML text -> plain data and a SourceMap (the line and column of every value and key), within
the hard bounds of compiler.yamlsafe; shared by specs, the lock's reader and `-p` values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from compiler.diagnostics import CompileError, Diagnostic
from compiler.values import MAX_INT_DIGITS, ValueRejected, non_string_key_message, normalize, rejected_type_message
from compiler.yamlsafe import (  # bounds that keep hostile YAML cheap to reject
    MAX_DEPTH,
    MAX_NODES,
    MAX_SPEC_BYTES,
    Lines,
    SeveralDocumentsError,
    YamlLimitError,
    compose_counting_aliases,
    expansion_problem,
)

Path = tuple[Union[str, int], ...]
MAX_DIAGNOSTICS = 100  # per spec; past it one line counts the rest


def _shown(value: str) -> str:
    """A value quoted for a message, cut short: a spec may hold a megabyte in one string."""
    return repr(value) if len(value) <= 80 else repr(value[:60]) + f"... ({len(value)} characters)"


@dataclass(frozen=True)
class SourceMap:
    """Where each value of the YAML document stands: path -> (line, col), both 1-based."""

    path: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path, message: str, *, key: bool = False) -> Diagnostic:
        """A diagnostic at `path`, or at its nearest ancestor that exists in the document."""
        probe = tuple(path)
        while True:
            table = self.keys if key and probe in self.keys else self.values
            if probe in table:
                line, col = table[probe]
                return Diagnostic(self.path, line, col, message)
            if not probe:
                return Diagnostic(self.path, 1, 1, message)
            probe = probe[:-1]


def load_yaml(text: str, path: str) -> tuple[Any, SourceMap]:
    """YAML -> plain data plus positions; hostile documents end in a diagnostic, not a crash."""
    where = SourceMap(path)
    lines = _Lines(text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise CompileError([Diagnostic(path, 1, 1, f"spec is larger than {MAX_SPEC_BYTES // 1024} KiB")])
    try:
        root, aliases = compose_counting_aliases(text)
    except YamlLimitError as error:
        line, col = lines.at(error.mark)
        col = 1 if isinstance(error, SeveralDocumentsError) else col
        raise CompileError([Diagnostic(path, line, col, error.message)]) from None
    except yaml.MarkedYAMLError as error:
        line, col = lines.at(error.problem_mark or error.context_mark)
        problem = error.problem or error.context or "invalid YAML"
        raise CompileError([Diagnostic(path, line, col, f"YAML syntax: {problem}")]) from None
    except yaml.reader.ReaderError as error:
        # A character YAML does not allow (NUL, most control characters): point at it.
        line, col = lines.at_index(error.position)
        character = error.character if isinstance(error.character, str) else chr(error.character)
        escape = repr(character)[1:-1]
        message = f"YAML: character {character!r} is not allowed here; write it as \"{escape}\" in a double-quoted string"
        raise CompileError([Diagnostic(path, line, col, message)]) from None
    except yaml.YAMLError as error:
        raise CompileError([Diagnostic(path, 1, 1, "YAML syntax: " + " ".join(str(error).split()))]) from None
    if root is None:
        raise CompileError([Diagnostic(path, 1, 1, "spec is empty")])
    expansion = expansion_problem(root) if aliases else None
    if expansion is not None:
        message, mark = expansion
        line, col = lines.at(mark)
        raise CompileError([Diagnostic(path, line, col, message)])
    builder = _Builder(where, lines)
    data = builder.build(root, ())
    if builder.problems:
        raise CompileError(_at_most(MAX_DIAGNOSTICS, builder.problems))
    return data, where


_Lines = Lines  # positions are computed alike for specs and the lock

Loaded = Union[tuple[Any, SourceMap], CompileError]  # load_yaml's result, or what it raised


def load_once(text: str, path: str) -> Loaded:
    """load_yaml's result or its error, kept so that the inputs digest (from the data) and the
    spec's validation (data and positions) share one parse: for a document load_yaml accepts, its
    data is what yaml.safe_load returns (fingerprint.spec_data, tests/test_fast_path.py)."""
    try:
        return load_yaml(text, path)
    except CompileError as error:
        return error


_TOO_LONG = object()


def _fits(value: int) -> bool:
    try:
        normalize(value)
    except ValueRejected:
        return False
    return True


_PLAIN_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    """Turns a composed node tree into data, recording positions and bounding the work."""

    def __init__(self, where: SourceMap, lines: _Lines) -> None:
        self.where = where
        self.lines = lines
        self.constructor = yaml.constructor.SafeConstructor()
        self.problems: list[Diagnostic] = []
        self.visited = 0
        self.exhausted = False  # a bound was passed: the rest is not built

    def _position(self, node: yaml.Node) -> tuple[int, int]:
        return self.lines.at(node.start_mark)

    def _problem(self, node: yaml.Node, message: str) -> None:
        line, col = self._position(node)
        self.problems.append(Diagnostic(self.where.path, line, col, message))

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.visited += 1
        if self.exhausted:
            return None
        if self.visited > MAX_NODES:
            self.exhausted = True
            self._problem(node, f"document expands to more than {MAX_NODES} values (alias bomb?)")
            return None
        if len(path) > MAX_DEPTH:
            # One line, then stop: past this depth an alias (`&a [*a, *a]`) may branch without end.
            self.exhausted = True
            self._problem(node, f"nesting deeper than {MAX_DEPTH} levels (a YAML alias inside itself?)")
            return None
        self.where.values.setdefault(path, self._position(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            # Scalars with such tags fail in the constructor; a collection would be taken silently.
            self._problem(node, f"unsupported YAML tag {_shown(node.tag)}")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._problem(key_node, "YAML merge keys ('<<') are not supported in specs")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, "mapping keys must be strings, not a list or a mapping")
                continue
            key = self._scalar(key_node)
            if not isinstance(key, str):
                if key is not None or key_node.value in ("~", "null", "Null", "NULL", ""):
                    self._problem(key_node, non_string_key_message(key, key_node.value))
                continue
            if key in result:
                self._problem(key_node, f"duplicate key {_shown(key)}")
                continue
            self.where.keys.setdefault(path + (key,), self._position(key_node))
            result[key] = self.build(value_node, path + (key,))
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            self._problem(node, f"YAML: {error.problem}")
            return None
        except ValueError:  # an integer past Python's digit limit for int(str)
            value = _TOO_LONG
        if value is _TOO_LONG or (isinstance(value, int) and len(node.value) > MAX_INT_DIGITS and not _fits(value)):
            self._problem(node, f"integers are limited to {MAX_INT_DIGITS} digits (Python's limit for turning them into text)")
            return None
        if not isinstance(value, (str, int, float, bool, type(None))):
            self._problem(node, rejected_type_message(value))
            return None
        return value


def _at_most(limit: int, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The first `limit` problems, then one line counting the rest: a hostile spec with 100 000
    unknown keys must not print (or compute suggestions for) 100 000 lines."""
    if len(diagnostics) <= limit:
        return diagnostics
    ordered = sorted(diagnostics)
    return [*ordered[:limit], _more(ordered[limit], len(diagnostics) - limit)]


def _more(first_omitted: Diagnostic, count: int) -> Diagnostic:
    """Where the problems that are not shown begin, and how many there are."""
    where = first_omitted
    return Diagnostic(where.path, where.line, where.col, f"... and {count} more problems from here on")
