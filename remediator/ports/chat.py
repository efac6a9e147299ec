"""The chat port: Slack as the ``slack.notify``/``slack.page`` actions, the Slack sink and
the approval route use it.

Holds ``ChatApi`` (a Protocol), the data it exchanges (``PostedMessage``,
``Blocks``) and the names under which the Slack sink keeps an incident's thread
in its durable state, which ``slack.notify`` reads after a restart
(``SLACK_SINK``, ``SLACK_ROOT_CHANNEL``, ``SLACK_ROOT_TS``). Not here: the client
(``remediator.adapters.slack``), rendering (``remediator.rendering``).

Every method raises only ``TemporaryError`` (rate limits, 5xx, network) or
``PermanentError`` (what Slack says is wrong with the request or the token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Block Kit blocks or legacy attachments, as JSON
Blocks = Sequence[dict[str, Any]]

SLACK_SINK = "slack"                      # the Slack sink's name (its SinkState namespace)
SLACK_ROOT_CHANNEL = "slack.channel"      # SinkState keys of the incident thread's root
SLACK_ROOT_TS = "slack.root_ts"


@dataclass(frozen=True)
class PostedMessage:
    """Where a message lives: the channel *id* and its ``ts``."""

    channel: str
    ts: str


class ChatApi(Protocol):
    async def post(self, channel: str, text: str, *, blocks: Blocks | None = None,
                   attachments: Blocks | None = None) -> PostedMessage:
        """A top-level message in ``channel`` (name or id)."""
        ...

    async def reply(self, channel: str, thread_ts: str, text: str, *,
                    blocks: Blocks | None = None) -> PostedMessage:
        """A reply in the thread of ``thread_ts``."""
        ...

    async def update(self, channel: str, ts: str, text: str, *, blocks: Blocks | None = None,
                     attachments: Blocks | None = None) -> PostedMessage:
        """Edit a message in place (``channel`` must be the id ``post`` returned)."""
        ...

    async def upload(self, channel: str, thread_ts: str, filename: str, content: bytes, *,
                     title: str, comment: str | None = None) -> str:
        """Share a file in the thread of ``thread_ts`` (``channel``: the id); its file id."""
        ...

    async def usergroup_members(self, group_id: str) -> list[str]:
        """The user ids (``U…``) in the user group ``group_id`` (``S…``)."""
        ...

    async def permalink(self, channel: str, ts: str) -> str:
        """The URL of the message ``ts`` in ``channel`` (the id), as Slack links it
        (``chat.getPermalink``)."""
        ...

    def remember_thread(self, incident_id: str, root: PostedMessage) -> None:
        """Record, in memory, the root message of an incident's thread."""
        ...

    def thread_of(self, incident_id: str) -> PostedMessage | None:
        """The root recorded by ``remember_thread`` in this process, if any."""
        ...
