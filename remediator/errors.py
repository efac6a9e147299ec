"""The exception tree of remediator.

    RemediatorError
    ├── ConfigError            a playbook or config file is invalid (carries every problem)
    ├── TemplateError          a template failed to compile or render
    └── ActionError            a step's action or verification failed
        ├── TemporaryError     worth retrying (5xx, 429, timeouts, conflicts, down servers)
        └── PermanentError     retrying cannot help (403, 404, 422, refused by a safety rule)

Actions and adapters raise only ``TemporaryError`` or ``PermanentError``, with
the original exception chained as ``__cause__``; the engine turns them into
outcomes and never lets them escape.
"""

from __future__ import annotations

from dataclasses import dataclass


class RemediatorError(Exception):
    """Base of every error remediator raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a file: ``source:line: message``."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"


class ConfigError(RemediatorError):
    """A playbook or configuration is invalid. ``problems`` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TemplateError(RemediatorError):
    """A template failed to compile or to render (undefined variable, sandbox violation)."""


class ActionError(RemediatorError):
    """A step's action or verification failed."""


class TemporaryError(ActionError):
    """A failure that may go away: retry after ``delay`` seconds (or the policy's backoff)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ActionError):
    """A failure that retrying cannot fix; the ladder moves on or escalates."""
