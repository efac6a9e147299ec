"""The actions that hand an incident to humans: ``jira.incident``, ``slack.notify``, ``slack.page``.

Two-phase like every action: ``plan`` is pure (no network, so dry-run and
``remediator dry-run`` work without Jira or Slack) and journals what will be
done; ``apply`` does it, reading the incident snapshot in ``ctx.incident``
(``IncidentView`` dumped with ``mode="json"``; from the engine an ``IncidentSnapshot``,
whose view is used as is) for the latest state.

``jira.incident`` opens exactly one ticket per incident key. It is found again by
a label derived from the key (``remediator-<sha1 prefix>``), looked up — first
the key already in the incident's context, then a label search — before any
create, under a per-label lock held by the tracker port (``ctx.tickets``), so
that duplicate webhooks, concurrent steps or a restart never make two tickets. A
closed ticket whose resolution is within ``reopen_window`` is reopened for a
new episode; an older one gets a fresh ticket. The result carries
``details["context"]["jira"] = {"key", "url", "label"}``; the engine merges it
into the incident's context, which is how the Jira sink learns the key.

Jira and Slack are reached through the ports (``remediator.ports.tracker`` and
``.chat``), never an adapter. A missing port (``ctx.tickets`` / ``ctx.chat`` is
None) is a ``PermanentError``: configuration is read at start-up, so retrying
within this process cannot help, and failing fast lets the escalation ladder
move on to the next action.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import ValidationError

from remediator import rendering as render
from remediator.actions.params import JiraIncidentParams, SlackNotifyParams, SlackPageParams
from remediator.engine.contract import ActionResult, IncidentSnapshot, Intent, RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import IncidentState, IncidentView
from remediator.ports.chat import (
    SLACK_ROOT_CHANNEL,
    SLACK_ROOT_TS,
    SLACK_SINK,
    ChatApi,
    PostedMessage,
)
from remediator.ports.tracker import Ticket, TrackerApi, clean_label, clean_summary

DEFAULT_REOPEN_WINDOW = timedelta(hours=24)


def incident_label(incident_key: str) -> str:
    """The Jira label that finds an incident key's ticket again (stable across restarts)."""
    digest = hashlib.sha1(incident_key.encode(), usedforsecurity=False).hexdigest()
    return f"remediator-{digest[:16]}"


def incident_view(ctx: RunContext) -> IncidentView:
    """The incident snapshot from ``ctx.incident``, or one built from the context's fields.
    Read-only: from the engine, it is the view ``ctx.incident`` was taken from."""
    if isinstance(ctx.incident, IncidentSnapshot):
        return ctx.incident.view            # no dump and validation back again
    now = ctx.clock.now()
    base: dict[str, Any] = {
        "id": ctx.incident_id, "key": ctx.incident_key, "playbook": ctx.playbook,
        "target": ctx.target, "state": IncidentState.REMEDIATING, "created_at": now,
        "updated_at": now, "alerts": [dict(a) for a in ctx.alerts]}
    try:
        return IncidentView.model_validate({**base, **dict(ctx.incident)})
    except ValidationError:
        return IncidentView.model_validate(base)


def _context_of(ctx: RunContext) -> Mapping[str, Any]:
    context = ctx.incident.get("context") if ctx.incident else None
    return context if isinstance(context, Mapping) else {}


def _storm_of(ctx: RunContext) -> Mapping[str, Any] | None:
    """The notification storm the incident belongs to (``context["storm"]``), if any; read
    from the snapshot's view (no dump of the incident)."""
    storm = incident_view(ctx).context.get("storm")
    return storm if isinstance(storm, Mapping) and storm.get("id") else None


def _tickets(ctx: RunContext) -> TrackerApi:
    if ctx.tickets is None:
        raise PermanentError("Jira is not configured (no ticket adapter): cannot open a ticket")
    return ctx.tickets


def _chat(ctx: RunContext) -> ChatApi:
    if ctx.chat is None:
        raise PermanentError("Slack is not configured (no chat adapter): cannot post")
    return ctx.chat


class JiraIncident:
    """``jira.incident``: find, reopen or create the incident's ticket."""

    name: ClassVar[str] = "jira.incident"
    params = JiraIncidentParams

    def __init__(self, reopen_window: timedelta = DEFAULT_REOPEN_WINDOW,
                 reopen_transition: str = "Reopen") -> None:
        """``reopen_window``: a ticket resolved less than this long ago is reopened for a
        new episode instead of a new ticket being created. ``reopen_transition``: the
        workflow transition (or target status) that reopens."""
        self.reopen_window = reopen_window
        self.reopen_transition = reopen_transition
        self._storm_tickets: dict[str, dict[str, str]] = {}     # label → the storm's ticket

    async def plan(self, ctx: RunContext, params: JiraIncidentParams) -> Intent:
        view = incident_view(ctx)
        storm = _storm_of(ctx)
        if storm is not None:                                   # one ticket for the storm
            label = incident_label(f"storm:{storm['id']}")
            params = params.model_copy(update={"summary": clean_summary(
                f"[remediator] notification storm: incidents of playbook {ctx.playbook} "
                f"since {str(storm.get('since', ''))[:16]}")})
        else:
            label = incident_label(ctx.incident_key)
        labels = [clean_label(x) for x in (label, "remediator", *params.labels)]
        summary = clean_summary(params.summary or render.ticket_summary(view))
        args = {"project": params.project, "issue_type": params.issue_type,
                "priority": params.priority, "components": list(params.components),
                "summary": summary, "labels": list(dict.fromkeys(labels)), "label": label}
        window = render.duration(self.reopen_window)
        return Intent(
            action=self.name,
            description=(f"find the {params.project} ticket labelled {label} (reopen it if "
                         f"resolved within {window}) or create {params.issue_type} "
                         f"{summary!r}"),
            args=args,
            api_calls=[f'search labels = "{label}" AND project = "{params.project}"',
                       f"POST /rest/api/2/issue project={params.project} "
                       f"issuetype={params.issue_type} labels={args['labels']}"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        tickets = _tickets(ctx)
        a = intent.args
        label = str(a["label"])
        known = self._storm_tickets.get(label)
        if known is not None:                   # the storm's ticket: no call per incident
            return ActionResult(summary=f"found Jira ticket {known['key']} (storm)",
                                details={"context": {"jira": known}, "outcome": "found"})
        async with tickets.lock(label):
            ticket = await self._existing(ctx, tickets, label, str(a["project"]))
            view = incident_view(ctx)
            if ticket is not None and not ticket.done:
                outcome = "found"
            elif ticket is not None and self._recent(ctx, ticket):
                comment = (f"*Reopened by remediator:* a new episode, incident "
                           f"{render.wiki_escape(ctx.incident_id)}.\n\n"
                           + render.incident_report(view))
                await tickets.transition(ticket.key, self.reopen_transition, comment=comment)
                outcome = "reopened"
            else:
                ticket = await tickets.create(
                    project=str(a["project"]), issue_type=str(a["issue_type"]),
                    summary=str(a["summary"]), description=render.incident_report(view),
                    labels=list(a["labels"]), priority=a.get("priority"),
                    components=list(a.get("components") or ()))
                outcome = "created"
        jira = {"key": ticket.key, "url": ticket.url, "label": label}
        if _storm_of(ctx) is not None:
            self._storm_tickets[label] = jira
        return ActionResult(summary=f"{outcome} Jira ticket {ticket.key}",
                            details={"context": {"jira": jira}, "outcome": outcome})

    async def _existing(self, ctx: RunContext, tickets: TrackerApi, label: str,
                        project: str) -> Ticket | None:
        known = _context_of(ctx).get("jira")
        key = known.get("key") if isinstance(known, Mapping) else None
        if key:
            try:
                return await tickets.get(str(key))
            except PermanentError:
                pass          # deleted or moved: fall back to the label
        return await tickets.find_by_label(label, project=project)

    def _recent(self, ctx: RunContext, ticket: Ticket) -> bool:
        closed = ticket.resolved_at or ticket.updated_at
        return closed is not None and ctx.clock.now() - closed <= self.reopen_window


#: the most characters of a ``slack.notify`` text (Slack refuses texts over 40,000)
SLACK_TEXT_MAX = 12_000
#: seconds before trying again when the incident's thread does not exist yet
THREAD_WAIT = 5.0


class SlackNotify:
    """``slack.notify``: a message in the incident's thread, or in the given channel.

    Never lost for want of a thread: without ``channel`` and before the Slack sink has
    made the incident's thread, the thread is created (its root in the playbook's
    ``notify.slack.channel``, else the chat's ``default_channel`` when it has one) and
    remembered for the sink, which then edits that root; with neither known here, the
    sink (which falls back to ``slack.default_channel``) makes the thread and the action
    is retried (``TemporaryError``) until it exists. A long text is cut with a marker.
    """

    name: ClassVar[str] = "slack.notify"
    params = SlackNotifyParams

    async def plan(self, ctx: RunContext, params: SlackNotifyParams) -> Intent:
        where = params.channel or "the incident's thread"
        return Intent(action=self.name, description=f"post in {where}: {params.text[:80]!r}",
                      args={"channel": params.channel, "text": params.text},
                      api_calls=["POST chat.postMessage"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        chat = _chat(ctx)
        text = render.clip(str(intent.args["text"]), SLACK_TEXT_MAX)
        channel = intent.args.get("channel")
        storm = None if channel else _storm_of(ctx)
        if storm is not None:
            # a storm: the incident has no thread of its own; the storm message counts it
            return ActionResult(summary=f"folded into the storm message of {storm['id']}",
                                details={"storm": storm.get("id")})
        posted: PostedMessage
        if channel:
            posted = await chat.post(str(channel), text)
        else:
            thread = await _thread_of(ctx, chat) or await _new_thread(ctx, chat)
            posted = await chat.reply(thread.channel, thread.ts, text)
        return ActionResult(summary=f"posted to Slack {posted.channel} at {posted.ts}",
                            details={"slack": {"channel": posted.channel, "ts": posted.ts}})


async def _new_thread(ctx: RunContext, chat: ChatApi) -> PostedMessage:
    """Create the incident's thread (its root message, as the Slack sink renders it) in the
    playbook's channel or the chat's default one, and remember it for the sink; with no
    channel known here, wait for the sink to make it (it knows the configured default)."""
    notify = ctx.incident.get("notify") if ctx.incident else None
    slack = notify.get("slack") if isinstance(notify, Mapping) else None
    channel = slack.get("channel") if isinstance(slack, Mapping) else None
    channel = channel or getattr(chat, "default_channel", None)
    if not channel:
        raise TemporaryError("slack.notify: the incident has no Slack thread yet; the Slack "
                             "sink creates it in slack.default_channel", delay=THREAD_WAIT)
    text, blocks, attachments = render.root_message(incident_view(ctx))
    root = await chat.post(str(channel), text, blocks=blocks, attachments=attachments)
    chat.remember_thread(ctx.incident_id, root)
    return root


async def _thread_of(ctx: RunContext, chat: ChatApi) -> PostedMessage | None:
    """The root of the incident's Slack thread: the chat's in-memory map (filled by the
    Slack sink in this process), else the sink's durable state (after a restart)."""
    thread = chat.thread_of(ctx.incident_id)
    if thread is not None or ctx.sink_state is None:
        return thread
    channel = await ctx.sink_state(SLACK_SINK, SLACK_ROOT_CHANNEL)
    ts = await ctx.sink_state(SLACK_SINK, SLACK_ROOT_TS)
    if not channel or not ts:
        return None
    thread = PostedMessage(str(channel), str(ts))
    chat.remember_thread(ctx.incident_id, thread)
    return thread


class SlackPage:
    """``slack.page``: page the on-call group with everything they need to start."""

    name: ClassVar[str] = "slack.page"
    params = SlackPageParams

    async def plan(self, ctx: RunContext, params: SlackPageParams) -> Intent:
        return Intent(action=self.name,
                      description=f"page {params.mention} in {params.channel}",
                      args={"channel": params.channel, "mention": params.mention,
                            "text": params.text},
                      api_calls=[f"POST chat.postMessage channel={params.channel}"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        chat = _chat(ctx)
        a = intent.args
        view = incident_view(ctx)
        text, blocks = render.page_message(view, str(a["mention"]), a.get("text"))
        posted = await chat.post(str(a["channel"]), text, blocks=blocks)
        page = {"channel": posted.channel, "ts": posted.ts}
        return ActionResult(summary=f"paged {a['mention']} in {a['channel']}",
                            details={"context": {"slack_page": page}})
