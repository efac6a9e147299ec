"""``remediator_event_loop_lag_seconds``: how late the event loop runs a timer.

Real time on purpose: the lag *is* the loop's real lateness, so the test blocks the loop
for real (60 ms) and expects to see it, and a free loop to show next to none.
"""

from __future__ import annotations

import asyncio
import time

from remediator.metrics import Metrics, watch_loop_lag


def _samples(metrics: Metrics) -> tuple[float, float, float]:
    """(count, sum, count of samples over 50 ms) of the lag histogram."""
    values = {(s.name, s.labels.get("le")): s.value
              for s in next(iter(metrics.event_loop_lag.collect())).samples}
    return (values["remediator_event_loop_lag_seconds_count", None],
            values["remediator_event_loop_lag_seconds_sum", None],
            values["remediator_event_loop_lag_seconds_count", None]
            - values["remediator_event_loop_lag_seconds_bucket", "0.05"])


async def test_a_blocked_loop_shows_as_lag_and_a_free_one_does_not() -> None:
    metrics = Metrics()
    task = asyncio.create_task(watch_loop_lag(metrics.event_loop_lag, interval=0.005))
    try:
        await asyncio.sleep(0.05)                  # free: ~10 samples, each a few ms at most
        count, total, slow = _samples(metrics)
        assert count >= 3
        assert slow == 0
        # a callback that holds the loop for 60 ms (what a slow parse or render does)
        asyncio.get_running_loop().call_soon(time.sleep, 0.06)
        await asyncio.sleep(0.08)
        count2, total2, slow2 = _samples(metrics)
        assert count2 > count
        assert slow2 == 1                          # exactly the sample it delayed
        assert total2 - total >= 0.05
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

