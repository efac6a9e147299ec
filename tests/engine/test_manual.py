"""By hand: an escalated incident's ladder run again from its first step (the old
steps set aside, the retry on the timeline with who did it), or closed by hand; both
refused while the incident is the robot's."""

from __future__ import annotations

import pytest

from remediator.engine.manual import ManualRefused, NoIncident
from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings

from .rig import Rig, alert
from .test_journal import MISSING


async def test_retry_runs_the_ladder_again_then_close_by_hand(rig: Rig) -> None:
    await rig.start(MISSING, EngineSettings(dry_run=True, retry_base=5.0))
    await rig.post([alert(deployment="gone")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    manual = rig.engine.manual
    with pytest.raises(NoIncident):
        await manual.retry("inc-nope", "otto")
    message = await manual.retry(inc.id, "otto (console)")
    assert message == "ladder retried from the first step by otto (console)"
    await rig.settle()
    again = await rig.only_incident()
    assert again.state == IncidentState.ESCALATED          # the target is still gone
    kinds = [(e.kind, e.message) for e in again.timeline if e.kind != "evidence"]
    retry_at = kinds.index(("manual", message))
    after = kinds[retry_at + 1:]
    # straight to the first step (the retry wrote the state), the ladder again, escalated
    assert [k for k, _ in after[:4]] == ["step", "step", "step", "state"]
    assert after[0][1].startswith("step 'restart' failed")
    assert after[3][1].startswith("incident escalated")
    # the view holds this run's steps only, each run once
    assert [(s.name, s.status) for s in again.steps[:3]] == [
        ("restart", StepStatus.FAILED), ("scale out", StepStatus.FAILED),
        ("roll back", StepStatus.FAILED)]
    assert len(again.steps) == 5
    closed = await manual.close(inc.id, "otto (console)", "fixed the manifest")
    assert closed == "closed by otto (console): fixed the manifest"
    done = await rig.only_incident()
    assert done.state == IncidentState.RESOLVED
    assert done.summary == closed
    assert done.timeline[-1].data == {"act": "close", "by": "otto (console)",
                                      "reason": "fixed the manifest"}
    with pytest.raises(ManualRefused, match="only an escalated incident"):
        await manual.retry(inc.id, "otto")
