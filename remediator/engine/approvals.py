"""Approvals: a risky step waits for a human's yes (from Slack) before it acts.

The request is journaled (who may approve, until when); the Slack sink posts
Approve / Reject buttons carrying the approval id; the interactions endpoint
records the decision once (single use) and wakes the incident. Rejection or
expiry escalates.

While the decision is awaited the run parks when it may (``Run.can_park``): the
engine holds the wait as data (``parking``) and looks at the decision every
``POLL_INTERVAL``, many waits at once (``next_looks``, two reads, no view); anything new
(a decision, the expiry, the alerts resolved, a wake) makes it a run again, which comes
back here (``resume``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from remediator.engine.outcomes import Interruption, RunInterrupted
from remediator.engine.run import Parked, ParkedApproval, Run
from remediator.model.incident import IncidentState, StepRecord
from remediator.model.playbook import Step
from remediator.ports.sinks import EventKind
from remediator.ports.store import ApprovalRecord, Store

#: Seconds between looks at the decision: the click may land on another replica.
POLL_INTERVAL = 5.0


async def obtain(run: Run, step: Step, rec: StepRecord,
                 resume: ParkedApproval | None = None) -> str | None:
    """Wait for the decision. None when approved; otherwise why not (to escalate).
    ``resume``: the parked wait of this step that the run comes back to."""
    assert step.approval is not None
    return await _Approval(run, run.deps.store, run.deps.approvers).obtain(step, rec, resume)


async def next_looks(store: Store, waits: Sequence[ParkedApproval],
                     now: datetime) -> dict[str, float | None]:
    """A look at many parked waits' decisions in two reads, by incident: seconds until
    its next look when nothing changed; None when its run must go on (decided, expired,
    or its alerts resolved), which ``obtain`` then sees and journals as it would have
    without parking."""
    records = await store.get_approvals([w.approval_id for w in waits])
    undecided = {w.incident_id: r for w in waits
                 if (r := records.get(w.approval_id)) is not None and r.decision is None
                 and now < r.expires_at}
    firing = await store.firing_alert_counts(list(undecided)) if undecided else {}
    looks: dict[str, float | None] = {}
    for wait in waits:
        record = undecided.get(wait.incident_id)
        looks[wait.incident_id] = (
            min(POLL_INTERVAL, (record.expires_at - now).total_seconds())
            if record is not None and firing.get(wait.incident_id, 0) > 0 else None)
    return looks


class _Approval:
    def __init__(self, run: Run, store: Store, default_approvers: tuple[str, ...]) -> None:
        self.run = run
        self.store = store
        self.default_approvers = default_approvers
        self.poll_interval = POLL_INTERVAL

    async def obtain(self, step: Step, rec: StepRecord,
                     resume: ParkedApproval | None = None) -> str | None:
        assert step.approval is not None
        run = self.run
        clock = run.clock
        record = (await self.store.get_approval(resume.approval_id) if resume is not None
                  else None) or await self.store.pending_approval(run.id, rec.index)
        if record is None:
            now = clock.now()
            record = ApprovalRecord(
                id="apr-" + uuid.uuid4().hex[:16], incident_id=run.id, step_index=rec.index,
                requested_at=now, expires_at=now + timedelta(seconds=step.approval.ttl),
                approvers=tuple(step.approval.approvers) or self.default_approvers)
            await self.store.create_approval(record)
            await self._publish(record, step)
            await run.journal.state(IncidentState.AWAITING_APPROVAL)
            await run.journal.note("approval", f"step {step.name!r} waits for approval in "
                                       f"{step.approval.slack.channel} until "
                                       f"{record.expires_at.isoformat()}",
                           approval=record.id, channel=step.approval.slack.channel,
                           approvers=list(record.approvers))
            await run.journal.emit(EventKind.APPROVAL_REQUESTED, step=rec, message=record.id)
        while True:
            current = await self.store.get_approval(record.id)
            assert current is not None
            if current.decision is not None:
                await self._publish(current, step)
            if current.decision == "approved":
                await run.journal.note("approval", f"step {step.name!r} approved by "
                                                   f"{current.decided_by}",
                                       approval=record.id, by=current.decided_by)
                await run.journal.emit(EventKind.APPROVAL_DECIDED, step=rec, message=record.id)
                return None
            if current.decision in ("rejected", "expired"):
                why = (f"step {step.name!r} was rejected by {current.decided_by}"
                       if current.decision == "rejected"
                       else f"approval for step {step.name!r} expired unanswered")
                await run.journal.note("approval", why, approval=record.id, by=current.decided_by)
                await run.journal.emit(EventKind.APPROVAL_DECIDED, step=rec, message=record.id)
                return why
            now = clock.now()
            if now >= current.expires_at:
                await self.store.decide_approval(record.id, "expired", "remediator", now)
                continue
            if await run.firing() == 0:
                await self.store.decide_approval(record.id, "expired", "remediator", now)
                raise RunInterrupted(Interruption.RESOLVED, "resolved while waiting for approval")
            # Poll too: the click may land on another replica, which cannot wake this one.
            delay = min(self.poll_interval, (current.expires_at - now).total_seconds())
            if run.can_park():
                raise Parked(ParkedApproval(run.id, rec.index, record.id, current.expires_at),
                             delay)
            await run.wait(delay)

    async def _publish(self, record: ApprovalRecord, step: Step) -> None:
        """Put the approval where notifiers look for it: ``context["approval"]``."""
        assert step.approval is not None
        run = self.run
        info = {"id": record.id, "step": step.name, "channel": step.approval.slack.channel,
                "expires_at": record.expires_at.isoformat(), "decision": record.decision,
                "by": record.decided_by}
        await run.journal.context({"approval": info})
