"""Hostile specs: alias bombs, deep nesting, huge files. Each must end in one clear error, fast.

Shared by tests/test_hostile_yaml.py (which asserts the error, the time and the memory) and
bench.py (`--only hostile`, which prints them). Each entry: the spec text and the message its
error carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.yamlsafe import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES

HEAD = "name: hostile\nproject_name: lume\ncomposing_flows: [{name: distgen, project_name: lume}]\n"


@dataclass(frozen=True)
class Hostile:
    text: str
    message: str  # a substring of the one error line


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """The classic: `width ** levels` values (10^9) from a few hundred bytes of aliases."""
    lines = [HEAD.rstrip("\n"), "lol0: &lol0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*lol{level - 1}"] * width)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


def wide_aliases(count: int = 2000, width: int = 2000) -> str:
    """One anchor of `width` values, aliased `count` times: no depth, 4 million values."""
    return HEAD + f"a: &a [{', '.join(['x'] * width)}]\n" + f"b: [{', '.join(['*a'] * count)}]\n"


def corpus() -> dict[str, Hostile]:
    expands = f"document expands to more than {MAX_NODES} values"
    deep = f"nesting deeper than {MAX_DEPTH} levels"
    many = f"document has more than {MAX_NODES} values"
    near_limit = MAX_SPEC_BYTES - 4096
    return {
        "billion laughs (10^9 values)": Hostile(billion_laughs(), expands),
        "one anchor aliased 2000 times (4*10^6 values)": Hostile(wide_aliases(), expands),
        "alias of itself": Hostile(HEAD + "k: &a [*a]\n", deep),
        "100 000 nested [": Hostile(HEAD + "k: " + "[" * 100_000 + "]" * 100_000 + "\n", deep),
        "50 000 nested {": Hostile(HEAD + "k: " + "{a: " * 50_000 + "b" + "}" * 50_000 + "\n", deep),
        "500 000 nested block sequences (- - - ...)": Hostile(HEAD + "k:\n" + "- " * 500_000 + "x\n", deep),
        "70 nested block mappings": Hostile(
            HEAD + "".join(" " * i + f"k{i}:\n" for i in range(70)) + " " * 70 + "v\n", deep
        ),
        "2 MiB flat list (1 million values)": Hostile(
            HEAD + "k: [" + ",".join(["1"] * (near_limit // 2)) + "]\n", many
        ),
        "90 000 unknown keys": Hostile(HEAD + "".join(f"k{i}: 1\n" for i in range(90_000)), "more problems from here on"),
        "3 MiB of comments": Hostile(HEAD + ("# " + "x" * 1022 + "\n") * 3072, "spec is larger than 2048 KiB"),
        "1.9 MB single string": Hostile(
            HEAD.replace("lume\n", '"' + "x" * 1_900_000 + '"\n', 1), "(1900000 characters) is not a valid Prefect name"
        ),
        "python object tag on a value": Hostile(
            HEAD.replace("lume\n", "!!python/object/apply:os.system [touch pwned]\n", 1),
            "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        "python name tag on a scalar": Hostile(
            HEAD.replace("lume\n", "!!python/name:os.system x\n", 1),
            "could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'",
        ),
        "two documents": Hostile(HEAD + "---\n" + HEAD, "a spec holds one YAML document"),
        "merge key": Hostile(HEAD + "base: &b {x: 1}\nk: {<<: *b}\n", "YAML merge keys ('<<') are not supported"),
        "NUL byte": Hostile(HEAD + "k: a\x00b\n", "character '\\x00' is not allowed here"),
    }


# Names that would leave generated/ if they were used as directory names.
ESCAPING_NAMES = ["..", ".", "../escape", "../../etc", "/etc", "/tmp/x", "a/b", "a\\b", "C:\\x", "~root", "x/..", "", " x"]
