"""Fixtures for the humans-in-the-loop tests: fake Slack and Jira servers driven by the
real ``slack_sdk`` and ``jira`` clients, a fake clock, and incident snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from remediator.adapters.jira import JiraTickets
from remediator.adapters.slack import SlackChat
from remediator.clock import FakeClock
from remediator.engine.contract import RunContext
from remediator.model.incident import IncidentState, IncidentView
from remediator.testing.fake_jira import FakeJira
from remediator.testing.fake_slack import FakeSlack

from .factories import T0, make_view


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def chat(fake_slack: FakeSlack) -> AsyncIterator[SlackChat]:
    client = SlackChat(fake_slack.token, base_url=fake_slack.base_url, timeout=5)
    yield client
    await client.close()


@pytest.fixture
async def fake_jira() -> AsyncIterator[FakeJira]:
    fake = FakeJira(flavour="cloud")
    await fake.start()
    yield fake
    await fake.stop()


def cloud_tickets(fake: FakeJira) -> JiraTickets:
    return JiraTickets(fake.base_url, email=fake.email, api_token=fake.api_token, timeout=5)


@pytest.fixture
def tickets(fake_jira: FakeJira) -> JiraTickets:
    return cloud_tickets(fake_jira)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def action_context(clock: FakeClock) -> Callable[..., RunContext]:
    def build(view: IncidentView | None = None, **ports: Any) -> RunContext:
        view = view or make_view(state=IncidentState.ESCALATED)
        return RunContext(
            incident_id=view.id, incident_key=view.key, playbook=view.playbook,
            step="escalate", target=view.target, alerts=list(view.alerts), clock=clock,
            incident=view.model_dump(mode="json"), **ports)
    return build
