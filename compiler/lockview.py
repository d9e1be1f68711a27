"""The project's lock as `check` and `generate` need it, parsed only when they need it.

A warm check (everything up to date) needs two things of the lock: the digest context every
spec's inputs digest depends on (compiler.fingerprint.digest_context), and, for the drift check,
whether each locked source's files still have their recorded digest. Both are recorded in this
machine's render cache (compiler.rendercache) under the lock's exact bytes and flowc's own
sources, so such a check neither parses the lock nor imports YAML. Anything else (a spec to
compile, a changed source, a lock never seen) parses it, with every error located as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compiler.config import Project
from compiler.fingerprint import digest_context, files_digest, toolchain_digest
from compiler.lockfile import read_lock_bytes
from compiler.rendercache import lock_key, record_lock, recorded_lock

if TYPE_CHECKING:
    from compiler.lockfile import Lock  # noqa: F401 - annotations only


class LockView:
    """One read of the lock file; its parse, entries and context on demand."""

    def __init__(self, project: Project, lock: Lock | None = None) -> None:
        self.project = project
        self.display = project.relative(project.lock_path)
        self._lock = lock
        self._entries: dict[str, Any] | None = None
        self._key: str | None = None
        self._recorded: tuple[str, list[tuple[list[str], str]]] | None = None
        if lock is None:
            self._data = read_lock_bytes(project.lock_path, self.display)
            if self._data is not None:
                self._key = lock_key(self.display, self._data, project.target, toolchain_digest())
                self._recorded = recorded_lock(self._key)

    @property
    def lock(self) -> Lock:
        """The parsed, validated lock; CompileError (located) when it is malformed."""
        if self._lock is None:
            from compiler.lockfile import Lock, decode_lock
            from compiler.lockread import read_lock

            if self._data is None:
                self._lock = Lock(path=self.display)
            else:
                self._lock = read_lock(decode_lock(self._data, self.display), self.display)
            self._remember()
        return self._lock

    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            from compiler.compile import lock_entries

            self._entries = lock_entries(self.lock)
        return self._entries

    def context(self) -> str | None:
        """compiler.fingerprint.digest_context of the lock's entries and the project's target."""
        if self._recorded is None:
            self.entries()  # parses the lock, which records its context when it can
        if self._recorded is not None:
            return self._recorded[0]
        return digest_context(self.entries(), self.project.target)

    def sources_unchanged(self) -> bool:
        """True when this machine recorded these lock bytes and every locked source's files still
        have their recorded digest; False means: parse the lock and run the drift check."""
        if self._recorded is None:
            return False
        root = self.project.root
        return all(files_digest(root, files) == digest for files, digest in self._recorded[1])

    def _remember(self) -> None:
        """Record what a later warm check needs of these lock bytes (only a lock whose every
        source has a recorded closure: a version 1 entry is always re-captured)."""
        if self._key is None or self._recorded is not None or self._lock is None:
            return
        sources = []
        for flow in self._lock.flows.values():
            if not flow.source:
                continue
            if flow.source_files is None or flow.source_digest is None:
                return
            sources.append((list(flow.source_files), flow.source_digest))
        context = digest_context(self.entries(), self.project.target)
        if context is not None:
            record_lock(self._key, context, sources)
            self._recorded = (context, sources)  # the context is not computed twice

