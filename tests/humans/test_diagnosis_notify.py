"""The findings in the Slack page (fake Slack) and in the Jira description (fake Jira)."""

from __future__ import annotations

from collections.abc import Callable

from remediator.actions import registry
from remediator.actions.humans import JiraIncident
from remediator.actions.params import JiraIncidentParams, SlackPageParams
from remediator.adapters.jira import JiraTickets
from remediator.adapters.slack import SlackChat
from remediator.engine.contract import RunContext
from remediator.model.incident import IncidentState
from remediator.rendering import diagnosis_lines, root_message
from remediator.testing.fake_jira import FakeJira
from remediator.testing.fake_slack import FakeSlack

from .factories import make_view

Build = Callable[..., RunContext]
FINDINGS = [
    {"id": "recent_rollout:api-4", "kind": "recent_rollout", "evidence": ["ReplicaSet prod/api-4"],
     "summary": "rollout of api: image example/api:1.2.0 → example/api:1.3.0 (revision 3 → 4), "
                "2m before the first alert (HighErrorRate)"},
    {"id": "crash_loop:api-4-x/api", "kind": "crash_loop", "evidence": ["Pod prod/api-4-x"],
     "summary": "container api of pod api-4-x is in CrashLoopBackOff: exit code 2 (Error), "
                "3 restarts; last log line: 'fatal: [db] pool|size'"},
]
CONTEXT = {"diagnosis": {"moment": "incident opened", "findings": FINDINGS, "problems": []}}


async def test_the_page_has_a_diagnosis_section(fake_slack: FakeSlack, chat: SlackChat,
                                                action_context: Build) -> None:
    view = make_view(state=IncidentState.ESCALATED, context=CONTEXT)
    action = registry.implementation("slack.page")
    ctx = action_context(view, chat=chat)
    await action.apply(ctx, await action.plan(ctx, SlackPageParams(channel="#oncall",
                                                                    mention="@oncall")))
    [page] = fake_slack.roots("#oncall")
    assert "Diagnosis:\n• [recent_rollout:api-4] rollout of api: image example/api:1.2.0 → " \
           "example/api:1.3.0 (revision 3 → 4), 2m before the first alert" in page.text
    assert "• [crash_loop:api-4-x/api] container api" in page.text


async def test_the_ticket_description_has_a_diagnosis_section(
        fake_jira: FakeJira, tickets: JiraTickets, action_context: Build) -> None:
    view = make_view(state=IncidentState.ESCALATED, context=CONTEXT)
    ctx = action_context(view, tickets=tickets)
    action = JiraIncident()
    await action.apply(ctx, await action.plan(ctx, JiraIncidentParams(project="OPS")))
    text = fake_jira.issue("OPS-1").fields["description"]
    section = text.split("h2. Diagnosis\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [
        "* \\[recent\\_rollout:api-4\\] rollout of api: image example/api:1.2.0 → "
        "example/api:1.3.0 (revision 3 → 4), 2m before the first alert (HighErrorRate)",
        "* \\[crash\\_loop:api-4-x/api\\] container api of pod api-4-x is in CrashLoopBackOff: "
        "exit code 2 (Error), 3 restarts; last log line: 'fatal: \\[db\\] pool\\|size'"]


def test_without_a_diagnosis_nothing_is_added() -> None:
    assert diagnosis_lines(make_view()) == []
    empty = {"diagnosis": {"findings": [], "problems": []}}
    assert diagnosis_lines(make_view(context=empty)) == ["no findings"]


def test_the_thread_root_shows_the_findings() -> None:
    _, _, [attachment] = root_message(make_view(context=CONTEXT))
    [diagnosis] = [b for b in attachment["blocks"] if b["type"] == "context"
                   and b["elements"][0]["text"].startswith("Diagnosis: ")]
    text = diagnosis["elements"][0]["text"]
    assert text.startswith("Diagnosis: [recent_rollout:api-4] rollout of api: image "
                           "example/api:1.2.0 → example/api:1.3.0")
    assert "\n[crash_loop:api-4-x/api] container api" in text
    _, _, [plain] = root_message(make_view())
    assert not any("Diagnosis" in str(b) for b in plain["blocks"])
