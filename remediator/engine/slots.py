"""The engine's working slots, shared fairly between lanes.

At most ``max_parallel`` incident runs work at once (a run gives its slot back while
it waits). Runs waiting for a slot queue in *lanes*: one per playbook for incidents
the intake just opened or woke, and one for the backlog resumed from the journal at
start. A freed slot goes to the lanes in turn (round robin), each lane first come,
first served. So a storm of one playbook, or thousands of incidents resumed after a
restart, never make another playbook's new incident (an approval waiting to be asked
for, a page) wait behind them: it waits for at most one slot per busy lane. The resumed
backlog never holds the last slot, so a new incident during a resume starts at once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

RESUMED = "(resumed)"      # the lane of incidents resumed from the journal at start


class FairSlots:
    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self._lanes: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        # The backlog resumed at start never takes the last slot: a new incident finds
        # one free instead of waiting for a resumed run to give one back.
        self._caps = {RESUMED: capacity - 1} if capacity > 1 else {}
        self._held: dict[str, int] = {}

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    async def acquire(self, lane: str) -> None:
        """Take a slot, waiting in ``lane`` while none is free (or the lane holds its
        cap)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes.setdefault(lane, deque()).append(fut)
        self._grant()
        try:
            await fut                       # returns at once when granted right away
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(lane)          # granted as we were cancelled: pass it on
            else:
                self._forget(lane, fut)
            raise

    def release(self, lane: str) -> None:
        """Give a slot of ``lane`` back: to the next lane in turn that has a waiter it
        may go to, else free."""
        self._held[lane] -= 1
        self.free += 1
        self._grant()

    def _grant(self) -> None:
        """Free slots to the lanes in turn (round robin, each lane first come, first
        served), passing over a lane at its cap."""
        while self.free > 0:
            lane = next((name for name in self._lanes if self._below_cap(name)), None)
            if lane is None:
                return
            queue = self._lanes.pop(lane)
            fut = queue.popleft()
            if queue:
                self._lanes[lane] = queue   # the lane goes to the back of the round
            if not fut.done():
                self.free -= 1
                self._held[lane] = self._held.get(lane, 0) + 1
                fut.set_result(None)

    def _below_cap(self, lane: str) -> bool:
        cap = self._caps.get(lane)
        return cap is None or self._held.get(lane, 0) < cap

    def _forget(self, lane: str, fut: asyncio.Future[None]) -> None:
        queue = self._lanes.get(lane)
        if queue is not None and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._lanes[lane]


class Slot:
    """One run's hold on a working slot. A run gives it back while it waits
    (verification intervals, approvals, backoff), so waiting incidents never keep new
    ones from starting, and takes it again in its lane."""

    def __init__(self, slots: FairSlots, lane: str) -> None:
        self._slots = slots
        self.lane = lane
        self.held = False

    async def take(self) -> None:
        await self._slots.acquire(self.lane)
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self._slots.release(self.lane)
