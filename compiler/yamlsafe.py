"""YAML -> node tree under hard bounds, without recursion: hostile documents end cheaply.

pyyaml's composers recurse once per nesting level (libyaml's does so in C, where a document of
100 000 nested `[` overflows the stack and kills the process) and build every node before
anyone can count them (a 2 MiB file of small values takes seconds and hundreds of MB). This
composer reads the parser's events one at a time, keeps its own stack, and stops at the first
event past a bound. It imports only pyyaml, so the fast path (fingerprint.py) can use it too.
"""

from __future__ import annotations

import yaml

MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000  # nodes in the document as written (aliases count once here)
MAX_DEPTH = 64  # nested collections below the root

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()


class YamlLimitError(Exception):
    """A bound was passed; `mark` is where, for a diagnostic."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class SeveralDocumentsError(YamlLimitError):
    """A spec is one YAML document; `mark` is where the second one starts."""


def too_large(text: str) -> bool:
    return len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES


def compose_bounded(text: str) -> yaml.Node | None:
    """The node tree of the single document in `text` (None when empty), as yaml.compose builds it.

    Raises yaml.YAMLError for syntax errors and YamlLimitError past a bound.
    """
    if too_large(text):
        raise YamlLimitError(f"spec is larger than {MAX_SPEC_BYTES // 1024} KiB", None)
    try:
        return _compose_with(_Parser, text)
    except yaml.YAMLError as fast_error:
        if _Parser is yaml.SafeLoader:
            raise
        # libyaml's messages are terse ("did not find expected ','"); pyyaml's parser, also
        # without recursion, says the same thing better and at the same place.
        try:
            _compose_with(yaml.SafeLoader, text)
        except yaml.YAMLError:
            raise
        raise fast_error from None


def _compose_with(loader: type[yaml.SafeLoader], text: str) -> yaml.Node | None:
    parser = loader(text)
    try:
        return _compose(parser)
    finally:
        parser.dispose()


def _compose(parser: yaml.SafeLoader) -> yaml.Node | None:
    anchors: dict[str, yaml.Node] = {}
    # Open collections: the node and the items read so far (keys and values alternate in a mapping).
    stack: list[tuple[yaml.Node, list[yaml.Node]]] = []
    root: yaml.Node | None = None
    documents = 0
    count = 0
    while parser.check_event():
        event = parser.get_event()
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise SeveralDocumentsError("a spec holds one YAML document", event.start_mark)
            continue
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node, items = stack.pop()
            if isinstance(node, yaml.MappingNode):
                node.value.extend(zip(items[0::2], items[1::2]))
            node.end_mark = event.end_mark
            continue
        count += 1
        if count > MAX_NODES:
            raise YamlLimitError(f"document has more than {MAX_NODES} values", event.start_mark)
        node = _node(event, anchors, len(stack))
        if stack:
            stack[-1][1].append(node)
        else:
            root = node
        if isinstance(event, yaml.SequenceStartEvent):
            stack.append((node, node.value))  # items go straight into the node
        elif isinstance(event, yaml.MappingStartEvent):
            stack.append((node, []))
    return root


def _node(event: yaml.Event, anchors: dict[str, yaml.Node], depth: int) -> yaml.Node:
    if isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        return anchors[event.anchor]
    anchor = event.anchor
    if anchor is not None and anchor in anchors:
        raise yaml.composer.ComposerError(
            f"found duplicate anchor {anchor!r}; first occurrence",
            anchors[anchor].start_mark,
            "second occurrence",
            event.start_mark,
        )
    node: yaml.Node
    if isinstance(event, yaml.ScalarEvent):
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
    else:
        if depth >= MAX_DEPTH:
            raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
    if anchor is not None:
        anchors[anchor] = node
    return node


def load_bounded(text: str) -> object:
    """What yaml.safe_load returns for `text`, within the same bounds (aliases stay shared)."""
    node = compose_bounded(text)
    if node is None:
        return None
    return yaml.constructor.SafeConstructor().construct_document(node)
