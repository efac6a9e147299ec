"""The PagerDuty Events API v2 adapter against the fake PagerDuty over real HTTP: 202
with the dedup key, 400 for an invalid event (not retried), 429 retried with a backoff
(the sleeps recorded, not slept), a summary cut to 1024 characters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from remediator.adapters.http import AiohttpPoster
from remediator.adapters.pagerduty import PagerDutyEvents
from remediator.errors import PermanentError, TemporaryError
from remediator.testing.fake_pagerduty import FakePagerDuty

KEY = "R" * 32


@pytest.fixture
async def pd() -> AsyncIterator[FakePagerDuty]:
    fake = FakePagerDuty((KEY,))
    await fake.start()
    yield fake
    await fake.stop()


async def test_trigger_acknowledge_resolve_with_retries(pd: FakePagerDuty) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with aiohttp.ClientSession() as http:
        events = PagerDutyEvents(AiohttpPoster(http), {"api": KEY, "bad": "x" * 32},
                                 url=pd.url, sleep=sleep, retries=3, backoff=2.0)
        assert await events.event("api", "trigger", "inc-1", summary="s" * 5000) == "inc-1"
        assert len(pd.pages[0]["payload"]["summary"]) == 1024
        assert pd.alerts == {"inc-1": "triggered"}
        assert await events.event("api", "trigger", "inc-1", summary="again") == "inc-1"
        assert len(pd.pages) == 1                       # the same dedup key: no second page
        pd.throttle(2)
        assert await events.event("api", "acknowledge", "inc-1") == "inc-1"
        assert slept == [2.0, 4.0]
        assert pd.alerts == {"inc-1": "acknowledged"}
        pd.throttle(10)
        with pytest.raises(TemporaryError, match="HTTP 429"):
            await events.event("api", "resolve", "inc-1")
        assert slept == [2.0, 4.0, 2.0, 4.0, 8.0]
        pd.throttle(0)
        with pytest.raises(PermanentError, match="routing_key' is invalid"):
            await events.event("bad", "resolve", "inc-1")
        requests = pd.requests
        with pytest.raises(PermanentError, match="no PagerDuty service 'nope'"):
            await events.event("nope", "resolve", "inc-1")
        assert pd.requests == requests                  # nothing sent
        assert await events.event("api", "resolve", "inc-1") == "inc-1"
        assert pd.alerts == {"inc-1": "resolved"}
