"""docs/ documents what exists: every command and option, every [tool.flowc] key, every FLOWC_* variable.

The spec keys are checked against the JSON Schema in tests/test_schema.py.
"""

from __future__ import annotations

import re

import click

from compiler.cli import main
from compiler.config import DEFAULTS
from tests.helpers import REPO

DOCS = REPO / "docs"
COMMON = {"--quiet", "--verbose", "--color", "--help"}


def _sections(text: str, level: str) -> dict[str, str]:
    """Markdown sections of one heading level, by their backticked title."""
    parts = re.split(rf"^{level} `([^`]+)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_command_and_option_is_documented() -> None:
    sections = _sections((DOCS / "commands.md").read_text(encoding="utf-8"), "##")
    problems = []
    commands = {}
    for name, command in sorted(main.commands.items()):
        commands[name] = command
        for sub, subcommand in sorted(getattr(command, "commands", {}).items()):
            commands[f"{name} {sub}"] = (subcommand, name)
    for name, command in commands.items():
        if isinstance(command, tuple):  # a group's subcommand: documented in the group's section
            command, name = command
        title = f"flowc {name}"
        if title not in sections:
            problems.append(f"command {name!r}: add a section '## `{title}`' to docs/commands.md")
            continue
        body = sections[title]
        if "Exit" not in body or "```" not in body:
            problems.append(f"command {name!r}: its section in docs/commands.md needs an example and its exit codes")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            long_names = [opt for opt in param.opts if opt.startswith("--")] or param.opts
            if set(long_names) & COMMON:
                continue
            if not any(f"`{opt}" in body for opt in long_names):
                problems.append(
                    f"option {long_names[0]} of `flowc {name}`: document it in the '## `{title}`' section "
                    "of docs/commands.md (a row of its option table)"
                )
    assert not problems, "\n".join(problems)


def test_every_command_takes_the_common_options_and_its_help_has_an_example_and_exit_codes() -> None:
    for name, command in main.commands.items():
        for sub, subcommand in getattr(command, "commands", {}).items():
            options = {opt for param in subcommand.params for opt in getattr(param, "opts", ())}
            assert {"-q", "--quiet", "-v", "--verbose", "--color"} <= options, f"{name} {sub}"
        options = {opt for param in command.params for opt in getattr(param, "opts", ())}
        assert {"-q", "--quiet", "-v", "--verbose", "--color"} <= options, name
        assert "Example" in (command.help or ""), f"`flowc {name} --help` needs an example (compiler/cli.py)"
        assert "Exit code" in (command.help or ""), f"`flowc {name} --help` needs its exit codes (compiler/cli.py)"


def test_every_tool_flowc_key_is_documented() -> None:
    sections = _sections((DOCS / "configuration.md").read_text(encoding="utf-8"), "###")
    keys = set(DEFAULTS) | {"python"}
    missing = sorted(keys - set(sections))
    assert not missing, f"[tool.flowc] keys without a '### `key`' section in docs/configuration.md: {missing}"


def test_every_flowc_variable_is_documented() -> None:
    used = set()
    for path in [*REPO.joinpath("compiler").rglob("*.py"), *REPO.joinpath("scripts").glob("*.sh")]:
        used |= set(re.findall(r"\bFLOWC_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
    documented = set(re.findall(r"`(FLOWC_[A-Z0-9_]+)", (DOCS / "configuration.md").read_text(encoding="utf-8")))
    missing = sorted(used - documented)
    assert not missing, f"FLOWC_* variables used but not documented in docs/configuration.md: {missing}"


def test_the_readme_links_the_docs_and_the_docs_index_links_every_page() -> None:
    assert "(docs/README.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"


def test_relative_links_in_the_docs_resolve() -> None:
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links {target}, which does not exist"
