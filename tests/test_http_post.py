"""``http.post`` through the HTTP port: the action on ``AiohttpPoster`` against a real
aiohttp server (no mocked client). The port transports; the action judges the status."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.actions.generic import HttpPost
from remediator.actions.params import HttpPostParams
from remediator.adapters.http import AiohttpPoster
from remediator.clock import FakeClock
from remediator.engine.contract import RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.ports import HttpApi


class Hook:
    """A webhook receiver answering ``status`` with ``body``; remembers each request."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"ok"
        self.seen: list[tuple[dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.json()))
        return web.Response(status=self.status, body=self.body)


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, str]]:
    h = Hook()
    app = web.Application()
    app.router.add_post("/hook", h.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield h, str(server.make_url("/hook"))
    finally:
        await server.close()


@pytest.fixture
async def poster() -> AsyncIterator[HttpApi]:
    async with aiohttp.ClientSession() as session:
        yield AiohttpPoster(session)


def ctx(http: HttpApi | None) -> RunContext:
    return RunContext(incident_id="inc-1", incident_key="k", playbook="pb", step="notify",
                         target=None, alerts=[], clock=FakeClock(), http=http)


async def post(http: HttpApi | None, url: str, **params: Any) -> str:
    action = HttpPost()
    c = ctx(http)
    intent = await action.plan(c, HttpPostParams.model_validate({"url": url, **params}))
    return (await action.apply(c, intent)).summary


async def test_posts_the_json_with_an_idempotency_key(hook: tuple[Hook, str],
                                                       poster: HttpApi) -> None:
    h, url = hook
    summary = await post(poster, url, json={"a": 1}, headers={"X-Team": "ops"})
    assert summary == f"POST {url} → 200"
    headers, body = h.seen[0]
    assert body == {"a": 1}
    assert headers["Idempotency-Key"] == "inc-1/notify"
    assert headers["X-Team"] == "ops"


@pytest.mark.parametrize(("status", "error"), [(503, TemporaryError), (429, TemporaryError),
                                               (404, PermanentError), (200, PermanentError)])
async def test_an_unexpected_status_is_judged_by_the_action(
        hook: tuple[Hook, str], poster: HttpApi, status: int, error: type[Exception]) -> None:
    h, url = hook
    h.status, h.body = status, b"\xff no utf-8 " + b"x" * 1000
    expect = [201] if status == 200 else [200]
    with pytest.raises(error) as info:
        await post(poster, url, expect_status=expect)
    assert f"→ {status}: \ufffd no utf-8 x" in str(info.value)
    assert len(str(info.value)) < 600                     # the body is cut at 500 characters


async def test_no_answer_is_temporary(poster: HttpApi) -> None:
    with socket.socket() as s:                            # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    with pytest.raises(TemporaryError, match="failed: ClientConnectorError") as info:
        await post(poster, url)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_without_the_port_it_is_temporary() -> None:
    with pytest.raises(TemporaryError, match="no HTTP client configured"):
        await post(None, "http://127.0.0.1:9/hook")
