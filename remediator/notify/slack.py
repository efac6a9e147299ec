"""The Slack sink: one thread per incident, its root message edited in place.

* The root message is posted once per incident, in the playbook's
  ``notify.slack.channel`` (else the sink's default channel), and edited on every
  later event whose rendering differs (state, steps, links): Slack users want
  the original message to change state, not a second message.
* Each step (ladder step or escalation action) gets one reply in the thread, edited
  as the step progresses.
* ``APPROVAL_REQUESTED`` posts a reply with Approve/Reject buttons whose
  ``value`` is the approval id (top-level in the approval's own channel when the
  playbook names another one, with a pointer in the thread);
  ``APPROVAL_DECIDED`` edits that message.
* ``ESCALATED`` and ``CLOSED`` with a message add a short reply.
* Flow control: every API call is paced per channel (``rate`` calls a second, Slack's
  "about one message per second per channel", with short bursts) once it is given a
  clock (``use_clock``; the daemon gives it the real clock); ``covers`` names the messages an event
  renders, so the dispatcher can drop edits that a later event redoes; approvals may be
  delivered early (``deliver_early``), ahead of their incident's older events, without
  counting as delivered: in their turn they change nothing (same digests).
* Storms: the events of an incident in a storm (``context["storm"]``, see
  ``remediator.engine.notifications``) edit one storm message per storm in the channel,
  with the storm's counts by state, instead of a thread per incident; its approval
  requests still get their own thread (a human must be able to click).

Everything the sink must remember (root channel id and ``ts``, the reply of
each step and approval, digests of what was last rendered, the last delivered
event id) lives in ``SinkState``, so a restarted daemon edits the same
messages and a redelivered event changes nothing.

Approval id: the engine publishes ``incident.context["approval"] = {"id",
"step", "channel", "expires_at", "decision", "by"}``; the sink reads the id
there (or ``event.approval_id``, should the event grow that field), and
``decision`` (approved | rejected | expired) and ``by`` (Slack user id) for
``APPROVAL_DECIDED``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from remediator import rendering as render
from remediator.clock import Clock
from remediator.engine.notifications import Pacer
from remediator.errors import PermanentError
from remediator.model.incident import StepRecord
from remediator.ports.chat import (
    SLACK_ROOT_CHANNEL,
    SLACK_ROOT_TS,
    SLACK_SINK,
    ChatApi,
    PostedMessage,
)
from remediator.ports.sinks import (
    EventKind,
    NotificationEvent,
    SinkState,
    delivered_before,
    remember_delivered,
)

if TYPE_CHECKING:
    from remediator.notify.files import EvidenceFiles

_LAST = "slack.last_event"
_CHANNEL = SLACK_ROOT_CHANNEL      # SinkState keys of the thread's root,
_ROOT = SLACK_ROOT_TS              # read by slack.notify after a restart
_ROOT_DIGEST = "slack.root_digest"


class SlackSink:
    """Implements ``Sink`` on a ``ChatApi`` (the Slack adapter)."""

    name = SLACK_SINK

    def __init__(self, chat: ChatApi, default_channel: str | None = None, *,
                 rate: float = 1.0, burst: float = 3.0,
                 files: EvidenceFiles | None = None) -> None:
        """``rate``: calls a second per channel (Slack: about 1 message a second in a
        channel), with bursts of ``burst``; pacing starts with ``use_clock``. ``files``:
        the graphs (and at escalation the collected logs) shared in the thread when the
        incident escalates and when it closes."""
        self.chat = chat
        self.files = files
        self.default_channel = default_channel
        self.rate = rate
        self.burst = burst
        self._pacer: Pacer | None = None

    def use_clock(self, clock: Clock) -> None:
        self._pacer = Pacer(clock, self.rate, self.burst)

    async def _pace(self, channel: str) -> None:
        if self._pacer is not None:
            await self._pacer.acquire(channel)

    def covers(self, event: NotificationEvent) -> set[str] | None:
        """The messages ``event`` renders, when it only edits them (None: it posts)."""
        incident = event.incident.id
        storm = event.incident.context.get("storm")
        if event.kind in (EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED):
            return None
        if isinstance(storm, Mapping) and storm.get("id"):
            return {f"storm:{storm['id']}"}
        if event.kind in (EventKind.OPENED, EventKind.STATE):
            return {f"{incident}:root"}
        if event.kind is EventKind.STEP and event.step is not None:
            return {f"{incident}:root", f"{incident}:{step_slot(event.step)}"}
        return None

    async def deliver_early(self, event: NotificationEvent, state: SinkState) -> None:
        """An urgent event ahead of its turn: delivered, not remembered as delivered."""
        await self.deliver(event, state, remember=False)

    async def deliver(self, event: NotificationEvent, state: SinkState, *,
                      remember: bool = True) -> None:
        incident = event.incident.id
        if await delivered_before(event, state, _LAST):
            return
        storm = event.incident.context.get("storm")
        if isinstance(storm, Mapping) and storm.get("id") and event.kind not in (
                EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED):
            await self._storm_message(event, storm, state)
            if remember:
                await remember_delivered(event, state, _LAST)
            return
        root = await self._ensure_root(event, state)
        self.chat.remember_thread(incident, root)
        await self._refresh_root(event, state, root)

        if event.kind is EventKind.STEP and event.step is not None:
            text, blocks = render.step_message(event.step, event.message)
            await self._upsert_reply(state, incident, step_slot(event.step), root,
                                     text, blocks)
        elif event.kind is EventKind.APPROVAL_REQUESTED:
            approval_id, _, _ = approval_of(event)
            if approval_id is None:
                raise PermanentError(f"incident {incident}: approval requested without an id")
            text, blocks = render.approval_message(event.incident, event.step, approval_id,
                                                   event.message)
            elsewhere = approval_channel(event)
            if elsewhere and elsewhere != self._channel_for(event):
                await self._upsert_reply(state, incident, f"approval.{approval_id}", root,
                                         text, blocks, channel=elsewhere)
                note = f":raised_hand: Approval requested in {render.slack_escape(elsewhere)}"
                await self._upsert_reply(state, incident, f"approval.{approval_id}.note", root,
                                         note, None)
            else:
                await self._upsert_reply(state, incident, f"approval.{approval_id}", root,
                                         text, blocks)
        elif event.kind is EventKind.APPROVAL_DECIDED:
            approval_id, decision, by = approval_of(event)
            text, blocks = render.approval_decided_message(
                event.step, decision or "decided", by, event.message)
            await self._upsert_reply(state, incident, f"approval.{approval_id or '?'}", root,
                                     text, blocks)
        elif event.kind in (EventKind.ESCALATED, EventKind.ACKNOWLEDGED, EventKind.RELEASED):
            await self._handoff(event, state, root)
        elif event.kind is EventKind.CLOSED and event.message:
            emoji = render.STATE_STYLE[event.incident.state][0]
            text = f"{emoji} {render.slack_escape(event.message)}"
            await self._upsert_reply(state, incident, f"event.{event.id}", root, text, None)
        if event.kind in (EventKind.ESCALATED, EventKind.CLOSED):
            await self._share_files(event, state, root)

        if remember:
            await remember_delivered(event, state, _LAST)

    async def _handoff(self, event: NotificationEvent, state: SinkState,
                       root: PostedMessage) -> None:
        """The escalation reply with its Acknowledge button (edited once acknowledged, so
        the button goes away), and a reply for an acknowledgement or a release."""
        incident = event.incident.id
        if event.kind is EventKind.ESCALATED:
            await state.set(incident, "slack.escalated.note", event.message)
        note = await state.get(incident, "slack.escalated.note")
        if note is not None:
            text, blocks = render.escalated_message(event.incident, note)
            await self._upsert_reply(state, incident, "escalated", root, text, blocks)
        if event.kind is not EventKind.ESCALATED:
            by = event.message.split(" by ", 1)[-1]
            await self._upsert_reply(state, incident, f"event.{event.id}", root,
                                     render.handoff_message(event.kind.value, by), None)

    async def _share_files(self, event: NotificationEvent, state: SinkState,
                           root: PostedMessage) -> None:
        """Upload the evidence files to the thread, each once (``files_upload_v2``)."""
        if self.files is None:
            return
        view = event.incident
        escalated = event.kind is EventKind.ESCALATED
        files = await (self.files.for_escalation(view) if escalated
                       else self.files.graphs(view))
        for f in files:
            key = f"slack.file.{event.kind.value}.{f.filename}"
            if await state.get(view.id, key):
                continue
            await self._pace(root.channel)
            file_id = await self.chat.upload(root.channel, root.ts, f.filename, f.content,
                                             title=f.title)
            await state.set(view.id, key, file_id or "shared")

    async def _storm_message(self, event: NotificationEvent, storm: Mapping[str, Any],
                             state: SinkState) -> None:
        """Post the storm's one message, or edit it with the latest counts."""
        key = f"storm:{storm['id']}"
        text = render.storm_message(storm)
        ts = await state.get(key, "slack.storm.ts")
        if ts is None:
            channel = self._channel_for(event)
            await self._pace(channel)
            posted = await self.chat.post(channel, text)
            await state.set(key, "slack.storm.channel", posted.channel)
            await state.set(key, "slack.storm.ts", posted.ts)
        elif await state.get(key, "slack.storm.digest") != _digest(text):
            channel = await state.get(key, "slack.storm.channel") or self._channel_for(event)
            await self._pace(channel)
            await self.chat.update(channel, ts, text)
        await state.set(key, "slack.storm.digest", _digest(text))

    # -- the root message ------------------------------------------------------------
    def _channel_for(self, event: NotificationEvent) -> str:
        slack = event.incident.notify.get("slack")
        channel = slack.get("channel") if isinstance(slack, Mapping) else None
        channel = channel or self.default_channel
        if not channel:
            raise PermanentError(f"incident {event.incident.id}: no Slack channel "
                                 "(set the playbook's notify.slack.channel or a default)")
        return str(channel)

    async def _ensure_root(self, event: NotificationEvent, state: SinkState) -> PostedMessage:
        incident = event.incident.id
        channel = await state.get(incident, _CHANNEL)
        ts = await state.get(incident, _ROOT)
        if channel and ts:
            return PostedMessage(channel, ts)
        made = self.chat.thread_of(incident)      # slack.notify made the thread first
        if made is not None:
            await state.set(incident, _CHANNEL, made.channel)
            await state.set(incident, _ROOT, made.ts)
            return made
        text, blocks, attachments = render.root_message(event.incident)
        channel = self._channel_for(event)
        await self._pace(channel)
        root = await self.chat.post(channel, text, blocks=blocks, attachments=attachments)
        await state.set(incident, _CHANNEL, root.channel)
        await state.set(incident, _ROOT, root.ts)
        await state.set(incident, _ROOT_DIGEST, _digest(text, blocks, attachments))
        return root

    async def _refresh_root(self, event: NotificationEvent, state: SinkState,
                            root: PostedMessage) -> None:
        text, blocks, attachments = render.root_message(event.incident)
        digest = _digest(text, blocks, attachments)
        if await state.get(event.incident.id, _ROOT_DIGEST) == digest:
            return
        await self._pace(root.channel)
        await self.chat.update(root.channel, root.ts, text, blocks=blocks,
                               attachments=attachments)
        await state.set(event.incident.id, _ROOT_DIGEST, digest)

    # -- replies ---------------------------------------------------------------------
    async def _upsert_reply(self, state: SinkState, incident: str, slot: str,
                            root: PostedMessage, text: str,
                            blocks: list[dict[str, Any]] | None, *,
                            channel: str | None = None) -> None:
        """Post the message of ``slot`` once (a thread reply, or top-level in ``channel``),
        then edit it in place when its rendering changes."""
        digest = _digest(text, blocks)
        ts = await state.get(incident, f"slack.{slot}.ts")
        if ts is None:
            await self._pace(channel or root.channel)
            if channel:
                posted = await self.chat.post(channel, text, blocks=blocks)
            else:
                posted = await self.chat.reply(root.channel, root.ts, text, blocks=blocks)
            await state.set(incident, f"slack.{slot}.channel", posted.channel)
            await state.set(incident, f"slack.{slot}.ts", posted.ts)
        elif await state.get(incident, f"slack.{slot}.digest") != digest:
            where = await state.get(incident, f"slack.{slot}.channel") or root.channel
            await self._pace(where)
            await self.chat.update(where, ts, text, blocks=blocks)
        await state.set(incident, f"slack.{slot}.digest", digest)


def step_slot(step: StepRecord) -> str:
    """The reply slot of a step. Ladder steps and escalation actions are numbered from 0
    each, so an escalation action has slots of its own (else it overwrote the reply of
    the ladder step with the same index)."""
    if step.action.startswith("escalate:"):
        return f"escalate.{step.index}"
    return f"step.{step.index}"


def approval_of(event: NotificationEvent) -> tuple[str | None, str | None, str | None]:
    """(approval id, decision, decided by) of an approval event; see the module docstring."""
    approval = event.incident.context.get("approval")
    info: Mapping[str, Any] = approval if isinstance(approval, Mapping) else {}
    explicit = getattr(event, "approval_id", None)
    approval_id = explicit or info.get("id")
    decision = info.get("decision")
    by = info.get("by")
    return (str(approval_id) if approval_id else None,
            str(decision) if decision else None,
            str(by) if by else None)


def approval_channel(event: NotificationEvent) -> str | None:
    """The channel the playbook wants approvals asked in, if any."""
    approval = event.incident.context.get("approval")
    channel = approval.get("channel") if isinstance(approval, Mapping) else None
    return str(channel) if channel else None


def _digest(*parts: object) -> str:
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()
