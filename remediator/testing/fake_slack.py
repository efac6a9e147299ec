"""A fake Slack Web API: an in-process aiohttp app driven by the real ``slack_sdk``.

It speaks the wire contract that ``AsyncWebClient`` uses for ``auth.test``,
``chat.postMessage``, ``chat.update``, ``chat.getPermalink`` (a reply's link carries
``?thread_ts=…&cid=…``, as Slack's does) and ``usergroups.users.list``: POST to
``/api/<method>``, the bot token as ``Authorization: Bearer`` (or a ``token``
field), arguments as JSON, form fields or query parameters
(``blocks``/``attachments`` may be JSON strings in a form). Replies are HTTP 200
with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a rate limit is
HTTP 429 with ``Retry-After``.

State is kept per channel: top-level messages, thread replies and every edit,
so tests can assert "one root message, edited to its final state". User groups
are ``groups`` (id → member user ids), given to the constructor or set later.

Faults: ``rate_limit(times, retry_after)``, ``fail(times, status, method=None)``
(5xx; with ``method``, only calls to that method fail), and ``down()``/``up()``
(the listener closes: connection refused, state kept). ``hold(channel=None)``/``release()``:
calls (into ``channel`` only, if given) still take effect at once (a posted message is
visible to a user) but their answers wait until ``release()``, as when Slack's reply is
slow on the way back.

Files, as ``files_upload_v2`` does it: ``files.getUploadURLExternal`` (``filename``,
``length``) → an ``upload_url`` and ``file_id``; the bytes POSTed to that URL
(their length must match); ``files.completeUploadExternal`` (``files`` =
``[{"id", "title"}]``, ``channel_id``, ``thread_ts``, ``initial_comment``) shares
them. ``files`` holds every shared file with its bytes.

Not here: conversations.*, reactions, interactivity (see
``remediator.notify.interactions`` for the inbound side).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from remediator.testing.server import FakeServer

_TEXT_LIMIT = 40_000


@dataclass
class SlackFile:
    """A file shared by files.completeUploadExternal, with the bytes uploaded."""

    id: str
    filename: str
    title: str
    data: bytes
    channel: str
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class SlackMessage:
    """One message as the fake stores it. ``history`` holds the text of every version."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    thread_ts: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def edits(self) -> int:
        return len(self.history) - 1


class FakeSlack(FakeServer):
    """A Slack workspace with a few channels and one bot token."""

    def __init__(
        self,
        *,
        token: str = "xoxb-fake-token",
        channels: tuple[str, ...] = ("ops-alerts", "oncall", "general"),
        team_id: str = "T0FAKE",
        bot_user_id: str = "U0BOT",
        groups: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.workspace_url = "https://fake-workspace.slack.com"
        self.channel_ids: dict[str, str] = {
            name: f"C{index:04d}{name.upper().replace('-', '')[:6]}"
            for index, name in enumerate(channels, start=1)
        }
        self.groups: dict[str, list[str]] = dict(groups or {})
        self.messages: list[SlackMessage] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ts = itertools.count(1)
        self.files: list[SlackFile] = []
        self._pending: dict[str, dict[str, Any]] = {}      # file id → filename, length, data
        self._rate_limits: list[int] = []          # Retry-After of each pending 429
        self._failures: list[tuple[int, str | None]] = []   # (5xx status, only this method)
        self._answering = asyncio.Event()
        self._answering.set()
        self._held: str | None = None      # the channel id whose answers wait (None: all)

    # -- lifecycle -------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        return app

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/"

    # -- faults ----------------------------------------------------------------------
    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls with 429 and ``Retry-After: retry_after``."""
        self._rate_limits.extend([retry_after] * times)

    def fail(self, times: int = 1, status: int = 500, method: str | None = None) -> None:
        """Answer the next ``times`` calls (to ``method`` only, if given) with HTTP
        ``status`` (a 5xx)."""
        self._failures.extend([(status, method)] * times)

    def hold(self, channel: str | None = None) -> None:
        """From now on, do each call (into ``channel`` only, if given) but keep its
        answer until ``release()``."""
        self._held = self._resolve(channel) if channel else None
        self._answering.clear()

    def release(self) -> None:
        """Send the answers kept by ``hold()``, and answer at once again."""
        self._answering.set()

    # -- inspection ------------------------------------------------------------------
    def channel_id(self, name: str) -> str:
        return self.channel_ids[name.lstrip("#")]

    def roots(self, channel: str | None = None) -> list[SlackMessage]:
        """Top-level messages, optionally of one channel (name or id)."""
        cid = self._resolve(channel) if channel else None
        return [m for m in self.messages
                if m.thread_ts is None and (cid is None or m.channel == cid)]

    def replies(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        cid = self._resolve(channel)
        return [m for m in self.messages if m.channel == cid and m.thread_ts == thread_ts]

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        cid = self._resolve(channel)
        return next((m for m in self.messages if m.channel == cid and m.ts == ts), None)

    def call_count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # -- the API ---------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        self.calls.append((method, args))
        if self._rate_limits:
            retry_after = self._rate_limits.pop(0)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(retry_after)})
        failure = next((f for f in self._failures if f[1] in (None, method)), None)
        if failure is not None:
            self._failures.remove(failure)
            status = failure[0]
            return web.Response(status=status, text="upstream connect error",
                                content_type="text/plain")
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.getPermalink": self._permalink,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)
        if handler is None:
            return _error("unknown_method")
        answer = handler(args)
        if self._held is None or self._resolve(str(args.get("channel", ""))) == self._held:
            await self._answering.wait()
        return answer

    def _auth_test(self, args: dict[str, Any]) -> web.Response:
        return _ok({"url": "https://fake.slack.com/", "team": "Fake", "user": "remediator",
                    "team_id": self.team_id, "user_id": self.bot_user_id,
                    "bot_id": "B0BOT", "is_enterprise_install": False})

    def _post_message(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        content = _content(args)
        if isinstance(content, str):
            return _error(content)
        text, blocks, attachments = content
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.message(channel, str(thread_ts))
            if parent is None:
                return _error("thread_not_found")
            thread_ts = parent.thread_ts or parent.ts    # replies to a reply join the thread
        n = next(self._ts)
        msg = SlackMessage(channel=channel, ts=f"{1_700_000_000 + n}.{n:06d}", text=text,
                           blocks=blocks, attachments=attachments, thread_ts=thread_ts,
                           history=[text])
        self.messages.append(msg)
        return _ok({"channel": channel, "ts": msg.ts, "message": _wire(msg, self.bot_user_id)})

    def _permalink(self, args: dict[str, Any]) -> web.Response:
        """``chat.getPermalink``: a reply's link names its thread (``thread_ts``, ``cid``)."""
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        msg = self.message(channel, str(args.get("message_ts", "")))
        if msg is None:
            return _error("message_not_found")
        link = f"{self.workspace_url}/archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts is not None:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return _ok({"channel": channel, "permalink": link})

    def _update(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        msg = self.message(channel, str(args.get("ts", "")))
        if msg is None:
            return _error("message_not_found")
        content = _content(args)
        if isinstance(content, str):
            return _error(content)
        msg.text, msg.blocks, msg.attachments = content
        msg.history.append(msg.text)
        return _ok({"channel": channel, "ts": msg.ts, "text": msg.text,
                    "message": _wire(msg, self.bot_user_id)})

    def _usergroup_users(self, args: dict[str, Any]) -> web.Response:
        group = str(args.get("usergroup", ""))
        if not group:
            return _error("invalid_arguments")
        if group not in self.groups:
            return _error("no_such_subteam")
        return _ok({"users": list(self.groups[group])})

    # -- files ---------------------------------------------------------------------
    def _upload_url(self, args: dict[str, Any]) -> web.Response:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length in (None, ""):
            return _error("invalid_arguments")
        try:
            size = int(length)
        except (TypeError, ValueError):
            return _error("invalid_arguments")
        if size <= 0:
            return _error("invalid_arguments")
        file_id = f"F{len(self._pending) + 1:08d}"
        self._pending[file_id] = {"filename": str(filename), "length": size, "data": None}
        return _ok({"upload_url": f"{self.root_url}/upload/{file_id}", "file_id": file_id})

    async def _upload(self, request: web.Request) -> web.Response:
        pending = self._pending.get(request.match_info["file_id"])
        data = await request.read()
        if pending is None:
            return web.Response(status=404, text="unknown upload")
        if len(data) != pending["length"]:
            return web.Response(status=400, text=f"length {len(data)} != {pending['length']}")
        pending["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    def _complete_upload(self, args: dict[str, Any]) -> web.Response:
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except json.JSONDecodeError:
                return _error("invalid_json")
        if not isinstance(files, list) or not files:
            return _error("invalid_arguments")
        channel = self._resolve(str(args.get("channel_id") or ""))
        if args.get("channel_id") and channel is None:
            return _error("channel_not_found")
        thread_ts = args.get("thread_ts")
        if thread_ts and (channel is None or self.message(channel, str(thread_ts)) is None):
            return _error("invalid_thread_ts")
        shared = []
        for item in files:
            pending = self._pending.get(str(item.get("id")))
            if pending is None or pending["data"] is None:
                return _error("file_not_found")
            shared.append(SlackFile(str(item["id"]), pending["filename"],
                                    str(item.get("title") or pending["filename"]),
                                    pending["data"], channel or "", thread_ts,
                                    args.get("initial_comment")))
        self.files.extend(shared)
        return _ok({"files": [{"id": f.id, "name": f.filename, "title": f.title}
                              for f in shared]})

    def thread_files(self, channel: str, thread_ts: str) -> list[SlackFile]:
        cid = self._resolve(channel)
        return [f for f in self.files if f.channel == cid and f.thread_ts == thread_ts]

    def _resolve(self, channel: str) -> str | None:
        """A channel name (with or without '#') or id → its id; None if unknown."""
        if channel in self.channel_ids.values():
            return channel
        return self.channel_ids.get(channel.lstrip("#"))


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Merge query parameters, and a JSON or form body, as Slack does."""
    args: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return {**args, "__invalid__": "invalid_json"}
        if isinstance(body, dict):
            args.update(body)
    else:
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
    return args


def _content(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]] | str:
    """Validate text/blocks/attachments; return them, or a Slack error code."""
    if "__invalid__" in args:
        return str(args["__invalid__"])
    parsed: dict[str, list[dict[str, Any]]] = {}
    for name in ("blocks", "attachments"):
        value = args.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return f"invalid_{name}"
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
            return f"invalid_{name}"
        if name == "blocks" and not all("type" in b for b in value):
            return "invalid_blocks"
        parsed[name] = value
    text = str(args.get("text") or "")
    if not text and not parsed["blocks"] and not parsed["attachments"]:
        return "no_text"
    if len(text) > _TEXT_LIMIT:
        return "msg_too_long"
    return text, parsed["blocks"], parsed["attachments"]


def _wire(msg: SlackMessage, user: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "user": user, "text": msg.text, "ts": msg.ts,
                           "blocks": msg.blocks, "attachments": msg.attachments}
    if msg.thread_ts:
        out["thread_ts"] = msg.thread_ts
    return out


def _ok(data: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": True, **data})


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})
