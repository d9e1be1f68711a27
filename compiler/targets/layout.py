"""flow.py in black's layout without running black: the templates write every fixed part in
black's form, and this module lays out each statement the way black would (compiler.targets.splits).

`format_module` reads the template's output line by line. Comments, blank lines and docstrings
pass through as the templates wrote them (they are black's form already; tests check it); every
statement is re-spaced and split by black's rules. A statement this module is not sure of
(non-ASCII text, which black measures by display width; strings whose quotes black would
change; a split it does not follow) is formatted by black alone, in its indentation; anything
else it does not know (a comment inside brackets, an unknown keyword) sends the whole file to
black. Either way the bytes are black's: tests/test_fast_layout.py compares with black.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache

from compiler.targets.splits import CLOSING, OPENING, Leaf, Line, NotCovered, lay_out


class _Unknown(Exception):
    """Source this module does not read: the whole file goes to black."""


_TOKEN = re.compile(
    r"""(?P<space>[ ]+)
    |(?P<doc>\"\"\"|''')
    |(?P<prefixed>[A-Za-z]{1,2}["'])
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<num>[0-9][0-9.]*(?:e[+-]?[0-9]+)?(?![\w.]))
    |(?P<name>[^\W\d]\w*)
    |(?P<op>->|\*\*|[()\[\]{},:.=@*\-])
    |(?P<other>.)
    """,
    re.VERBOSE,
)
_UNREAD = frozenset({"doc", "prefixed", "other"})
_KEYWORDS = frozenset(keyword.kwlist) - {"None", "True", "False"}
_STATEMENT_KEYWORDS = frozenset({"from", "import", "as", "with", "def", "return", "pass"})
_UNARY = frozenset({"-", "*", "**"})
_BEFORE_UNARY = frozenset({"(", "[", "{", ",", "=", ":", "->", "kw", "-", "*", "**"})
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_FLOAT = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|[0-9]+")


def format_module(source: str, width: int) -> str:
    """`source` (a template's output) as black formats it, with black's line length `width`."""
    try:
        lines = _format_lines(source, width)
    except _Unknown:
        return _black_module(source, width)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _format_lines(source: str, width: int) -> list[str]:
    out: list[str] = []
    physical = source.split("\n")
    blank = 0
    spacing = _BlankLines()
    index = 0
    while index < len(physical):
        text = physical[index]
        stripped = text.strip()
        indent = len(text) - len(text.lstrip(" "))
        if not stripped:
            if out:
                blank += 1
            index += 1
            continue
        if "\t" in text or indent % 4:
            raise _Unknown
        depth = indent // 4
        if stripped.startswith("#"):
            kind, lines = "comment", [text.rstrip()]
            index += 1
        elif stripped.startswith('"""'):
            kind, lines, index = "docstring", *_docstring(physical, index, depth)
        else:
            tokens, index = _logical_line(physical, index)
            first = tokens[0][1]
            kind = "import" if first in ("from", "import") else first if first in ("@", "def") else "code"
            lines = _statement(tokens, depth, width)
        spacing.check(kind, depth, blank)
        out.extend([""] * blank)
        out.extend(lines)
        blank = 0
    return out


class _BlankLines:
    """The blank lines black would change, which the templates never write: any of them sends
    the file to black (its EmptyLineTracker is not followed here, only recognised)."""

    def __init__(self) -> None:
        self.previous = ""
        self.previous_depth = 0
        self.in_function = False  # in the body of a top-level def

    def check(self, kind: str, depth: int, blank: int) -> None:
        previous = self.previous
        if blank > (2 if depth == 0 else 1):
            raise _Unknown
        if kind in ("@", "def"):
            if depth or previous == "comment" or (previous == "@" and blank) or (previous not in ("", "@") and blank != 2):
                raise _Unknown
        elif previous == "def" and blank:
            raise _Unknown
        if self.in_function and depth == 0:
            if blank != 2 and kind not in ("@", "def"):
                raise _Unknown
            self.in_function = False
        if previous == "import" and kind != "import" and not blank and depth == self.previous_depth:
            raise _Unknown
        if previous == "docstring" and self.previous_depth == 0 and blank != 1:
            raise _Unknown
        if kind == "def" and depth == 0:
            self.in_function = True
        self.previous, self.previous_depth = kind, depth


def _docstring(physical: list[str], index: int, depth: int) -> tuple[list[str], int]:
    """A docstring passes through when black would leave it as written; else the file goes to black."""
    first = physical[index].strip()
    end = index
    if not (first.endswith('"""') and len(first) >= 6):
        end = index + 1
        while end < len(physical) and '"""' not in physical[end]:
            end += 1
        if end == len(physical) or not physical[end].strip() == '"""':
            raise _Unknown
    text = "\n".join(physical[index : end + 1]).strip()
    body = text[3:-3]
    prefix = "    " * depth
    if not body or "\\" in body or "\t" in body or '"""' in body or body[0] in ' "' or body.rstrip(" ")[-1:] == '"':
        raise _Unknown
    lines = body.split("\n")
    if len(lines) == 1:
        if body != body.strip():
            raise _Unknown
    elif lines[-1] != prefix or lines[0] != lines[0].strip():
        raise _Unknown
    for line in lines[1:-1]:
        if line and (not line.startswith(prefix) or line != line.rstrip() or line[len(prefix)] == " "):
            raise _Unknown
    return physical[index : end + 1], end + 1


def _logical_line(physical: list[str], index: int) -> tuple[list[tuple[str, str]], int]:
    """The tokens of the statement starting at physical line `index`, across its brackets."""
    tokens: list[tuple[str, str]] = []
    level = 0
    while True:
        if index >= len(physical):
            raise _Unknown
        for match in _TOKEN.finditer(physical[index]):
            kind = match.lastgroup
            if kind == "space":
                continue
            value = match.group()
            if kind == "op":
                if value in OPENING:
                    level += 1
                elif value in CLOSING:
                    level -= 1
            elif kind in _UNREAD:
                raise _Unknown  # a comment after code, a character this module does not read
            tokens.append((kind, value))  # type: ignore[arg-type]
        index += 1
        if level <= 0:
            if level < 0:
                raise _Unknown
            return tokens, index


def _statement(tokens: list[tuple[str, str]], depth: int, width: int) -> list[str]:
    try:
        leaves, is_import, is_def = _leaves(tokens)
        return lay_out(Line(leaves, depth, is_import=is_import, is_def=is_def), width)
    except NotCovered:
        return _black_statement(_one_line(tokens), depth, width)


def _one_line(tokens: list[tuple[str, str]]) -> str:
    """The statement as valid one-line source for black (spacing is black's business)."""
    return " ".join(value for _, value in tokens)


def _leaves(tokens: list[tuple[str, str]]) -> tuple[list[Leaf], bool, bool]:
    """Leaves with black's spacing, bracket pairs, and the invisible parentheses black adds
    around an assignment's value, a return value, imported names and a with statement's items."""
    first = tokens[0][1]
    is_import = first in ("from", "import")
    is_def = first == "def"
    # Where black's invisible parentheses open: after `with`/`return`, `import`, or an assignment's `=`.
    optional_at: int | None = 1 if first in ("with", "return") else None
    optional_after = "import" if first == "from" else "=" if first not in ("def", "@", "import") else ""
    leaves: list[Leaf] = []
    stack: list[tuple[Leaf, str]] = []  # opening bracket, and what it opens: call, def, atom, subscript
    context = "statement"
    annotated = False  # in a def's parameters: the current parameter has an annotation
    previous: Leaf | None = None
    previous_unary = False
    for index, (kind, value) in enumerate(tokens):
        if kind == "op":
            leaf = Leaf(value, value)
        elif kind == "name":
            if value in _KEYWORDS:
                if value not in _STATEMENT_KEYWORDS:
                    raise _Unknown
                leaf = Leaf("kw", value)
            elif value.isascii():
                leaf = Leaf("name", value)
            else:
                raise NotCovered("a non-ASCII name")
        else:
            leaf = Leaf(kind, _normalized(kind, value))
        leaf_kind = leaf.kind
        unary = False
        if leaf_kind in _UNARY:
            unary = previous is None or previous.kind in _BEFORE_UNARY
            if not unary:
                raise _Unknown  # an operator: not in flowc's code
        elif leaf_kind == "." and previous is not None and previous.kind in CLOSING:
            raise _Unknown  # black splits such chains at their dots
        elif leaf_kind == "@" and index:
            raise _Unknown
        if previous is not None:
            leaf.prefix = _space(previous, previous_unary, leaf, context, annotated)
        if leaf_kind in OPENING:
            trailer = previous is not None and (previous.kind == "name" or previous.kind in CLOSING)
            if leaf_kind == "(":
                if not trailer:
                    raise _Unknown  # parentheses black might remove or keep
                opens = "def" if is_def and not stack else "call"
            elif leaf_kind == "[":
                opens = "subscript" if trailer or (previous is not None and previous.kind == "str") else "atom"
            else:
                opens = "atom"
            leaf.atom = opens == "atom"
            stack.append((leaf, opens))
            context = opens
        elif leaf_kind in CLOSING:
            opening, _ = stack.pop()
            if _PAIRS[opening.kind] != leaf_kind:
                raise _Unknown
            opening.partner = leaf
            leaf.partner = opening
            context = stack[-1][1] if stack else "statement"
        elif context == "def":
            if leaf_kind == ":":
                annotated = True
            elif leaf_kind == ",":
                annotated = False
        elif optional_at is None and not stack and value == optional_after:
            optional_at = len(leaves) + 1
        leaves.append(leaf)
        previous, previous_unary = leaf, unary
    if stack:
        raise _Unknown
    if optional_at is not None and optional_at < len(leaves):
        end = len(leaves) - 1 if first == "with" else len(leaves)
        _wrap_optional(leaves, optional_at, end)
    return leaves, is_import, is_def


def _wrap_optional(leaves: list[Leaf], start: int, end: int) -> None:
    if leaves[start].kind == "(" and leaves[start].atom:
        raise NotCovered("parentheses black would make invisible")
    opening = Leaf("(", "", leaves[start].prefix, atom=True)
    leaves[start].prefix = ""
    closing = Leaf(")", "", "", atom=True)
    opening.partner = closing
    closing.partner = opening
    leaves.insert(end, closing)
    leaves.insert(start, opening)


def _normalized(kind: str, value: str) -> str:
    """A literal as black writes it: double quotes where black prefers them, numbers in lower case."""
    if kind == "str":
        if not value.isascii():
            raise NotCovered("non-ASCII text: black measures it by display width")
        body = value[1:-1]
        if "\\'" in body or '\\"' in body or "\\N" in body:
            raise NotCovered("escaped quotes")
        if value[0] == "'":
            if '"' in body:
                raise NotCovered("a string black would weigh quotes for")
            return '"' + body + '"'
        if "'" in body:
            return value
        return value
    if kind == "num":
        if not _FLOAT.fullmatch(value):
            raise NotCovered("a number black would rewrite")
        mantissa, e, exponent = value.partition("e")
        return mantissa + e + exponent.lstrip("+")
    return value


def _space(previous: Leaf | None, after_unary: bool, leaf: Leaf, context: str, annotated: bool) -> str:
    """black's whitespace() for the leaves flowc's code is made of."""
    if previous is None:
        return ""
    kind = leaf.kind
    if kind in CLOSING or kind in (",", ":", "."):
        return ""
    before = previous.kind
    if before in OPENING or before in (".", "@") or after_unary:
        return ""
    if kind in ("(", "[") and (before in ("name", "str") or before in CLOSING):
        return ""
    if (kind == "=" or before == "=") and (context == "call" or context == "def" and not annotated):
        return ""
    return " "


@lru_cache(maxsize=4096)
def _black_statement(source: str, depth: int, width: int) -> list[str]:
    """One statement formatted by black at `depth`, inside as many `if` blocks (a decorator
    or a block's header with a body to format it with, cut off again)."""
    indent = "    " * depth
    wrapped = "".join("    " * level + "if x:\n" for level in range(depth)) + indent + source + "\n"
    extra = 0
    if source.startswith("@"):
        wrapped += indent + "def _():\n" + indent + "    pass\n"
        extra = 2
    elif source.endswith(":"):
        wrapped += indent + "    pass\n"
        extra = 1
    lines = black_once(wrapped, width).rstrip("\n").split("\n")
    return lines[depth : len(lines) - extra]


def _black_module(source: str, width: int) -> str:
    return black_once(source, width)


def black_once(source: str, width: int) -> str:
    """black's first pass (its second only guards against rare instabilities; black is pinned),
    for Python 3.10 and up: the formatting the layout reproduces and falls back to."""
    import black

    mode = black.Mode(target_versions={black.TargetVersion.PY310}, line_length=width)
    format_once = getattr(black, "_format_str_once", None)
    if format_once is None:
        return black.format_str(source, mode=mode)
    return format_once(source, mode=mode)
