"""On-call chains: an escalation policy paged level after level until someone acknowledges.

    escalate ─▶ start(incident, policy): timer (round 0, level 0, step 0) due now
    tick ─▶ claim due timers (a lease; one replica each) ─▶ fire:
        incident closed / acknowledged / policy gone ─▶ the chain ends (timer deleted)
        else page the level's targets (step 0) or remind them (step k), once
        ─▶ move the timer on (compare-and-set): the next reminder, else the next level
           ``ack_within`` after this level's page, else the first level again
           (``repeat`` times), else done

The timer is the chain's only state and lives in the store (``TimerStore``): a restart
resumes it where it was. A page is recorded under a sink-state key of its position
before the timer moves, so a replica that took over a timer whose holder died after
paging does not page again; and the compare-and-set means a timer moved on by one
replica is never moved again by another.

Pages go to Slack through the chat port, mentioning the level's users and user groups,
with an Acknowledge button (``rendering.chain_page``): a reply in the incident's thread
when the level's channel is the incident's (as configured: the playbook's
``notify.slack.channel``, else the default), else a top-level message in the level's
channel with a link to the thread (``chat.getPermalink``); top-level without a link
while the incident has no thread yet.

PagerDuty is triggered on a level's page only, never on a reminder: a trigger with the
same ``dedup_key`` (the incident id) while the alert is open is deduplicated by
PagerDuty, so re-sending it would notify nobody; PagerDuty's own escalation policy and
its notification rules remind its responders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from remediator import rendering as render
from remediator.clock import Clock
from remediator.engine.handoff import ack_of
from remediator.engine.supervisor import Supervisor
from remediator.errors import PermanentError
from remediator.model.incident import IncidentView, TimelineEntry
from remediator.model.records import ChainTimer
from remediator.ports.chat import (
    SLACK_ROOT_CHANNEL,
    SLACK_ROOT_TS,
    SLACK_SINK,
    ChatApi,
    PostedMessage,
)
from remediator.ports.pager import PAGED_SERVICES, PAGERDUTY_SINK, PagerApi
from remediator.ports.store import Store
from remediator.settings import EscalationPolicy, EscalationTargets

log = logging.getLogger("remediator.engine")

BATCH = 50          # timers claimed per look


def next_timer(policy: EscalationPolicy, t: ChainTimer) -> ChainTimer | None:
    """What fires after ``t``: its level's next reminder, else the next level once
    ``ack_within`` passed, else the first level of the next round, else nothing."""
    level = policy.levels[t.level]
    reminders = sorted(level.reminders)
    if t.step < len(reminders):
        due = t.level_at + timedelta(seconds=reminders[t.step])
        return ChainTimer(t.incident_id, t.policy, t.level, t.round, t.step + 1, t.level_at,
                          due)
    due = t.level_at + timedelta(seconds=level.ack_within)
    if t.level + 1 < len(policy.levels):
        return ChainTimer(t.incident_id, t.policy, t.level + 1, t.round, 0, due, due)
    if t.round < policy.repeat:
        return ChainTimer(t.incident_id, t.policy, 0, t.round + 1, 0, due, due)
    return None


def page_key(t: ChainTimer) -> str:
    """The sink-state key recording that ``t``'s page went out (its level's start in it:
    a chain restarted after a release pages again)."""
    return f"chain.paged.{t.round}.{t.level}.{t.step}.{t.level_at.isoformat()}"


def message_key(channel: str, ts: str) -> str:
    """The sink-state key marking a Slack message as one of the incident's chain pages
    (its Acknowledge button is then honoured, see ``server/oncall.py``)."""
    return f"{SLACK_SINK}:chain.message.{channel}.{ts}"


class Chains:
    def __init__(self, store: Store, clock: Clock, policies: Mapping[str, EscalationPolicy],
                 *, chat: Callable[[], ChatApi | None], default_channel: str | None,
                 owner: str, lease: float, tick: float,
                 pager: Callable[[], PagerApi | None] = lambda: None) -> None:
        self.store = store
        self.clock = clock
        self.policies = policies
        self.chat = chat
        self.pager = pager
        self.default_channel = default_channel
        self.owner = owner
        self.lease = lease
        self.tick_every = tick
        self.stopping = False

    def start_loop(self, tasks: Supervisor) -> None:
        if self.policies:
            tasks.start(self._loop(), name="escalation-chains")

    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self.tick()
            except Exception:
                log.exception("firing escalation chain timers failed; trying again")
            await self.clock.sleep(self.tick_every)

    async def start(self, incident_id: str, policy: str) -> None:
        """Start the incident's chain at its first level, due now (once: a chain already
        running is left as it is)."""
        if await self.store.get_timer(incident_id) is not None:
            return
        now = self.clock.now()
        await self.store.set_timer(ChainTimer(incident_id, policy, 0, 0, 0, now, now))

    async def restart(self, incident_id: str, policy: str) -> None:
        """Page the chain again from its first level, now (after a release)."""
        now = self.clock.now()
        await self.store.set_timer(ChainTimer(incident_id, policy, 0, 0, 0, now, now))

    async def tick(self) -> int:
        """Fire every timer due now that this replica could claim, and those that fall due
        by firing (a daemon that was down catches up level by level); how many it fired.
        A timer whose firing failed stays leased: it is tried again when the lease ends."""
        fired = 0
        while not self.stopping:
            batch = await self.store.claim_timers(self.owner, self.clock.now(), self.lease,
                                                  BATCH)
            for timer in batch:
                try:
                    await self.fire(timer)
                    fired += 1
                except Exception:
                    log.exception("escalation chain timer failed; retried after its lease",
                                  extra={"incident": timer.incident_id})
            if not batch:
                return fired
        return fired

    async def fire(self, t: ChainTimer) -> None:
        view = await self.store.get_incident(t.incident_id, alert_limit=1)
        policy = self.policies.get(t.policy)
        why = self._ended(view, t.policy in self.policies)
        if why is not None or policy is None or view is None:
            await self.store.advance_timer(t, self.owner, None)
            if view is not None:
                await self._note(t.incident_id, f"escalation policy {t.policy!r} stopped: {why}")
            return
        await self._page(view, policy, t)
        after = next_timer(policy, t)
        if await self.store.advance_timer(t, self.owner, after) and after is None:
            await self._note(t.incident_id, f"escalation policy {t.policy!r}: every level "
                                            "was paged and nobody acknowledged")

    @staticmethod
    def _ended(view: IncidentView | None, known: bool) -> str | None:
        if view is None:
            return "the incident is gone"
        if view.state.closed:
            return f"the incident {view.state.value}"
        ack = ack_of(view)
        if ack is not None:
            return f"acknowledged by {ack['by']}"
        if not known:
            return "the policy is no longer configured"
        return None

    async def _page(self, view: IncidentView, policy: EscalationPolicy, t: ChainTimer) -> None:
        """Page the level's targets, each channel once per position (a page recorded as
        sent is not sent again when the timer is fired again after a crash)."""
        targets = policy.levels[t.level].targets
        what = (f"level {t.level + 1} of {len(policy.levels)}"
                + (f", reminder {t.step}" if t.step else "")
                + (f", round {t.round + 1}" if t.round else ""))
        data = {"policy": t.policy, "level": t.level, "round": t.round, "step": t.step}
        if targets.slack_users or targets.slack_groups or targets.slack_channel:
            key = page_key(t) + ".slack"
            if await self.store.sink_get(t.incident_id, key) is None:
                said = await self._slack(view, t.policy, what, targets)
                await self.store.sink_set(t.incident_id, key, self.clock.now().isoformat())
                await self._note(view.id, f"escalation policy {t.policy!r} {what}: {said}",
                                 **data)
        if targets.pagerduty and t.step == 0:      # a reminder is PagerDuty's own business
            key = page_key(t) + ".pagerduty"
            if await self.store.sink_get(t.incident_id, key) is None:
                said = await self._pagerduty(view, targets.pagerduty)
                await self.store.sink_set(t.incident_id, key, self.clock.now().isoformat())
                await self._note(view.id, f"escalation policy {t.policy!r} {what}: {said}",
                                 **data)

    async def _slack(self, view: IncidentView, policy: str, what: str,
                     targets: EscalationTargets) -> str:
        """The page: a reply in the incident's Slack thread when the level's channel is
        the incident's; else top-level in the level's channel, linking to the thread."""
        chat = self.chat()
        channel = targets.slack_channel or self.default_channel
        if chat is None or not channel:
            return "could not page in Slack: Slack (or a channel) is not configured"
        who = [*targets.slack_users, *targets.slack_groups]
        root = await self._thread(view, chat)
        if root is not None and channel == self._incident_channel(view):
            text, blocks = render.chain_page(view, policy, what, targets.slack_users,
                                             targets.slack_groups)
            posted = await chat.reply(root.channel, root.ts, text, blocks=blocks)
            where = f"in the incident's thread in {channel}"
        else:
            link = await chat.permalink(root.channel, root.ts) if root is not None else None
            text, blocks = render.chain_page(view, policy, what, targets.slack_users,
                                             targets.slack_groups, thread_link=link)
            posted = await chat.post(channel, text, blocks=blocks)
            where = f"in {channel}" + (", linking to the incident's thread" if link else
                                      " (the incident has no Slack thread yet)")
        await self.store.sink_set(view.id, message_key(posted.channel, posted.ts), "1")
        return f"paged {', '.join(who) or 'the channel'} {where}"

    def _incident_channel(self, view: IncidentView) -> str | None:
        """The channel of the incident's thread, as configured (the playbook's
        notify.slack.channel, else the default): the Slack sink's choice."""
        slack = view.notify.get("slack")
        channel = slack.get("channel") if isinstance(slack, Mapping) else None
        return str(channel) if channel else self.default_channel

    async def _thread(self, view: IncidentView, chat: ChatApi) -> PostedMessage | None:
        """The root of the incident's Slack thread (as the Slack sink recorded it)."""
        channel = await self.store.sink_get(view.id, f"{SLACK_SINK}:{SLACK_ROOT_CHANNEL}")
        ts = await self.store.sink_get(view.id, f"{SLACK_SINK}:{SLACK_ROOT_TS}")
        if channel and ts:
            return PostedMessage(channel, ts)
        return chat.thread_of(view.id)

    async def _pagerduty(self, view: IncidentView, service: str) -> str:
        """Trigger the PagerDuty alert of the incident (dedup key: its id), with what was
        tried; the service is remembered so that an ack or the close follows there."""
        pager = self.pager()
        if pager is None:
            return f"could not page PagerDuty service {service!r}: PagerDuty is not configured"
        try:
            await pager.event(service, "trigger", view.id, summary=render.pager_summary(view),
                              details={"incident": view.id, "playbook": view.playbook,
                                       "target": str(view.target or ""),
                                       "tried": [render.step_outcome(s) for s in view.steps]})
        except PermanentError as exc:
            return f"PagerDuty service {service!r} refused the page: {exc}"
        state = f"{PAGERDUTY_SINK}:{PAGED_SERVICES}"
        paged = json.loads(await self.store.sink_get(view.id, state) or "[]")
        if service not in paged:
            await self.store.sink_set(view.id, state, json.dumps([*paged, service]))
        return f"triggered PagerDuty service {service!r}"

    async def _note(self, incident_id: str, message: str, **data: object) -> None:
        now = self.clock.now()
        await self.store.journal(incident_id, now, timeline=(
            TimelineEntry(at=now, kind="escalate", message=message, data=dict(data)),))
        log.info(message, extra={"incident": incident_id})
