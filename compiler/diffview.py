"""How `flowc check` shows a stale file: a unified diff that keeps to what changed.

Every generated file carries its inputs' digest in its header and the image tag (the digest's
first 16 hex digits) in its body, so any change to a spec also changes those lines. They say
nothing a reviewer can act on; they are compared as equal and counted instead: a file whose only
changes are digests and tags is one line, and a real change shows its own hunks plus that count.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass

import click

from compiler import console
from compiler.fingerprint import edited_by_hand

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
INPUTS = re.compile(r"inputs=sha256:([0-9a-f]{64})")
CONTEXT_LINES = 3


@dataclass(frozen=True)
class FileDiff:
    """A unified diff of one file, with digest-only line changes folded out."""

    path: str
    text: str  # the hunks (empty when only digests and tags changed)
    folded: int  # changed lines that differ only in digests or the image tag
    added: int
    removed: int

    @property
    def header_only(self) -> bool:
        return not self.text and self.folded > 0


def _normalise(lines: list[str], tag: str | None) -> list[str]:
    out = []
    for line in lines:
        line = DIGEST.sub("sha256:<digest>", line)
        if tag:
            line = line.replace(tag, "<tag>")
        out.append(line)
    return out


def _tag(text: str | None) -> str | None:
    match = INPUTS.search(text or "")
    return match.group(1)[:16] if match else None


def file_diff(path: str, current: str | None, expected: str | None) -> FileDiff:
    """From what is on disk (a) to what generate would write (b), git's unified format."""
    before = [] if current is None else current.splitlines(keepends=True)
    after = [] if expected is None else expected.splitlines(keepends=True)
    norm_a = _normalise(before, _tag(current))
    norm_b = _normalise(after, _tag(expected))
    matcher = difflib.SequenceMatcher(None, norm_a, norm_b, autojunk=False)
    folded = sum(
        1
        for tag, i1, i2, j1, _ in matcher.get_opcodes()
        if tag == "equal"
        for k in range(i2 - i1)
        if before[i1 + k] != after[j1 + k]
    )
    out: list[str] = []
    added = removed = 0
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        if all(tag == "equal" for tag, *_ in group):
            continue
        if not out:
            out.append(f"--- {'/dev/null' if current is None else 'a/' + path}\n")
            out.append(f"+++ {'/dev/null' if expected is None else 'b/' + path}\n")
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(" " + _ended(line) for line in after[j1:j2])
                continue
            if tag in ("replace", "delete"):
                out.extend("-" + _ended(line) for line in before[i1:i2])
                removed += i2 - i1
            if tag in ("replace", "insert"):
                out.extend("+" + _ended(line) for line in after[j1:j2])
                added += j2 - j1
    return FileDiff(path, "".join(out), folded, added, removed)


def _range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return f"{first}" if length == 1 else f"{first},{length}"


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def colour_diff(text: str) -> str:
    """git's colours: file headers bold, hunk headers cyan, removals red, additions green."""
    lines = []
    for line in text.splitlines(keepends=True):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        if line.startswith(("--- ", "+++ ")):
            body = click.style(body, bold=True)
        elif line.startswith("@@"):
            body = click.style(body, fg="cyan")
        elif line.startswith("-"):
            body = click.style(body, fg="red")
        elif line.startswith("+"):
            body = click.style(body, fg="green")
        lines.append(body + end)
    return "".join(lines)


def folded_line(diff: FileDiff) -> str:
    """The one line that stands for digest and tag changes."""
    lines = "line" if diff.folded == 1 else "lines"
    if diff.header_only:
        return f"{diff.path}: only digests and image tags changed ({diff.folded} {lines})\n"
    return f"{diff.path}: and {diff.folded} {lines} where only digests and image tags changed\n"


def stat_line(diff: FileDiff, kind: str, width: int) -> str:
    """`generated/x/flow.py | stale  +3 -2 (4 digest lines)`, like `git diff --stat`."""
    counts = f"+{diff.added} -{diff.removed}"
    if diff.folded:
        counts += f" ({diff.folded} digest/tag line{'s' if diff.folded != 1 else ''})"
    return f"{diff.path.ljust(width)} | {kind.ljust(10)} {counts}\n"


def show_changes(changes: list[tuple[str, str | None, str | None]], stat: bool, *, to_stderr: bool) -> None:
    """Each differing file's diff (digest-only lines folded), or with --stat one line per file."""
    stream = sys.stderr if to_stderr else sys.stdout
    coloured = console.use_color(stream)
    diffs = [file_diff(path, current, expected) for path, current, expected in changes]
    width = max((len(d.path) for d in diffs), default=0)
    chunks = []
    # A template change makes the same change in every spec's file: show it once per file name.
    shown_as: dict[tuple[str, ...], str] = {}
    same: dict[str, list[str]] = {}
    for diff, (_, current, expected) in zip(diffs, changes):
        if stat:
            kind = (
                "missing" if current is None
                else "orphaned" if expected is None
                else "hand-edited" if edited_by_hand(current)
                else "stale"
            )
            chunks.append(stat_line(diff, kind, width))
            continue
        key = _change_key(diff)
        if key is not None and key in shown_as:
            same[shown_as[key]].append(diff.path)
            continue
        if key is not None:
            shown_as[key] = diff.path
            same[diff.path] = []
        if diff.text:
            chunks.append(colour_diff(diff.text) if coloured else diff.text)
        if diff.folded:
            line = folded_line(diff)
            chunks.append(click.style(line, dim=True) if coloured else line)
    for first, others in same.items():
        if others:
            names = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            line = f"{first}: the same change in {len(others)} more file(s): {names} (--stat lists them all)\n"
            chunks.append(click.style(line, dim=True) if coloured else line)
    if chunks:
        click.echo("".join(chunks), nl=False, err=to_stderr, color=coloured)


def _change_key(diff: FileDiff) -> tuple[str, ...] | None:
    """What a diff changes, apart from where: its file name and its changed lines (None: no hunks)."""
    changed = tuple(
        line for line in diff.text.splitlines() if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    )
    return (diff.path.rsplit("/", 1)[-1], *changed) if changed else None
