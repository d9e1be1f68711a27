"""YAML -> node tree under hard bounds: hostile documents end cheaply, without a crash.

pyyaml's composers recurse once per nesting level (libyaml's does so in C, where a document of
100 000 nested `[` overflows the stack and kills the process) and build every node before
anyone can count them (a 2 MiB file of small values takes seconds and hundreds of MB). Here the
parser's events are read first, one at a time and without recursion, and composing starts only
when the document is within MAX_NODES and MAX_DEPTH. It imports only pyyaml, so the fast path
(fingerprint.py) uses it too.
"""

from __future__ import annotations

import bisect
import re

import yaml

MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000  # nodes in the document as written (aliases count once here)
MAX_DEPTH = 64  # nested collections below the root

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(Exception):
    """A bound was passed; `mark` is where, for a diagnostic."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class SeveralDocumentsError(YamlLimitError):
    """A spec is one YAML document; `mark` is where the second one starts."""


class Lines:
    """1-based line and column of a position, counting '\n' alone as a line break.

    YAML also breaks lines at U+0085, U+2028 and U+2029, so its own line numbers drift from what
    an editor shows after one of those; positions are recomputed from the character index.
    """

    def __init__(self, text: str) -> None:
        self.starts = [0, *(match.end() for match in re.finditer("\n", text))]

    def at_index(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1

    def at(self, mark: yaml.Mark | None) -> tuple[int, int]:
        return (1, 1) if mark is None else self.at_index(mark.index)


def too_large(text: str) -> bool:
    return len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES


def compose_bounded(text: str) -> yaml.Node | None:
    """The node tree of the single document in `text` (None when empty), as yaml.compose builds it.

    Raises yaml.YAMLError for syntax errors and YamlLimitError past a bound.
    """
    return compose_counting_aliases(text)[0]


def compose_counting_aliases(text: str) -> tuple[yaml.Node | None, bool]:
    """compose_bounded, and whether the document holds an alias: without one, the tree is the
    nodes already counted, so expansion_problem has nothing to find."""
    if too_large(text):
        raise YamlLimitError(f"spec is larger than {MAX_SPEC_BYTES // 1024} KiB", None)
    try:
        aliases = _check_bounds(_Parser, text)
    except yaml.YAMLError as fast_error:
        if _Parser is yaml.SafeLoader:
            raise
        # libyaml's messages are terse ("did not find expected ','"); pyyaml's parser, also
        # without recursion, says the same thing better and at the same place.
        try:
            _check_bounds(yaml.SafeLoader, text)
        except yaml.YAMLError:
            raise
        raise fast_error from None
    # Within the bounds, composing recurses at most MAX_DEPTH levels and builds at most
    # MAX_NODES nodes: libyaml can do it at its own speed.
    return yaml.compose(text, Loader=_Parser), aliases


def _check_bounds(loader: type[yaml.SafeLoader], text: str) -> bool:
    """Read the parser's events (no recursion, nothing kept) and stop at the first bound passed;
    whether the document holds an alias."""
    parser = loader(text)
    depth = nodes = documents = 0
    aliases = False
    try:
        while parser.check_event():
            event = parser.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                nodes += 1
            elif kind is yaml.AliasEvent:
                nodes += 1
                aliases = True
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                nodes += 1
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise SeveralDocumentsError("a spec holds one YAML document", event.start_mark)
            if nodes > MAX_NODES:
                raise YamlLimitError(f"document has more than {MAX_NODES} values", event.start_mark)
    finally:
        parser.dispose()
    return aliases


def load_bounded(text: str) -> object:
    """What yaml.safe_load returns for `text`, within the same bounds (aliases stay shared)."""
    node = compose_bounded(text)
    if node is None:
        return None
    return yaml.constructor.SafeConstructor().construct_document(node)


def expands_within_bounds(value: object) -> bool:
    """Whether loaded data, with every alias expanded, holds at most MAX_NODES values and
    MAX_DEPTH levels: an alias bomb loads quickly (aliases are shared) but explodes when walked."""
    stack: list[tuple[object, int]] = [(value, 0)]
    count = 0
    while stack:
        current, depth = stack.pop()
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            return False
        if isinstance(current, dict):
            stack.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, list):
            stack.extend((item, depth + 1) for item in current)
    return True


def expansion_problem(root: yaml.Node) -> tuple[str, yaml.Mark | None] | None:
    """Why a composed document, with every alias expanded, is past the bounds (and where); None
    when it is within them. Counted over the node graph, each node once: an alias bomb is found
    without expanding it, and an alias inside its own anchor (`&a [*a]`) is named as such."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, expanded depth)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            children = [sizes[id(child)] for child in _children(node)]
            size = 1 + sum(count for count, _ in children)
            depth = 1 + max((d for _, d in children), default=0) if children else 0
            if size > MAX_NODES:
                return f"document expands to more than {MAX_NODES} values (alias bomb?)", node.start_mark
            if depth > MAX_DEPTH:
                return f"nesting deeper than {MAX_DEPTH} levels once YAML aliases are expanded", node.start_mark
            sizes[key] = (size, depth)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return f"nesting deeper than {MAX_DEPTH} levels: a YAML alias inside its own anchor", node.start_mark
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
