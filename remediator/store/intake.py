"""Alert intake, written once for every backend, as a sans-IO plan.

``plan(batch, ids)`` is a generator: it decides what a batch of alerts does to the
store (dedup episodes by ``(fingerprint, startsAt)``, resolutions, stale re-sends,
folding each new alert into the one open incident of each of its incident keys,
creating the incidents missing) and *yields* the reads and writes it needs as
``Query(op, args)``; the caller runs each one and ``send()``s its result back. The
ops are a handful of set-shaped statements (``Ops`` below names them and their
results); a backend implements them in its SQL dialect: per row on SQLite (cheap,
in-process), one statement per op on PostgreSQL (``unnest`` arrays, one round trip).

Drivers: ``run_sync`` (SQLite's writer thread, inside its group commit) and
``run_async`` (asyncpg, inside the transaction ``PostgresStore`` opens). Races with
other writers (PostgreSQL replicas) show up as an insert that inserted nothing, and
are settled by reading again (at most ``ATTEMPTS`` times).

Not here: the SQL (``sqlite_intake.py``, ``pg_intake.py``), transactions, group
commit and the re-delivery cache (the stores).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from remediator.store.records import IngestItem, IngestOutcome, Routing

ATTEMPTS = 10     # re-reads after losing a race, before giving the batch up

DUPLICATE = IngestOutcome("duplicate")
STALE = IngestOutcome("stale")


class Query(NamedTuple):
    """One statement request of the plan: the name of an ``Ops`` method and its argument."""

    op: str
    args: Any


class NewAlert(NamedTuple):
    """An episode's row to insert: the alert as it is inserted (firing or resolved)."""

    alert: Any            # AlertRecord
    now: datetime
    status: str           # "firing" | "resolved"
    outcome: str          # new | unmatched | resolved


class NewIncident(NamedTuple):
    id: str
    route: Routing
    now: datetime
    first_alert_at: datetime


class Ops(Protocol):
    """What a dialect runs for the plan (sync or async; positions follow ``args``)."""

    def insert_alerts(self, c: Any, rows: list[NewAlert]) -> Any:
        """Insert each episode unless it exists: its new ``alerts.id``, or None."""

    def read_episodes(self, c: Any, alerts: list[Any]) -> Any:
        """Each alert's episode as ``(alerts.id, status)``, or None if absent."""

    def open_incidents(self, c: Any, keys: list[str]) -> Any:
        """``{key: id}`` of the open incidents of these keys (locked against closing)."""

    def create_incidents(self, c: Any, rows: list[NewIncident]) -> Any:
        """Open these incidents unless their key has one open: ``{key: id}`` created."""

    def link(self, c: Any, pairs: list[tuple[str, int]]) -> Any:
        """Attach alerts to incidents: ``(incident id, alert id)`` pairs, all new."""

    def resolve(self, c: Any, rows: list[tuple[int, datetime | None, datetime]]) -> Any:
        """Resolve firing episodes ``(alert id, ends_at, now)``: ``{alert id: (open
        incident ids,)}`` of those that were still firing."""

    def wake(self, c: Any, incident_ids: list[str]) -> Any:
        """Tell other processes these incidents have news (committed with the batch)."""


Plan = Generator[Query, Any, list[IngestOutcome]]


def _decide(batch: Sequence[tuple[IngestItem, datetime]], members: list[int],
            status: str | None, kinds: list[str]) -> int | None:
    """The episode's items in batch order, given its status before the batch (None:
    absent; then the first item inserts it): each item's kind into ``kinds``; returns
    the item that resolves a firing row, if any."""
    resolving: int | None = None
    for i in members:
        alert = batch[i][0].alert
        if alert.status == "resolved":
            if status is None:
                kinds[i] = "resolved"
            elif status == "resolved":
                kinds[i] = "duplicate"
            else:
                resolving, kinds[i] = i, "resolved"
            status = "resolved"
        elif status is None:
            kinds[i] = "new" if batch[i][0].routes else "unmatched"
            status = "firing"
        else:
            kinds[i] = "duplicate" if status == "firing" else "stale"
    return resolving


def _new_alert(item: IngestItem, now: datetime) -> NewAlert:
    if item.alert.status == "resolved":
        return NewAlert(item.alert, now, "resolved", "resolved")
    return NewAlert(item.alert, now, "firing", "new" if item.routes else "unmatched")


def _episodes(batch: Sequence[tuple[IngestItem, datetime]]) -> list[list[int]]:
    """The batch's items grouped by episode, episodes in order of first appearance."""
    index: dict[tuple[str, datetime], list[int]] = {}
    for i, (item, _) in enumerate(batch):
        a = item.alert
        members = index.get((a.fingerprint, a.starts_at))
        if members is None:
            index[(a.fingerprint, a.starts_at)] = [i]
        else:
            members.append(i)
    return list(index.values())


def _alerts(batch: Sequence[tuple[IngestItem, datetime]], episodes: list[list[int]],
            alert_id: dict[int, int], before: dict[int, str | None], insert_first: bool
            ) -> Generator[Query, Any, None]:
    """Insert or read each episode's row: ids into ``alert_id``, the status each had
    before the batch into ``before`` (None: this batch inserted it). With
    ``insert_first``, firing-first episodes (new ones, mostly) are inserted first and
    read only when they exist; the others are read first and inserted when absent."""
    inserting: list[int] = []
    pending: list[int] = []
    for j, members in enumerate(episodes):
        firing = batch[members[0]][0].alert.status == "firing"
        (inserting if insert_first and firing else pending).append(j)
    for _ in range(ATTEMPTS):
        if inserting:
            got = yield Query("insert_alerts", [_new_alert(*batch[episodes[j][0]])
                                                for j in inserting])
            for j, aid in zip(inserting, got, strict=True):
                if aid is None:
                    pending.append(j)          # it exists (or another writer just made it)
                else:
                    alert_id[j], before[j] = aid, None
        if not pending:
            return
        rows = yield Query("read_episodes", [batch[episodes[j][0]][0].alert for j in pending])
        inserting = []
        for j, row in zip(pending, rows, strict=True):
            if row is None:
                inserting.append(j)            # absent: its first item inserts it
            else:
                alert_id[j], before[j] = row
        pending = []
        if not inserting:
            return
    raise RuntimeError("could not insert or read the alerts of the batch")


def _incidents(batch: Sequence[tuple[IngestItem, datetime]], first: dict[str, int],
               ids: Callable[[], str], incident_of: dict[str, str], opened: set[str]
               ) -> Generator[Query, Any, None]:
    """The open incident of each key (``first``: key -> the item whose route may open
    it) into ``incident_of``, created when missing (their keys into ``opened``)."""
    wanted = list(first)
    for _ in range(ATTEMPTS):
        if not wanted:
            return
        incident_of.update((yield Query("open_incidents", wanted)))
        missing = [k for k in wanted if k not in incident_of]
        if not missing:
            return
        rows = []
        for key in missing:
            item, now = batch[first[key]]
            route = next(r for r in item.routes if r.incident_key == key)
            rows.append(NewIncident(ids(), route, now, item.alert.starts_at))
        made = yield Query("create_incidents", rows)
        incident_of.update(made)
        opened.update(made)
        # another writer opened (or just closed) one: look again
        wanted = [k for k in missing if k not in incident_of]
    if wanted:
        raise RuntimeError("could not find or create the incidents of the batch")


def plan(batch: Sequence[tuple[IngestItem, datetime]], ids: Callable[[], str], *,
         insert_first: bool = True) -> Plan:
    """The outcomes of ``(item, now)`` pairs, decided one after the other in batch order
    (as if ingested one by one), in a constant number of queries. ``insert_first``: try
    inserting new-looking episodes before reading them (cheap where a statement is a
    function call, SQLite); else read every episode first, which answers re-sent
    alerts with one read (PostgreSQL, where a statement is a round trip)."""
    episodes = _episodes(batch)
    alert_id: dict[int, int] = {}
    before: dict[int, str | None] = {}
    yield from _alerts(batch, episodes, alert_id, before, insert_first)
    kinds = [""] * len(batch)
    episode_of = [0] * len(batch)
    resolving: list[int] = []
    for j, members in enumerate(episodes):
        for i in members:
            episode_of[i] = j
        r = _decide(batch, members, before[j], kinds)
        if r is not None:
            resolving.append(r)

    first: dict[str, int] = {}             # key -> the first new item routed to it
    for i, (item, _) in enumerate(batch):
        if kinds[i] == "new":
            for route in item.routes:
                first.setdefault(route.incident_key, i)
    incident_of: dict[str, str] = {}
    opened: set[str] = set()
    if first:
        yield from _incidents(batch, first, ids, incident_of, opened)

    out: list[IngestOutcome | None] = [None] * len(batch)
    links: dict[tuple[str, int], None] = {}
    for i, (item, _) in enumerate(batch):
        if kinds[i] != "new":
            continue
        aid = alert_id[episode_of[i]]
        incident_ids = tuple(incident_of[r.incident_key] for r in item.routes)
        created = tuple(incident_of[r.incident_key] for r in item.routes   # by its opener
                        if r.incident_key in opened and first[r.incident_key] == i)
        links.update(((inc, aid), None) for inc in incident_ids)
        out[i] = IngestOutcome("new", incident_ids, created)
    if links:
        yield Query("link", list(links))

    if resolving:
        rows = [(alert_id[episode_of[i]], batch[i][0].alert.ends_at, batch[i][1])
                for i in resolving]
        linked = yield Query("resolve", rows)
        woken: dict[str, None] = {}
        for i, (aid, _, _) in zip(resolving, rows, strict=True):
            # resolved meanwhile by another writer: a duplicate
            out[i] = IngestOutcome("resolved", linked[aid]) if aid in linked else DUPLICATE
            woken.update((inc, None) for inc in linked.get(aid, ()))
        if woken:
            yield Query("wake", list(woken))
    return [o if o is not None else _plain(kinds[i]) for i, o in enumerate(out)]


def _plain(kind: str) -> IngestOutcome:
    return DUPLICATE if kind == "duplicate" else STALE if kind == "stale" else \
        IngestOutcome(kind)  # type: ignore[arg-type]


def run_sync(ops: Ops, c: Any, steps: Plan) -> list[IngestOutcome]:
    """Drive ``steps`` with synchronous ops (SQLite)."""
    try:
        query = next(steps)
        while True:
            query = steps.send(getattr(ops, query.op)(c, query.args))
    except StopIteration as stop:
        result: list[IngestOutcome] = stop.value
        return result


async def run_async(ops: Ops, c: Any, steps: Plan) -> list[IngestOutcome]:
    """Drive ``steps`` with ops that return awaitables (asyncpg)."""
    try:
        query = next(steps)
        while True:
            pending: Awaitable[Any] = getattr(ops, query.op)(c, query.args)
            query = steps.send(await pending)
    except StopIteration as stop:
        result: list[IngestOutcome] = stop.value
        return result
