"""The diagnosis stage: collect a snapshot of the target, run the analyzers, journal the
findings; and steer a step by them (``when`` / ``skip_if``).

    incident opened ─▶ diagnose ─▶ (first step reuses it)
    before each step ─▶ diagnose ─▶ when: {finding: K}    no K found → step skipped
                                    skip_if: {finding: K} K found    → step skipped
                                    otherwise the step runs (with ``when``: the finding
                                    that made it run is journaled)

The latest diagnosis is the incident's ``context.diagnosis`` (``at``, ``moment``,
``findings``, ``problems``); a timeline note (kind ``diagnosis``) is written when the
incident opens and whenever the findings change. Diagnosis only reads: a cluster that
cannot be read, or a bug in an analyzer, is journaled and the incident goes on.

The model's summary (if a model is configured) is asked for when the incident opens,
in a background task of the engine's supervisor: the first step does not wait for it.
When it arrives it is journaled (a timeline note) and kept as
``context.diagnosis.summary`` while the findings it cites stand; a diagnosis written
meanwhile and the summary's write take turns (one lock per incident while a summary
is pending), so neither overwrites the other. A summary still pending when the daemon
stops is not asked for again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from remediator.diagnosis import analyze, summary
from remediator.diagnosis.collector import collect
from remediator.engine.outcomes import Refused
from remediator.engine.run import Run
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import StepRecord, StepStatus
from remediator.model.playbook import Step
from remediator.ports.sinks import EventKind

log = logging.getLogger("remediator.engine")
KIND = "diagnosis"          # the context key and the timeline kind
OPENED = "incident opened"
#: summaries quoted in a timeline note (the rest are in context.diagnosis)
NOTE_FINDINGS = 3


def _message(moment: str, record: dict[str, Any]) -> str:
    findings = record["findings"]
    if not findings:
        text = "no findings"
    else:
        text = " | ".join(f["summary"] for f in findings[:NOTE_FINDINGS])
        if len(findings) > NOTE_FINDINGS:
            text += f" (+{len(findings) - NOTE_FINDINGS} more)"
    if record["problems"]:
        text += f" ({len(record['problems'])} reads failed: {record['problems'][0]})"
    return f"diagnosis ({moment}): {text}"


async def diagnose(run: Run, moment: str) -> dict[str, Any] | None:
    """Diagnose the incident's target now; the record journaled (None: no diagnosis,
    because it is off, there is no cluster or target, or it failed)."""
    settings = run.deps.settings.diagnosis
    target = run.view.target
    cluster = run.deps.ports.cluster_for(target)        # the target's own cluster
    if not settings.enabled or cluster is None or target is None:
        return None
    # the extra reads (events, nodes, PDBs, logs) are wired for the default cluster only
    inspect = run.deps.ports.inspect if not target.cluster else None
    try:
        snap = await collect(cluster, inspect, target, run.view.alerts,
                             run.clock.now(), window_seconds=settings.window)
        findings = analyze(snap)
    except Exception as exc:             # a bug in the diagnosis must not stop remediation
        log.exception("diagnosis failed", extra={"incident": run.id})
        await run.journal.note(KIND, f"diagnosis ({moment}) failed: {exc!r}", moment=moment)
        return None
    record = {"at": run.clock.now().isoformat(), "moment": moment,
              "findings": [f.to_dict() for f in findings], "problems": list(snap.problems)}
    ids = [f.id for f in findings]
    async with _turn(run.id):
        previous = run.view.context.get(KIND) or {}
        before = previous.get("findings") or []
        said = previous.get("summary")
        if said and all(c in ids for c in said.get("cited") or []):
            record["summary"] = said        # the summary stands while what it cites does
        notes = ((run.journal.entry(KIND, _message(moment, record), moment=moment,
                                    findings=ids),)
                 if moment == OPENED or [f.get("id") for f in before] != ids else ())
        await run.journal.context({KIND: record}, notes=notes)       # one write
    if moment == OPENED and findings:
        await start_summary(run, record)
    return record


#: incident id → the lock a pending summary and the diagnoses take turns with
_PENDING: dict[str, asyncio.Lock] = {}


def _turn(incident_id: str) -> contextlib.AbstractAsyncContextManager[Any]:
    return _PENDING.get(incident_id) or contextlib.nullcontext()


async def start_summary(run: Run, record: dict[str, Any]) -> None:
    """Ask for the model's summary in the background (the engine's supervisor owns the
    task); without a supervisor (a run made by hand), wait for it here; not at all
    when the engine is stopping."""
    tasks = run.deps.tasks
    if run.deps.ports.model is None or (tasks is not None and tasks.closed):
        return
    if tasks is None:
        await summarise(run, record)
        return
    _PENDING.setdefault(run.id, asyncio.Lock())
    tasks.start(summarise(run, record), name=f"diagnosis-summary-{run.id}")


async def summarise(run: Run, record: dict[str, Any]) -> None:
    """Ask the model (if one is configured) for a summary of the findings; keep it only
    if every finding id it cites exists. Whatever happens is journaled; nothing else
    changes (the summary never chooses an action)."""
    try:
        await _summarise(run, record)
    finally:
        _PENDING.pop(run.id, None)


async def _summarise(run: Run, record: dict[str, Any]) -> None:
    model = run.deps.ports.model
    if model is None:
        return
    ids = [f["id"] for f in record["findings"]]
    alerts = [str((a.get("labels") or {}).get("alertname", "")) for a in run.view.alerts]
    messages = summary.prompt(str(run.view.target), alerts, record["findings"])
    try:
        answer = await model.complete(messages)
    except (TemporaryError, PermanentError) as exc:
        result: dict[str, Any] = {"model": model.name, "error": str(exc)}
        note = f"model summary not made (the incident goes on): {exc}"
    except Exception as exc:                 # a bug: journaled, remediation goes on
        log.exception("model summary failed", extra={"incident": run.id})
        result, note = {"model": model.name, "error": repr(exc)}, \
            f"model summary not made (the incident goes on): {exc!r}"
    else:
        checked = summary.check(answer, ids)
        if checked.text is None:
            result = {"model": model.name, "discarded": checked.reason}
            note = f"model summary discarded (the incident goes on): {checked.reason}"
        else:
            result = {"model": model.name, "text": checked.text, "cited": list(checked.cited)}
            note = f"model summary ({model.name}): {checked.text}"
    await _keep(run, record, result, note)


async def _keep(run: Run, asked: dict[str, Any], result: dict[str, Any], note: str) -> None:
    """Journal the summary; keep it in the latest diagnosis (which may be newer than the
    one it was asked for) if the findings it cites are still there."""
    async with _turn(run.id):
        latest = dict(run.view.context.get(KIND) or asked)
        ids = {f.get("id") for f in latest.get("findings") or []}
        if all(c in ids for c in result.get("cited") or []):
            latest["summary"] = result
            await run.journal.context({KIND: latest}, notes=(
                run.journal.entry(KIND, note, summary=result),))
        else:
            await run.journal.note(KIND, note + " (not kept: a later diagnosis no longer "
                                                "has the findings it cites)", summary=result)


async def before_step(run: Run, step: Step, rec: StepRecord,
                      record: dict[str, Any] | None = None) -> Refused | None:
    """Diagnose before the step (``record``: one just made) and apply its ``when`` and
    ``skip_if``; the refusal (the step journaled as skipped) when it must not run."""
    if record is None:
        record = await diagnose(run, f"before step {step.name!r}")
    findings: list[dict[str, Any]] = (record or {}).get("findings") or []
    if step.when is not None:
        kind = step.when.finding
        hits = [f for f in findings if f["kind"] == kind]
        if not hits:
            why = "no diagnosis was made" if record is None else f"no {kind} finding"
            return await _skip(run, step, rec, f"when {{finding: {kind}}}: {why}",
                               condition="when", finding_kind=kind, finding=None)
        await run.journal.note(KIND, f"step {step.name!r} runs: when {{finding: {kind}}}: "
                                     f"{hits[0]['summary']}", step=step.name, decision="run",
                               condition="when", finding_kind=kind, finding=hits[0]["id"])
    if step.skip_if is not None:
        kind = step.skip_if.finding
        hits = [f for f in findings if f["kind"] == kind]
        if hits:
            return await _skip(run, step, rec, f"skip_if {{finding: {kind}}}: "
                                               f"{hits[0]['summary']}",
                               condition="skip_if", finding_kind=kind, finding=hits[0]["id"])
    return None


async def _skip(run: Run, step: Step, rec: StepRecord, reason: str, *, condition: str,
                finding_kind: str, finding: str | None) -> Refused:
    now = run.clock.now()
    rec.status, rec.result, rec.started_at, rec.finished_at = \
        StepStatus.SKIPPED, f"skipped: {reason}", now, now
    await run.journal.step("ladder", rec, KIND, f"step {step.name!r} skipped: {reason}",
                           step=step.name, decision="skip", condition=condition,
                           finding_kind=finding_kind, finding=finding)
    await run.journal.emit(EventKind.STEP, step=rec)
    return Refused(KIND, reason)
