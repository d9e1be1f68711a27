"""Problems found in a spec, as data: every stage collects them, the CLI prints them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place in one file (1-based line and column)."""

    path: str
    line: int
    col: int
    message: str

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: error: {self.message}"


class CompileError(Exception):
    """Raised only at stage boundaries to hand the collected diagnostics up to the CLI."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ` (did you mean 'x'?)` suffix when one candidate is close, else ''."""
    import difflib  # here: a check with nothing wrong never needs it

    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_diagnostics(diagnostics: Iterable[Diagnostic], style: str = "text") -> str:
    """Render diagnostics as plain lines, one JSON document, or GitHub annotations."""
    items = sorted(set(diagnostics))
    if style == "json":
        return json.dumps(
            [
                {"path": d.path, "line": d.line, "col": d.col, "message": d.message}
                for d in items
            ],
            indent=2,
        )
    if style == "github":
        return "\n".join(
            f"::error file={_github_property(d.path)},line={d.line},col={d.col}::{_github_escape(d.message)}"
            for d in items
        )
    return "\n".join(d.format() for d in items)


def _github_escape(message: str) -> str:
    """Escape a workflow command's message as GitHub's actions/toolkit does."""
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(value: str) -> str:
    """Escape a workflow command's property value (here: a path) as actions/toolkit does."""
    return _github_escape(value).replace(":", "%3A").replace(",", "%2C")
