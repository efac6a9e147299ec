"""The console without a browser: login and sessions, CSRF, roles, 404 pages, HTML
escaping of attacker-controlled labels, the pages' content, retry/resolve (console
and JSON API), acknowledge/release from the console, the exposure check, and the event
stream's resume."""

from __future__ import annotations

import asyncio
import json

import pytest

from remediator.app import check_exposure
from remediator.errors import ConfigError
from remediator.model.incident import IncidentState, TimelineEntry
from remediator.server.http import ServerConfig

from .conftest import HOOK, OPERATOR, T0, VIEWER, Make

XSS = "<script>alert(1)</script>"
LABELS = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api"}


async def test_pages_need_a_login_and_a_wrong_token_is_refused(make_console: Make) -> None:
    c = await make_console()
    resp = await c.client.get("/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/login?next=")
    page = await c.client.get("/login")
    csrf = (await page.text()).split('name="csrf" value="')[1].split('"')[0]
    bad = await c.client.post("/login", data={"token": "nope", "csrf": csrf})
    assert bad.status == 401
    assert "not a console user" in await bad.text()
    hook = await c.client.post("/login", data={"token": HOOK, "csrf": csrf})
    assert hook.status == 401                      # a webhook credential cannot read
    no_csrf = await c.client.post("/login", data={"token": VIEWER})
    assert no_csrf.status == 403
    await c.login(VIEWER)
    cookie = c.client.session.cookie_jar.filter_cookies(c.client.make_url("/"))
    assert "remediator_session" in cookie
    resp = await c.client.get("/")
    assert resp.status == 200
    assert "vera" in await resp.text()


async def test_session_cookie_is_httponly_and_strict(make_console: Make) -> None:
    c = await make_console()
    page = await c.client.get("/login")
    csrf = (await page.text()).split('name="csrf" value="')[1].split('"')[0]
    resp = await c.client.post("/login", data={"token": OPERATOR, "csrf": csrf},
                               allow_redirects=False)
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Max-Age=43200" in header
    assert "Secure" not in header                 # plain HTTP, secure_cookie: auto


async def test_csrf_and_roles_on_form_posts(make_console: Make) -> None:
    c = await make_console()
    await c.login(VIEWER)
    csrf = await c.csrf()
    no_token = await c.client.post("/status/pause", data={"reason": "x"})
    assert no_token.status == 403
    assert "CSRF" in await no_token.text()
    wrong = await c.client.post("/status/pause", data={"reason": "x", "csrf": "x" + csrf})
    assert wrong.status == 403
    viewer = await c.client.post("/status/pause", data={"reason": "x", "csrf": csrf})
    assert viewer.status == 403
    assert "may not" in await viewer.text()
    assert await c.engine.guards.paused() is None
    c.client.session.cookie_jar.clear()
    await c.login(OPERATOR)
    csrf = await c.csrf()
    ok = await c.client.post("/status/pause", data={"reason": "deploy freeze", "csrf": csrf},
                             allow_redirects=False)
    assert ok.status == 303
    paused = await c.engine.guards.paused()
    assert paused is not None
    assert paused.by == "otto (console)"
    assert paused.reason == "deploy freeze"
    page = await (await c.client.get("/status")).text()
    assert "PAUSED" in page
    assert "deploy freeze" in page
    ok = await c.client.post("/status/resume", data={"reason": "done", "csrf": csrf},
                             allow_redirects=False)
    assert ok.status == 303
    assert await c.engine.guards.paused() is None
    page = await (await c.client.get("/status")).text()
    assert "Last resumed by <b>otto (console)</b>" in page
    assert ": done</p>" in page


async def test_viewer_cannot_approve(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    await c.login(VIEWER)
    csrf = await c.csrf(f"/incidents/{incident}")
    resp = await c.client.post(f"/incidents/{incident}/approve",
                               data={"csrf": csrf, "approval": "apr-x"})
    assert resp.status == 403
    assert "may not" in await resp.text()


async def test_unknown_incident_is_a_404_page(make_console: Make) -> None:
    c = await make_console()
    await c.login(VIEWER)
    resp = await c.client.get("/incidents/inc-nope")
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "inc-nope" in await resp.text()


async def test_label_values_render_as_text(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident({**LABELS, "evil": XSS, "deployment": XSS})
    await c.login(VIEWER)
    for path in (f"/incidents/{incident}", "/", f"/?q={XSS}"):
        body = await (await c.client.get(path)).text()
        assert XSS not in body, path
    body = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="https://prom/graph?g0.expr=up"' in body
    assert 'href="https://rb/x"' in body


async def test_the_list_filters_counts_and_pages(make_console: Make) -> None:
    c = await make_console()
    ids = [await c.incident(LABELS, n) for n in range(60)]
    await c.store.journal(ids[0], T0, state=IncidentState.ESCALATED)
    await c.login(VIEWER)
    body = await (await c.client.get("/")).text()
    assert "all <b>60</b>" in body
    assert "escalated <b>1</b>" in body
    assert body.count('href="/incidents/') == 50
    assert "older »" in body
    older = body.split('cursor=')[1].split('"')[0]
    page2 = await (await c.client.get(f"/?cursor={older}")).text()
    assert page2.count('href="/incidents/') == 10
    one = await (await c.client.get("/?state=escalated")).text()
    assert one.count('href="/incidents/') == 1
    assert ids[0] in one
    none = await (await c.client.get("/?namespace=staging")).text()
    assert "No incidents match" in none
    text = await (await c.client.get(f"/?q={ids[5]}")).text()
    assert text.count('href="/incidents/') == 1
    bad = await c.client.get(f"/?state=escalated&cursor={older}")
    assert bad.status == 400


async def test_retry_and_close_from_the_console_are_journaled(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    await c.login(OPERATOR)
    csrf = await c.csrf(f"/incidents/{incident}")
    refused = await c.client.post(f"/incidents/{incident}/retry", data={"csrf": csrf})
    assert "only an escalated incident" in await refused.text()
    await c.store.journal(incident, T0, state=IncidentState.ESCALATED, context={
        "escalation": "done"})
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert 'id="retry"' in page
    assert 'id="close"' in page
    resp = await c.client.post(f"/incidents/{incident}/close",
                               data={"csrf": csrf, "reason": "fixed by hand"})
    assert resp.status == 200
    view = await c.store.get_incident(incident)
    assert view is not None
    assert view.state == IncidentState.RESOLVED
    assert view.timeline[-1].message == "closed by otto (console): fixed by hand"
    assert "closed by otto (console): fixed by hand" in await resp.text()


async def test_acknowledge_and_release_from_the_console(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    await c.login(VIEWER)
    csrf = await c.csrf(f"/incidents/{incident}")
    assert (await c.client.post(f"/incidents/{incident}/ack", data={"csrf": csrf})).status == 403
    await c.client.post("/logout", data={"csrf": csrf})
    await c.login(OPERATOR)
    csrf = await c.csrf(f"/incidents/{incident}")
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert 'id="ack"' in page
    assert 'id="release"' not in page
    assert (await c.client.post(f"/incidents/{incident}/ack", data={})).status == 403  # no CSRF
    resp = await c.client.post(f"/incidents/{incident}/ack", data={"csrf": csrf})
    assert resp.status == 200
    page = await resp.text()
    assert "Acknowledged by otto (console)" in page
    assert 'id="release"' in page
    view = await c.store.get_incident(incident)
    assert view is not None
    assert view.context["ack"]["by"] == "otto (console)"
    assert view.context["ack"]["via"] == "console"
    resp = await c.client.post(f"/incidents/{incident}/release", data={"csrf": csrf})
    assert "Released by otto (console)" in await resp.text()
    view = await c.store.get_incident(incident)
    assert view is not None
    assert not view.context.get("ack")
    missing = await c.client.post("/incidents/inc-nope/ack", data={"csrf": csrf})
    assert missing.status == 404


async def test_the_incident_page_shows_the_verification_graph(make_console: Make) -> None:
    from datetime import timedelta

    from remediator.model.incident import PromqlPoll, SeriesValue, StepRecord, VerifyPoll
    c = await make_console()
    incident = await c.incident(LABELS)
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert 'id="graph"' not in page                      # nothing polled Prometheus yet
    query = 'rate(errors{deployment="api"}[5m]) < 0.05'
    polls = [VerifyPoll(at=T0 + timedelta(seconds=15 * i), verdict="not_met",
                        promql=PromqlPoll(query=query, series=1, comparison="< 0.05",
                                          lhs='rate(errors{deployment="api"}[5m])',
                                          lhs_samples=[SeriesValue(value=str(0.2 - i / 100))]))
             for i in range(4)]
    await c.store.save_step(incident, "ladder", StepRecord(
        index=0, name="restart", action="kubernetes.restart"), T0)
    for n, poll in enumerate(polls, start=1):
        await c.store.journal_poll(incident, poll.at, phase="ladder", step=0, number=n,
                                   poll=poll)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert f'src="/api/v1/incidents/{incident}/graph.png"' in page
    graph = await c.client.get(f"/api/v1/incidents/{incident}/graph.png")  # the session reads
    assert graph.status == 200
    assert graph.content_type == "image/png"
    assert (await graph.read()).startswith(b"\x89PNG")


async def test_the_incident_page_shows_the_diagnosis(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "What the robot saw" not in page                        # no diagnosis yet
    await c.store.journal(incident, T0, context={"diagnosis": {
        "moment": "opened", "problems": ["nodes: 403 forbidden"],
        "findings": [{"id": "recent_rollout:prod/api", "summary": f"image a:1 → {XSS}",
                      "evidence": ["ReplicaSet prod/api-2"]}]}})
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "What the robot saw" in page
    assert "recent_rollout:prod/api" in page
    assert "image a:1 → &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "evidence: ReplicaSet prod/api-2" in page
    assert "not read: nodes: 403 forbidden" in page


async def test_retry_and_resolve_in_the_json_api(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    resp = await c.client.post(f"/api/v1/incidents/{incident}/retry", headers=auth)
    assert resp.status == 409
    resp = await c.client.post("/api/v1/incidents/inc-nope/resolve", headers=auth)
    assert resp.status == 404
    await c.store.journal(incident, T0, state=IncidentState.ESCALATED)
    resp = await c.client.post(f"/api/v1/incidents/{incident}/retry", headers=viewer)
    assert resp.status == 403
    resp = await c.client.post(f"/api/v1/incidents/{incident}/retry", headers=auth)
    assert resp.status == 200, await resp.text()
    view = await c.store.get_incident(incident)
    assert view is not None
    assert view.state == IncidentState.REMEDIATING
    assert view.timeline[-1].data == {"act": "retry", "by": "otto (api)"}


async def test_open_console_says_so_and_listening_beyond_loopback_needs_auth(
        make_console: Make) -> None:
    c = await make_console(ServerConfig())
    body = await (await c.client.get("/")).text()
    assert "No authentication is configured" in body
    check_exposure("127.0.0.1", ServerConfig())
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_exposure("0.0.0.0", ServerConfig())
    check_exposure("0.0.0.0", ServerConfig(insecure=True))
    check_exposure("0.0.0.0", ServerConfig(bearer_token="t"))


async def test_events_resume_from_last_event_id(make_console: Make) -> None:
    c = await make_console()
    incident = await c.incident(LABELS)
    for n in range(3):
        await c.store.journal(incident, T0, timeline=(
            TimelineEntry(at=T0, kind="step", message=f"step {n}"),))
    first = (await c.store.timeline_after(0, 10))[0][0]
    headers = {"Authorization": f"Bearer {VIEWER}", "Last-Event-ID": str(first)}
    resp = await c.client.get("/api/v1/events", headers=headers)
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    seen: list[dict[str, object]] = []
    async with asyncio.timeout(10):
        while len(seen) < 2:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert [e["message"] for e in seen] == ["step 1", "step 2"]
    assert [e["id"] for e in seen] == [first + 1, first + 2]
    await c.store.journal(incident, T0, timeline=(
        TimelineEntry(at=T0, kind="state", message="incident escalated",
                      data={"state": "escalated"}),))
    async with asyncio.timeout(10):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                assert line.strip() == "event: escalated"
                break
    resp.close()
    anon = await c.client.get("/api/v1/events")
    assert anon.status == 401


async def test_sso_header_only_from_trusted_sources(make_console: Make) -> None:
    from remediator.server.auth import Sso

    from .conftest import USERS
    trusted = ServerConfig(users=USERS, sso=Sso.of("X-Forwarded-User", ["127.0.0.0/8"],
                                                   {"alice": "operator"}, None))
    c = await make_console(trusted)
    resp = await c.client.get("/", headers={"X-Forwarded-User": "alice"})
    assert resp.status == 200
    assert "alice" in await resp.text()
    unknown = await c.client.get("/", headers={"X-Forwarded-User": "mallory"},
                                 allow_redirects=False)
    assert unknown.status == 303                   # no role: not let in
    other = ServerConfig(users=USERS, sso=Sso.of("X-Forwarded-User", ["10.0.0.0/8"],
                                                 {"alice": "operator"}, None))
    d = await make_console(other)
    resp = await d.client.get("/", headers={"X-Forwarded-User": "alice"},
                              allow_redirects=False)
    assert resp.status == 303                      # not from the proxy: log in
    api = await d.client.get("/api/v1/incidents", headers={"X-Forwarded-User": "alice"})
    assert api.status == 401
    ok = await d.client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {VIEWER}"})
    assert ok.status == 200                        # API tokens keep working
