"""black's line splitting, for the statements flowc generates: one logical line of leaves in,
black's physical lines out (black 26, `line_length` of BLACK_MODE_ARGS, stable style).

This follows black's linegen (`transform_line`, `delimiter_split`, `right_hand_split_with_omits`,
`_maybe_split_omitting_optional_parens`, `_prefer_split_rhs_oop_over_rhs`) for the only
delimiter flowc's code has, the comma. Whatever would take black down a path this module does
not follow (another delimiter, a line still too long, a split `def`) raises `NotCovered`, and
the caller lets black format that statement (compiler.targets.layout). tests/test_fast_layout.py
holds black to every output.
"""

from __future__ import annotations

OPENING = frozenset("([{")
CLOSING = frozenset(")]}")


class NotCovered(Exception):
    """black would go where this module does not: let black format the statement."""


class _CannotSplit(Exception):
    """A split black gives up on (its CannotSplit/CannotTransform)."""


class Leaf:
    """One token of a logical line. Brackets know their partner; `atom` marks a bracket pair
    that is a literal or black's invisible parentheses (black: the bracket's parent is an atom),
    as opposed to a call, subscript or parameter list. `value` is "" for invisible parens."""

    __slots__ = ("kind", "value", "prefix", "partner", "atom", "depth")

    def __init__(self, kind: str, value: str, prefix: str = "", atom: bool = False) -> None:
        self.kind = kind
        self.value = value
        self.prefix = prefix
        self.partner: Leaf | None = None
        self.atom = atom
        self.depth = 0


class Line:
    """A line being laid out: its leaves at `depth` (indentation), as black's Line."""

    __slots__ = ("leaves", "depth", "inside", "split_rhs", "is_import", "is_def", "commas", "magic")

    def __init__(self, leaves: list[Leaf], depth: int, inside: bool = False, *, is_import: bool = False, is_def: bool = False) -> None:
        self.leaves = leaves
        self.depth = depth
        self.inside = inside
        self.split_rhs = False
        self.is_import = is_import
        self.is_def = is_def
        self.commas: list[int] = []  # indexes of the commas at bracket depth 0 (black's delimiters)
        self.magic = False
        level = 0
        previous: Leaf | None = None
        for index, leaf in enumerate(leaves):
            if leaf.kind in CLOSING:
                if level == 0:  # a closing bracket opened on an earlier line (a tail)
                    previous = leaf
                    continue
                level -= 1
                if previous is not None and previous.kind == "," and _magic(leaf, self):
                    self.magic = True
            leaf.depth = level
            if level == 0 and leaf.kind == ",":
                self.commas.append(index)
            if leaf.kind in OPENING:
                level += 1
            previous = leaf

    def __str__(self) -> str:
        leaves = self.leaves
        if not leaves:
            return ""
        parts = [leaf.prefix + leaf.value for leaf in leaves]
        parts[0] = "    " * self.depth + leaves[0].value
        return "".join(parts)

    def fits(self, width: int) -> bool:
        return len(str(self)) <= width


def _magic(closing: Leaf, line: Line) -> bool:
    """black's has_magic_trailing_comma for the shapes flowc emits."""
    if closing.kind == "}":
        return True
    opening = closing.partner
    if closing.kind == "]":
        if opening is not None and not opening.atom:
            raise NotCovered("a trailing comma in a subscript")
        return True
    if line.is_import:
        return True
    if opening is not None and opening.atom:
        raise NotCovered("a trailing comma in parentheses (a tuple?)")
    return True


def lay_out(line: Line, width: int) -> list[str]:
    """The physical lines black makes of `line`, or NotCovered."""
    result = _transform(line, width)
    if any(len(text) > width for text in result):
        raise NotCovered("a line black cannot make fit")
    return result


def _transform(line: Line, width: int) -> list[str]:
    text = str(line)
    if not line.magic and not line.split_rhs and len(text) <= width:
        return [text]
    if line.is_def:
        raise NotCovered("a def split by black's left_hand_split")
    transforms = [_delimiter_split, _rhs_with_omits] if line.inside else [_rhs_with_omits]
    for transform in transforms:
        try:
            pieces = transform(line, width)
            result: list[str] = []
            for piece in pieces:
                if str(piece) == text:
                    raise _CannotSplit
                result.extend(_transform(piece, width))
        except _CannotSplit:
            continue
        return result
    return [text]


def _delimiter_split(line: Line, width: int) -> list[Line]:
    """black's delimiter_split at commas: one element a line, with a trailing comma."""
    last = len(line.leaves) - 1
    commas = [i for i in line.commas if i != last]
    if not commas:
        raise _CannotSplit
    pieces: list[list[Leaf]] = []
    start = 0
    for index in [*commas, last]:
        leaves = line.leaves[start : index + 1]
        start = index + 1
        if leaves:
            leaves[0].prefix = ""
            pieces.append(leaves)
    if pieces[-1][-1].kind != ",":
        pieces[-1].append(Leaf(",", ","))
    return [Line(leaves, line.depth, line.inside) for leaves in pieces]


class _Split:
    __slots__ = ("head", "body", "tail", "opening", "closing")

    def __init__(self, head: Line, body: Line, tail: Line, opening: Leaf, closing: Leaf) -> None:
        self.head, self.body, self.tail, self.opening, self.closing = head, body, tail, opening, closing


def _first_rhs(line: Line, omit: frozenset[int]) -> _Split:
    """black's _first_right_hand_split: the last bracket pair not in `omit` (an empty pair is
    skipped over), its body on its own line."""
    tail: list[Leaf] = []
    body: list[Leaf] = []
    head: list[Leaf] = []
    current = tail
    opening: Leaf | None = None
    closing: Leaf | None = None
    for leaf in reversed(line.leaves):
        if current is body and leaf is opening:
            current = head if body else tail
        current.append(leaf)
        if current is tail and leaf.kind in CLOSING and id(leaf) not in omit:
            opening, closing = leaf.partner, leaf
            current = body
    if opening is None or closing is None or not head:
        raise _CannotSplit
    tail.reverse()
    body.reverse()
    head.reverse()
    if line.is_import and body and body[-1].kind != ",":
        body.append(Leaf(",", ","))
    head_line = Line(head, line.depth)
    body_line = Line(body, line.depth + 1, True)
    tail_line = Line(tail, line.depth)
    if body:
        # black's should_split_line: a literal (or an import) of more than one element explodes.
        trailing = body[-1].kind == ","
        commas = [i for i in body_line.commas if not (trailing and i == len(body) - 1)]
        if commas and (trailing or opening.atom):
            body_line.split_rhs = True
    elif len(str(tail_line).strip()) < 3:  # black: "not worth it"
        raise _CannotSplit
    return _Split(head_line, body_line, tail_line, opening, closing)


def _rhs(line: Line, width: int, omit: frozenset[int]) -> list[Line]:
    return _maybe_omit_optional_parens(_first_rhs(line, omit), line, width, omit)


def _maybe_omit_optional_parens(split: _Split, line: Line, width: int, omit: frozenset[int]) -> list[Line]:
    if split.opening.kind == "(" and not split.opening.value and not line.is_import and _can_omit_parens(split):
        omit = omit | {id(split.closing)}
        try:
            without = _first_rhs(line, omit)
            if _prefer_without_parens(without, split, width):
                return _maybe_omit_optional_parens(without, line, width, omit)
        except _CannotSplit:
            if _chained_assignment(line):
                raise NotCovered("a chained assignment")
            if not _can_be_split(split.body) and not split.body.fits(width):
                raise
    if not split.opening.value:  # black's ensure_visible
        split.opening.value, split.closing.value = "(", ")"
    return [part for part in (split.head, split.body, split.tail) if part.leaves]


def _can_omit_parens(split: _Split) -> bool:
    """black's can_omit_invisible_parens when the body has no delimiter, the only case here."""
    if split.body.commas:
        raise NotCovered("commas directly inside optional parentheses")
    return True


def _chained_assignment(line: Line) -> bool:
    return sum(1 for leaf in line.leaves if leaf.kind == "=" and leaf.depth == 0) > 1


def _can_be_split(line: Line) -> bool:
    leaves = line.leaves
    if len(leaves) < 2:
        return False
    if leaves[0].kind == "str" and leaves[1].kind == ".":
        raise NotCovered("a method call on a string")
    return True


def _prefer_without_parens(without: _Split, split: _Split, width: int) -> bool:
    """black's _prefer_split_rhs_oop_over_rhs (stable style)."""
    head = split.head.leaves
    if not (len(head) >= 2 and head[-2].kind == "="):
        return True
    if not any(leaf.kind in OPENING or leaf.kind in CLOSING for leaf in head[:-1]):
        return True
    raise NotCovered("an assignment to a target with brackets")


def _rhs_with_omits(line: Line, width: int) -> list[Line]:
    prefix_lengths: dict[int, int] = {}
    length = 4 * line.depth
    for leaf in line.leaves:
        prefix_lengths[id(leaf)] = length
        length += len(leaf.prefix) + len(leaf.value)
    tried = False
    for omit in _trailers_to_omit(line, width):
        if omit:
            target = next((leaf.partner for leaf in reversed(line.leaves) if leaf.kind in CLOSING and id(leaf) not in omit), None)
            if target is not None and target.value and prefix_lengths.get(id(target), 0) > width:
                continue
        tried = True
        lines = _rhs(line, width, omit)
        if lines[0].fits(width):
            return lines
        raise NotCovered("black would try other trailers")
    if tried:
        raise NotCovered("no trailer fits")
    return _rhs(line, width, frozenset())


def _trailers_to_omit(line: Line, width: int):  # type: ignore[no-untyped-def]
    """black's generate_trailers_to_omit: cumulative sets of closing brackets to keep whole."""
    omit: set[int] = set()
    if not line.magic:
        yield frozenset(omit)
    length = 4 * line.depth
    opening: Leaf | None = None
    closing: Leaf | None = None
    inner: set[int] = set()
    leaves = line.leaves
    for index in range(len(leaves) - 1, -1, -1):
        leaf = leaves[index]
        length += len(leaf.prefix) + len(leaf.value)
        if length > width:
            break
        previous = leaves[index - 1] if index > 0 else None
        if opening is not None:
            if leaf is opening:
                opening = None
            elif leaf.kind in CLOSING:
                if previous is not None and previous.kind == "," and not _one_sequence(leaf):
                    break
                inner.add(id(leaf))
        elif leaf.kind in CLOSING:
            if previous is not None and previous.kind in OPENING:
                inner.add(id(leaf))
                continue
            if closing is not None:
                omit.add(id(closing))
                omit.update(inner)
                inner.clear()
                yield frozenset(omit)
            if previous is not None and previous.kind == "," and not _one_sequence(leaf):
                break
            if leaf.value:
                opening = leaf.partner
                closing = leaf


def _one_sequence(closing: Leaf) -> bool:
    """black's is_one_sequence_between: only a parenthesized one-tuple, which flowc never emits."""
    if closing.kind == ")" and closing.partner is not None and closing.partner.atom:
        raise NotCovered("a one-tuple")
    return False
