"""What the commands share: how a list of located problems ends a command."""

from __future__ import annotations

import sys

from compiler import console
from compiler.diagnostics import Diagnostic, format_diagnostics


def fail(diagnostics: list[Diagnostic], style: str) -> None:
    # json and github output are for machines and go to stdout; text is for people, on stderr.
    if style == "text":
        console.error(format_diagnostics(diagnostics, style))
        count = len(set(diagnostics))
        console.error(f"{count} error{'s' if count != 1 else ''}; nothing was written")
    else:
        console.out(format_diagnostics(diagnostics, style))
    sys.exit(1)
