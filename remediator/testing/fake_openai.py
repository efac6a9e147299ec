"""A fake OpenAI-compatible chat-completions server (what vLLM and Ollama serve).

``POST /v1/chat/completions`` with ``{"model", "messages": [{"role", "content"}], …}``
answers ``{"id": "chatcmpl-…", "object": "chat.completion", "created", "model",
"choices": [{"index": 0, "message": {"role": "assistant", "content": …},
"finish_reason": "stop"}], "usage": {…}}``; a bad request is 400 with
``{"error": {"message", "type": "invalid_request_error"}}``; a wrong key 401.

``answer``: a function of the messages → the content (default: cite nothing);
``delay`` seconds before answering (timeouts); ``gate``: an ``asyncio.Event`` each
answer waits for (a model as slow as the test wants, without real sleeps);
``fail(status)`` for the next requests; ``requests`` records every body received.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from aiohttp import web

from remediator.testing.server import FakeServer

Answer = Callable[[list[dict[str, Any]]], str]


class FakeOpenAI(FakeServer):
    def __init__(self, answer: Answer | None = None, *, api_key: str | None = None) -> None:
        super().__init__()
        self.answer: Answer = answer or (lambda messages: "No summary.")
        self.api_key = api_key
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.failing: int | None = None
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def fail(self, status: int | None) -> None:
        self.failing = status

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        return app

    @staticmethod
    def _error(status: int, message: str, kind: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "param": None,
                                            "code": None}}, status=status)

    async def _complete(self, request: web.Request) -> web.Response:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided", "invalid_request_error")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.",
                               "invalid_request_error")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not body.get("model") or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str)
                and m.get("role") in ("system", "user", "assistant") for m in messages):
            return self._error(400, "'model' and 'messages' (role, content) are required",
                               "invalid_request_error")
        self.requests.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.gate is not None:
            await self.gate.wait()
        if self.failing is not None:
            return self._error(self.failing, "The server had an error", "server_error")
        content = self.answer(messages)
        return web.json_response({
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
            "created": 1785571200, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": sum(len(m["content"]) // 4 for m in messages),
                      "completion_tokens": len(content) // 4,
                      "total_tokens": 0}})
