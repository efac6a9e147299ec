"""The model summary: the prompt is redacted, the answer is checked, and the adapter
speaks the OpenAI chat-completions wire contract (to the fake server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from remediator.adapters.openai_chat import OpenAIChat
from remediator.diagnosis.summary import check, prompt, redact
from remediator.errors import PermanentError, TemporaryError
from remediator.testing.fake_openai import FakeOpenAI

IDS = ["recent_rollout:api-4", "crash_loop:api-4-x/api"]


@pytest.mark.parametrize(("text", "clean"), [
    ("panic: password=hunter2 rejected", "panic: password=[REDACTED] rejected"),
    ('token: "abc def"', "token: [REDACTED]"),
    ("GET with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9abcdef",
     "GET with Authorization: [REDACTED] [REDACTED]"),
    ("dial postgres://app:s3cret@db:5432/app", "dial postgres://[REDACTED]@db:5432/app"),
    ("key AKIAABCDEFGHIJKLMNOP used", "key [REDACTED] used"),
    ("exit code 137 (OOMKilled)", "exit code 137 (OOMKilled)"),
])
def test_redact(text: str, clean: str) -> None:
    assert redact(text) == clean


def test_prompt_holds_only_redacted_findings() -> None:
    messages = prompt("Deployment prod/api", ["HighErrorRate"], [
        {"id": IDS[1], "kind": "crash_loop", "evidence": ["Pod prod/api-4-x"],
         "summary": "last log line: 'db password=hunter2 refused'", "data": {"secret": "x"}}])
    assert [m["role"] for m in messages] == ["system", "user"]
    data = json.loads(messages[1]["content"])
    assert data["findings"] == [{"id": IDS[1], "kind": "crash_loop",
                                 "evidence": ["Pod prod/api-4-x"],
                                 "summary": "last log line: 'db password=[REDACTED] refused'"}]
    assert "hunter2" not in json.dumps(messages)


@pytest.mark.parametrize(("answer", "kept", "reason"), [
    ("A rollout [recent_rollout:api-4] made the pods crash [crash_loop:api-4-x/api].", True, ""),
    ("The database is down [db_down:pg-0].", False,
     "it cites findings that do not exist: db_down:pg-0"),
    ("Probably a bad rollout.", False, "it cites no finding"),
    ("   ", False, "the answer is empty"),
    ("[recent_rollout:api-4] " + "x" * 2000, False, "the answer is too long (2023 characters)"),
])
def test_check(answer: str, kept: bool, reason: str) -> None:
    checked = check(answer, IDS)
    assert (checked.text is not None) == kept
    assert checked.reason == reason


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(lambda messages: f"seen {len(messages)} [recent_rollout:api-4]",
                        api_key="k-1")
    await server.start()
    yield server
    await server.stop()


async def test_adapter_speaks_the_wire_contract(fake: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as http:
        model = OpenAIChat(fake.base_url, "qwen2.5:7b", http, api_key="k-1")
        answer = await model.complete([{"role": "user", "content": "hi"}])
        assert answer == "seen 1 [recent_rollout:api-4]"
        [body] = fake.requests
        assert body == {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": 300, "temperature": 0}
        with pytest.raises(PermanentError, match="HTTP 401"):
            await OpenAIChat(fake.base_url, "m", http, api_key="wrong").complete(
                [{"role": "user", "content": "hi"}])
        fake.fail(503)
        with pytest.raises(TemporaryError, match="HTTP 503"):
            await model.complete([{"role": "user", "content": "hi"}])
        fake.fail(None)
        fake.delay = 1.0
        with pytest.raises(TemporaryError, match=r"no answer within 0\.2s"):
            await OpenAIChat(fake.base_url, "m", http, api_key="k-1",
                             timeout=0.2).complete([{"role": "user", "content": "hi"}])
        await fake.down()
        with pytest.raises(TemporaryError, match="unreachable"):
            await model.complete([{"role": "user", "content": "hi"}])
