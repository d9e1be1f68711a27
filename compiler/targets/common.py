"""What every target's renderer shares: the Jinja2 environment over templates/, black's layout, and the escaping of spec text into comments and Markdown cells."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING

from compiler.fingerprint import TEMPLATES_DIR

if TYPE_CHECKING:
    import jinja2

    from compiler.plan import Plan


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


BLACK_MODE_ARGS = {"line_length": 100}


def format_python(source: str) -> str:
    """A template's Python output in black's layout, without running black on the hot path.

    compiler.targets.layout lays out each statement by black's rules and hands black only what
    it is not sure of (README.md, "flowc check, cold and warm"); the bytes are the ones
    `format_with_black` makes, which tests/test_fast_layout.py checks for every example and for
    random specs and values.
    """
    from compiler.targets.layout import format_module

    return format_module(source, BLACK_MODE_ARGS["line_length"])


def format_with_black(source: str) -> str:
    """black itself, in one pass: the oracle format_python's output is held to.

    `black.format_str` formats twice whenever its input was not already black's output (the
    second pass only guards against rare instabilities), which the template's output never is.
    Generated code is plain calls and literals, for which one pass is already a fixpoint: tests
    check `format_str(output) == output` for every example and for random specs (test_properties),
    and black is pinned in pyproject.toml. Without the private function, both passes run.
    """
    from compiler.targets.layout import black_once

    return black_once(source, BLACK_MODE_ARGS["line_length"])


def comment(text: str) -> str:
    """Text for a `#` comment: one line of printable characters, whatever the spec or lock held
    (a NUL from a child flow's task name would make flow.py impossible to import)."""
    return printable(" ".join(text.split()))


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def md(text: str) -> str:
    """Text for a Markdown table cell inside backticks."""
    return printable(" ".join(text.replace("|", "\\|").replace("`", "'").split()))


def parameter_rows(plan: Plan) -> list[dict[str, str]]:
    """The README's table of composite parameters, the same for every target."""
    return [
        {
            "name": md(p.name),
            "default": "" if p.required else f"`{md(json.dumps(p.default))}`",
            "required": "yes" if p.required else "no",
        }
        for p in plan.parameters
    ]
