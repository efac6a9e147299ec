"""Alert intake, written once for every backend, as a sans-IO plan.

``plan(batch, ids)`` is a generator: it decides what a batch of alerts does to the
store (dedup episodes by ``(fingerprint, startsAt)``, resolutions, stale re-sends,
folding each new alert into the one open incident of each of its incident keys,
creating the incidents missing) and *yields* the reads and writes it needs as
``(op, args)`` queries; the caller runs each one and ``send()``s its result back. The
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

from remediator.model.records import AlertRecord, IngestItem, IngestOutcome, Routing

ATTEMPTS = 10     # re-reads after losing a race, before giving the batch up

DUPLICATE = IngestOutcome("duplicate")
STALE = IngestOutcome("stale")
UNMATCHED = IngestOutcome("unmatched")
RECORDED = IngestOutcome("resolved")      # a resolution of an episode never seen firing


# One statement request of the plan: the name of an ``Ops`` method and its argument.
# (Plain tuples: the SQLite intake runs several per webhook, in its writer thread.)
Query = tuple[str, Any]
# An episode's row to insert: (alert, now, status "firing"|"resolved", outcome column).
NewAlert = tuple[AlertRecord, datetime, str, str]


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
Batch = Sequence[tuple[IngestItem, datetime]]


def _episodes(batch: Batch, insert_first: bool
              ) -> tuple[list[NewAlert], list[int], list[int], dict[int, list[int]]]:
    """Episodes by their first item: the rows to insert first and their items, the
    items to read first (see ``_alerts``), and the other items of the episodes that
    have several, by first item (rare: the same alert twice in one batch)."""
    rows: list[NewAlert] = []
    inserting: list[int] = []
    pending: list[int] = []
    seen: dict[tuple[str, datetime], int] = {}
    later: dict[int, list[int]] = {}
    for i, (item, now) in enumerate(batch):
        a = item.alert
        head = seen.setdefault((a.fingerprint, a.starts_at), i)
        if head != i:
            later.setdefault(head, []).append(i)
        elif insert_first and a.status == "firing":
            inserting.append(i)
            rows.append((a, now, "firing", "new" if item.routes else "unmatched"))
        else:
            pending.append(i)
    return rows, inserting, pending, later


def _new_alert(batch: Batch, i: int) -> NewAlert:
    item, now = batch[i]
    if item.alert.status == "resolved":
        return item.alert, now, "resolved", "resolved"
    return item.alert, now, "firing", "new" if item.routes else "unmatched"


def _alerts(batch: Batch, rows: list[NewAlert], inserting: list[int], pending: list[int],
            later: dict[int, list[int]], alert_id: dict[int, int],
            before: dict[int, str | None], out: list[IngestOutcome], new: list[int]
            ) -> Generator[Query, Any, None]:
    """Insert or read each episode's row (episodes by their first item), its id into
    ``alert_id``. ``inserting`` (firing-first episodes, new ones mostly, where
    statements are cheap; ``rows`` are theirs) are inserted first and read only when
    they exist; ``pending`` ones are read first and inserted when absent. An episode
    of one item inserted here is decided by its row (its outcome column: into ``out``
    or ``new``); the others are left to ``_decide`` with their status before the batch
    in ``before`` (None: this batch inserted it)."""
    for _ in range(ATTEMPTS):
        if inserting:
            got = yield "insert_alerts", rows
            for h, aid, row in zip(inserting, got, rows, strict=True):
                if aid is None:
                    pending.append(h)          # it exists (or another writer just made it)
                    continue
                alert_id[h] = aid
                if h in later:
                    before[h] = None
                elif row[3] == "new":
                    new.append(h)
                else:
                    out[h] = UNMATCHED if row[3] == "unmatched" else RECORDED
        if not pending:
            return
        found = yield "read_episodes", [batch[h][0].alert for h in pending]
        inserting = []
        for h, row_ in zip(pending, found, strict=True):
            if row_ is None:
                inserting.append(h)            # absent: its first item inserts it
            else:
                alert_id[h], before[h] = row_
        pending = []
        if not inserting:
            return
        rows = [_new_alert(batch, h) for h in inserting]
    raise RuntimeError("could not insert or read the alerts of the batch")


def _decide(batch: Batch, members: Sequence[int], status: str | None,
            out: list[IngestOutcome], new: list[int], resolving: list[int]) -> None:
    """An episode's items in batch order, given its status before the batch (None:
    absent, and its first item inserted it): the outcome of each into ``out``, or the
    item into ``new`` (a new firing alert with routes) or ``resolving`` (it resolves
    a firing row)."""
    for i in members:
        item = batch[i][0]
        if item.alert.status == "resolved":
            if status is None:
                out[i] = RECORDED
            elif status == "resolved":
                out[i] = DUPLICATE
            else:
                resolving.append(i)
            status = "resolved"
        elif status is None:
            if item.routes:
                new.append(i)
            else:
                out[i] = UNMATCHED
            status = "firing"
        else:
            out[i] = DUPLICATE if status == "firing" else STALE


def _incidents(batch: Batch, first: dict[str, tuple[int, Routing]], ids: Callable[[], str],
               incident_of: dict[str, str], opened: set[str]) -> Generator[Query, Any, None]:
    """The open incident of each key (``first``: key -> the first item routed to it,
    and that route) into ``incident_of``, created when missing (keys into ``opened``)."""
    wanted = list(first)
    for _ in range(ATTEMPTS):
        incident_of.update((yield "open_incidents", wanted))
        missing = [k for k in wanted if k not in incident_of]
        if not missing:
            return
        rows = []
        for key in missing:
            i, route = first[key]
            item, now = batch[i]
            rows.append(NewIncident(ids(), route, now, item.alert.starts_at))
        made = yield "create_incidents", rows
        incident_of.update(made)
        opened.update(made)
        # another writer opened (or just closed) one: look again
        wanted = [k for k in missing if k not in incident_of]
        if not wanted:
            return
    raise RuntimeError("could not find or create the incidents of the batch")


def _attach(batch: Batch, new: list[int], alert_id: dict[int, int], ids: Callable[[], str],
            out: list[IngestOutcome]) -> Generator[Query, Any, None]:
    """Fold each new alert into the open incident of each of its keys (opened by the
    first item routed to the key when there is none); their outcomes into ``out``."""
    first: dict[str, tuple[int, Routing]] = {}
    for i in new:
        for route in batch[i][0].routes:
            first.setdefault(route.incident_key, (i, route))
    incident_of: dict[str, str] = {}
    opened: set[str] = set()
    yield from _incidents(batch, first, ids, incident_of, opened)
    links: list[tuple[str, int]] = []
    for i in new:
        routes = batch[i][0].routes
        if len(routes) == 1 and not opened:   # the common case: attach to the one open
            incident_id = incident_of[routes[0].incident_key]
            links.append((incident_id, alert_id[i]))
            out[i] = IngestOutcome("new", (incident_id,))
            continue
        incident_ids = tuple(incident_of[r.incident_key] for r in routes)
        links.extend(dict.fromkeys((inc, alert_id[i]) for inc in incident_ids))
        out[i] = IngestOutcome("new", incident_ids, tuple(
            incident_of[r.incident_key] for r in routes
            if r.incident_key in opened and first[r.incident_key][0] == i))
    yield "link", links


def _resolve(batch: Batch, resolving: list[int], alert_id: dict[int, int],
             later: dict[int, list[int]], out: list[IngestOutcome]
             ) -> Generator[Query, Any, None]:
    """Resolve the firing rows; the outcomes into ``out`` with the incidents still open,
    which are woken (other processes are told, with the batch's commit)."""
    episode = {i: h for h, members in later.items() for i in members}
    rows = [(alert_id[episode.get(i, i)], batch[i][0].alert.ends_at, batch[i][1])
            for i in resolving]
    linked = yield "resolve", rows
    woken: dict[str, None] = {}
    for i, (aid, _, _) in zip(resolving, rows, strict=True):
        if aid in linked:                     # else resolved meanwhile elsewhere: duplicate
            out[i] = IngestOutcome("resolved", linked[aid])
            woken.update(dict.fromkeys(linked[aid]))
    if woken:
        yield "wake", list(woken)


def plan(batch: Batch, ids: Callable[[], str], *, insert_first: bool = True) -> Plan:
    """The outcomes of ``(item, now)`` pairs, decided one after the other in batch order
    (as if ingested one by one), in a constant number of queries. ``insert_first``: try
    inserting new-looking episodes before reading them (cheap where a statement is a
    function call, SQLite); else read every episode first, which answers re-sent
    alerts with one read (PostgreSQL, where a statement is a round trip)."""
    rows, inserting, pending, later = _episodes(batch, insert_first)
    alert_id: dict[int, int] = {}                 # by the episode's first item
    before: dict[int, str | None] = {}
    out = [DUPLICATE] * len(batch)                # every other outcome is set below
    new: list[int] = []
    resolving: list[int] = []
    yield from _alerts(batch, rows, inserting, pending, later, alert_id, before, out, new)
    for h in before:
        _decide(batch, (h, *later[h]) if h in later else (h,), before[h], out, new, resolving)
    new.sort()                                    # in batch order (rounds append)
    if new:                                       # only a first item can be new
        yield from _attach(batch, new, alert_id, ids, out)
    if resolving:
        yield from _resolve(batch, resolving, alert_id, later, out)
    return out


def run_sync(ops: Ops, c: Any, steps: Plan) -> list[IngestOutcome]:
    """Drive ``steps`` with synchronous ops (SQLite)."""
    try:
        op, args = next(steps)
        while True:
            op, args = steps.send(getattr(ops, op)(c, args))
    except StopIteration as stop:
        result: list[IngestOutcome] = stop.value
        return result


async def run_async(ops: Ops, c: Any, steps: Plan) -> list[IngestOutcome]:
    """Drive ``steps`` with ops that return awaitables (asyncpg)."""
    try:
        op, args = next(steps)
        while True:
            pending: Awaitable[Any] = getattr(ops, op)(c, args)
            op, args = steps.send(await pending)
    except StopIteration as stop:
        result: list[IngestOutcome] = stop.value
        return result
