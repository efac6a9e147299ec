"""Leases: on a store that replicas share, which incidents this replica holds.

A replica claims an incident before its run (``claim``), and holds it while the run
works and while its approval wait is parked; one task renews every lease it holds in
one write every ``lease / 3`` (``keep``, ``Store.renew_leases``). A lease that renewal
finds in another replica's hands, or on a closed incident, is lost (``lost``): the run
stops at its next wait, a parked wait is forgotten. A renewal task and a write per
incident held 10,000 tasks and ~1,000 commits/s with 10,000 incidents waiting for their
approvals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from remediator.clock import Clock
from remediator.ports.store import Store

log = logging.getLogger("remediator.engine")

#: leases renewed in one write
RENEW_CHUNK = 1000


class Leases:
    def __init__(self, store: Store, clock: Clock, owner: str, lease: float,
                 lost: Callable[[str], None]) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.lost = lost
        # incident → the number of the claim that took it: a renewal that raced a
        # release and a new claim must not call the new claim lost
        self._held: dict[str, int] = {}
        self._claims = 0

    def __contains__(self, incident_id: str) -> bool:
        return incident_id in self._held

    def __len__(self) -> int:
        return len(self._held)

    async def claim(self, incident_id: str) -> bool:
        """Take (or renew) the incident's lease; False when another replica holds it."""
        if not await self.store.claim(incident_id, self.owner, self.clock.now(), self.lease):
            return False
        self._claims += 1
        self._held[incident_id] = self._claims
        return True

    async def release(self, incident_ids: list[str]) -> None:
        """Give these leases up (those still held)."""
        held = [i for i in incident_ids if self._held.pop(i, None) is not None]
        if held:
            await self.store.release_leases(self.owner, held)

    async def keep(self) -> None:
        """Renew every lease held, every ``lease / 3``, until cancelled."""
        while True:
            await self.clock.sleep(self.lease / 3)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing the leases failed; trying again")

    async def renew(self) -> None:
        """Renew every lease held now; call ``lost`` for each one another replica took."""
        held = list(self._held.items())
        for start in range(0, len(held), RENEW_CHUNK):
            chunk = held[start:start + RENEW_CHUNK]
            renewed = await self.store.renew_leases(
                self.owner, [i for i, _ in chunk], self.clock.now(), self.lease)
            for incident_id, claim in chunk:
                if incident_id not in renewed and self._held.get(incident_id) == claim:
                    del self._held[incident_id]
                    log.error("lost the lease: another replica took this incident over, "
                              "or it was closed", extra={"incident": incident_id})
                    self.lost(incident_id)
