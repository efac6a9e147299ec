"""Restarts at awkward moments, in-process (the process-level crash test is
``test_crash.py``): the journal is enough to finish the work, never to redo it."""

from __future__ import annotations

import asyncio

from remediator.model.incident import IncidentState, StepStatus

from .rig import Rig, alert, ladder_playbook


async def test_escalation_cut_by_a_crash_is_completed_after_restart(rig: Rig) -> None:
    pb = ladder_playbook(hook=rig.hooks.url)
    rig.hooks.block = True                       # the page never answers: we "crash" meanwhile
    await rig.start(pb)
    await rig.post([alert()])
    await asyncio.wait_for(rig.hooks.hung.wait(), 10)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED  # the state was written before the page
    await rig.stop(grace=0.05)                   # the run is cut mid-escalation
    rig.hooks.block = False
    await rig.start(pb)
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert rig.hooks.calls == [{"incident": inc.id, "pb": "ladder"}]
    esc = [s for s in inc.steps if s.action.startswith("escalate:")]
    assert [s.status for s in esc] == [StepStatus.SUCCEEDED]
    assert len(rig.writes()) == 3                # the ladder did not run again
