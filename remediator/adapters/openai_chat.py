"""``OpenAIChat``: the ModelApi port (``remediator.ports.model``) over aiohttp, speaking
the OpenAI chat-completions wire contract that vLLM, Ollama and others serve:
``POST {base_url}/chat/completions`` with ``{"model", "messages", "max_tokens",
"temperature"}``, the answer in ``choices[0].message.content``.

Errors: unreachable, timeouts, 429 and 5xx → TemporaryError; other 4xx and an answer
without a message → PermanentError, each quoting the server.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from remediator.errors import PermanentError, TemporaryError


class OpenAIChat:
    def __init__(self, base_url: str, model: str, http: aiohttp.ClientSession, *,
                 api_key: str | None = None, timeout: float = 10.0,
                 max_tokens: int = 300) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.http, self.api_key = model, http, api_key
        self.timeout, self.max_tokens = timeout, max_tokens

    @property
    def name(self) -> str:
        return self.model

    async def complete(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": 0}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            async with self.http.post(self.url, json=body, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                text = await r.text()
                status = r.status
                answer: Any = await r.json(content_type=None) if status == 200 else None
        except TimeoutError as exc:
            raise TemporaryError(f"model at {self.url}: no answer within "
                                 f"{self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TemporaryError(f"model at {self.url} unreachable: {exc}") from exc
        except ValueError as exc:
            raise PermanentError(f"model at {self.url}: an answer that is not JSON: "
                                 f"{text[:200]!r}") from exc
        if status == 429 or status >= 500:
            raise TemporaryError(f"model at {self.url}: HTTP {status}: {text[:200]}")
        if status != 200:
            raise PermanentError(f"model at {self.url}: HTTP {status}: {text[:200]}")
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"model at {self.url}: no choices[0].message.content in "
                                 f"{text[:200]!r}") from exc
        if not isinstance(content, str):
            raise PermanentError(f"model at {self.url}: message content is not text")
        return content
