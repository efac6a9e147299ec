"""GET /api/v1/incidents: cursor pages of incident summaries, newest first, each
incident exactly once even while new ones open between pages; filters; bad cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.model.incident import IncidentState, TargetRef
from remediator.ports.store import AlertRecord, IngestItem, Routing

from .conftest import TOKEN, Served

AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
TARGET = TargetRef(kind="Deployment", namespace="prod", name="api")
SUMMARY_FIELDS = {"id", "key", "playbook", "target", "state", "dry_run", "created_at",
                  "updated_at", "closed_at", "first_alert_at", "alert_count",
                  "firing_count", "summary"}


async def open_incidents(s: Served, first: int, count: int, playbook: str = "pb"
                         ) -> list[str]:
    """``count`` incidents (two at each second: ties are ordered by id) of one alert."""
    ids = []
    for n in range(first, first + count):
        fp = f"{n:016x}"
        item = IngestItem(AlertRecord(fp, T0, None, "firing", {"alertname": "A", "n": fp}, {}),
                          (Routing(playbook, f"{playbook}/{n}", TARGET),))
        [out] = await s.store.ingest([item], T0 + timedelta(seconds=n // 2))
        ids += out.incident_ids
    return ids


async def get(s: Served, query: str, status: int = 200) -> dict[str, Any]:
    resp = await s.client.get(f"/api/v1/incidents{query}", headers=AUTH)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_pages_of_100_through_250_incidents_while_more_open(server: Served) -> None:
    ids = await open_incidents(server, 0, 250)
    seen: list[dict[str, Any]] = []
    body = await get(server, "?limit=100")
    pages = 0
    while True:
        pages += 1
        seen += body["incidents"]
        assert all(set(row) == SUMMARY_FIELDS for row in body["incidents"])
        # newer incidents open between pages: they are not in the pages that follow
        await open_incidents(server, 1000 + 10 * pages, 10)
        if body["next_cursor"] is None:
            break
        assert len(body["incidents"]) == 100
        body = await get(server, f"?limit=100&cursor={body['next_cursor']}")
    assert pages == 3
    assert len(seen) == 250
    assert {row["id"] for row in seen} == set(ids)
    keys = [(row["created_at"], row["id"]) for row in seen]
    assert keys == sorted(keys, reverse=True)
    assert seen[-1]["alert_count"] == seen[-1]["firing_count"] == 1
    # the newest first page now starts with the incidents opened meanwhile
    assert len((await get(server, "?limit=1000"))["incidents"]) == 280


async def test_default_and_largest_page(server: Served) -> None:
    await open_incidents(server, 0, 120)
    body = await get(server, "")
    assert len(body["incidents"]) == 100
    assert body["next_cursor"] is not None
    body = await get(server, "?limit=5000")                 # at most 1000: all 120
    assert len(body["incidents"]) == 120
    assert body["next_cursor"] is None


async def test_filters_by_state_and_playbook(server: Served) -> None:
    mine = await open_incidents(server, 0, 7, playbook="mine")
    theirs = await open_incidents(server, 100, 5, playbook="theirs")
    for incident_id in mine[:3]:
        await server.store.set_state(incident_id, IncidentState.ESCALATED, T0)
    got: list[tuple[str, str]] = []
    body = await get(server, "?playbook=mine&limit=2")
    while True:
        got += [(row["created_at"], row["id"]) for row in body["incidents"]]
        assert {row["playbook"] for row in body["incidents"]} <= {"mine"}
        if body["next_cursor"] is None:
            break
        body = await get(server, f"?playbook=mine&limit=2&cursor={body['next_cursor']}")
    assert [i for _, i in got] == [i for _, i in sorted(got, reverse=True)]
    assert sorted(i for _, i in got) == sorted(mine)
    body = await get(server, "?state=escalated&playbook=mine")
    assert {row["id"] for row in body["incidents"]} == set(mine[:3])
    body = await get(server, "?state=open")
    assert {row["id"] for row in body["incidents"]} == set(mine[3:] + theirs)
    assert (await get(server, "?playbook=nobody")) == {"incidents": [], "next_cursor": None}
    await get(server, "?state=bogus", status=400)
    # a cursor belongs to its list: with other filters it is refused, not reused
    cursor = (await get(server, "?playbook=mine&limit=2"))["next_cursor"]
    refused = await get(server, f"?playbook=theirs&limit=2&cursor={cursor}", status=400)
    assert "belongs to the list with playbook=mine" in refused["error"]
    await get(server, f"?limit=2&cursor={cursor}", status=400)


async def test_a_cursor_not_given_out_is_refused_by_name(server: Served) -> None:
    await open_incidents(server, 0, 3)
    for bad in ("x", "bm90IGpzb24", "e30", "eyJjIjoxLCJpIjoyfQ", "!!", "a" * 600,
                "eyJjIjoiMjAyNi0wOC0wMVQwOTowMDowMCIsImkiOiJ4In0"):   # no time zone
        body = await get(server, f"?cursor={bad}", status=400)
        assert body["error"].startswith(f"cursor {bad[:40]!r} is not one this API gave")
    body = await get(server, "?cursor=", status=400)
    assert "cursor" in body["error"]
