"""The model port: one chat completion from an OpenAI-compatible endpoint (an in-cluster
vLLM or Ollama). Used only to summarise findings for people; never to choose an
action. Implemented by ``remediator.adapters.openai_chat``.

Raises only ``TemporaryError`` (unreachable, timeout, 5xx, 429) or ``PermanentError``
(4xx, an answer without a message).
"""

from __future__ import annotations

from typing import Protocol


class ModelApi(Protocol):
    @property
    def name(self) -> str:
        """The model asked (for the journal)."""
        ...

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """The assistant's answer to ``messages`` (``role``, ``content``)."""
        ...
