"""How many of an incident's alerts still fire, asked by many runs at once.

Every verification poll, approval look and step start asks the store whether the
incident's alerts still fire. 5,000 incidents verifying every 5 s asked 1,000 times a
second, each a store read of its own (on SQLite a round trip to the reader thread: a
fifth of the daemon's busy samples). ``FiringCounts`` answers the runs that ask while
a read is in flight with the next read, one ``Store.firing_alert_counts`` for all of
them. No answer is older than its question: each comes from a read begun after it was
asked. A run that asks while no read is in flight is read for at once, alone.
"""

from __future__ import annotations

import asyncio

from remediator.engine.supervisor import Supervisor
from remediator.ports.store import Store

#: incidents asked about in one read
READ_BATCH = 500


class FiringCounts:
    def __init__(self, store: Store, tasks: Supervisor) -> None:
        self.store = store
        self.tasks = tasks
        self._asked: dict[str, list[asyncio.Future[int]]] = {}   # for the next read
        self._reading = False

    async def count(self, incident_id: str) -> int:
        """The number of the incident's alerts firing, read after this call began."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(incident_id, []).append(answer)
        if not self._reading:
            self._reading = True
            self.tasks.start(self._read(), name="firing-counts")
        return await answer

    async def _read(self) -> None:
        """Read for everyone who asked, batch after batch, until nobody waits."""
        try:
            while self._asked:
                asked = dict(list(self._asked.items())[:READ_BATCH])
                for incident_id in asked:
                    del self._asked[incident_id]
                try:
                    counts = await self.store.firing_alert_counts(list(asked))
                except Exception as exc:
                    for answers in asked.values():
                        for answer in answers:
                            if not answer.done():
                                answer.set_exception(exc)
                    continue
                except BaseException:                 # cancelled: nobody is left waiting
                    for answers in [*asked.values(), *self._asked.values()]:
                        for answer in answers:
                            answer.cancel()
                    self._asked.clear()
                    raise
                for incident_id, answers in asked.items():
                    for answer in answers:
                        if not answer.done():
                            answer.set_result(counts.get(incident_id, 0))
        finally:
            self._reading = False
