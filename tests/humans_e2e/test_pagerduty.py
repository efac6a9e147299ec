"""PagerDuty as an escalation target, through the whole daemon: a level pages the
service (dedup key: the incident id, a summary of what was tried); a signed v3
``incident.acknowledged`` webhook acknowledges the incident (forged, stale and replayed
ones get 401) and stops the chain; ``incident.resolved`` closes an escalated incident;
the acknowledgement and the close are sent back to
PagerDuty through the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from remediator.model.incident import IncidentState
from remediator.testing.fake_pagerduty import FakePagerDuty, signature, webhook

from .harness import ALICE, Stack, alert
from .test_chain import PB

pytestmark = pytest.mark.timeout(60)

KEY, SECRET = "K" * 32, "pd-webhook-secret"


@pytest.fixture
async def pd() -> AsyncIterator[FakePagerDuty]:
    fake = FakePagerDuty((KEY,))
    await fake.start()
    yield fake
    await fake.stop()


def settings(pd: FakePagerDuty) -> dict[str, object]:
    policy = {"levels": [
        {"targets": {"pagerduty": "api", "slack_users": [ALICE], "slack_channel": "#oncall"},
         "ack_within": "5m"},
        {"targets": {"slack_users": ["U0BOB"], "slack_channel": "#oncall"},
         "ack_within": "5m"}]}
    return {"escalation": {"policies": {"primary": policy}, "tick": "1d"},
            "pagerduty": {"events_url": pd.url, "webhook_secret": SECRET,
                          "services": {"api": {"routing_key": KEY}}}}


async def send(stack: Stack, body: bytes, sig: str | None = None) -> tuple[int, dict]:
    headers = {"X-PagerDuty-Signature": signature(SECRET, body) if sig is None else sig,
               "Content-Type": "application/json"}
    async with stack.http.post(f"{stack.url}/api/v1/pagerduty/webhook", data=body,
                               headers=headers) as resp:
        return resp.status, await resp.json()


async def escalated(stack: Stack, pd: FakePagerDuty) -> str:
    """The daemon started with the policy, one alert posted and handed to humans: its id."""
    await stack.start(PB, settings=settings(pd))
    await stack.post([alert()])

    async def handed_over() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].context.get("escalation") == "done"
    await stack.until(handed_over, "the escalation")
    return (await stack.incident()).id


async def test_pagerduty_page_ack_webhook_and_sync(stack: Stack, pd: FakePagerDuty) -> None:
    incident_id = await escalated(stack, pd)
    await stack.engine.chains.tick()
    [page] = pd.pages
    assert page["dedup_key"] == incident_id
    assert page["payload"]["summary"].startswith("HighErrorRate on Deployment prod/api")
    assert "Tried: no automated step" in page["payload"]["summary"]
    assert pd.alerts == {incident_id: "triggered"}

    body = webhook("incident.acknowledged", incident_id, agent="Alice Oncall")
    assert (await send(stack, body, sig=signature("wrong", body)))[0] == 401
    assert (await send(stack, body, sig=""))[0] == 401
    stale = webhook("incident.acknowledged", incident_id,
                    occurred_at=datetime.now(UTC) - timedelta(minutes=6))
    assert (await send(stack, stale))[0] == 401
    status, answer = await send(stack, body)
    assert status == 200, answer
    assert answer["by"] == "Alice Oncall (pagerduty)"
    assert (await send(stack, body))[0] == 401                     # replayed
    other = webhook("incident.acknowledged", "inc-unknown")
    assert (await send(stack, other))[1]["ignored"].startswith("no incident")

    await stack.drained()
    assert pd.alerts == {incident_id: "acknowledged"}              # synced back
    inc = await stack.incident()
    assert inc.context["ack"]["via"] == "pagerduty"
    await stack.clock.advance(600)
    await stack.engine.chains.tick()
    assert len(stack.slack.roots("#oncall")) == 1                  # level 2 never paged

    await stack.post([alert("resolved")])
    await stack.settle()
    assert (await stack.incident()).state == IncidentState.RESOLVED
    assert pd.alerts == {incident_id: "resolved"}


async def test_pagerduty_resolved_webhook_closes_an_escalated_incident(
        stack: Stack, pd: FakePagerDuty) -> None:
    incident_id = await escalated(stack, pd)
    assert (await stack.incident()).state == IncidentState.ESCALATED
    await stack.engine.chains.tick()
    assert pd.alerts == {incident_id: "triggered"}
    status, answer = await send(stack, webhook("incident.resolved", incident_id,
                                               agent="Alice Oncall"))
    assert status == 200, answer
    inc = await stack.incident()
    assert inc.state == IncidentState.RESOLVED
    assert inc.summary == "closed by Alice Oncall (pagerduty): resolved in PagerDuty"
    await stack.drained()
    assert pd.alerts == {incident_id: "resolved"}                  # synced back
