"""Approvals: a risky step waits for a human's yes (from Slack) before it acts.

The request is journaled (who may approve, until when); the Slack sink posts
Approve / Reject buttons carrying the approval id; the interactions endpoint
records the decision once (single use) and wakes the incident. Rejection or
expiry escalates.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from remediator.engine.outcomes import Interruption, RunInterrupted
from remediator.engine.run import Run
from remediator.model.incident import IncidentState, StepRecord
from remediator.model.playbook import Step
from remediator.ports.sinks import EventKind
from remediator.ports.store import ApprovalRecord, Store

#: Seconds between looks at the decision: the click may land on another replica.
POLL_INTERVAL = 5.0


async def obtain(run: Run, step: Step, rec: StepRecord) -> str | None:
    """Wait for the decision. None when approved; otherwise why not (to escalate)."""
    assert step.approval is not None
    return await _Approval(run, run.deps.store, run.deps.approvers).obtain(step, rec)


class _Approval:
    def __init__(self, run: Run, store: Store, default_approvers: tuple[str, ...]) -> None:
        self.run = run
        self.store = store
        self.default_approvers = default_approvers
        self.poll_interval = POLL_INTERVAL

    async def obtain(self, step: Step, rec: StepRecord) -> str | None:
        assert step.approval is not None
        run = self.run
        clock = run.clock
        record = await self.store.pending_approval(run.id, rec.index)
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
            await run.wait(min(self.poll_interval, (current.expires_at - now).total_seconds()))

    async def _publish(self, record: ApprovalRecord, step: Step) -> None:
        """Put the approval where notifiers look for it: ``context["approval"]``."""
        assert step.approval is not None
        run = self.run
        info = {"id": record.id, "step": step.name, "channel": step.approval.slack.channel,
                "expires_at": record.expires_at.isoformat(), "decision": record.decision,
                "by": record.decided_by}
        await run.journal.context({"approval": info})
