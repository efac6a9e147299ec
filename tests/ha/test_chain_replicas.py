"""Escalation chains with three replicas on one real PostgreSQL database: every replica
looks for due chain timers at the same moments, and each level is paged exactly once.

Three engines in this process, each with its own ``PostgresStore`` (as three replicas
would have), one shared fake clock, the real Slack adapter against the fake Slack.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from engine.rig import T0, alert, webhook

from remediator.actions import registry
from remediator.adapters.slack import SlackChat
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.engine.ports import Ports
from remediator.loader import load
from remediator.model.alerts import parse_webhook
from remediator.settings import EngineSettings, EscalationPolicy
from remediator.store.postgres import PostgresStore
from remediator.testing.fake_slack import FakeSlack

PB = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: paged}
spec:
  match: ['alertname="HighErrorRate"']
  escalate:
    - policy: primary
"""
POLICY = EscalationPolicy.model_validate({"repeat": 0, "levels": [
    {"targets": {"slack_users": [f"U0LEVEL{i}"], "slack_channel": "#oncall"},
     "ack_within": "5m", "reminders": ["2m"] if i == 1 else []} for i in (1, 2, 3)]})


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


async def test_three_replicas_page_each_level_once(pg_url: str, slack: FakeSlack) -> None:
    clock = FakeClock(datetime(2026, 8, 1, 10, 0, tzinfo=UTC))
    engines: list[Engine] = []
    async with aiohttp.ClientSession() as http:
        try:
            for name in ("a", "b", "c"):
                store = PostgresStore(pg_url)
                await store.open()
                chat = SlackChat(slack.token, base_url=slack.base_url, session=http)
                engines.append(Engine(
                    store=store, playbooks=load(PB), clock=clock, catalogue=registry,
                    ports=Ports(chat=chat), policies={"primary": POLICY}, chain_tick=86400,
                    settings=EngineSettings(owner=name, lease=30.0, scan_interval=3600.0)))
            first = engines[0]
            await first.start()
            await first.intake.receive(parse_webhook(webhook([alert(starts_at=T0)])))
            await asyncio.wait_for(first.idle(), 10)
            [incident_id] = [v.id for v in await first.store.list_incidents()]
            assert await first.store.get_timer(incident_id) is not None
            for minute in range(0, 20):
                if minute:
                    await clock.advance(60)
                fired = await asyncio.gather(*(e.chains.tick() for e in engines))
                assert sum(fired) <= 1, (minute, fired)
            texts = [m.text for m in slack.roots("#oncall")]
            who = [next(f"U0LEVEL{i}" for i in (1, 2, 3) if f"U0LEVEL{i}" in t)
                   + (" reminder" if "reminder" in t else "") for t in texts]
            assert who == ["U0LEVEL1", "U0LEVEL1 reminder", "U0LEVEL2", "U0LEVEL3"]
            assert await first.store.get_timer(incident_id) is None
        finally:
            for engine in engines:
                await engine.stop(grace=1.0)
                await engine.store.close()
