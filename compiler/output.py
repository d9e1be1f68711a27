"""Generated files against the disk: compute the tree, write it atomically, or diff it."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.compile import compile_specs, spec_target
from compiler.targets import GENERATED_FILES as TARGET_FILES
from compiler.config import Project
from compiler.diagnostics import CompileError, Diagnostic
from compiler.fingerprint import edited_by_hand, inputs_digest, spec_data
from compiler.lockfile import Lock
from compiler.lockview import LockView
from compiler.owned import owned_orphans, read_generated, unsafe_targets
from compiler.rendercache import file_digest, record, record_spec, recorded, recorded_spec, spec_key

if TYPE_CHECKING:
    from compiler.sourcemap import Loaded

ProgressHook = Callable[[int], Callable[[], None]]  # total stale specs -> a tick per compiled one


@dataclass
class Tree:
    """What generated/ should hold, as far as the given specs decide it."""

    rendered: dict[str, str] = field(default_factory=dict)  # relative path -> expected text
    fresh: set[str] = field(default_factory=set)  # relative paths already up to date (not rendered)
    orphans: list[str] = field(default_factory=list)  # relative paths no spec produces any more
    diagnostics: list[Diagnostic] = field(default_factory=list)
    specs: int = 0
    skipped: int = 0


def load_lock(project: Project) -> Lock:
    """The project's lock, parsed and validated (CompileError, located, when it is malformed)."""
    return LockView(project).lock


def build_tree(
    project: Project, spec_paths: list[Path] | None, lock: Lock | LockView, progress: ProgressHook | None = None
) -> Tree:
    """Compile the specs (every spec when None); a spec is skipped only when this machine's
    render cache (compiler.rendercache) records that these inputs rendered to exactly the bytes
    on disk. Every rendered spec is recorded there.

    `progress(total)` is called once the stale specs are known and returns a tick per compiled spec.
    Given a LockView, the lock is parsed only when a spec must be parsed or compiled.
    """
    tree = Tree()
    if project.target not in TARGET_FILES:
        known = ", ".join(TARGET_FILES)
        message = f"[tool.flowc] target {project.target!r} is not a target; known: {known}"
        tree.diagnostics.append(Diagnostic(project.relative(project.root / "pyproject.toml"), 1, 1, message))
        return tree
    everything = spec_paths is None
    paths = unique_specs(project.spec_files() if spec_paths is None else spec_paths)
    view = lock if isinstance(lock, LockView) else LockView(project, lock)
    owners: dict[str, str] = {}
    context = view.context()
    sources: list[tuple[str, str, str | None, str]] = []  # (display, text, name, inputs digest)
    loaded: dict[str, Loaded] = {}  # the specs parsed for their digest, kept for compiling
    for path in paths:
        display = project.relative(path)
        tree.specs += 1
        text = _read_spec(path, display, tree.diagnostics)
        if text is not None:
            sources.append((display, text, *_name_and_digest(display, text, view, project.target, context, loaded)))
    # A name two specs claim is never taken as up to date: compiling both reports the clash.
    claimed = Counter(name for _, _, name, _ in sources)
    stale: list[tuple[str, str, str]] = []
    for display, text, name, digest in sources:
        files = recorded(digest) if name is not None and claimed[name] == 1 else None
        if files is not None and _on_disk(project, name, files):
            owners[str(name)] = display
            tree.fresh.update(files)
            tree.skipped += 1
        else:
            stale.append((text, display, digest))
    tick = progress(len(stale)) if progress is not None and stale else None
    compiled = compile_specs(stale, view.lock, view.entries(), tick, project.target, loaded) if stale else []
    for (_, display, digest), files in zip(stale, compiled):
        if isinstance(files, list):
            tree.diagnostics.extend(files)
            continue
        record(digest, files)
        name = next(iter(files)).split("/", 1)[0]
        if name in owners:
            tree.diagnostics.append(
                Diagnostic(display, 1, 1, f"spec name {name!r} is already generated from {owners[name]}")
            )
            continue
        owners[name] = display
        tree.rendered.update(files)
    # A fresh file was just read without following a link (_on_disk), so only rendered ones remain.
    tree.diagnostics.extend(unsafe_targets(project, sorted(tree.rendered)))
    if everything:
        tree.orphans = owned_orphans(project, set(tree.rendered) | tree.fresh)
    return tree


def unique_specs(paths: list[Path]) -> list[Path]:
    """Each spec file once, however often it is named or linked (`a.yaml a.yaml`, a symlink in
    specs/): a regular file before a link to it, else the first name given."""
    chosen: dict[object, int] = {}
    for index, path in sorted(enumerate(paths), key=lambda item: (item[1].is_symlink(), item[0])):
        try:
            info = os.stat(path)
            key: object = (info.st_dev, info.st_ino)
        except OSError:  # missing, a symlink loop: reading it reports it
            key = path
        chosen.setdefault(key, index)
    keep = set(chosen.values())
    return [path for index, path in enumerate(paths) if index in keep]


def read_spec(path: Path, display: str) -> str:
    """A spec's text; CompileError (one located line) for a directory, an unreadable file or
    bytes that are not UTF-8."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CompileError([Diagnostic(display, 1, 1, "is a directory, not a spec file")]) from None
    except OSError as error:
        raise CompileError([Diagnostic(display, 1, 1, f"cannot read spec: {error.strerror or error}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        col = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start : error.start + 1].hex()
        raise CompileError([Diagnostic(display, line, col, f"spec is not UTF-8 text (byte 0x{byte} here)")]) from None


def _read_spec(path: Path, display: str, diagnostics: list[Diagnostic]) -> str | None:
    try:
        return read_spec(path, display)
    except CompileError as error:
        diagnostics.extend(error.diagnostics)
        return None


def _name_and_digest(
    display: str, text: str, lock: LockView, target: str, context: str | None, loaded: dict[str, Loaded]
) -> tuple[str | None, str]:
    """A spec's name (when plainly given) and inputs digest: from this machine's record of these
    bytes (compiler.rendercache.spec_key) when it has one, else by parsing, then recorded. The
    parse, with positions, goes into `loaded` for compiling: each stale spec is parsed once."""
    key = spec_key(display, text, context) if context is not None else None
    known = recorded_spec(key) if key is not None else None
    if known is not None:
        return known[1], known[0]
    from compiler.sourcemap import load_once  # here: a warm check parses no YAML

    loaded[display] = load_once(text, display)
    parsed = loaded[display]
    data = spec_data(text) if isinstance(parsed, CompileError) else parsed[0]
    name, digest = _fast_name(data), inputs_digest(display, data, lock.entries(), spec_target(data, target))
    if key is not None and data is not None:
        record_spec(key, digest, name)
    return name, digest


def _fast_name(data: object) -> str | None:
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.isidentifier() and name.isascii() else None


def _on_disk(project: Project, name: str | None, files: dict[str, str]) -> bool:
    """Whether every recorded file is on disk, a regular file, with exactly the recorded bytes."""
    for relative, digest in files.items():
        if relative.split("/", 1)[0] != name:
            return False
        data = read_generated(project, relative)
        if not isinstance(data, bytes) or file_digest(data) != digest:
            return False
    return True


# Writing ----------------------------------------------------------------------------------------


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    hand_edited: list[str] = field(default_factory=list)  # written over a hand edit


def write_tree(project: Project, tree: Tree) -> WriteReport:
    """Write what changed, then remove orphans: all of it, or, if anything fails, none of it.

    Every new file is staged beside its target first; then each target is swapped in by a
    rename, keeping a hard link to what it replaced. A failure at any point (an OSError, an
    interrupt) puts every replaced or removed file back and deletes what was new.
    """
    report = WriteReport(unchanged=len(tree.fresh))
    changes: dict[Path, str] = {}
    for relative, text in sorted(tree.rendered.items()):
        target = project.generated_dir / relative
        current = _read(project, relative)
        if current == text:
            report.unchanged += 1
        else:
            changes[target] = text
            if current is not None and edited_by_hand(current):
                report.hand_edited.append(project.relative(target))
    transaction = _Transaction(project.generated_dir)
    try:
        staged = [(transaction.stage(target, text), target) for target, text in changes.items()]
        for temp, target in staged:
            transaction.swap_in(temp, target)
        for relative in tree.orphans:
            transaction.remove(project.generated_dir / relative)
    except BaseException:
        transaction.roll_back()
        raise
    transaction.commit()
    report.written = [project.relative(target) for _, target in staged]
    report.removed = [project.relative(project.generated_dir / relative) for relative in tree.orphans]
    return report


class _Transaction:
    """Files swapped into generated/, undoable until commit()."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made_dirs: list[Path] = []
        self.temps: list[Path] = []  # staged files not yet swapped in
        self.backups: list[tuple[Path, Path | None]] = []  # (target, its former content or None)

    def stage(self, target: Path, text: str) -> Path:
        missing = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        self.made_dirs.extend(reversed(missing))
        temp = _write_beside(target, text)
        self.temps.append(temp)
        return temp

    def _keep(self, target: Path) -> Path | None:
        """A hard link to the current file, so it can come back; None when there is none."""
        if not target.exists():
            return None
        backup = target.with_name(f".{target.name}.{os.urandom(6).hex()}.flowc-bak")
        try:
            os.link(target, backup)
        except OSError:  # a filesystem without hard links: a copy does the same job
            shutil.copy2(target, backup)
        return backup

    def swap_in(self, temp: Path, target: Path) -> None:
        backup = self._keep(target)
        self.backups.append((target, backup))
        os.replace(temp, target)
        self.temps.remove(temp)

    def remove(self, target: Path) -> None:
        backup = self._keep(target)
        self.backups.append((target, backup))
        target.unlink(missing_ok=True)

    def roll_back(self) -> None:
        for target, backup in reversed(self.backups):
            if backup is None:
                target.unlink(missing_ok=True)
            elif target.exists() and os.path.samefile(backup, target):
                backup.unlink()  # never replaced; rename() between two links of one file is a no-op
            elif backup.exists():
                os.replace(backup, target)
        for temp in self.temps:
            temp.unlink(missing_ok=True)
        for directory in reversed(self.made_dirs):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()

    def commit(self) -> None:
        for target, backup in self.backups:
            if backup is not None:
                backup.unlink(missing_ok=True)
            if not target.exists():
                _remove_empty_parents(target.parent, self.root)


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _read(project: Project, relative: str) -> str | None:
    """A generated file's text, never through a symlink; None when it is missing or not a file."""
    data = read_generated(project, relative)
    if not isinstance(data, bytes):
        return None
    return data.decode("utf-8", errors="replace")


# Checking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaleFile:
    """A generated file that differs from what its spec produces (or that no spec produces)."""

    path: str  # relative to the project root
    current: str | None  # None: missing
    expected: str | None  # None: orphaned

    def diff(self) -> str:
        return unified_diff(self.path, self.current, self.expected)

    def diagnostic(self) -> Diagnostic:
        """Where the first difference is, and what to do about it."""
        if self.current is None:
            return Diagnostic(self.path, 1, 1, "generated file is missing; run `flowc generate`")
        if self.expected is None:
            return Diagnostic(self.path, 1, 1, "no spec generates this file any more; run `flowc generate`")
        before = self.current.splitlines()
        after = self.expected.splitlines()
        line = next((n for n, (a, b) in enumerate(zip(before, after), start=1) if a != b), None)
        line = line or min(len(before), len(after)) + 1
        if edited_by_hand(self.current):
            message = "edited by hand (it no longer matches its header); change the spec and run `flowc generate`"
        else:
            message = "out of date with its spec; run `flowc generate`"
        return Diagnostic(self.path, line, 1, message)


def stale_files(project: Project, tree: Tree) -> list[StaleFile]:
    """Every stale, missing or orphaned file; empty when generated/ is up to date."""
    stale = []
    for relative, text in sorted(tree.rendered.items()):
        target = project.generated_dir / relative
        current = _read(project, relative)
        if current != text:
            stale.append(StaleFile(project.relative(target), current, text))
    for relative in tree.orphans:
        target = project.generated_dir / relative
        stale.append(StaleFile(project.relative(target), _read(project, relative) or "", None))
    return stale


def unified_diff(display: str, current: str | None, expected: str | None) -> str:
    """git-style diff from what is on disk (a) to what should be (b)."""
    before = [] if current is None else current.splitlines(keepends=True)
    after = [] if expected is None else expected.splitlines(keepends=True)
    import difflib  # only when something differs

    lines = difflib.unified_diff(
        before,
        after,
        fromfile="/dev/null" if current is None else f"a/{display}",
        tofile="/dev/null" if expected is None else f"b/{display}",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def atomic_write(target: Path, text: str) -> None:
    """Replace one file in a single rename, so readers never see half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_beside(target, text)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_through(path: Path, text: str) -> None:
    """Write an output file named on the command line (`--json FILE`) as given: a device, a pipe
    or /dev/stdout is written to, a symlink is followed and its target replaced, and only a
    regular file is replaced atomically. OSError (a full disk, /dev/full) is the caller's."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    real = os.path.realpath(path)
    # /dev/stdout redirected to a file is a link into /proc: written to, never renamed over.
    through = info is not None and (not stat.S_ISREG(info.st_mode) or real.startswith(("/proc/", "/dev/")))
    if through or (path.is_symlink() and not os.path.exists(real)):
        with open(path, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        return
    atomic_write(Path(real), text)


def _write_beside(target: Path, text: str) -> Path:
    """`text` in a temporary file next to `target` (same filesystem, so a rename is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".flowc-tmp", dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(temp, 0o644)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp
