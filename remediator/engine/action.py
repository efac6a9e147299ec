"""Calling an action: render its params, ``plan`` an intent, ``apply`` it, with the
retry policy in one place.

Temporary errors (and a call that takes longer than ``call_timeout``) are retried
with exponential backoff, each retry journaled, up to ``retries`` times or until a
time; then ``RetriesExhausted`` (a permanent error). Anything else an action raises
that is not an ``ActionError`` (a bug, a client library's surprise) is not retried: it
becomes ``Unexpected``, carrying the traceback for the journal.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from remediator.engine.contract import ActionResult, Intent
from remediator.engine.outcomes import RunInterrupted
from remediator.engine.run import Run, StepTimedOut
from remediator.errors import ActionError, PermanentError, TemplateError, TemporaryError
from remediator.model.durations import human_duration
from remediator.model.incident import StepRecord
from remediator.templating import render_value

T = TypeVar("T")


class RetriesExhausted(PermanentError):
    """Temporary errors went on for every retry allowed."""


class Unexpected(PermanentError):
    """An action raised something other than an ``ActionError``: a bug or a surprise.
    ``trace`` is the formatted traceback, journaled with the failure."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} raised {type(exc).__name__}: {exc}")
        self.trace = "".join(traceback.format_exception(exc))[-4000:]


def reason(exc: BaseException) -> str:
    """A one-line reason for the journal."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
    return str(exc)


async def with_retries(run: Run, what: str, retries: int, fn: Callable[[], Awaitable[T]],
                       rec: StepRecord | None = None, *, until: datetime | None = None) -> T:
    """Run ``fn``; retry ``TemporaryError`` with exponential backoff up to ``retries``
    times (or, with ``until``, until that time). Exhausted: ``RetriesExhausted``."""
    cfg = run.deps.settings
    attempt = 0
    while True:
        await run.deps.give_way()      # an API call, and what it takes to plan it
        if rec is not None:
            rec.attempts += 1          # every call of the action, the first one included
        limit = cfg.call_timeout
        left = run.seconds_left()
        if left is not None:
            if left <= 0:
                raise StepTimedOut
            limit = min(limit, left)
        try:
            async with asyncio.timeout(limit):
                return await fn()
        except TimeoutError as exc:
            if run.seconds_left() is not None and limit < cfg.call_timeout:
                raise StepTimedOut from exc
            error: ActionError = TemporaryError(f"{what} timed out after {human_duration(limit)}")
            error.__cause__ = exc
        except TemporaryError as exc:
            error = exc
        except (ActionError, RunInterrupted, StepTimedOut):
            raise
        except Exception as exc:        # a bug or a client library's surprise
            raise Unexpected(what, exc) from exc
        attempt += 1
        if (attempt > retries) if until is None else (run.clock.now() >= until):
            raise RetriesExhausted(f"{what} failed after {attempt} attempts: {error}") \
                from error
        delay = (error.delay if isinstance(error, TemporaryError) and error.delay
                 else min(cfg.retry_max, cfg.retry_base * 2 ** (attempt - 1)))
        left_text = f"{attempt}/{retries}" if until is None else \
            f"{attempt} (until {until:%H:%M})"
        await run.journal.note("retry", f"{what}: {error}; retry {left_text} in "
                                        f"{human_duration(delay)}")
        await run.wait(delay)


async def plan(run: Run, action_name: str, step_name: str, raw_params: object, retries: int,
               *, until: datetime | None = None) -> Intent:
    """Render the params, validate them and ask the action for its intent.
    Raises ``PermanentError``, ``TemplateError`` or ``ValidationError`` when it cannot."""
    spec = run.deps.catalogue.get(action_name)
    params = spec.params.model_validate(render_value(raw_params, run.template_context()))
    action = run.deps.catalogue.implementation(action_name)
    ctx = await run.run_context(step_name, action_name)
    return await with_retries(run, f"{action_name} (plan)", retries,
                              lambda: action.plan(ctx, params), until=until)


async def apply(run: Run, action_name: str, step_name: str, intent: Intent, retries: int,
                rec: StepRecord | None = None, *, until: datetime | None = None
                ) -> ActionResult:
    action = run.deps.catalogue.implementation(action_name)
    ctx = await run.run_context(step_name, action_name)
    return await with_retries(run, action_name, retries, lambda: action.apply(ctx, intent),
                              rec, until=until)


PLAN_ERRORS = (PermanentError, TemplateError, ValidationError)
