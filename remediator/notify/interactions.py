"""Slack interactivity, inbound: verify the request, read the button click, check who clicked.

The HTTP route (``server/``) and the approval wait (``engine/``) call these:

1. ``verify_slack_signature(secret, timestamp, body, signature, now)`` — the
   ``X-Slack-Signature`` header must be ``v0=`` + HMAC-SHA256 of
   ``v0:{X-Slack-Request-Timestamp}:{raw body}`` under the signing secret,
   compared in constant time, and the timestamp within five minutes of ``now``
   either way. Raises ``MissingSignature``, ``StaleRequest`` or ``BadSignature``
   (all ``SignatureError``). Answer 401 to any of them.
2. ``parse_interaction(body)`` — the form-encoded ``payload=`` JSON of a
   ``block_actions`` interaction → ``Interaction`` (user, team, action id,
   value = the approval id, channel, message ts). Raises ``MalformedInteraction``.
3. ``message_refusal(interaction, team_id, posted)`` — why a click may not decide
   an approval (another workspace; not the message remediator posted for it: a
   forwarded, copied or stale message), or None.
4. ``check_allowed(user_id, allowed, group_members)`` — allow-list of user ids
   and user-group handles/ids; a group matches only through its members (a
   click whose user id is itself a group id is refused); raises ``NotAllowed``.

A signature binds the timestamp, so an old request cannot be replayed with a
fresh timestamp; within the five-minute window the same request can be
replayed, which ``ReplayGuard`` refuses (by signature, in memory) — and the
approval itself must be decided only once anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from remediator.rendering import ACK_ACTION, APPROVE_ACTION, REJECT_ACTION

MAX_AGE_SECONDS = 300.0
ACTIONS = (APPROVE_ACTION, REJECT_ACTION, ACK_ACTION)


class InteractionError(Exception):
    """Base of the errors in this module."""


class SignatureError(InteractionError):
    """The request cannot be shown to come from Slack: answer 401."""


class MissingSignature(SignatureError):
    """A signature or timestamp header is missing or empty, or no secret is configured."""


class StaleRequest(SignatureError):
    """The timestamp is more than five minutes away from now (either way), or unreadable."""


class BadSignature(SignatureError):
    """The signature does not match the body and timestamp."""


class MalformedInteraction(InteractionError):
    """The body is not a block_actions interaction we understand: answer 400."""


class NotAllowed(InteractionError):
    """The user who clicked is not on the allow-list."""


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The ``v0=…`` signature Slack would send (used by tests and by verification)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack_signature(signing_secret: str, timestamp: str, body: bytes, signature: str,
                           now: float) -> None:
    """Raise a ``SignatureError`` unless ``signature`` is Slack's for ``body`` at ``timestamp``
    and ``timestamp`` is within five minutes of ``now`` (Unix seconds)."""
    if not signing_secret:
        raise MissingSignature("no Slack signing secret is configured")
    if not timestamp or not signature:
        raise MissingSignature("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise StaleRequest(f"unreadable request timestamp {timestamp[:20]!r}") from None
    if abs(now - sent_at) > MAX_AGE_SECONDS:
        raise StaleRequest(f"request timestamp is {int(now - sent_at)}s away from now "
                           f"(limit {int(MAX_AGE_SECONDS)}s)")
    expected = slack_signature(signing_secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("X-Slack-Signature does not match the request")


class ReplayGuard:
    """Refuses a signature seen within the last five minutes (one process, bounded)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def check(self, signature: str, now: float) -> None:
        while self._seen and (next(iter(self._seen.values())) < now - MAX_AGE_SECONDS
                              or len(self._seen) >= self._max):
            self._seen.popitem(last=False)
        if signature in self._seen:
            raise BadSignature("this request was already received (replay)")
        self._seen[signature] = now


@dataclass(frozen=True)
class Interaction:
    """One button click from an approval message."""

    user_id: str
    user_name: str
    team_id: str
    action_id: str                  # remediator_approve | remediator_reject | remediator_ack
    value: str                      # the approval id (the incident id for an ack)
    channel_id: str
    message_ts: str
    response_url: str = ""

    @property
    def approved(self) -> bool:
        return self.action_id == APPROVE_ACTION


def parse_interaction(body: bytes) -> Interaction:
    """Read a form-encoded ``payload=<json>`` block_actions body (our buttons only)."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedInteraction(f"body is not form-encoded: {exc}") from None
    raw = form.get("payload")
    if not raw or len(raw) != 1:
        raise MalformedInteraction("body has no single 'payload' field")
    try:
        payload = json.loads(raw[0])
    except json.JSONDecodeError as exc:
        raise MalformedInteraction(f"payload is not JSON: {exc.msg}") from None
    if not isinstance(payload, dict):
        raise MalformedInteraction("payload is not a JSON object")
    if payload.get("type") != "block_actions":
        raise MalformedInteraction(f"unsupported interaction type {payload.get('type')!r}")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedInteraction("payload has no actions")
    action = actions[0]
    action_id = _text(action, "action_id")
    if action_id not in ACTIONS:
        raise MalformedInteraction(f"unknown action_id {action_id!r}")
    user = _mapping(payload, "user")
    channel = _mapping(payload, "channel")
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    message_ts = str((container or {}).get("message_ts") or (message or {}).get("ts") or "")
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    return Interaction(
        user_id=_text(user, "id"),
        user_name=str(user.get("username") or user.get("name") or ""),
        team_id=str((team or {}).get("id") or user.get("team_id") or ""),
        action_id=action_id,
        value=_text(action, "value"),
        channel_id=_text(channel, "id"),
        message_ts=message_ts or _missing("message ts"),
        response_url=str(payload.get("response_url") or ""),
    )


def is_group(entry: str) -> bool:
    """A user group on an allow-list: an id (``S…``) or a handle (``@oncall``)."""
    entry = entry.strip()
    return entry.startswith(("S", "@"))


def message_refusal(interaction: Interaction, team_id: str | None,
                    posted: tuple[str | None, str | None],
                    what: str = "approval request") -> str | None:
    """Why this click may not decide the approval, in words for the clicker; None if it
    may. ``team_id``: the workspace configured (None: any); ``posted``: the channel id
    and ``ts`` of the message remediator posted for the approval (None: not posted)."""
    if team_id and interaction.team_id != team_id:
        return ("This click comes from another Slack workspace "
                f"({interaction.team_id or 'unknown'}); it cannot decide this request.")
    channel, ts = posted
    if not channel or not ts:
        return (f"This {what} was not posted by remediator in Slack; "
                "it cannot be decided from this message.")
    if (interaction.channel_id, interaction.message_ts) != (channel, ts):
        return (f"This is not the {what} remediator posted (a forwarded, copied "
                f"or old message): use the one in <#{channel}>.")
    return None


def check_allowed(user_id: str, allowed: Iterable[str],
                  group_members: Mapping[str, Collection[str]] | None = None) -> None:
    """Raise ``NotAllowed`` unless ``user_id`` is listed, or belongs to a listed group.

    ``allowed`` holds user ids (``U…``/``W…``) and user groups, by id (``S…``) or
    handle (``@oncall``); ``group_members`` maps those group entries to member
    user ids (resolved by the caller, e.g. with ``usergroups.users.list``).
    A group entry matches only through its members, never by equal ids.
    An empty allow-list allows nobody."""
    members = group_members or {}
    for entry in allowed:
        entry = entry.strip()
        if entry == user_id and not is_group(entry):
            return
        candidates = (entry, entry.lstrip("@"), "@" + entry.lstrip("@"))
        if any(user_id in members.get(c, ()) for c in candidates):
            return
    raise NotAllowed(f"Slack user {user_id} may not approve remediation steps")


def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise MalformedInteraction(f"payload has no {key!r} object")
    return value


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedInteraction(f"payload is missing {key!r}")
    return value


def _missing(what: str) -> str:
    raise MalformedInteraction(f"payload is missing the {what}")
