"""Rendering an incident for humans: Slack mrkdwn/Block Kit, Jira wiki markup, short lines.

Pure functions of ``IncidentView`` / ``StepRecord``: no I/O, no clock (durations
come from the snapshot's own timestamps). The sinks (``remediator.notify``) and
the human-facing actions (``remediator.actions.humans``) share them so that
Slack, Jira and the console tell the same story; it sits below both, so it
knows no notification event (the console's line of one is in
``remediator.notify.console``) and no client.

Alerts in ``IncidentView.alerts`` are read loosely (``labels``, ``annotations``,
``generatorURL``/``generator_url``, ``startsAt``/``starts_at``, ``status``),
because they are data from outside. Text from alerts is escaped for each
format (Slack's ``& < >``; Jira's table and macro characters), and long values are
truncated with a visible marker (``clip``: "… [truncated 61,440 characters]") so that a
64 KiB label value makes a shorter message, never a failed one (Slack's text and Jira's
description have limits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from remediator.model.incident import (
    EvidenceItem,
    IncidentState,
    IncidentView,
    StepRecord,
    StepStatus,
)

# state → (emoji, label, colour of the attachment bar)
STATE_STYLE: dict[IncidentState, tuple[str, str, str]] = {
    IncidentState.OPEN: (":rotating_light:", "Firing", "#E01E5A"),
    IncidentState.REMEDIATING: (":hammer_and_wrench:", "Remediating", "#ECB22E"),
    IncidentState.AWAITING_APPROVAL: (":raised_hand:", "Awaiting approval", "#ECB22E"),
    IncidentState.RECOVERED: (":white_check_mark:", "Recovered", "#2EB67D"),
    IncidentState.ESCALATED: (":sos:", "Escalated to humans", "#A30200"),
    IncidentState.RESOLVED: (":large_green_circle:", "Resolved", "#2EB67D"),
}
STEP_EMOJI: dict[StepStatus, str] = {
    StepStatus.PENDING: ":hourglass_flowing_sand:",
    StepStatus.INTENT: ":gear:",
    StepStatus.APPLIED: ":gear:",
    StepStatus.VERIFYING: ":mag:",
    StepStatus.SUCCEEDED: ":white_check_mark:",
    StepStatus.FAILED: ":x:",
    StepStatus.SKIPPED: ":fast_forward:",
    StepStatus.DRY_RUN: ":memo:",
}
APPROVE_ACTION = "remediator_approve"
REJECT_ACTION = "remediator_reject"
ACK_ACTION = "remediator_ack"


#: the most characters of one value (a label, a summary, a note) in a Slack message
SLACK_VALUE_MAX = 3000
#: the most characters of one value in Jira wiki markup, and of a whole description
#: (Jira refuses descriptions over 32,767)
WIKI_VALUE_MAX = 2000
JIRA_DESCRIPTION_MAX = 32_000


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and a visible marker
    saying how much was cut (the result fits in ``limit``)."""
    if len(text) <= limit:
        return text
    marker_room = 40
    keep = max(0, limit - marker_room)
    return f"{text[:keep]}… [truncated {len(text) - keep:,} characters]"


# -- reading the snapshot ---------------------------------------------------------------
def alert_name(alert: Mapping[str, Any]) -> str:
    return str(_labels(alert).get("alertname", "alert"))


def _labels(alert: Mapping[str, Any]) -> dict[str, Any]:
    value = alert.get("labels")
    return dict(value) if isinstance(value, Mapping) else {}


def _annotations(alert: Mapping[str, Any]) -> dict[str, Any]:
    value = alert.get("annotations")
    return dict(value) if isinstance(value, Mapping) else {}


def graph_url(alert: Mapping[str, Any]) -> str | None:
    value = alert.get("generatorURL") or alert.get("generator_url")
    return str(value) if value else None


def runbook_url(alert: Mapping[str, Any]) -> str | None:
    value = _annotations(alert).get("runbook_url")
    return str(value) if value else None


def links(view: IncidentView) -> list[tuple[str, str]]:
    """(title, url) of every runbook and graph of the incident's alerts, and the ticket."""
    out: list[tuple[str, str]] = []
    for alert in view.alerts:
        for title, url in (("Runbook", runbook_url(alert)), ("Graph", graph_url(alert))):
            if url and (title, url) not in out:
                out.append((title, url))
    jira = view.context.get("jira")
    if isinstance(jira, Mapping) and jira.get("url"):
        out.append((f"Jira {jira.get('key', '')}".strip(), str(jira["url"])))
    return out


def headline(view: IncidentView) -> str:
    """A one-line title: alert name and target."""
    names = sorted({alert_name(a) for a in view.alerts}) or [view.playbook]
    where = f" on {view.target}" if view.target else ""
    return f"{', '.join(names)}{where}"


def time_to_detect(view: IncidentView) -> timedelta | None:
    """From the first alert's start to the incident being opened."""
    if view.first_alert_at is None:
        return None
    return max(timedelta(0), view.created_at - view.first_alert_at)


def time_to_recover(view: IncidentView) -> timedelta | None:
    """From the first alert's start (or the incident's) to recovery; None if not recovered."""
    if view.closed_at is None or view.state not in (IncidentState.RECOVERED,
                                                   IncidentState.RESOLVED):
        return None
    return max(timedelta(0), view.closed_at - (view.first_alert_at or view.created_at))


def duration(value: timedelta | None) -> str:
    if value is None:
        return "n/a"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "n/a"


def step_outcome(step: StepRecord) -> str:
    """'restart (kubernetes.restart): succeeded, rollout complete' in plain text."""
    parts = [p for p in (step.result, step.error and f"error: {step.error}",
                         step.verify and f"verify: {step.verify}") if p]
    detail = f" — {'; '.join(parts)}" if parts else ""
    return f"{step.index + 1}. {step.name} ({step.action}): {step.status.value}{detail}"


# -- Slack ------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    text = clip(text, SLACK_VALUE_MAX)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(title: str, url: str) -> str:
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{slack_escape(title)}>"


def root_text(view: IncidentView) -> str:
    """The notification text (fallback) of an incident's root message."""
    emoji, label, _ = STATE_STYLE[view.state]
    dry = " [dry run]" if view.dry_run else ""
    return f"{emoji} {label}{dry}: {headline(view)}"


def root_message(view: IncidentView) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(text, blocks, attachments) of the root message; the attachment carries the colour."""
    emoji, label, colour = STATE_STYLE[view.state]
    dry = " _(dry run)_" if view.dry_run else ""
    title = f"{emoji} *{label}*{dry} · {slack_escape(headline(view))}"
    if view.summary:
        title += f"\n{slack_escape(view.summary)}"
    blocks: list[dict[str, Any]] = [_section(title)]
    fields = [f"*Playbook*\n{slack_escape(view.playbook)}",
              f"*Target*\n{slack_escape(str(view.target) if view.target else 'none')}",
              f"*Started*\n{_when(view.first_alert_at or view.created_at)}",
              f"*Alerts*\n{view.total_alerts}"]
    if view.closed_at is not None:
        fields.append(f"*Closed*\n{_when(view.closed_at)}")
        fields.append(f"*Time to recover*\n{duration(time_to_recover(view))}")
    details: list[dict[str, Any]] = [{"type": "section", "fields": [
        {"type": "mrkdwn", "text": f} for f in fields]}]
    if view.steps:
        ladder = "  ".join(f"{STEP_EMOJI[s.status]} {slack_escape(s.name)}" for s in view.steps)
        details.append(_context(f"Steps: {ladder}"))
    found = diagnosis_lines(view, limit=3)
    if found:
        details.append(_context("Diagnosis: " + "\n".join(slack_escape(f) for f in found)))
    link_text = " · ".join(_slack_link(t, u) for t, u in links(view))
    if link_text:
        details.append(_context(link_text))
    attachments = [{"color": colour, "fallback": root_text(view), "blocks": details}]
    return root_text(view), blocks, attachments


def storm_message(storm: Mapping[str, Any]) -> str:
    """The one message of a notification storm: its incidents, counted by state."""
    counts = storm.get("counts")
    counts = counts if isinstance(counts, Mapping) else {}
    labels = {state.value: STATE_STYLE[state][1].lower() for state in IncidentState}
    by_state = " · ".join(f"{n:,} {labels.get(str(state), slack_escape(str(state)))}"
                          for state, n in counts.items())
    since = str(storm.get("since", ""))[11:16]
    return (f":cyclone: *Storm* · playbook {slack_escape(str(storm.get('playbook', '?')))}: "
            f"{int(storm.get('incidents') or 0):,} incidents since {since} UTC, folded into "
            f"this message\n{by_state}")


def step_message(step: StepRecord, note: str = "") -> tuple[str, list[dict[str, Any]]]:
    """A thread reply for one step (edited as the step progresses)."""
    text = f"{STEP_EMOJI[step.status]} {slack_escape(step_outcome(step))}"
    if note:
        text += f"\n{slack_escape(note)}"
    return text, [_section(text)]


def approval_message(view: IncidentView, step: StepRecord | None, approval_id: str,
                     note: str = "") -> tuple[str, list[dict[str, Any]]]:
    """A thread reply asking for approval, with Approve/Reject buttons."""
    what = f"step *{slack_escape(step.name)}* ({slack_escape(step.action)})" if step else "a step"
    intent = (step.intent or {}).get("description") if step else None
    text = f":raised_hand: Approval needed for {what} on {slack_escape(headline(view))}"
    if intent:
        text += f"\nIt will: {slack_escape(str(intent))}"
    if note:
        text += f"\n{slack_escape(note)}"
    buttons = {"type": "actions", "block_id": f"approval:{approval_id}"[:255], "elements": [
        {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": approval_id,
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "value": approval_id,
         "text": {"type": "plain_text", "text": "Reject"}},
    ]}
    return text, [_section(text), buttons]


def approval_decided_message(step: StepRecord | None, decision: str, by: str | None,
                             note: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The approval request, edited once decided: the buttons go away."""
    emoji = {"approved": ":white_check_mark:", "rejected": ":no_entry:"}.get(
        decision, ":hourglass:")
    what = f"*{slack_escape(step.name)}*" if step else "the step"
    user = re.search(r"\b([UW][A-Z0-9]{2,})\)?$", by or "")   # "U0ALICE" or "alice (U0ALICE)"
    who = f" by <@{user.group(1)}>" if user else (f" by {slack_escape(by)}" if by else "")
    text = f"{emoji} Approval for {what}: {slack_escape(decision)}{who}"
    if note:
        text += f"\n{slack_escape(note)}"
    return text, [_section(text)]


def escalated_message(view: IncidentView, note: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The escalation reply: why, and an Acknowledge button (value: the incident id) until
    someone acknowledged; then who did."""
    emoji = STATE_STYLE[IncidentState.ESCALATED][0]
    text = f"{emoji} {slack_escape(note or 'escalated to humans')}"
    ack = view.context.get("ack")
    if isinstance(ack, Mapping) and ack.get("by"):
        text += f"\n:eyes: Acknowledged by {_who(str(ack['by']))}: no automated action until " \
                "it is resolved or released"
        return text, [_section(text)]
    button = {"type": "actions", "block_id": f"ack:{view.id}"[:255], "elements": [
        {"type": "button", "action_id": ACK_ACTION, "style": "primary", "value": view.id,
         "text": {"type": "plain_text", "text": "Acknowledge"}}]}
    return text, [_section(text), button]


def chain_page(view: IncidentView, policy: str, what: str, users: list[str],
               groups: list[str], *, thread_link: str | None = None
               ) -> tuple[str, list[dict[str, Any]]]:
    """A page of an escalation policy's level: its users and groups mentioned, the
    incident, a link to the incident's Slack thread (when the page is not in it) and an
    Acknowledge button (value: the incident id)."""
    mentions = " ".join([*(f"<@{u}>" for u in users), *(f"<!subteam^{g}>" for g in groups)])
    lead = f":rotating_light: {mentions} " if mentions else ":rotating_light: "
    text = (f"{lead}*{slack_escape(headline(view))}* is escalated and nobody acknowledged "
            f"it: policy {slack_escape(policy)}, "
            f"{slack_escape(what)}.\n{slack_escape(view.summary)}\n"
            f"Incident `{slack_escape(view.id)}`: acknowledge here or with "
            f"`remediator ack {slack_escape(view.id)}`.")
    if thread_link:
        text += f"\n<{thread_link}|The incident's thread>"
    button = {"type": "actions", "block_id": f"ack:{view.id}"[:255], "elements": [
        {"type": "button", "action_id": ACK_ACTION, "style": "primary", "value": view.id,
         "text": {"type": "plain_text", "text": "Acknowledge"}}]}
    return text, [_section(text), button]


def pager_summary(view: IncidentView) -> str:
    """One line for a PagerDuty alert: what fires, and what remediator tried."""
    tried = [s for s in view.steps if not s.action.startswith("escalate:")]
    did = "; ".join(step_outcome(s) for s in tried) or "no automated step"
    return clip(f"{headline(view)}: {view.summary or 'escalated'}. Tried: {did}", 1024)


def handoff_message(kind: str, by: str) -> str:
    """A thread reply when a human acknowledged or released the incident."""
    if kind == "acknowledged":
        return (f":eyes: Acknowledged by {_who(by)}: automation keeps its hands off the "
                "target until the incident is resolved or released")
    return f":arrows_counterclockwise: Released by {_who(by)}: automation may act again"


def _who(by: str) -> str:
    user = re.search(r"\b([UW][A-Z0-9]{2,})\)?$", by)   # "U0ALICE" or "alice (U0ALICE)"
    return f"<@{user.group(1)}>" if user else slack_escape(by)


def target_context_lines(view: IncidentView, limit: int = 10) -> list[str]:
    """Recent events and pod restarts from ``context["target"]``, as plain lines."""
    target = view.context.get("target")
    if not isinstance(target, Mapping):
        return []
    lines = [f"event: {e}" for e in list(target.get("events") or [])[-limit:]]
    for pod in list(target.get("pods") or [])[:limit]:
        if isinstance(pod, Mapping):
            bits = [f"{k}={pod[k]}" for k in ("phase", "ready", "restarts", "reason")
                    if pod.get(k) not in (None, "")]
            lines.append(f"pod {pod.get('name', '?')}: {' '.join(bits)}")
    return lines


def diagnosis_lines(view: IncidentView, limit: int = 6) -> list[str]:
    """The findings of the latest diagnosis (``context["diagnosis"]``), one a line with
    its id: ``[oom_killed:api-7d9-x/api] container api … was OOMKilled (…)``."""
    record = view.context.get("diagnosis")
    if not isinstance(record, Mapping):
        return []
    findings = [f for f in record.get("findings") or [] if isinstance(f, Mapping)]
    lines = [f"[{f.get('id')}] {f.get('summary')}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"… and {len(findings) - limit} more")
    said = record.get("summary")
    if isinstance(said, Mapping) and said.get("text"):
        lines.append(f"Summary by {said.get('model')} (checked: cites only these findings): "
                     f"{said['text']}")
    return lines or ["no findings"]


def page_message(view: IncidentView, mention: str, note: str | None = None
                 ) -> tuple[str, list[dict[str, Any]]]:
    """The on-call page: who, what, links, cluster context, what was tried."""
    label = STATE_STYLE[view.state][1]
    head = f"{mention} :pager: {slack_escape(headline(view))} needs a human ({label})"
    body = [head]
    if note:
        body.append(slack_escape(note))
    if view.summary:
        body.append(slack_escape(view.summary))
    link_text = " · ".join(_slack_link(t, u) for t, u in links(view))
    if link_text:
        body.append(link_text)
    tried = [f"{STEP_EMOJI[s.status]} {slack_escape(step_outcome(s))}" for s in view.steps]
    context = [slack_escape(line) for line in target_context_lines(view)]
    found = [f"• {slack_escape(line)}" for line in diagnosis_lines(view)]
    text = "\n".join(body)
    blocks = [_section(text)]
    if found:
        blocks.append(_section("*Diagnosis*\n" + "\n".join(found)))
    if tried:
        blocks.append(_section("*What was tried*\n" + "\n".join(tried)))
    if context:
        blocks.append(_section("*Target*\n```" + "\n".join(context)[:2900] + "```"))
    full = "\n".join([text, *(["Diagnosis:", *found] if found else []),
                      *(["What was tried:", *tried] if tried else []), *context])
    return clip(full, 3900), blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 3000)}]}


# -- Jira -------------------------------------------------------------------------------
def wiki_escape(text: object) -> str:
    """Escape Jira wiki markup in a table cell or line of data."""
    out = " ".join(clip(str(text), WIKI_VALUE_MAX).split())
    for ch in ("\\", "|", "[", "]", "{", "}", "*", "_"):
        out = out.replace(ch, "\\" + ch)
    return out


def _wiki_link(title: str, url: str) -> str:
    return f"[{wiki_escape(title)}|{url.replace('|', '%7C').replace(']', '%5D')}]"


def _wiki_table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    lines = ["||" + "||".join(header) + "||"]
    lines += ["|" + "|".join(wiki_escape(c) or " " for c in row) + "|" for row in rows]
    return lines


def ticket_summary(view: IncidentView) -> str:
    """The default issue summary: '[remediator] HighErrorRate on Deployment prod/api'."""
    return f"[remediator] {headline(view)}"


def incident_report(view: IncidentView) -> str:
    """The issue description: a full incident report in Jira wiki markup."""
    _, label, _ = STATE_STYLE[view.state]
    out = ["h2. Summary", wiki_escape(view.summary or headline(view)), "",
           f"*Playbook:* {wiki_escape(view.playbook)}  *Target:* "
           f"{wiki_escape(view.target or 'none')}  *State:* {label}"
           + ("  *Dry run:* yes" if view.dry_run else ""),
           f"*Incident:* {wiki_escape(view.id)} (key {wiki_escape(view.key)})", ""]
    found = diagnosis_lines(view)
    if found:
        out += ["h2. Diagnosis", *(f"* {wiki_escape(line)}" for line in found), ""]
    out.append("h2. Alerts")
    for alert in view.alerts:
        status = alert.get("status", "")
        out.append(f"h3. {wiki_escape(alert_name(alert))} {wiki_escape(status)}".rstrip())
        started = alert.get("startsAt") or alert.get("starts_at")
        if started:
            out.append(f"Started: {wiki_escape(started)}")
        out += _wiki_table(["Label", "Value"], sorted(_labels(alert).items()))
        annotations = _annotations(alert)
        if annotations:
            out += _wiki_table(["Annotation", "Value"], sorted(annotations.items()))
        alert_links = [(t, u) for t, u in (("Graph", graph_url(alert)),
                                            ("Runbook", runbook_url(alert))) if u]
        if alert_links:
            out.append(" · ".join(_wiki_link(t, u) for t, u in alert_links))
        out.append("")
    if not view.alerts:
        out += ["(no alert data)", ""]
    elif view.total_alerts > len(view.alerts):
        more = view.total_alerts - len(view.alerts)
        out += [f"… and {more} more alert{'s' if more != 1 else ''} "
                f"({view.firing_count} of all {view.total_alerts} still firing).", ""]
    context = target_context_lines(view)
    if context:
        out += ["h2. Target", "{noformat}", *(c.replace("{noformat}", "") for c in context),
                "{noformat}", ""]
    out.append("h2. Steps")
    if view.steps:
        out += _wiki_table(
            ["#", "Step", "Action", "Status", "Result", "Verification", "Finished"],
            [(s.index + 1, s.name, s.action, s.status.value, s.result or s.error or "",
              s.verify or "", _when(s.finished_at) if s.finished_at else "") for s in view.steps])
    else:
        out.append("No step ran.")
    out += ["", "h2. Timing",
            f"* First alert: {_when(view.first_alert_at)}",
            f"* Incident opened: {_when(view.created_at)}",
            f"* Time to detect: {duration(time_to_detect(view))}",
            f"* Closed: {_when(view.closed_at)}",
            f"* Time to recover: {duration(time_to_recover(view))}", ""]
    out.append("h2. Timeline")
    if view.timeline:
        out += _wiki_table(["Time", "Kind", "What"],
                           [(_when(t.at), t.kind, t.message) for t in view.timeline])
    else:
        out.append("(empty)")
    return clip("\n".join(out), JIRA_DESCRIPTION_MAX)


def step_comment(step: StepRecord, note: str = "") -> str:
    """A Jira comment for a step event."""
    lines = [f"*Step {step.index + 1}: {wiki_escape(step.name)}* ({wiki_escape(step.action)}) "
             f"— {step.status.value}"]
    intent = (step.intent or {}).get("description")
    for title, value in (("Plan", intent), ("Result", step.result), ("Error", step.error),
                         ("Verification", step.verify), ("Note", note or None)):
        if value:
            lines.append(f"* {title}: {wiki_escape(value)}")
    return "\n".join(lines)



# -- evidence ---------------------------------------------------------------------------
def incident_evidence(view: IncidentView, collected: Sequence[EvidenceItem] = ()
                      ) -> dict[str, Any]:
    """What the incident's verifications saw, step by step and poll by poll, and what
    was collected from the cluster (logs, events), as JSON."""
    return {"incident": view.id, "state": view.state.value, "verification": [
        {"index": s.index, "step": s.name, "action": s.action, "status": s.status.value,
         "summary": s.verify, "poll_count": s.poll_count,
         "polls": [p.model_dump(mode="json") for p in s.polls]}
        for s in view.steps if s.poll_count or s.verify],
        "collected": [dict(item.model_dump(mode="json"), title=item.title)
                      for item in collected]}


# -- postmortem -------------------------------------------------------------------------
def time_to_acknowledge(view: IncidentView) -> timedelta | None:
    """From the first alert's start to the first human act: an acknowledgement (a timeline
    ``ack`` entry carrying ``mtta_seconds``) or an approval approved or rejected; None
    when no human acted."""
    for entry in view.timeline:
        if (entry.kind == "approval" and entry.data.get("by")) or \
                (entry.kind == "ack" and "mtta_seconds" in entry.data):
            return max(timedelta(0), entry.at - (view.first_alert_at or view.created_at))
    return None


def _md(text: object) -> str:
    """One line of Markdown table or list text: no newlines, no pipes breaking a row."""
    return " ".join(clip(str(text), WIKI_VALUE_MAX).split()).replace("|", "\\|")


def postmortem(view: IncidentView, collected: Sequence[EvidenceItem] = (), *,
               api: str = "") -> str:
    """A postmortem draft in Markdown: summary, impact, MTTD/MTTA/MTTR, timeline, what
    was tried with the values verification saw, evidence, and the sections humans
    write. ``api``: the base URL of the links to the graph and the evidence."""
    _, label, _ = STATE_STYLE[view.state]
    end = view.closed_at
    lasted = duration(end - (view.first_alert_at or view.created_at)) if end else "still open"
    names = sorted({alert_name(a) for a in view.alerts})
    out = [f"# Postmortem (draft): {_md(headline(view))}", "",
           f"_Drafted by remediator from incident `{view.id}` ({label.lower()}). "
           "Check and complete it before sharing._", "",
           "## Summary", "", _md(view.summary or headline(view)), "",
           f"Playbook `{view.playbook}` on {_md(view.target or 'no target')}: "
           f"{label.lower()}.", "",
           "## Impact", "",
           f"- Alerts: {view.total_alerts} ({', '.join(_md(n) for n in names) or 'none'}); "
           f"{view.firing_count} still firing",
           f"- Target: {_md(view.target or 'none')}",
           f"- Duration: {lasted} (first alert {_when(view.first_alert_at)}, "
           f"closed {_when(end)})", "",
           "## Timing", "",
           f"- MTTD (first alert → incident opened): {duration(time_to_detect(view))}"]
    mtta = time_to_acknowledge(view)
    if mtta is not None:
        out.append(f"- MTTA (first alert → first human ack or decision): {duration(mtta)}")
    mttr = time_to_recover(view)
    out += [f"- MTTR (first alert → resolved): "
            f"{duration(mttr) if mttr is not None else 'not resolved yet'}", "",
            "## Timeline", "", "| time (UTC) | what |", "|---|---|"]
    out += [f"| {_when(t.at)[:19]} | {_md(t.message)} |" for t in view.timeline]
    out += ["", "## Diagnosis", ""]
    out += _diagnosis(view)
    out += ["", "## What was tried", ""]
    out += _tried(view) or ["No step ran."]
    out += ["", "## Evidence", ""]
    out += _evidence_links(view, collected, api)
    out += ["", "## Contributing factors", "", "_To be written._", "",
            "## Action items", "", "- [ ] _To be written._", ""]
    return "\n".join(out)


def postmortem_comment(markdown: str) -> str:
    """The postmortem draft as a Jira comment: its Markdown kept as it is (in a
    ``{noformat}`` block, ready to copy), cut to fit Jira's 32,767 characters."""
    head = "*Postmortem draft* (Markdown, drafted by remediator; check and complete it):\n"
    body = clip(markdown.replace("{noformat}", "{ noformat }"),
                JIRA_DESCRIPTION_MAX - len(head) - 40)
    return f"{head}{{noformat}}\n{body}\n{{noformat}}"


def _diagnosis(view: IncidentView) -> list[str]:
    """The latest diagnosis's findings, each with its id and the objects it rests on,
    then the model's summary (checked: cites only these findings) or why there is none."""
    record = view.context.get("diagnosis")
    if not isinstance(record, Mapping):
        return ["No diagnosis was made."]
    findings = [f for f in record.get("findings") or [] if isinstance(f, Mapping)]
    out = [f"Findings of the diagnosis at {_md(record.get('moment') or 'n/a')} "
           f"({_md(str(record.get('at') or 'n/a')[:19])}):", ""]
    for f in findings:
        out.append(f"- `{_md(f.get('id'))}`: {_md(f.get('summary'))}")
        evidence = [str(e) for e in f.get("evidence") or []]
        if evidence:
            out.append(f"  - evidence: {', '.join(_md(e) for e in evidence[:10])}")
    if not findings:
        out.append("- no findings")
    problems = [str(p) for p in record.get("problems") or []]
    if problems:
        out.append(f"- could not read: {'; '.join(_md(p) for p in problems[:5])}")
    said = record.get("summary")
    if isinstance(said, Mapping):
        model = _md(said.get("model") or "the model")
        if said.get("text"):
            cited = ", ".join(f"`{_md(c)}`" for c in said.get("cited") or [])
            out += ["", f"Summary by {model} (checked: it cites only these findings"
                        + (f", {cited}" if cited else "") + f"): {_md(said['text'])}"]
        elif said.get("discarded"):
            out += ["", f"The summary by {model} was discarded: {_md(said['discarded'])}"]
        elif said.get("error"):
            out += ["", f"No summary by {model}: {_md(said['error'])}"]
    return out


def _tried(view: IncidentView) -> list[str]:
    out: list[str] = []
    for n, s in enumerate(view.steps, start=1):
        out.append(f"{n}. **{_md(s.name)}** (`{s.action}`): {s.status.value}"
                   + (f" — {_md(s.result or s.error)}" if s.result or s.error else ""))
        if s.verify:
            out.append(f"   - verification: {_md(s.verify)}")
        if s.poll_count:
            values = [p.text for p in s.polls if p.text]
            shown = "; ".join(_md(v) for v in values[-3:])
            out.append(f"   - {s.poll_count} polls; the last: {shown}")
    return out


def _evidence_links(view: IncidentView, collected: Sequence[EvidenceItem],
                    api: str) -> list[str]:
    base = f"{api.rstrip('/')}/api/v1/incidents/{view.id}"
    out = [f"- Graph of the verification: {base}/graph.png",
           f"- Graph of the alert's expression: {base}/graph.png?of=alert",
           f"- Polls and collected logs (JSON): {base}/evidence"]
    out += [f"- {_md(title)}: {url}" for title, url in links(view)]
    for item in collected:
        notes = [n for n, on in (("cut", item.truncated),
                                 (f"{item.redacted} redacted", item.redacted)) if on]
        lines = item.text.rstrip().splitlines()
        out.append(f"- {_md(item.title)} ({item.moment}"
                   + (f"; {', '.join(notes)}" if notes else "") + f"): {len(lines)} lines")
        if item.kind == "logs" and lines:
            excerpt = "\n".join(f"      {line}" for line in lines[-5:])
            out += ["", "  ```", excerpt.replace("```", "'''"), "  ```"]
    return out
