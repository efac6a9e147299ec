"""What ``remediator check`` says about the playbook files now, for ``/playbooks``.

The daemon loads its playbooks once, at start, and refuses to start when one fails
to load (``load_paths`` raises with every problem). So a running daemon has no
"failed" playbook of its own; what can be wrong is the files on disk since then: an
edited file that no longer loads (a restart would refuse to start), a playbook added or
removed (a restart would change what runs), an unknown escalation policy. This reads
the configured paths as ``remediator check`` does (same loader, same policy check),
in a thread, again only when a file's size or mtime changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from remediator.errors import ConfigError, Problem
from remediator.loader import check_policies, load_paths, playbook_files, warnings


@dataclass(frozen=True)
class CheckReport:
    paths: tuple[str, ...]
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    names: frozenset[str] = frozenset()       # playbooks on disk (when they all load)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_now(paths: Sequence[str], policies: Iterable[str]) -> CheckReport:
    """``remediator check PATHS`` (with the daemon's escalation policies), as data."""
    try:
        playbooks = load_paths(paths)
    except ConfigError as exc:
        return CheckReport(tuple(paths), errors=list(exc.problems))
    return CheckReport(tuple(paths), errors=check_policies(playbooks, policies),
                       warnings=warnings(playbooks),
                       names=frozenset(pb.name for pb in playbooks))


def _stamp(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    stamp = []
    for path in [*map(Path, paths), *playbook_files(paths)]:
        try:
            st = path.stat()
        except OSError:
            stamp.append((str(path), -1, -1))
            continue
        stamp.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(stamp)


class PlaybookCheck:
    """The check of the daemon's playbook paths, redone when the files change."""

    def __init__(self, paths: Sequence[str] = (), policies: Iterable[str] = ()) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.policies = sorted(policies)
        self._last: tuple[tuple[tuple[str, int, int], ...], CheckReport] | None = None

    async def report(self) -> CheckReport | None:
        if not self.paths:
            return None
        stamp = await asyncio.to_thread(_stamp, self.paths)
        if self._last is None or self._last[0] != stamp:
            report = await asyncio.to_thread(check_now, self.paths, self.policies)
            self._last = (stamp, report)
        return self._last[1]
