"""The postmortem draft, with the diagnosis, posted as a Jira comment when the incident
closes: against the fake Jira (via the real client), once per incident even after a
restart (the sink state in a real SQLite store)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from remediator.adapters.jira import JiraTickets
from remediator.engine.notifications import StoreSinkState
from remediator.model.incident import IncidentState, TimelineEntry
from remediator.notify.jira import JiraSink
from remediator.ports.sinks import EventKind, MemorySinkState, NotificationEvent
from remediator.rendering import postmortem
from remediator.store.sqlite import SqliteStore
from remediator.testing.fake_jira import FakeJira

from .conftest import cloud_tickets
from .factories import T0, lifecycle, make_view

FINDINGS = [
    {"id": "recent_rollout:api-4", "kind": "recent_rollout",
     "evidence": ["ReplicaSet prod/api-4", "ReplicaSet prod/api-3"], "data": {},
     "summary": "rollout of api: image example/api:1.2.0 → example/api:1.3.0 (revision 3 → 4), "
                "2m before the first alert (HighErrorRate)"},
    {"id": "crash_loop:api-4-x/api", "kind": "crash_loop", "evidence": ["Pod prod/api-4-x"],
     "data": {}, "summary": "container api of pod api-4-x is in CrashLoopBackOff: exit code 2"},
]
SUMMARY = {"model": "qwen2.5", "text": "The rollout to 1.3.0 [recent_rollout:api-4] made api "
                                      "crash [crash_loop:api-4-x/api].",
           "cited": ["recent_rollout:api-4", "crash_loop:api-4-x/api"]}
DIAGNOSIS = {"diagnosis": {"at": "2026-08-01T10:00:01+00:00", "moment": "incident opened",
                           "findings": FINDINGS, "problems": [], "summary": SUMMARY}}


def with_ticket(events: list[NotificationEvent]) -> list[NotificationEvent]:
    return [e.model_copy(update={"incident": e.incident.model_copy(
        update={"context": {"jira": {"key": "OPS-1"}, **DIAGNOSIS}})}) for e in events]


def postmortems(fake: FakeJira) -> list[str]:
    return [c["body"] for c in fake.issue("OPS-1").comments
            if c["body"].startswith("*Postmortem draft*")]


def test_the_postmortem_has_the_findings_their_evidence_and_the_checked_summary() -> None:
    text = postmortem(make_view(state=IncidentState.RECOVERED, context=DIAGNOSIS))
    section = text.split("## Diagnosis\n\n", 1)[1].split("\n## ", 1)[0]
    assert section.splitlines() == [
        "Findings of the diagnosis at incident opened (2026-08-01T10:00:01):", "",
        "- `recent_rollout:api-4`: rollout of api: image example/api:1.2.0 → example/api:1.3.0 "
        "(revision 3 → 4), 2m before the first alert (HighErrorRate)",
        "  - evidence: ReplicaSet prod/api-4, ReplicaSet prod/api-3",
        "- `crash_loop:api-4-x/api`: container api of pod api-4-x is in CrashLoopBackOff: "
        "exit code 2",
        "  - evidence: Pod prod/api-4-x", "",
        "Summary by qwen2.5 (checked: it cites only these findings, `recent_rollout:api-4`, "
        "`crash_loop:api-4-x/api`): The rollout to 1.3.0 [recent_rollout:api-4] made api "
        "crash [crash_loop:api-4-x/api]."]
    assert text.index("## Diagnosis") < text.index("## What was tried")


def test_without_a_diagnosis_or_summary_the_postmortem_says_so() -> None:
    assert "## Diagnosis\n\nNo diagnosis was made.\n" in postmortem(make_view())
    failed = {"diagnosis": {**DIAGNOSIS["diagnosis"], "findings": [],
                            "problems": ["GET pods: 403"],
                            "summary": {"model": "qwen2.5", "error": "timed out after 10s"}}}
    text = postmortem(make_view(context=failed))
    assert "- no findings\n- could not read: GET pods: 403\n" in text
    assert "No summary by qwen2.5: timed out after 10s" in text
    discarded = {"diagnosis": {**DIAGNOSIS["diagnosis"],
                               "summary": {"model": "m", "discarded": "cites unknown id x:y"}}}
    assert "The summary by m was discarded: cites unknown id x:y" in \
        postmortem(make_view(context=discarded))


async def test_the_postmortem_is_posted_once_when_the_incident_closes(
        fake_jira: FakeJira, tickets: JiraTickets, tmp_path: Path) -> None:
    await tickets.create(project="OPS", issue_type="Incident", summary="s", description="d")
    events = with_ticket(lifecycle())
    store = SqliteStore(tmp_path / "r.db")
    await store.open()
    try:
        state = StoreSinkState(store, "jira")
        for event in events[:-1]:
            await JiraSink(tickets).deliver(event, state)
        assert postmortems(fake_jira) == []               # not before it closes
        await JiraSink(tickets).deliver(events[-1], state)
        [posted] = postmortems(fake_jira)
        assert fake_jira.issue("OPS-1").comments[-1]["body"] == posted   # after the closing
        assert posted.endswith("\n{noformat}")
        text = posted.split("{noformat}\n", 1)[1]
        assert text.startswith("# Postmortem (draft): ")
        assert "- MTTR (first alert → resolved): 16m00s" in text
        assert "`recent_rollout:api-4`: rollout of api" in text
        assert "1. **restart** (`kubernetes.restart`): failed" in text
    finally:
        await store.close()

    store = SqliteStore(tmp_path / "r.db")                # a restart: state from the file
    await store.open()
    try:
        restarted = JiraSink(cloud_tickets(fake_jira))
        state = StoreSinkState(store, "jira")
        for event in events:                              # redelivered
            await restarted.deliver(event, state)
        closed_again = events[-1].model_copy(update={"id": 99, "at": T0 + timedelta(hours=1)})
        await restarted.deliver(closed_again, state)      # a later CLOSED event: still once
    finally:
        await store.close()
    assert len(postmortems(fake_jira)) == 1


async def test_a_long_postmortem_is_cut_to_fit_a_jira_comment(
        fake_jira: FakeJira, tickets: JiraTickets) -> None:
    await tickets.create(project="OPS", issue_type="Incident", summary="s", description="d")
    timeline = [TimelineEntry(at=T0 + timedelta(seconds=i), kind="note",
                              message=f"note {i} " + "x" * 200) for i in range(400)]
    closed = make_view(state=IncidentState.RESOLVED, closed_at=T0 + timedelta(minutes=5),
                       timeline=timeline, context={"jira": {"key": "OPS-1"}})
    event = NotificationEvent(id=1, kind=EventKind.CLOSED, at=T0, incident=closed)
    assert len(postmortem(closed)) > 32_767                  # Jira would refuse it whole
    await JiraSink(tickets).deliver(event, MemorySinkState())
    [posted] = postmortems(fake_jira)
    assert len(posted) <= 32_767
    assert posted.endswith("\n{noformat}")
    assert "characters]\n{noformat}" in posted[-60:]        # says how much was cut

