"""The Store contract, written against the ``Store`` Protocol only.

Every test takes ``open_store``, a factory parametrized over implementations:
SQLite (a file per test) and PostgreSQL (a real server started by the tests,
``tests/ha/pgserver.py``; a fresh database per test). Re-opening reaches the
same database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ha.pgserver import shared_server

from remediator.model.incident import (
    POLLS_KEPT,
    EvidenceItem,
    IncidentState,
    StepRecord,
    StepStatus,
    TargetRef,
    TimelineEntry,
    VerifyPoll,
)
from remediator.model.records import pause_flag
from remediator.ports.store import (
    ASCII_LOWER,
    AlertRecord,
    ApprovalRecord,
    ChainTimer,
    IngestItem,
    Reservation,
    Routing,
    Store,
    search_hay,
)
from remediator.store.migrations import STEPS
from remediator.store.postgres import PostgresStore
from remediator.store.sqlite import SqliteStore

NOW = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
T0 = datetime(2026, 8, 1, 9, 59, tzinfo=UTC)
TARGET = TargetRef(kind="Deployment", namespace="prod", name="api")

OpenStore = Callable[[], Awaitable[Store]]


def sqlite_factory(tmp_path: Path) -> Callable[[], Store]:
    return lambda: SqliteStore(tmp_path / "contract.db")


def postgres_factory(tmp_path: Path) -> Callable[[], Store]:
    url = shared_server().create_schema("contract")
    return lambda: PostgresStore(url)


FACTORIES = {"sqlite": sqlite_factory, "postgresql": postgres_factory}


@pytest.fixture(params=sorted(FACTORIES))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[OpenStore]:
    """Open (or re-open: same database) a store; all are closed at the end."""
    make = FACTORIES[request.param](tmp_path)
    opened: list[Store] = []

    async def open_() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield open_
    for s in opened:
        with contextlib.suppress(Exception):  # already closed by the test
            await s.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


def firing(fp: str = "aaaaaaaaaaaaaaa1", starts: datetime = T0,
           routes: tuple[Routing, ...] | None = None, key: str = "pb/Deployment/prod/api"
           ) -> IngestItem:
    if routes is None:
        routes = (Routing("pb", key, TARGET),)
    return IngestItem(AlertRecord(fp, starts, None, "firing", {"alertname": "A", "fp": fp},
                                  {}), routes)


def resolved_(fp: str = "aaaaaaaaaaaaaaa1", starts: datetime = T0) -> IngestItem:
    return IngestItem(AlertRecord(fp, starts, starts + timedelta(minutes=5), "resolved",
                                  {"alertname": "A", "fp": fp}, {}), ())


# --- intake ----------------------------------------------------------------------------

async def test_ingest_is_idempotent_per_episode(store: Store) -> None:
    [first] = await store.ingest([firing()], NOW)
    assert first.outcome == "new"
    assert len(first.created) == 1
    assert first.incident_ids == first.created
    [again] = await store.ingest([firing()], NOW)
    assert again.outcome == "duplicate"
    assert again.created == ()
    # within one batch too
    a, b = await store.ingest([firing("bbbbbbbbbbbbbbb2"), firing("bbbbbbbbbbbbbbb2")], NOW)
    assert (a.outcome, b.outcome) == ("new", "duplicate")
    assert len(await store.list_alerts()) == 2


async def test_resolution_and_stale_redelivery(store: Store) -> None:
    [new] = await store.ingest([firing()], NOW)
    inc = new.incident_ids[0]
    assert await store.firing_alert_count(inc) == 1
    [res] = await store.ingest([resolved_()], NOW)
    assert res.outcome == "resolved"
    assert res.incident_ids == (inc,)
    assert await store.firing_alert_count(inc) == 0
    assert (await store.ingest([resolved_()], NOW))[0].outcome == "duplicate"
    assert (await store.ingest([firing()], NOW))[0].outcome == "stale"
    # a resolved alert never seen firing is recorded, opens nothing
    [unknown] = await store.ingest([resolved_("ccccccccccccccc3")], NOW)
    assert unknown.outcome == "resolved"
    assert unknown.incident_ids == ()


async def test_one_open_incident_per_key_and_new_episodes_attach(store: Store) -> None:
    [a] = await store.ingest([firing()], NOW)
    [b] = await store.ingest([firing(starts=T0 + timedelta(minutes=3))], NOW)
    [c] = await store.ingest([firing("ddddddddddddddd4")], NOW)
    assert b.outcome == "new"
    assert a.incident_ids == b.incident_ids == c.incident_ids
    assert b.created == ()
    view = await store.get_incident(a.incident_ids[0])
    assert view is not None
    assert len(view.alerts) == 3
    # escalated is still open for attaching; recovered is closed
    await store.set_state(a.incident_ids[0], IncidentState.ESCALATED, NOW)
    [d] = await store.ingest([firing("eeeeeeeeeeeeeee5")], NOW)
    assert d.incident_ids == a.incident_ids
    await store.set_state(a.incident_ids[0], IncidentState.RECOVERED, NOW)
    [e] = await store.ingest([firing("fffffffffffffff6")], NOW)
    assert e.created
    assert e.incident_ids != a.incident_ids


async def test_concurrent_ingests_for_one_key_make_one_incident(store: Store) -> None:
    outcomes = await asyncio.gather(*(store.ingest([firing(f"{i:016x}")], NOW)
                                      for i in range(30)))
    ids = {o[0].incident_ids[0] for o in outcomes}
    assert len(ids) == 1
    assert sum(len(o[0].created) for o in outcomes) == 1


async def test_webhooks_committed_together_are_decided_in_order_and_fail_alone(
        store: Store) -> None:
    """Webhooks that arrive together share a group commit (SQLite) or one bulk plan
    (PostgreSQL): each is still decided after the ones before it, and one that cannot be
    written (here labels that are not JSON) fails alone, the others committed."""
    bad = IngestItem(AlertRecord("eeeeeeeeeeeeeee5", T0, None, "firing",
                                 {"alertname": object()}, {}),  # type: ignore[dict-item]
                     (Routing("pb", "pb/bad", TARGET),))
    new, res, err, stale, other = await asyncio.gather(
        store.ingest([firing()], NOW), store.ingest([resolved_()], NOW),
        store.ingest([bad], NOW), store.ingest([firing()], NOW),
        store.ingest([firing("bbbbbbbbbbbbbbb2")], NOW), return_exceptions=True)
    assert isinstance(err, Exception)
    assert not isinstance(new, BaseException)
    assert not isinstance(res, BaseException)
    assert not isinstance(stale, BaseException)
    assert not isinstance(other, BaseException)
    assert new[0].outcome == "new"
    assert new[0].created == new[0].incident_ids
    assert (res[0].outcome, res[0].incident_ids) == ("resolved", new[0].incident_ids)
    assert stale[0].outcome == "stale"
    # the incident is still open (its humans close it): the next alert of its key joins it
    assert (other[0].outcome, other[0].incident_ids, other[0].created) == (
        "new", new[0].incident_ids, ())
    assert sorted(a["fingerprint"] for a in await store.list_alerts()) == [
        "aaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbb2"]
    assert [i.key for i in await store.list_incidents()] == ["pb/Deployment/prod/api"]


async def test_a_write_between_two_webhooks_stays_between_them(tmp_path: Path) -> None:
    """SQLite merges neighbouring webhooks of a group commit into one plan, never across
    another write: an incident closed between two webhooks is closed for the second."""
    store = SqliteStore(tmp_path / "order.db")
    await store.open()
    try:
        [first] = await store.ingest([firing()], NOW)
        incident = first.incident_ids[0]
        joined, _, after = await asyncio.gather(
            store.ingest([firing("bbbbbbbbbbbbbbb2")], NOW),
            store.set_state(incident, IncidentState.RECOVERED, NOW),
            store.ingest([firing("ccccccccccccccc3")], NOW))
        assert joined[0].incident_ids == (incident,)
        assert after[0].created
        assert after[0].incident_ids != (incident,)
    finally:
        await store.close()


async def test_several_routes_and_unmatched(store: Store) -> None:
    routes = (Routing("one", "one/k", TARGET), Routing("two", "two/k", TARGET))
    [out] = await store.ingest([firing(routes=routes)], NOW)
    assert len(set(out.incident_ids)) == 2
    assert len(out.created) == 2
    [un] = await store.ingest([firing("9999999999999999", routes=())], NOW)
    assert un.outcome == "unmatched"
    assert un.incident_ids == ()
    rows = await store.list_alerts(outcome="unmatched")
    assert [r["fingerprint"] for r in rows] == ["9999999999999999"]
    assert {i.playbook for i in await store.list_incidents()} == {"one", "two"}


async def test_one_batch_is_decided_item_after_item(store: Store) -> None:
    # firing then resolved in one call: new, then resolved with its incident
    new, res, dup, stale = await store.ingest(
        [firing(), resolved_(), resolved_(), firing()], NOW)
    assert new.outcome == "new"
    assert new.created == new.incident_ids
    assert (res.outcome, res.incident_ids) == ("resolved", new.incident_ids)
    assert (dup.outcome, stale.outcome) == ("duplicate", "stale")
    assert await store.firing_alert_count(new.incident_ids[0]) == 0
    # resolved never seen firing, then its firing: recorded, then stale
    unknown, late = await store.ingest([resolved_("ccccccccccccccc3"),
                                        firing("ccccccccccccccc3")], NOW)
    assert (unknown.outcome, unknown.incident_ids) == ("resolved", ())
    assert (late.outcome, late.incident_ids) == ("stale", ())
    # a known firing alert: duplicate, then resolved, then duplicate
    [known] = await store.ingest([firing("ddddddddddddddd4", key="k4")], NOW)
    again, gone, twice = await store.ingest([firing("ddddddddddddddd4", key="k4"),
                                             resolved_("ddddddddddddddd4"),
                                             resolved_("ddddddddddddddd4")], NOW)
    assert (again.outcome, again.incident_ids) == ("duplicate", ())
    assert (gone.outcome, gone.incident_ids) == ("resolved", known.incident_ids)
    assert twice.outcome == "duplicate"
    assert len(await store.list_alerts()) == 3


async def test_the_first_item_routed_to_a_key_opens_its_incident(store: Store) -> None:
    # the opener's episode repeats within the batch; a later new alert shares its key
    later = T0 + timedelta(minutes=1)
    a, a_res, b = await store.ingest([firing(), resolved_(), firing("bbbbbbbbbbbbbbb2",
                                                                   starts=later)], NOW)
    assert (a.outcome, b.outcome, a_res.outcome) == ("new", "new", "resolved")
    assert a.created == a.incident_ids == b.incident_ids == a_res.incident_ids
    assert b.created == ()
    view = await store.get_incident(a.incident_ids[0])
    assert view is not None
    assert view.first_alert_at == T0
    assert [x["fingerprint"] for x in view.alerts] == ["aaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbb2"]


async def test_a_view_holds_the_first_alerts_and_counts_them_all(store: Store) -> None:
    outcomes = await store.ingest([firing(f"{i:016x}", starts=T0 + timedelta(seconds=i))
                                   for i in range(5)], NOW)
    inc = outcomes[0].incident_ids[0]
    await store.ingest([resolved_(f"{i:016x}", starts=T0 + timedelta(seconds=i))
                        for i in (0, 3)], NOW)
    full = await store.get_incident(inc)
    assert full is not None
    assert [a["fingerprint"] for a in full.alerts] == [f"{i:016x}" for i in range(5)]
    assert (full.alert_count, full.firing_count) == (5, 3)
    first = await store.get_incident(inc, alert_limit=2)
    assert first is not None
    assert [a["fingerprint"] for a in first.alerts] == [f"{i:016x}" for i in range(2)]
    assert (first.alert_count, first.firing_count, first.total_alerts) == (5, 3, 5)
    assert first.steps == full.steps
    assert first.timeline == full.timeline
    roomy = await store.get_incident(inc, alert_limit=10)
    assert roomy is not None
    assert (len(roomy.alerts), roomy.alert_count, roomy.firing_count) == (5, 5, 3)
    [listed] = await store.list_incidents()
    assert (len(listed.alerts), listed.alert_count, listed.firing_count) == (5, 5, 3)
    assert await store.firing_fingerprints(inc) == [f"{i:016x}" for i in (1, 2, 4)]


async def test_calls_committed_together_are_decided_in_order(store: Store) -> None:
    # issued at once: one group commit on both stores; still one decision after another
    routes = (Routing("one", "one/k", TARGET), Routing("two", "two/k", TARGET))
    outcomes = await asyncio.gather(
        store.ingest([firing("0000000000000001", routes=routes)], NOW),
        store.ingest([firing("0000000000000001", routes=routes),
                      firing("0000000000000002", routes=routes[1:])], NOW),
        store.ingest([firing("0000000000000003", routes=routes[::-1]),
                      resolved_("0000000000000002")], NOW))
    [a], [a2, b], [c, b_res] = outcomes
    assert a.outcome == "new"
    assert len(set(a.incident_ids)) == 2
    assert a.created == a.incident_ids
    assert (a2.outcome, a2.incident_ids) == ("duplicate", ())
    assert (b.outcome, b.incident_ids, b.created) == ("new", a.incident_ids[1:], ())
    assert (c.outcome, c.incident_ids, c.created) == ("new", a.incident_ids[::-1], ())
    assert (b_res.outcome, b_res.incident_ids) == ("resolved", a.incident_ids[1:])
    view = await store.get_incident(a.incident_ids[1])
    assert view is not None
    assert len(view.alerts) == 3
    assert await store.firing_alert_count(a.incident_ids[1]) == 2


async def test_one_callers_bad_data_fails_only_that_caller(store: Store) -> None:
    bad = IngestItem(AlertRecord("bbbbbbbbbbbbbbb2", T0, None, "firing",
                                 {"alertname": object()},  # type: ignore[dict-item]
                                 {}), (Routing("pb", "pb/Deployment/prod/api", TARGET),))
    good, failed, other = await asyncio.gather(
        store.ingest([firing()], NOW), store.ingest([firing("ccccccccccccccc3"), bad], NOW),
        store.ingest([firing("ddddddddddddddd4")], NOW), return_exceptions=True)
    assert isinstance(failed, Exception)
    assert not isinstance(good, BaseException)
    assert not isinstance(other, BaseException)
    assert good[0].outcome == other[0].outcome == "new"
    assert other[0].incident_ids == good[0].incident_ids
    assert {r["fingerprint"] for r in await store.list_alerts()} == {
        "aaaaaaaaaaaaaaa1", "ddddddddddddddd4"}          # nothing of the failed call
    view = await store.get_incident(good[0].incident_ids[0])
    assert view is not None
    assert len(view.alerts) == 2


# --- incidents and the journal ---------------------------------------------------------

async def test_evidence_is_kept_per_incident_latest_first_capped(store: Store) -> None:
    [a] = await store.ingest([firing()], NOW)
    [b] = await store.ingest([firing("bbbbbbbbbbbbbbb2", key="pb/Deployment/prod/web")], NOW)
    inc, other = a.incident_ids[0], b.incident_ids[0]

    def item(n: int) -> EvidenceItem:
        return EvidenceItem(at=NOW + timedelta(seconds=n), kind="logs", moment="escalation",
                            namespace="prod", pod=f"api-{n}", container="app",
                            text=f"line {n}\npanic: ✗", redacted=n)

    await store.add_evidence(inc, [item(1), item(2)], keep=3)
    await store.add_evidence(other, [item(9)], keep=3)
    await store.add_evidence(inc, [item(3), item(4)], keep=3)
    kept = await store.list_evidence(inc)
    assert [e.pod for e in kept] == ["api-2", "api-3", "api-4"]     # the latest 3, in order
    assert kept[0] == item(2)                                       # all fields round-trip
    assert [e.pod for e in await store.list_evidence(other)] == ["api-9"]
    assert await store.list_evidence("nope") == []
    await store.add_evidence(inc, [], keep=1)
    assert [e.pod for e in await store.list_evidence(inc)] == ["api-4"]


async def test_journal_steps_timeline_context(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.incident_ids[0]
    rec = StepRecord(index=0, name="restart", action="kubernetes.restart")
    await store.save_step(inc, "ladder", rec, NOW)
    rec.status, rec.intent = StepStatus.INTENT, {"action": "x", "mutates": True}
    await store.save_step(inc, "ladder", rec, NOW + timedelta(seconds=1))
    rec.status = StepStatus.APPLIED
    await store.save_step(inc, "ladder", rec, NOW + timedelta(seconds=2))
    esc = StepRecord(index=0, name="escalate 1", action="escalate:http.post")
    await store.save_step(inc, "escalate", esc, NOW)
    await store.add_timeline(inc, TimelineEntry(at=NOW, kind="step", message="one"))
    await store.add_timeline(inc, TimelineEntry(at=NOW, kind="step", message="two",
                                                data={"k": 1}))
    await store.merge_context(inc, {"a": 1}, NOW)
    await store.merge_context(inc, {"b": 2}, NOW)
    view = await store.get_incident(inc)
    assert view is not None
    assert [(s.action, s.status) for s in view.steps] == [
        ("kubernetes.restart", StepStatus.APPLIED), ("escalate:http.post", StepStatus.PENDING)]
    assert [e.message for e in view.timeline] == ["one", "two"]
    assert view.timeline[1].data == {"k": 1}
    assert view.context == {"a": 1, "b": 2}
    # acted (an intent was journaled) → counted by runs_since and the acted-only cooldown
    assert await store.runs_since(view.key, NOW - timedelta(hours=1)) == 1
    assert await store.runs_since(view.key, NOW + timedelta(hours=1)) == 0
    assert await store.last_closed_at(view.key, acted_only=True) is None
    await store.set_state(inc, IncidentState.RECOVERED, NOW + timedelta(minutes=1),
                          summary="done")
    assert await store.last_closed_at(view.key, acted_only=True) == NOW + timedelta(minutes=1)
    assert inc not in await store.active_incident_ids()
    closed = await store.get_incident(inc)
    assert closed is not None
    assert closed.summary == "done"
    assert closed.closed_at == NOW + timedelta(minutes=1)


def poll(n: int) -> VerifyPoll:
    return VerifyPoll(at=NOW + timedelta(seconds=5 * n), verdict="not_met", text=f"poll {n}")


async def test_polls_are_journaled_one_by_one_first_and_latest_kept(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.created[0]
    rec = StepRecord(index=0, name="restart", action="kubernetes.restart",
                     status=StepStatus.VERIFYING, verify_started_at=NOW)
    await store.save_step(inc, "ladder", rec, NOW)
    for n in range(1, 46):
        rec.add_poll(poll(n))
        await store.journal_poll(inc, NOW + timedelta(seconds=5 * n), phase="ladder", step=0,
                                 number=rec.poll_count, poll=poll(n))
    view = await store.get_incident(inc)
    assert view is not None
    [got] = view.steps
    assert got.poll_count == 45
    assert [p.text for p in got.polls] == ["poll 1"] + [f"poll {n}" for n in range(17, 46)]
    assert len(got.polls) == POLLS_KEPT
    assert got.polls == rec.polls                       # as add_poll keeps POLLS_KEPT
    assert view.updated_at == NOW + timedelta(seconds=5 * 45)
    # the step's record is journaled without its polls: saving it again adds none
    rec.status = StepStatus.FAILED
    await store.save_step(inc, "ladder", rec, NOW)
    view = await store.get_incident(inc)
    assert view is not None
    assert view.steps == [rec]
    # a list shows the step's name and status: no polls
    assert (await store.last_steps([inc]))[inc].polls == []
    # the polls of a ladder set aside stay with it; the new ladder's start at 1
    await store.set_state(inc, IncidentState.ESCALATED, NOW)
    assert await store.restart_ladder(inc, NOW, TimelineEntry(at=NOW, kind="manual",
                                                              message="retried"))
    await store.save_step(inc, "ladder", StepRecord(index=0, name="restart",
                                                    action="kubernetes.restart"), NOW)
    await store.journal_poll(inc, NOW, phase="ladder", step=0, number=1, poll=poll(1))
    view = await store.get_incident(inc)
    assert view is not None
    assert [(s.poll_count, [p.text for p in s.polls]) for s in view.steps] == [
        (1, ["poll 1"])]


def test_a_poll_takes_the_slot_of_the_one_polls_kept_minus_one_before() -> None:
    from remediator.model.records import poll_slot
    assert [poll_slot(n) for n in (1, 2, 3, POLLS_KEPT, POLLS_KEPT + 1, POLLS_KEPT + 2)] == \
        [1, 2, 3, POLLS_KEPT, 2, 3]
    assert {poll_slot(n) for n in range(17, 46)} == set(range(2, POLLS_KEPT + 1))


async def test_sqlite_keeps_a_verification_in_its_slots(tmp_path: Path) -> None:
    """A poll overwrites the slot of the poll POLLS_KEPT - 1 before it: the table holds
    at most POLLS_KEPT rows a verification, and nothing is deleted."""
    store = SqliteStore(tmp_path / "slots.db")
    await store.open()
    try:
        [out] = await store.ingest([firing()], NOW)
        inc = out.created[0]
        await store.save_step(inc, "ladder", StepRecord(index=0, name="restart",
                                                        action="kubernetes.restart"), NOW)
        for n in range(1, 46):
            await store.journal_poll(inc, NOW, phase="ladder", step=0, number=n, poll=poll(n))
        rows = await store._read(lambda c: c.execute(
            "SELECT slot, n FROM verify_polls ORDER BY n").fetchall())
        assert [tuple(r) for r in rows] == [(1, 1)] + [
            (2 + (n - 2) % (POLLS_KEPT - 1), n) for n in range(17, 46)]
    finally:
        await store.close()


async def test_polls_are_written_without_waiting_and_before_the_store_closes(
        open_store: OpenStore) -> None:
    """journal_poll's write is under way when it returns: polls made one after the
    other without waiting are all written (together), and ``close`` writes those still
    gathered."""
    store = await open_store()
    incidents = []
    for i in range(10):
        [out] = await store.ingest([firing(f"{i:016x}", routes=(
            Routing("pb", f"pb/Deployment/prod/api-{i}", TARGET),))], NOW)
        incidents.append(out.created[0])
        await store.save_step(incidents[-1], "ladder", StepRecord(
            index=0, name="restart", action="kubernetes.restart"), NOW)
    written = [store.journal_poll(inc, NOW, phase="ladder", step=0, number=n, poll=poll(n))
               for n in range(1, 4) for inc in incidents]
    await asyncio.gather(*written)
    for inc in incidents:
        view = await store.get_incident(inc)
        assert view is not None
        assert [p.text for p in view.steps[0].polls] == ["poll 1", "poll 2", "poll 3"]
    for inc in incidents:                               # not awaited: close writes them
        store.journal_poll(inc, NOW, phase="ladder", step=0, number=4, poll=poll(4))
    await store.close()
    again = await open_store()
    for inc in incidents:
        view = await again.get_incident(inc)
        assert view is not None
        assert view.steps[0].poll_count == 4


async def test_journal_is_the_separate_writes_in_one(open_store: OpenStore) -> None:
    """``journal`` leaves an incident exactly as save_step, merge_context, set_state and
    add_timeline called one after the other do (two stores side by side)."""
    views = []
    for combined in (False, True):
        store = await open_store()
        [out] = await store.ingest([firing(f"{int(combined):016x}", key=f"k{combined}")],
                                   NOW)
        inc = out.incident_ids[0]
        assert await store.acquire_target(f"T{combined}", inc) is None
        rec = StepRecord(index=1, name="scale", action="kubernetes.scale",
                         status=StepStatus.INTENT, intent={"action": "x", "mutates": True})
        notes = [TimelineEntry(at=NOW, kind="step", message="one", data={"k": [1]}),
                 TimelineEntry(at=NOW + timedelta(seconds=1), kind="state", message="two")]
        await store.merge_context(inc, {"keep": 1, "over": 1}, NOW)
        later = NOW + timedelta(seconds=5)
        if combined:
            await store.journal(inc, later, step=("ladder", rec), context={"over": 2},
                                state=IncidentState.RESOLVED, summary="gone", timeline=notes)
            await store.journal(inc, later, timeline=notes[:1])
        else:
            await store.save_step(inc, "ladder", rec, later)
            await store.merge_context(inc, {"over": 2}, later)
            await store.set_state(inc, IncidentState.RESOLVED, later, summary="gone")
            for note in [*notes, notes[0]]:
                await store.add_timeline(inc, note)
        view = await store.get_incident(inc)
        assert view is not None
        views.append(view.model_dump(exclude={"id", "key", "alerts"}))
        # a closing state dropped the incident's target lock, as set_state does
        assert await store.acquire_target(f"T{combined}", "other") is None
        assert await store.runs_since(view.key, NOW) == 1           # intent_at was written
    separate, journaled = views
    assert journaled == separate
    assert journaled["context"] == {"keep": 1, "over": 2}
    assert journaled["updated_at"] == NOW + timedelta(seconds=5)
    assert journaled["closed_at"] == NOW + timedelta(seconds=5)
    assert [t["message"] for t in journaled["timeline"]] == ["one", "two", "one"]


async def test_journal_is_all_or_nothing(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.incident_ids[0]
    rec = StepRecord(index=0, name="restart", action="kubernetes.restart",
                     status=StepStatus.INTENT, intent={"action": "x"})
    broken = TimelineEntry.model_construct(at=None, kind="step", message="no time", data={})
    with pytest.raises(Exception, match=r"(?i)not[ -]null"):    # the database's own error
        await store.journal(inc, NOW, step=("ladder", rec), context={"a": 1},
                            state=IncidentState.ESCALATED, summary="s",
                            timeline=[TimelineEntry(at=NOW, kind="step", message="ok"), broken])
    view = await store.get_incident(inc)
    assert view is not None
    assert (view.state, view.steps, view.timeline, view.context, view.summary) == (
        IncidentState.OPEN, [], [], {}, "")
    await store.journal(inc, NOW, state=IncidentState.REMEDIATING)     # the store still works
    assert (await store.get_incident(inc)).state == IncidentState.REMEDIATING  # type: ignore[union-attr]


async def test_active_incidents_include_escalated(store: Store) -> None:
    ids = []
    for n, state in enumerate([IncidentState.OPEN, IncidentState.REMEDIATING,
                               IncidentState.ESCALATED, IncidentState.RESOLVED]):
        [out] = await store.ingest([firing(f"{n:016x}", key=f"k{n}")], NOW)
        ids.append(out.incident_ids[0])
        await store.set_state(ids[-1], state, NOW)
    assert set(await store.active_incident_ids()) == set(ids[:3])
    assert await store.count_open_incidents() == 3
    assert [v.id for v in await store.list_incidents(state="escalated")] == [ids[2]]


async def all_pages(store: Store, limit: int, **filters: Any) -> list[tuple[datetime, str]]:
    """Every row of the incident list, page after page, as (created_at, id)."""
    rows: list[tuple[datetime, str]] = []
    after = None
    while True:
        page, after = await store.incident_page(after=after, limit=limit, **filters)
        assert len(page) <= limit
        rows += [(s.created_at, s.id) for s in page]
        if after is None:
            return rows
        assert after == rows[-1]


async def test_incident_pages_are_newest_first_each_row_once(store: Store) -> None:
    # 25 incidents: three at each instant (ties ordered by id), two playbooks, two
    # alerts on each (one resolved on every third incident)
    for n in range(25):
        pb = "one" if n % 2 else "two"
        routes = (Routing(pb, f"{pb}/k{n}", TARGET),)
        await store.ingest([firing(f"{n:015x}a", routes=routes),
                            firing(f"{n:015x}b", routes=routes)],
                           NOW + timedelta(seconds=n // 3))
        if n % 3 == 0:
            await store.ingest([resolved_(f"{n:015x}b")], NOW + timedelta(minutes=1))
    everything = await all_pages(store, 1000)
    assert len(everything) == 25
    assert everything == sorted(everything, reverse=True)
    for limit in (1, 3, 7, 25, 26):
        assert await all_pages(store, limit) == everything
    ones = await all_pages(store, 4, playbook="one")
    assert len(ones) == 12
    assert ones == [r for r in everything if r[1] in set(dict(map(reversed, ones)))]
    page, after = await store.incident_page(limit=25)
    assert after is None
    [first] = [s for s in page if s.key == "two/k0"]
    assert (first.alert_count, first.firing_count) == (2, 1)
    assert first.playbook == "two"
    assert first.target == TARGET
    assert not hasattr(first, "alerts")
    full = await store.get_incident(first.id)
    assert full is not None
    assert full.model_dump(include=set(type(first).model_fields)) == first.model_dump()


async def test_incident_pages_filter_by_state_and_stay_stable_under_inserts(
        store: Store) -> None:
    ids = []
    for n in range(6):
        [out] = await store.ingest([firing(f"{n:016x}", key=f"k{n}")],
                                   NOW + timedelta(seconds=n))
        ids.append(out.incident_ids[0])
    for incident_id in ids[::2]:
        await store.set_state(incident_id, IncidentState.ESCALATED, NOW)
    escalated = await all_pages(store, 2, state="escalated")
    assert [i for _, i in escalated] == ids[::2][::-1]
    assert await all_pages(store, 2, state="resolved") == []
    assert [i for _, i in await all_pages(store, 1, state="open", playbook="pb")] == \
        ids[1::2][::-1]
    assert await all_pages(store, 5, playbook="nope") == []
    # a page, then newer incidents: the next page goes on where the first ended
    first, after = await store.incident_page(limit=3)
    for n in range(6, 9):
        await store.ingest([firing(f"{n:016x}", key=f"k{n}")], NOW + timedelta(seconds=n))
    rest, after = await store.incident_page(after=after, limit=100)
    assert after is None
    assert [s.id for s in first + rest] == ids[::-1]


async def test_incident_pages_filter_by_namespace_and_text(store: Store) -> None:
    targets = [TARGET, TargetRef(kind="StatefulSet", namespace="db", name="pg", cluster="east"),
               TargetRef(kind="Node", namespace="", name="node-7"), None]
    ids = []
    for n in range(12):
        target = targets[n % 4]
        routes = (Routing(f"pb{n % 3}", f"pb{n % 3}/k{n}", target),)
        [out] = await store.ingest([firing(f"{n:016x}", routes=routes)],
                                   NOW + timedelta(seconds=n))
        ids.append(out.incident_ids[0])
    await store.set_state(ids[5], IncidentState.ESCALATED, NOW, summary="Ärger: OOMKilled")
    rows, _ = await store.incident_page(limit=100)
    assert len(rows) == 12
    for needle in ("prod/api", "DEPLOYMENT PROD", "statefulset db/pg in cluster east",
                   "node node-7", "ESCALATED", "oomkilled", "Ärger", "ärger", "pb2/k",
                   ids[7][-6:].upper(), "/k1 ", "no-such-text", "%", "_"):
        expected = [r.id for r in rows if needle.translate(ASCII_LOWER) in search_hay(r)]
        found = [i for _, i in await all_pages(store, 2, text=needle)]
        assert found == expected, needle
    assert [i for _, i in await all_pages(store, 100, text="ärger")] == []   # ASCII only
    assert [i for _, i in await all_pages(store, 100, text="Ärger")] == [ids[5]]
    db = [i for _, i in await all_pages(store, 1, namespace="db")]
    assert db == [ids[n] for n in (9, 5, 1)]
    assert [i for _, i in await all_pages(store, 2, namespace="db", text="east",
                                          state="escalated")] == [ids[5]]
    assert await all_pages(store, 2, namespace="nope") == []


async def test_data_survives_reopening(open_store: OpenStore) -> None:
    first = await open_store()
    [out] = await first.ingest([firing()], NOW)
    await first.set_flag("paused", "{}")
    await first.close()
    second = await open_store()
    assert (await second.ingest([firing()], NOW))[0].outcome == "duplicate"
    assert await second.active_incident_ids() == list(out.incident_ids)
    assert await second.get_flag("paused") == "{}"


# --- leases (several replicas) ---------------------------------------------------------

async def test_claim_is_exclusive_until_the_lease_expires(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.incident_ids[0]
    assert await store.claim(inc, "a", NOW, 5)
    assert not await store.claim(inc, "b", NOW + timedelta(seconds=1), 5)
    assert await store.claim(inc, "a", NOW + timedelta(seconds=4), 5)      # renewal
    assert not await store.claim(inc, "b", NOW + timedelta(seconds=8), 5)
    assert await store.claim(inc, "b", NOW + timedelta(seconds=10), 5)     # expired: taken over
    assert not await store.claim(inc, "a", NOW + timedelta(seconds=10), 5)
    await store.release(inc, "a")                                           # not a's: no-op
    assert not await store.claim(inc, "c", NOW + timedelta(seconds=11), 5)
    await store.release(inc, "b")
    assert await store.claim(inc, "c", NOW + timedelta(seconds=11), 5)
    await store.release_all()
    assert await store.claim(inc, "d", NOW + timedelta(seconds=11), 5)
    await store.set_state(inc, IncidentState.RECOVERED, NOW)
    await store.release(inc, "d")
    assert not await store.claim(inc, "d", NOW + timedelta(seconds=12), 5)  # closed


async def test_leases_are_renewed_and_released_together(store: Store) -> None:
    """One write renews (or releases) every lease a replica holds; an id it no longer
    holds is left out of the answer and keeps its holder's lease."""
    ids = []
    for n in range(3):
        [out] = await store.ingest([firing(f"{n:016x}", key=f"k{n}")], NOW)
        ids.append(out.incident_ids[0])
    a, b, c = ids
    assert await store.claim(a, "r1", NOW, 5)
    assert await store.claim(b, "r1", NOW, 5)
    assert await store.claim(c, "r2", NOW, 5)
    later = NOW + timedelta(seconds=4)
    assert await store.renew_leases("r1", [a, b, c, "nope"], later, 5) == {a, b}
    assert await store.renew_leases("r1", [], later, 5) == set()
    # renewed to later + 5: still r1's at +8, when the first lease would have run out
    assert not await store.claim(a, "r2", NOW + timedelta(seconds=8), 5)
    assert not await store.claim(c, "r1", NOW + timedelta(seconds=4), 5)     # r2's, unrenewed
    assert await store.claim(c, "r1", NOW + timedelta(seconds=6), 5)         # … expired
    assert await store.renew_leases("r2", [c], later, 5) == set()            # taken over
    await store.release_leases("r1", [a, c])
    assert await store.claim(a, "r3", later, 5)                              # released
    assert await store.claim(c, "r3", later, 5)
    assert not await store.claim(b, "r3", later, 5)                          # not in the list
    await store.release_leases("r1", [a])                                    # r3's now: kept
    assert await store.renew_leases("r3", [a, c], later, 5) == {a, c}
    many = [f"x{n}" for n in range(1200)] + [b]                              # over a chunk
    assert await store.renew_leases("r1", many, later, 5) == {b}
    await store.set_state(b, IncidentState.RECOVERED, later)                 # closed: as claim,
    assert await store.renew_leases("r1", [b], later, 5) == set()            # not renewed


async def test_sink_delivery_lease(store: Store) -> None:
    assert await store.claim_sink("slack", "a", NOW, 5)
    if store.single_process:        # one process delivers everything: always granted
        assert await store.claim_sink("slack", "b", NOW, 5)
        return
    assert not await store.claim_sink("slack", "b", NOW + timedelta(seconds=1), 5)
    assert await store.claim_sink("jira", "b", NOW, 5)                      # per sink
    assert await store.claim_sink("slack", "a", NOW + timedelta(seconds=4), 5)   # renewal
    assert not await store.claim_sink("slack", "b", NOW + timedelta(seconds=8), 5)
    assert await store.claim_sink("slack", "b", NOW + timedelta(seconds=10), 5)  # expired
    won = await asyncio.gather(*(store.claim_sink("pager", f"r{i}", NOW, 5) for i in range(10)))
    assert won.count(True) == 1


async def test_concurrent_claims_of_one_incident_have_one_winner(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.incident_ids[0]
    won = await asyncio.gather(*(store.claim(inc, f"r{i}", NOW, 5) for i in range(20)))
    assert won.count(True) == 1


async def test_claim_batch_never_hands_out_an_incident_twice(store: Store) -> None:
    for n in range(20):
        await store.ingest([firing(f"{n:016x}", key=f"k{n}")], NOW)
    [done] = await store.ingest([firing("f" * 16, key="closed")], NOW)
    await store.set_state(done.incident_ids[0], IncidentState.RESOLVED, NOW)
    active = await store.active_incident_ids()
    assert await store.claim(active[0], "holder", NOW, 30)
    batches = await asyncio.gather(*(store.claim_batch(f"r{i}", NOW, 5, 4) for i in range(8)))
    got = [i for b in batches for i in b]
    assert len(got) == len(set(got)) == 19                  # all but the held one
    assert active[0] not in got
    assert done.incident_ids[0] not in got
    assert await store.claim_batch("late", NOW + timedelta(seconds=1), 5, 100) == []
    # leases expire: everything not renewed is free again (the holder's too, after 30s)
    again = await store.claim_batch("late", NOW + timedelta(seconds=6), 5, 100)
    assert set(again) == set(got)
    await store.release(again[0], "late")
    assert await store.claim_batch("x", NOW + timedelta(seconds=7), 5, 100) == [again[0]]


async def test_claim_batch_skips_escalated_incidents_until_their_alerts_resolve(
        store: Store) -> None:
    # Humans have an escalated incident: no replica needs it until it can be closed.
    [out] = await store.ingest([firing("e" * 16, key="esc")], NOW)
    inc = out.incident_ids[0]
    await store.set_state(inc, IncidentState.ESCALATED, NOW)
    assert await store.claim_batch("r", NOW, 5, 10) == []
    await store.ingest([resolved_("e" * 16)], NOW)
    assert await store.claim_batch("r", NOW, 5, 10) == [inc]


async def test_two_instances_on_one_store_make_one_incident(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    outcomes = await asyncio.gather(*(s.ingest([firing(f"{i:016x}"), firing(f"{i:016x}")], NOW)
                                      for i in range(20) for s in (a, b)))
    ids = {i for pair in outcomes for o in pair for i in o.incident_ids}
    assert len(ids) == 1
    assert sum(len(o.created) for pair in outcomes for o in pair) == 1
    kinds = [o.outcome for pair in outcomes for o in pair]
    assert kinds.count("new") == 20
    assert kinds.count("duplicate") == 60
    assert len(await b.list_alerts()) == 20


# --- guards ----------------------------------------------------------------------------

async def test_flags(store: Store) -> None:
    assert await store.get_flag("paused") is None
    await store.set_flag("paused", "a")
    await store.set_flag("paused", "b")
    assert await store.get_flag("paused") == "b"
    await store.set_flag("paused", None)
    assert await store.get_flag("paused") is None


async def test_reserve_action_is_atomic_under_concurrency(store: Store) -> None:
    since = NOW - timedelta(minutes=10)
    verdicts = await asyncio.gather(*(store.reserve_action(f"inc-{i}", "s", NOW, since, 5,
                                                           '{"kind": "budget"}')
                                      for i in range(50)))
    assert verdicts.count("ok") == 5
    assert verdicts.count("tripped") == 1
    assert verdicts.count("paused") == 44
    assert {type(v) for v in verdicts} == {Reservation}
    assert await store.mutations_since(since) == 5
    # the default cluster's storm pauses the default cluster, not every cluster
    assert await store.get_flag("paused:") == '{"kind": "budget"}'
    assert await store.get_flag("paused") is None


async def test_each_cluster_has_its_own_budget_and_pause(store: Store) -> None:
    since = NOW - timedelta(minutes=10)
    for _ in range(2):
        assert await store.reserve_action("a", "s", NOW, since, 2, "tripA", "a") == "ok"
    assert await store.reserve_action("a", "s", NOW, since, 2, "tripA", "a") == "tripped"
    assert await store.get_flag(pause_flag("a")) == "tripA"
    # cluster a's storm neither spends nor pauses cluster b, nor the default cluster
    for cluster in ("b", ""):
        assert await store.reserve_action("i", "s", NOW, since, 2, "p", cluster) == "ok"
        assert await store.mutations_since(since, cluster) == 1
    assert await store.mutations_since(since, "a") == 2
    assert await store.reserve_action("a", "s", NOW, since, 2, "p", "a") == "paused"
    # a cluster's manual pause stops only it; the global flag stops every cluster
    await store.set_flag(pause_flag("b"), "manual")
    assert await store.reserve_action("i", "s", NOW, since, 2, "p", "b") == "paused"
    assert await store.reserve_action("i", "s", NOW, since, 2, "p", "") == "ok"
    await store.set_flag("paused", "all")
    assert await store.reserve_action("i", "s", NOW, since, 5, "p", "") == "paused"
    assert await store.mutations_since(since, "") == 2


async def test_reserve_action_window_slides(store: Store) -> None:
    old = NOW - timedelta(hours=1)
    for _ in range(3):
        assert await store.reserve_action("i", "s", old, old, 3, "p") == "ok"
    assert await store.reserve_action("i", "s", NOW, NOW - timedelta(minutes=10), 3,
                                      "p") == "ok"
    assert await store.mutations_since(NOW - timedelta(minutes=10)) == 1
    await store.set_flag("paused", "manual")
    assert await store.reserve_action("i", "s", NOW, NOW, 3, "p") == "paused"
    assert await store.get_flag("paused") == "manual"


async def test_target_lock(store: Store) -> None:
    results = await asyncio.gather(*(store.acquire_target("T", f"inc-{i}") for i in range(10)))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    holder = f"inc-{winners[0]}"
    assert all(r == holder for r in results if r is not None)
    assert await store.acquire_target("T", holder) is None          # re-entrant
    await store.release_target("T", "someone-else")
    assert await store.acquire_target("T", "x") == holder
    await store.release_target("T", holder)
    assert await store.acquire_target("T", "x") is None


async def test_closing_an_incident_releases_its_lock(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.incident_ids[0]
    assert await store.acquire_target(str(TARGET), inc) is None
    await store.set_state(inc, IncidentState.ESCALATED, NOW)
    assert await store.acquire_target(str(TARGET), "other") is None


# --- outbox ----------------------------------------------------------------------------

async def test_outbox_and_deliveries(store: Store) -> None:
    ids = [await store.append_event("inc-1", f"e{n}", NOW) for n in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [p for _, _, p in await store.undelivered_events("slack", 10)] == ["e0", "e1", "e2"]
    await store.mark_delivered("slack", ids[0])
    await store.mark_delivered("slack", ids[0])                     # idempotent
    assert [e for e, _, _ in await store.undelivered_events("slack", 10)] == ids[1:]
    assert [e for e, _, _ in await store.undelivered_events("slack", 1)] == ids[1:2]
    assert len(await store.undelivered_events("jira", 10)) == 3     # per sink


async def test_sink_state(store: Store) -> None:
    assert await store.sink_get("inc-1", "slack:ts") is None
    await store.sink_set("inc-1", "slack:ts", "1")
    await store.sink_set("inc-1", "slack:ts", "2")
    assert await store.sink_get("inc-1", "slack:ts") == "2"
    assert await store.sink_get("inc-2", "slack:ts") is None


# --- approvals -------------------------------------------------------------------------

async def test_approvals_are_single_use(store: Store) -> None:
    rec = ApprovalRecord(id="apr-1", incident_id="inc-1", step_index=2, requested_at=NOW,
                         expires_at=NOW + timedelta(minutes=15), approvers=("U1",))
    await store.create_approval(rec)
    await store.create_approval(rec)                                 # idempotent
    pending = await store.pending_approval("inc-1", 2)
    assert pending == rec
    assert await store.pending_approval("inc-1", 1) is None
    results = await asyncio.gather(
        store.decide_approval("apr-1", "approved", "alice", NOW),
        store.decide_approval("apr-1", "rejected", "bob", NOW),
        store.decide_approval("apr-1", "expired", "remediator", NOW))
    assert sorted(results) == [False, False, True]
    decided = await store.get_approval("apr-1")
    assert decided is not None
    assert decided.decision in ("approved", "rejected", "expired")
    assert decided.decided_at == NOW
    assert not await store.decide_approval("apr-1", "approved", "carol", NOW)
    assert await store.get_approval("nope") is None


async def test_approvals_and_firing_counts_are_read_many_at_once(store: Store) -> None:
    recs = [ApprovalRecord(id=f"apr-{n}", incident_id=f"inc-{n}", step_index=0,
                           requested_at=NOW, expires_at=NOW + timedelta(minutes=15),
                           approvers=("U1",)) for n in range(3)]
    for rec in recs:
        await store.create_approval(rec)
    await store.decide_approval("apr-1", "rejected", "bob", NOW)
    got = await store.get_approvals(["apr-0", "apr-1", "nope"] + [f"x{n}" for n in range(600)])
    assert set(got) == {"apr-0", "apr-1"}
    assert got["apr-0"] == recs[0]
    assert got["apr-1"].decision == "rejected"
    assert await store.get_approvals([]) == {}

    one, _ = await store.ingest([firing("a" * 16, key="k1"), firing("b" * 16, key="k1")], NOW)
    [two] = await store.ingest([firing("c" * 16, key="k2")], NOW)
    first, second = one.incident_ids[0], two.incident_ids[0]
    await store.ingest([resolved_("c" * 16)], NOW)
    counts = await store.firing_alert_counts([first, second, "nope"])
    assert counts == {first: 2, second: 0, "nope": 0}
    assert counts[first] == await store.firing_alert_count(first)
    assert await store.firing_alert_counts([]) == {}


# --- SQLite: the write lock held by another process ----------------------------------

async def test_sqlite_waits_for_a_lock_held_elsewhere_off_the_event_loop(
        tmp_path: Path) -> None:
    """If another process holds the write lock, the batch waits for it on the writer
    thread (busy_timeout) and the event loop keeps serving meanwhile."""
    import sqlite3

    store = SqliteStore(tmp_path / "locked.db")
    await store.open()
    try:
        other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")               # another process's write lock
        ingest = asyncio.ensure_future(store.ingest([firing()], NOW))
        ticks = 0
        for _ in range(20):                            # the loop is not blocked meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert not ingest.done()
        other.execute("COMMIT")
        other.close()
        [out] = await asyncio.wait_for(ingest, 10)
        assert ticks == 20
        assert out.outcome == "new"
        [again] = await store.ingest([firing()], NOW)  # and back on the fast path
        assert again.outcome == "duplicate"
    finally:
        await store.close()


async def test_sqlite_checkpoints_the_wal_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits do not run SQLite's automatic checkpoint below WAL_RESTART_PAGES (its copy
    and fsync would delay every caller of that batch); a background task does it."""
    from remediator.store import sqlite_base as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.05)
    store = SqliteStore(tmp_path / "wal.db")
    await store.open()
    try:
        await asyncio.sleep(0.1)                      # the schema is checkpointed too
        before = (tmp_path / "wal.db").stat().st_size
        await store.ingest([firing(f"{i:016x}") for i in range(300)], NOW)
        assert (tmp_path / "wal.db").stat().st_size == before     # only in the WAL yet
        for _ in range(100):
            await asyncio.sleep(0.02)
            if (tmp_path / "wal.db").stat().st_size > before:
                break
        assert (tmp_path / "wal.db").stat().st_size > before
    finally:
        await store.close()


async def test_sqlite_reader_keeps_a_small_page_cache(tmp_path: Path) -> None:
    """The reader's cache is dropped whenever another connection commits (WAL): it gets
    READER_CACHE_KIB, the writer SQLite's default (its cache survives its own commits)."""
    from remediator.store.sqlite_base import READER_CACHE_KIB

    store = SqliteStore(tmp_path / "cache.db")
    await store.open()
    try:
        cache = "PRAGMA cache_size"
        assert await store._read(lambda c: c.execute(cache).fetchone()[0]) == -READER_CACHE_KIB
        assert await store._write(lambda c: c.execute(cache).fetchone()[0]) == -2000
    finally:
        await store.close()


async def test_sqlite_wal_stays_bounded_under_sustained_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With commits that never pause long enough for the background checkpoint (here: it
    never runs), the commit that takes the WAL past WAL_RESTART_PAGES checkpoints it, the
    WAL starts over and its file is cut back to WAL_SIZE_LIMIT."""
    from remediator.store import sqlite_base as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 3600)
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_PAGES", 50)
    monkeypatch.setattr(sqlite_store, "WAL_SIZE_LIMIT", 100 * 4096)
    store = SqliteStore(tmp_path / "bounded.db")
    await store.open()
    wal = tmp_path / "bounded.db-wal"
    try:
        sizes = []
        for batch in range(40):      # ~12 pages per batch: 480 pages in all
            await store.ingest([firing(f"{batch:08x}{i:08x}") for i in range(30)], NOW)
            sizes.append(wal.stat().st_size)
        assert max(sizes) < 110 * 4096, sizes
        assert len(await store.list_alerts(limit=10_000)) == 1200
    finally:
        await store.close()


async def test_sqlite_answers_redeliveries_from_what_it_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook whose every alert is an episode this store committed, in the same or a
    later state, is answered without a transaction; anything else is written."""
    from remediator.store import sqlite as sqlite_store

    store = SqliteStore(tmp_path / "redeliver.db")
    await store.open()
    real_write = store._write

    async def no_write(fn: Any) -> Any:
        raise AssertionError("a transaction was started")
    try:
        a, b = firing("aaaaaaaaaaaaaaa1"), firing("bbbbbbbbbbbbbbb2")
        first = await store.ingest([a, b], NOW)
        assert [o.outcome for o in first] == ["new", "new"]
        monkeypatch.setattr(store, "_write", no_write)
        again = await store.ingest([a, b], NOW)
        assert [(o.outcome, o.incident_ids) for o in again] == [("duplicate", ())] * 2
        # a resolution, or an alert never seen, has something to write
        for changes in ([resolved_("aaaaaaaaaaaaaaa1")], [a, firing("ccccccccccccccc3")]):
            with pytest.raises(AssertionError, match="transaction"):
                await store.ingest(changes, NOW)
        monkeypatch.setattr(store, "_write", real_write)
        [res] = await store.ingest([resolved_("aaaaaaaaaaaaaaa1")], NOW)
        assert (res.outcome, res.incident_ids) == ("resolved", first[0].incident_ids)
        monkeypatch.setattr(store, "_write", no_write)
        late, dup, twice = await store.ingest(
            [a, b, resolved_("aaaaaaaaaaaaaaa1")], NOW)
        assert (late.outcome, dup.outcome, twice.outcome) == ("stale", "duplicate",
                                                               "duplicate")
        # bounded: the oldest episodes are forgotten, and then written (and decided) again
        monkeypatch.setattr(store, "_write", real_write)
        monkeypatch.setattr(sqlite_store, "EPISODE_CACHE", 2)
        await store.ingest([firing("ddddddddddddddd4"), firing("eeeeeeeeeeeeeee5")], NOW)
        assert len(store._episodes) == 2
        monkeypatch.setattr(store, "_write", no_write)
        with pytest.raises(AssertionError, match="transaction"):
            await store.ingest([b], NOW)
        monkeypatch.setattr(store, "_write", real_write)
        assert (await store.ingest([b], NOW))[0].outcome == "duplicate"
    finally:
        monkeypatch.setattr(store, "_write", real_write)
        await store.close()


# --- migrations: files and schemas made before schema versions ------------------------

# The SQLite layout of the first releases (before the incident leases), as those
# releases created it; the tables missing here were created on open then, as now.
LEGACY_SQLITE = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL,
    ends_at TEXT, status TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL DEFAULT '', received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, outcome TEXT NOT NULL, UNIQUE (fingerprint, starts_at));
CREATE TABLE incidents (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, playbook TEXT NOT NULL, target TEXT,
    state TEXT NOT NULL, dry_run INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, closed_at TEXT, first_alert_at TEXT,
    context TEXT NOT NULL DEFAULT '{{}}', notify TEXT NOT NULL DEFAULT '{{}}',
    summary TEXT NOT NULL DEFAULT ''{leases});
CREATE UNIQUE INDEX incidents_open_key ON incidents(key)
    WHERE state IN ('open', 'remediating', 'awaiting_approval', 'escalated');
CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    alert_id INTEGER NOT NULL REFERENCES alerts(id), PRIMARY KEY (incident_id, alert_id));
INSERT INTO alerts VALUES (1, 'aaaaaaaaaaaaaaa1', '{t0}', NULL, 'firing',
    '{{"alertname": "A"}}', '{{}}', '', '{t0}', '{t0}', 'new');
INSERT INTO incidents(id, key, playbook, target, state, created_at, updated_at,
    first_alert_at) VALUES ('inc-old', 'pb/Deployment/prod/api', 'pb', NULL, 'open',
    '{t0}', '{t0}', '{t0}');
INSERT INTO incident_alerts VALUES ('inc-old', 1);
"""


@pytest.mark.parametrize("leases", [False, True], ids=["first-release", "with-leases"])
async def test_sqlite_upgrades_a_file_made_before_schema_versions(
        tmp_path: Path, leases: bool) -> None:
    import sqlite3

    path = tmp_path / "legacy.db"
    old = sqlite3.connect(path)
    old.executescript(LEGACY_SQLITE.format(
        t0=T0.isoformat(), leases=", owner TEXT, lease_until TEXT" if leases else ""))
    old.close()
    for round_ in range(2):                   # and opening it again changes nothing
        store = SqliteStore(path)
        await store.open()
        try:
            view = await store.get_incident("inc-old")
            assert view is not None
            assert view.alerts[0]["fingerprint"] == "aaaaaaaaaaaaaaa1"
            assert len(view.alerts) == 1 + round_
            assert await store.claim("inc-old", "me", NOW, 30)       # the lease columns
            [again] = await store.ingest([firing()], NOW)
            [more] = await store.ingest([firing(f"bbbbbbbbbbbbbbb{round_}")], NOW)
            assert again.outcome == "duplicate"
            assert more.incident_ids == ("inc-old",)
            await store.set_flag("x", "1")                           # tables made on open
        finally:
            await store.close()
        db = sqlite3.connect(path)
        versions = db.execute("SELECT version, name FROM schema_version "
                              "ORDER BY version").fetchall()
        db.close()
        assert versions == [(1, "initial"), (2, "incident_leases"), (3, "sink_leases"),
                            (4, "retention"), (5, "incident_pages"), (6, "chain_timers"),
                            (7, "evidence"), (8, "budget_clusters"), (9, "verify_polls"),
                            (10, "poll_slots")]
        assert versions == [(s.version, s.name) for s in STEPS]


@pytest.mark.parametrize("old_version", [1, 2])
async def test_postgres_adopts_a_schema_made_before_schema_versions(old_version: int) -> None:
    """Schemas of the first releases recorded their own ``schema_migrations`` (1: the
    tables and incident leases, 2: sink leases); they are adopted, data kept."""
    import asyncpg  # type: ignore[import-untyped]


    url = shared_server().create_schema("legacy")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(STEPS[0].postgres)
        await conn.execute(STEPS[1].postgres)
        if old_version == 2:
            await conn.execute(STEPS[2].postgres)
        await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                           "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        await conn.executemany("INSERT INTO schema_migrations(version) VALUES ($1)",
                               [(v,) for v in range(1, old_version + 1)])
        await conn.execute(
            "INSERT INTO incidents(id, key, playbook, state, created_at, updated_at) "
            "VALUES ('inc-old', 'pb/Deployment/prod/api', 'pb', 'open', $1, $1)", T0)
    finally:
        await conn.close()
    store = PostgresStore(url)
    await store.open()
    try:
        [new] = await store.ingest([firing()], NOW)
        assert new.incident_ids == ("inc-old",)
        assert await store.claim_sink("slack", "me", NOW, 30)       # sink_leases exists
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
    finally:
        await conn.close()
    assert [r[0] for r in rows] == [s.version for s in STEPS]


# --- PostgreSQL: wake-ups across replicas ------------------------------------------------

async def _listener_pid(store: PostgresStore) -> int | None:
    pid = await store._fetchval(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'remediator-listen' "
        "AND datname = current_database()")
    return int(pid) if pid is not None else None


async def test_postgres_wakes_other_replicas(tmp_path: Path) -> None:
    """A second store on the database hears, within a second, of every incident whose
    alert the first one resolved, and of approvals it decided; again after its
    listening connection was cut."""
    url = shared_server().create_schema("wake")
    a, b = PostgresStore(url), PostgresStore(url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    b.watch(heard.put_nowait)                  # before open: listens from open on
    await a.open()
    await b.open()
    try:
        await asyncio.wait_for(b.listening.wait(), 10)
        [one] = await a.ingest([firing()], NOW)
        [two] = await a.ingest([firing("bbbbbbbbbbbbbbb2", key="other")], NOW)
        [res] = await a.ingest([resolved_()], NOW)
        assert res.incident_ids == one.incident_ids
        assert await asyncio.wait_for(heard.get(), 1.0) == one.incident_ids[0]
        await a.ingest([resolved_()], NOW)    # a duplicate resolution: nothing new
        rec = ApprovalRecord(id="apr-1", incident_id=two.incident_ids[0], step_index=0,
                             requested_at=NOW, expires_at=NOW + timedelta(minutes=5),
                             approvers=("U1",))
        await a.create_approval(rec)
        assert await a.decide_approval("apr-1", "approved", "U1", NOW)
        assert await asyncio.wait_for(heard.get(), 1.0) == two.incident_ids[0]
        assert not await a.decide_approval("apr-1", "rejected", "U1", NOW)
        await asyncio.sleep(0.3)
        assert heard.empty()                   # firing alerts and repeats woke nobody

        before = await _listener_pid(a)
        assert before is not None
        await a._execute("SELECT pg_terminate_backend($1)", before)
        for _ in range(100):
            await asyncio.sleep(0.05)
            now_pid = await _listener_pid(a)
            if now_pid not in (None, before) and b.listening.is_set():
                break
        else:
            raise AssertionError("the listening connection was not re-established")
        await a.ingest([resolved_("bbbbbbbbbbbbbbb2")], NOW)
        assert await asyncio.wait_for(heard.get(), 1.0) == two.incident_ids[0]
    finally:
        await a.close()
        await b.close()
    assert await _no_listener(url)


async def _no_listener(url: str) -> bool:
    """True once no listening connection is left (closing the store closed it)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for _ in range(50):
            if not await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'remediator-listen'"):
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await conn.close()


# --- chain timers ----------------------------------------------------------------------

def _timer(inc: str, due: datetime, *, level: int = 0, step: int = 0) -> ChainTimer:
    return ChainTimer(inc, "primary", level, 0, step, due, due)


async def test_chain_timers_claim_advance_and_survive_reopening(open_store: OpenStore) -> None:
    store = await open_store()
    await store.set_timer(_timer("inc-a", NOW))
    await store.set_timer(_timer("inc-b", NOW + timedelta(seconds=60)))
    assert await store.get_timer("inc-none") is None
    assert await store.claim_timers("r1", NOW - timedelta(seconds=1), 30, 10) == []
    [got] = await store.claim_timers("r1", NOW, 30, 10)
    assert got == _timer("inc-a", NOW)
    assert await store.claim_timers("r2", NOW + timedelta(seconds=10), 30, 10) == []  # leased
    nxt = _timer("inc-a", NOW + timedelta(seconds=300), level=1)
    assert not await store.advance_timer(got, "r2", nxt)           # not r2's
    assert await store.advance_timer(got, "r1", nxt)
    assert not await store.advance_timer(got, "r1", nxt)           # moved on already
    assert await store.get_timer("inc-a") == nxt
    # a lease that expired is taken over; the old holder's compare-and-set then fails
    [b] = await store.claim_timers("r1", NOW + timedelta(seconds=60), 30, 10)
    assert b.incident_id == "inc-b"
    [again] = await store.claim_timers("r2", NOW + timedelta(seconds=91), 30, 10)
    assert again == b
    assert not await store.advance_timer(b, "r1", None)
    assert await store.advance_timer(b, "r2", None)                # deleted
    assert await store.get_timer("inc-b") is None
    await store.close()
    store = await open_store()
    assert await store.get_timer("inc-a") == nxt                   # durable
    await store.drop_timer("inc-a")
    assert await store.get_timer("inc-a") is None


async def test_concurrent_timer_claims_never_share_a_timer(store: Store) -> None:
    for i in range(20):
        await store.set_timer(_timer(f"inc-{i:02d}", NOW))
    claimed = await asyncio.gather(*(store.claim_timers(f"r{i}", NOW, 30, 5) for i in range(6)))
    ids = [t.incident_id for batch in claimed for t in batch]
    assert sorted(ids) == [f"inc-{i:02d}" for i in range(20)]       # each exactly once
# --- by hand (the console, the API) and the journal as a stream --------------------------

async def test_restart_ladder_sets_the_old_steps_aside(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.created[0]
    entry = TimelineEntry(at=NOW, kind="manual", message="retried", data={"by": "otto"})
    assert not await store.restart_ladder(inc, NOW, entry)        # open, not escalated
    step = StepRecord(index=0, name="restart", action="kubernetes.rollout_restart",
                      status=StepStatus.FAILED)
    await store.journal(inc, NOW, step=("ladder", step), state=IncidentState.ESCALATED,
                        context={"escalation": "done", "keep": 1})
    await store.save_step(inc, "escalate", StepRecord(index=0, name="page",
                                                      action="escalate:slack.notify"), NOW)
    assert await store.restart_ladder(inc, NOW, entry)
    view = await store.get_incident(inc)
    assert view is not None
    assert view.state == IncidentState.REMEDIATING
    assert view.steps == []
    assert view.context == {"keep": 1}
    assert view.timeline[-1].message == "retried"
    await store.journal(inc, NOW, state=IncidentState.ESCALATED)
    assert await store.restart_ladder(inc, NOW, entry)          # a second retry: @2
    assert await store.last_steps([inc]) == {}


async def test_close_by_hand_only_an_escalated_incident(store: Store) -> None:
    [out] = await store.ingest([firing()], NOW)
    inc = out.created[0]
    entry = TimelineEntry(at=NOW, kind="manual", message="closed by otto", data={})
    assert not await store.close_by_hand(inc, NOW, "closed by otto", entry)
    await store.journal(inc, NOW, state=IncidentState.ESCALATED)
    assert await store.acquire_target("Deployment prod/api", inc) is None
    assert await store.close_by_hand(inc, NOW, "closed by otto", entry)
    view = await store.get_incident(inc)
    assert view is not None
    assert (view.state, view.summary, view.closed_at) == (IncidentState.RESOLVED,
                                                          "closed by otto", NOW)
    assert await store.acquire_target("Deployment prod/api", "other") is None
    assert await store.count_by_state() == {"resolved": 1}


async def test_timeline_after_reads_every_incident_in_id_order(store: Store) -> None:
    assert await store.last_timeline_id() == 0
    outs = await store.ingest([firing("aaaaaaaaaaaaaaa1", key="k1"),
                               firing("aaaaaaaaaaaaaaa2", key="k2")], NOW)
    a, b = outs[0].created[0], outs[1].created[0]
    for n, inc in enumerate((a, b, a)):
        await store.add_timeline(inc, TimelineEntry(at=NOW, kind="step", message=f"m{n}",
                                                    data={"n": n}))
    rows = await store.timeline_after(0, 10)
    assert [(r[1], r[2].message, r[2].data) for r in rows] == [
        (a, "m0", {"n": 0}), (b, "m1", {"n": 1}), (a, "m2", {"n": 2})]
    ids = [r[0] for r in rows]
    assert ids == sorted(ids)
    assert await store.last_timeline_id() == ids[-1]
    assert [r[2].message for r in await store.timeline_after(ids[0], 1)] == ["m1"]
    step = StepRecord(index=1, name="b", action="wait", status=StepStatus.APPLIED)
    await store.save_step(a, "ladder", StepRecord(index=0, name="a", action="wait"), NOW)
    await store.save_step(a, "ladder", step, NOW)
    assert await store.last_steps([a, b]) == {a: step}
    assert await store.count_by_state() == {"open": 2}


async def _store_at_v7_with_a_reservation(backend: str, tmp_path: Path) -> Store:
    """A database migrated to 0007 (before budgets per cluster) holding one reservation
    of the action budget; the store that opens it."""
    at = NOW - timedelta(minutes=1)
    before = [s for s in STEPS if s.version <= 7]
    if backend == "sqlite":
        import sqlite3

        from remediator.store.migrations import statements
        path = tmp_path / "v7.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '')")
        for step in before:
            for stmt in statements(step.sqlite or ""):
                db.execute(stmt)
            db.execute("INSERT INTO schema_version(version, name) VALUES (?, ?)",
                       (step.version, step.name))
        db.execute("INSERT INTO budget(at, incident_id, step) VALUES (?, 'old', 's')",
                   (at.isoformat(),))
        db.commit()
        db.close()
        return SqliteStore(path)
    import asyncpg

    url = shared_server().create_schema("budget_v7")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for step in before:
            if step.postgres:
                await conn.execute(step.postgres)
            await conn.execute("INSERT INTO schema_version(version, name) VALUES ($1, $2)",
                               step.version, step.name)
        await conn.execute("INSERT INTO budget(at, incident_id, step) VALUES ($1, 'old', 's')",
                           at)
    finally:
        await conn.close()
    return PostgresStore(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_reservations_made_before_clusters_count_for_the_default_cluster(
        backend: str, tmp_path: Path) -> None:
    store = await _store_at_v7_with_a_reservation(backend, tmp_path)
    await store.open()
    try:
        since = NOW - timedelta(minutes=10)
        assert await store.mutations_since(since) == 1             # the default cluster's
        assert await store.mutations_since(since, "east") == 0
        assert await store.reserve_action("i", "s", NOW, since, 1, "p") == "tripped"
        assert await store.reserve_action("i", "s", NOW, since, 1, "p", "east") == "ok"
    finally:
        await store.close()


async def _as_version_8_left_it(db: Path | str, record: str, incident_id: str) -> None:
    """Polls on the step record (``record``, a StepRecord with its polls), no table of
    polls, no version 9 or later: as version 8 left a database (``db``: SQLite file, PG
    URL)."""
    if isinstance(db, Path):
        import sqlite3
        con = sqlite3.connect(db)
        con.execute("DROP TABLE verify_polls")
        con.execute("DELETE FROM schema_version WHERE version >= 9")
        con.execute("UPDATE steps SET record=? WHERE incident_id=?", (record, incident_id))
        con.commit()
        con.close()
        return
    import asyncpg
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("DROP TABLE verify_polls")
        await conn.execute("DELETE FROM schema_version WHERE version >= 9")
        await conn.execute("UPDATE steps SET record=$1 WHERE incident_id=$2", record,
                           incident_id)
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_polls_journaled_on_step_records_move_to_their_table(
        backend: str, tmp_path: Path) -> None:
    """A database from before 0009 kept a verification's polls on its step record (the
    first and the latest 29, and ``poll_count``): the migration moves them to their
    table, numbered, and off the record; the incident reads as before and goes on."""
    url = "" if backend == "sqlite" else shared_server().create_schema("polls_v8")
    make = (lambda: SqliteStore(tmp_path / "v8.db")) if backend == "sqlite" else \
        (lambda: PostgresStore(url))
    store = make()
    await store.open()
    [out] = await store.ingest([firing()], NOW)
    inc = out.created[0]
    rec = StepRecord(index=0, name="restart", action="kubernetes.restart",
                     status=StepStatus.VERIFYING, verify_started_at=NOW)
    for n in range(1, 46):
        rec.add_poll(poll(n))
    await store.save_step(inc, "ladder", rec, NOW)
    await store.close()
    await _as_version_8_left_it(url or tmp_path / "v8.db", rec.model_dump_json(), inc)
    store = make()
    await store.open()
    try:
        view = await store.get_incident(inc)
        assert view is not None
        assert view.steps == [rec]
        assert [p.text for p in view.steps[0].polls][:2] == ["poll 1", "poll 17"]
        assert "polls" not in (await store.last_steps([inc]))[inc].model_fields_set
        # the next poll is number 46 and the oldest of the latest ones drops out
        await store.journal_poll(inc, NOW, phase="ladder", step=0, number=46, poll=poll(46))
        view = await store.get_incident(inc)
        assert view is not None
        assert view.steps[0].poll_count == 46
        assert [p.text for p in view.steps[0].polls][:2] == ["poll 1", "poll 18"]
        assert view.steps[0].polls[-1].text == "poll 46"
        assert len(view.steps[0].polls) == POLLS_KEPT
    finally:
        await store.close()
