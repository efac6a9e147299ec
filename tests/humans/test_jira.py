"""JiraTickets, jira.incident and the Jira sink against the fake Jira, via the real client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from remediator.actions import registry
from remediator.actions.humans import JiraIncident, incident_label
from remediator.actions.params import JiraIncidentParams
from remediator.adapters.jira import JiraTickets
from remediator.clock import FakeClock
from remediator.engine.contract import RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import IncidentState
from remediator.notify.jira import JiraSink
from remediator.ports.sinks import MemorySinkState
from remediator.ports.tracker import clean_label, clean_summary, truncate
from remediator.rendering import incident_report
from remediator.testing.fake_jira import FakeJira

from .conftest import cloud_tickets
from .factories import ALERT, lifecycle, make_view

PARAMS = JiraIncidentParams(project="OPS", priority="High", labels=["team api"])
Build = Callable[..., RunContext]


async def open_ticket(build: Build, tickets: JiraTickets, action: JiraIncident | None = None,
                      **view_changes: object) -> dict[str, object]:
    action = action or JiraIncident()
    view = make_view(state=IncidentState.ESCALATED, **view_changes)
    ctx = build(view, tickets=tickets)
    intent = await action.plan(ctx, PARAMS)
    result = await action.apply(ctx, intent)
    jira: dict[str, object] = result.details["context"]["jira"]
    return jira


# -- the adapter ---------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["cloud", "datacenter"])
async def test_both_flavours_and_their_auth(flavour: str) -> None:
    fake = FakeJira(flavour="cloud" if flavour == "cloud" else "datacenter")
    await fake.start()
    try:
        tickets = (cloud_tickets(fake) if flavour == "cloud"
                   else JiraTickets(fake.base_url, pat=fake.pat))
        created = await tickets.create(project="OPS", issue_type="Incident", summary="s",
                                       description="d", labels=["x-1"])
        found = await tickets.find_by_label("x-1", project="OPS")
        assert found is not None
        assert found.key == created.key == "OPS-1"
        search = "/rest/api/2/search/jql" if flavour == "cloud" else "/rest/api/2/search"
        assert fake.count("GET", search) == 1
        await tickets.comment("OPS-1", "hello")
        assert await tickets.transition("OPS-1", "Done") is True
        assert await tickets.transition("OPS-1", "Done") is False      # already there
        assert fake.issue("OPS-1").status == "Done"
        assert fake.issue("OPS-1").comments[0]["body"] == "hello"
    finally:
        await fake.stop()


async def test_bad_credentials_and_unknown_things_are_permanent(fake_jira: FakeJira) -> None:
    wrong = JiraTickets(fake_jira.base_url, email=fake_jira.email, api_token="nope")
    with pytest.raises(PermanentError, match="HTTP 401, check the credentials") as caught:
        await wrong.find_by_label("x")
    assert caught.value.__cause__ is not None
    tickets = cloud_tickets(fake_jira)
    with pytest.raises(PermanentError, match="HTTP 404"):
        await tickets.get("OPS-99")
    with pytest.raises(PermanentError, match="valid project is required"):
        await tickets.create(project="NOPE", issue_type="Incident", summary="s", description="")
    await tickets.create(project="OPS", issue_type="Incident", summary="s", description="")
    with pytest.raises(PermanentError, match="no transition 'Reopen'"):
        await tickets.transition("OPS-1", "Reopen")


async def test_server_errors_are_temporary_with_retry_after(fake_jira: FakeJira) -> None:
    tickets = cloud_tickets(fake_jira)
    fake_jira.fail(times=1, status=503, retry_after=30)
    with pytest.raises(TemporaryError, match="HTTP 503") as caught:
        await tickets.find_by_label("x")
    assert caught.value.delay == 30
    fake_jira.fail(times=1, status=429, retry_after=5)
    with pytest.raises(TemporaryError, match="HTTP 429"):
        await tickets.find_by_label("x")
    assert await tickets.find_by_label("x") is None
    # max_retries=0: the client did not retry (and sleep) by itself; the failures hit the
    # construction's serverInfo, and the client is built again on the next call
    assert [p for _, p in fake_jira.requests] == [
        "/rest/api/2/serverInfo", "/rest/api/2/serverInfo", "/rest/api/2/serverInfo",
        "/rest/api/2/field", "/rest/api/2/search/jql"]


async def test_limits_are_applied_cleanly(fake_jira: FakeJira) -> None:
    tickets = cloud_tickets(fake_jira)
    long_summary = "HighErrorRate\non api " + "x" * 400
    description = "report line\n" * 4000                               # 48,000 characters
    label = "team " + "y" * 300
    created = await tickets.create(project="OPS", issue_type="Incident", summary=long_summary,
                                   description=description, labels=[label])
    issue = fake_jira.issue(created.key)
    assert len(issue.fields["summary"]) == 255
    assert "\n" not in issue.fields["summary"]
    assert issue.fields["summary"].endswith("…")
    assert len(issue.fields["description"]) <= 32_767
    assert issue.fields["description"].endswith("characters omitted]")
    assert issue.fields["description"].startswith("report line\nreport line")
    assert issue.fields["labels"] == [clean_label(label)]
    assert len(issue.fields["labels"][0]) == 255
    assert " " not in issue.fields["labels"][0]


def test_truncation_counts_utf16_and_reports_what_it_cut() -> None:
    emoji = "🔥" * 20_000                                   # 40,000 UTF-16 units
    out = truncate(emoji, 32_767)
    assert len(out.encode("utf-16-le")) // 2 <= 32_767
    assert out.endswith("characters omitted]")
    assert truncate("short", 10) == "short"
    assert clean_summary("  a\n b  ") == "a b"
    assert clean_summary("") == "remediator incident"


# -- jira.incident ---------------------------------------------------------------------------
async def test_concurrent_runs_make_one_ticket(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build) -> None:
    action = registry.implementation("jira.incident")
    ctx = action_context(tickets=tickets)
    intent = await action.plan(ctx, PARAMS)
    results = await asyncio.gather(*(action.apply(ctx, intent) for _ in range(5)))
    assert len(fake_jira.issues) == 1
    keys = {r.details["context"]["jira"]["key"] for r in results}
    assert keys == {"OPS-1"}
    assert sorted(r.details["outcome"] for r in results) == ["created"] + ["found"] * 4
    issue = fake_jira.issue("OPS-1")
    assert incident_label(ctx.incident_key) in issue.fields["labels"]
    assert "team-api" in issue.fields["labels"]
    assert issue.fields["priority"] == {"name": "High"}
    assert issue.fields["summary"] == "[remediator] HighErrorRate on Deployment prod/api"


async def test_after_a_restart_the_ticket_is_found_again(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build) -> None:
    first = await open_ticket(action_context, tickets)
    restarted = cloud_tickets(fake_jira)            # new process: no locks, no memory
    again = await open_ticket(action_context, restarted)
    assert again["key"] == first["key"]
    assert len(fake_jira.issues) == 1
    assert again["url"] == f"{fake_jira.base_url}/browse/OPS-1"


async def test_description_is_an_incident_report(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build) -> None:
    events = lifecycle()
    view = events[-1].incident
    await open_ticket(action_context, tickets, steps=view.steps,
                      context={"target": {"events": ["Back-off restarting failed container"],
                                          "pods": [{"name": "api-1", "restarts": 7}]}})
    text = fake_jira.issue("OPS-1").fields["description"]
    for expected in ("h2. Summary", "5xx ratio above 5% for api", "||Label||Value||",
                     "|alertname|HighErrorRate|", "[Runbook|https://runbooks.example.com/",
                     "[Graph|http://prometheus.example.com/graph", "Deployment prod/api",
                     "|1|restart|kubernetes.restart|failed|restarted|error ratio still",
                     "|2|scale out|kubernetes.scale|succeeded|", "Time to detect: 2m00s",
                     "Back-off restarting failed container", "pod api-1: restarts=7"):
        assert expected in text, expected


async def test_new_episode_reopens_within_window_else_creates(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build,
        clock: FakeClock) -> None:
    await open_ticket(action_context, tickets)
    fake_jira.now = clock.now()
    await tickets.transition("OPS-1", "Done")
    await clock.advance(3600)                                            # 1h later
    reopened = await open_ticket(action_context, tickets, id="inc-2")
    assert reopened["key"] == "OPS-1"
    assert fake_jira.issue("OPS-1").status == "Open"
    assert "new episode, incident inc-2" in fake_jira.issue("OPS-1").comments[-1]["body"]

    fake_jira.now = clock.now()
    await tickets.transition("OPS-1", "Done")
    await clock.advance(timedelta(days=2).total_seconds())
    fresh = await open_ticket(action_context, tickets, id="inc-3")
    assert fresh["key"] == "OPS-2"
    short = JiraIncident(reopen_window=timedelta(minutes=5))
    assert short.reopen_window == timedelta(minutes=5)


async def test_jira_down_for_a_while(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build) -> None:
    await fake_jira.down()
    for _ in range(2):
        with pytest.raises(TemporaryError, match="cannot reach") as caught:
            await open_ticket(action_context, tickets)
        assert caught.value.__cause__ is not None
    await fake_jira.up()
    assert (await open_ticket(action_context, tickets))["key"] == "OPS-1"
    await fake_jira.down()                         # down again, after the client connected
    with pytest.raises(TemporaryError):
        await open_ticket(action_context, tickets)
    await fake_jira.up()
    assert (await open_ticket(action_context, tickets))["key"] == "OPS-1"
    assert len(fake_jira.issues) == 1


async def test_missing_port_is_permanent_but_plan_still_works(action_context: Build) -> None:
    ctx = action_context()
    intent = await JiraIncident().plan(ctx, PARAMS)       # dry-run needs no Jira
    assert "create Incident" in intent.description
    with pytest.raises(PermanentError, match="Jira is not configured"):
        await JiraIncident().apply(ctx, intent)


# -- the sink --------------------------------------------------------------------------------
async def test_sink_comments_steps_and_closes_once(
        fake_jira: FakeJira, tickets: JiraTickets) -> None:
    await tickets.create(project="OPS", issue_type="Incident", summary="s", description="d")
    events = [e.model_copy(update={"incident": e.incident.model_copy(
        update={"context": {"jira": {"key": "OPS-1"}}})}) for e in lifecycle()]
    state = MemorySinkState()
    for event in events:
        await JiraSink(tickets).deliver(event, state)
    issue = fake_jira.issue("OPS-1")
    assert issue.status == "Done"
    assert issue.transitions == ["Done"]
    bodies = [c["body"] for c in issue.comments]
    assert len(bodies) == 6              # 4 step events, the closing one, the postmortem
    assert bodies[0].startswith("*Step 1: restart*")
    assert "Incident recovered" in bodies[-2]
    assert "at 16m00s" in bodies[-2]
    assert bodies[-1].startswith("*Postmortem draft*")

    restarted = JiraSink(cloud_tickets(fake_jira))
    for event in events:                                     # redelivery after a restart
        await restarted.deliver(event, state)
    assert len(fake_jira.issue("OPS-1").comments) == 6
    assert fake_jira.issue("OPS-1").transitions == ["Done"]


async def test_sink_ignores_incidents_without_ticket(
        fake_jira: FakeJira, tickets: JiraTickets) -> None:
    for event in lifecycle():
        await JiraSink(tickets).deliver(event, MemorySinkState())
    assert fake_jira.requests == []


def test_report_of_a_big_incident_lists_the_first_alerts_and_counts_the_rest() -> None:
    shown = [dict(ALERT, fingerprint=f"{i:016x}") for i in range(3)]
    text = incident_report(make_view(alerts=shown, alert_count=40, firing_count=25))
    assert text.count("h3. HighErrorRate firing") == 3
    assert "… and 37 more alerts (25 of all 40 still firing)." in text
    # a view that holds every alert says nothing more
    assert "more alert" not in incident_report(make_view(alerts=shown, alert_count=3))
    assert "more alert" not in incident_report(make_view(alerts=shown))
