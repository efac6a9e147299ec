"""Slack chat through ``slack_sdk``'s ``AsyncWebClient``: post, reply in thread, edit.

``SlackChat`` implements the chat port (``remediator.ports.chat``) the Slack sink,
the Slack actions and the approval route use. It
shares one ``aiohttp.ClientSession`` (given, or its own, opened lazily), retries
HTTP 429 with the SDK's ``AsyncRateLimitErrorRetryHandler`` (which honours
``Retry-After``) and a dropped keep-alive connection once; every other failure
is classified and left to the caller's retry policy:

* ``TemporaryError``: HTTP 429 still limited after the handler, 5xx, Slack's
  ``ratelimited``/``internal_error``/``service_unavailable``/…, network errors,
  timeouts;
* ``PermanentError``: anything Slack says is wrong with the request or the token
  (``invalid_auth``, ``channel_not_found``, ``not_in_channel``, ``invalid_blocks``…).

It also remembers, in memory, the root message of each incident's thread (the
Slack sink records it; ``slack.notify`` reads it), see ``remember_thread``.
``usergroup_members`` resolves a user group id (``S…``) to its members, for the
approval allow-list (the interactions route caches the answer).
Not here: rendering (``remediator.rendering``), inbound interactivity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

from remediator.errors import PermanentError, TemporaryError
from remediator.ports.chat import Blocks, PostedMessage

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

# slack_sdk is imported when a SlackChat is made (at start-up, when Slack is configured),
# not with this module: without Slack it is never needed.

_TEMPORARY_CODES = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "team_added_to_org", "timeout",
})


class SlackChat:
    """The chat port, backed by the Slack Web API."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://slack.com/api/",
        session: aiohttp.ClientSession | None = None,
        timeout: int = 10,
        rate_limit_retries: int = 2,
    ) -> None:
        """``timeout`` is seconds per HTTP call; ``rate_limit_retries`` how many 429s
        in a row the SDK sleeps through (``Retry-After``) before we give up."""
        self._token = token
        self._base_url = base_url
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._rate_limit_retries = rate_limit_retries
        self._client: AsyncWebClient | None = None
        self._threads: dict[str, PostedMessage] = {}
        import slack_sdk.web.async_client  # noqa: F401  (loaded now, not on the first page)

    def _web(self) -> AsyncWebClient:
        from slack_sdk.http_retry.builtin_async_handlers import (
            AsyncConnectionErrorRetryHandler,
            AsyncRateLimitErrorRetryHandler,
        )
        from slack_sdk.http_retry.builtin_interval_calculators import (
            FixedValueRetryIntervalCalculator,
        )
        from slack_sdk.web.async_client import AsyncWebClient
        if self._client is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self._timeout))
            self._client = AsyncWebClient(
                token=self._token, base_url=self._base_url, session=self._session,
                timeout=self._timeout,
                retry_handlers=[
                    AsyncRateLimitErrorRetryHandler(max_retry_count=self._rate_limit_retries),
                    # a kept-alive connection the server dropped: reconnect at once
                    AsyncConnectionErrorRetryHandler(
                        max_retry_count=1,
                        interval_calculator=FixedValueRetryIntervalCalculator(0.05)),
                ])
        return self._client

    async def close(self) -> None:
        """Close the HTTP session if this object opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None

    # -- the port --------------------------------------------------------------------
    async def check(self) -> dict[str, Any]:
        """``auth.test``: who we are (team, bot user). Raises if the token is bad."""
        data = await self._call("auth.test")
        return dict(data)

    async def post(self, channel: str, text: str, *, blocks: Blocks | None = None,
                   attachments: Blocks | None = None) -> PostedMessage:
        """A top-level message in ``channel`` (name or id)."""
        data = await self._call("chat.postMessage", channel=channel, text=text,
                                blocks=_list(blocks), attachments=_list(attachments))
        return PostedMessage(str(data["channel"]), str(data["ts"]))

    async def reply(self, channel: str, thread_ts: str, text: str, *,
                    blocks: Blocks | None = None) -> PostedMessage:
        """A reply in the thread of ``thread_ts``."""
        data = await self._call("chat.postMessage", channel=channel, text=text,
                                blocks=_list(blocks), thread_ts=thread_ts)
        return PostedMessage(str(data["channel"]), str(data["ts"]))

    async def update(self, channel: str, ts: str, text: str, *, blocks: Blocks | None = None,
                     attachments: Blocks | None = None) -> PostedMessage:
        """Edit a message in place (``channel`` must be the id ``post`` returned)."""
        data = await self._call("chat.update", channel=channel, ts=ts, text=text,
                                blocks=list(blocks or []), attachments=_list(attachments))
        return PostedMessage(str(data["channel"]), str(data["ts"]))

    async def upload(self, channel: str, thread_ts: str, filename: str, content: bytes, *,
                     title: str, comment: str | None = None) -> str:
        """``files_upload_v2``: files.getUploadURLExternal, the bytes POSTed to the URL it
        gave, files.completeUploadExternal with ``thread_ts``."""
        data = await self._call("files.upload_v2", channel=channel, thread_ts=thread_ts,
                                filename=filename, content=content, title=title,
                                initial_comment=comment)
        files = data.get("files") or [{}]
        return str(files[0].get("id", ""))

    async def permalink(self, channel: str, ts: str) -> str:
        data = await self._call("chat.getPermalink", channel=channel, message_ts=ts)
        return str(data["permalink"])

    async def usergroup_members(self, group_id: str) -> list[str]:
        """``usergroups.users.list``: the user ids (``U…``) in the user group ``group_id``
        (``S…``). An unknown group is a ``PermanentError`` (``no_such_subteam``)."""
        data = await self._call("usergroups.users.list", usergroup=group_id)
        users = data.get("users")
        if not isinstance(users, list):
            raise TemporaryError("Slack usergroups.users.list: response has no user list")
        return [str(u) for u in users]

    # -- thread directory ------------------------------------------------------------
    def remember_thread(self, incident_id: str, root: PostedMessage) -> None:
        """Record the root message of an incident's thread (the Slack sink does this)."""
        self._threads[incident_id] = root

    def thread_of(self, incident_id: str) -> PostedMessage | None:
        return self._threads.get(incident_id)

    # -- plumbing --------------------------------------------------------------------
    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        web = self._web()
        args = {k: v for k, v in kwargs.items() if v is not None}
        from slack_sdk.errors import SlackApiError, SlackClientError
        try:
            if method == "auth.test":
                response = await web.auth_test()
            elif method == "chat.update":
                response = await web.chat_update(**args)
            elif method == "usergroups.users.list":
                response = await web.usergroups_users_list(**args)
            elif method == "files.upload_v2":
                response = await web.files_upload_v2(**args)
            elif method == "chat.getPermalink":
                response = await web.chat_getPermalink(**args)
            else:
                response = await web.chat_postMessage(**args)
        except SlackApiError as exc:
            raise _classify(method, exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TemporaryError(f"Slack {method}: network error: {exc!r}") from exc
        except SlackClientError as exc:
            raise PermanentError(f"Slack {method}: client error: {exc}") from exc
        data = response.data
        if not isinstance(data, dict):
            raise TemporaryError(f"Slack {method}: unexpected response body")
        return data


def _list(blocks: Blocks | None) -> list[dict[str, Any]] | None:
    return list(blocks) if blocks else None


def _classify(method: str, exc: SlackApiError) -> TemporaryError | PermanentError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    if status == 429 or code in ("ratelimited", "rate_limited"):
        retry_after = _retry_after(headers)
        return TemporaryError(f"Slack {method}: rate limited (retry after {retry_after}s)",
                              delay=retry_after)
    if status >= 500 or code in _TEMPORARY_CODES:
        return TemporaryError(f"Slack {method}: server error (HTTP {status} {code})".rstrip())
    if code:
        return PermanentError(f"Slack {method} refused: {code}")
    return PermanentError(f"Slack {method}: unexpected HTTP {status}")


def _retry_after(headers: Any) -> float | None:
    for key in ("Retry-After", "retry-after"):
        value = headers.get(key) if hasattr(headers, "get") else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            try:
                return float(value)
            except ValueError:
                return None
    return None
