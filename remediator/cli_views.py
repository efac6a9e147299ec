"""What ``remediator incidents`` prints for people: a table of incidents and one
incident's story (alerts, steps, timeline), from the JSON the API returns.

Durations read as people say them (``2m 13s``); colour only on a terminal, and never
with ``NO_COLOR`` set. Pure functions of their inputs: the clock and the colour choice
are passed in, so the output is testable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from remediator.model.durations import human_duration

_COLOURS = {"recovered": "32", "resolved": "32", "escalated": "31", "remediating": "33",
            "awaiting_approval": "35", "open": "36", "failed": "31", "succeeded": "32",
            "skipped": "90", "intent": "33", "verifying": "33", "applied": "33"}
STATES = ("open", "remediating", "awaiting_approval", "recovered", "escalated", "resolved")


def use_colour(stream: TextIO) -> bool:
    """ANSI colour only on a terminal, and not when ``NO_COLOR`` is set."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, state: str, colour: bool) -> str:
    code = _COLOURS.get(state)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def target_text(target: Mapping[str, Any] | None) -> str:
    """As ``TargetRef`` prints it: ``Deployment prod/api``, ``Node node-1``,
    ``… in cluster east``."""
    if not target:
        return "-"
    ns, cluster = target.get("namespace"), target.get("cluster")
    where = f"{ns}/{target.get('name')}" if ns else str(target.get("name"))
    return f"{target.get('kind')} {where}" + (f" in cluster {cluster}" if cluster else "")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def incidents_table(incidents: Sequence[Mapping[str, Any]], now: datetime, *,
                    colour: bool = False) -> str:
    """One row per incident: id, state, playbook, target, age, alerts, last word."""
    header = ("ID", "STATE", "PLAYBOOK", "TARGET", "AGE", "ALERTS", "LAST")
    rows = []
    for inc in incidents:
        created = _when(inc.get("created_at"))
        age = human_duration((now - created).total_seconds()) if created else "-"
        alerts = f"{inc.get('firing_count', 0)}/{inc.get('alert_count', 0)}"
        rows.append((inc["id"], inc["state"], inc["playbook"], target_text(inc.get("target")),
                     age, alerts, _cut(inc.get("summary") or "-", 60)))
    if not rows:
        return "no incidents"
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + "  LAST"]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        cells[1] = paint(cells[1], row[1], colour)
        lines.append("  ".join(cells) + "  " + row[-1])
    return "\n".join(lines)


def _step_lines(steps: Iterable[Mapping[str, Any]], colour: bool) -> list[str]:
    lines = []
    for step in steps:
        status = str(step.get("status", ""))
        took = ""
        started, finished = _when(step.get("started_at")), _when(step.get("finished_at"))
        if started and finished:
            took = f" in {human_duration((finished - started).total_seconds())}"
        polls = step.get("polls") or []
        seen = f"{polls[-1].get('text')} (poll {step.get('poll_count')})" if polls else ""
        word = step.get("error") or step.get("verify") or seen or step.get("result") or ""
        attempts = step.get("attempts") or 0
        tries = f", {attempts} tries" if attempts > 1 else ""
        lines.append(f"  {step.get('name')} ({step.get('action')}): "
                     f"{paint(status, status, colour)}{took}{tries}"
                     + (f" — {word}" if word else ""))
    return lines


def findings_lines(diagnosis: Mapping[str, Any] | None) -> list[str]:
    """The findings of a diagnosis record (``context.diagnosis``), one a line, each with
    its id and the objects it rests on; then what could not be read."""
    if not diagnosis:
        return []
    lines = [f"findings ({diagnosis.get('moment', '?')}):"]
    for f in diagnosis.get("findings") or []:
        lines.append(f"  [{f.get('id')}] {f.get('summary')}")
        if f.get("evidence"):
            lines.append(f"      evidence: {', '.join(f['evidence'])}")
    if not diagnosis.get("findings"):
        lines.append("  none")
    lines += [f"  (not read: {p})" for p in diagnosis.get("problems") or []]
    said = diagnosis.get("summary") or {}
    if said.get("text"):
        lines.append(f"  summary by {said.get('model')} (checked): {said['text']}")
    elif said:
        lines.append(f"  (model summary not shown: {said.get('discarded') or said.get('error')})")
    return lines


def incident_story(inc: Mapping[str, Any], now: datetime, *, colour: bool = False) -> str:
    """One incident as a person reads it: what, where, how long, the steps, the
    timeline with times relative to its start."""
    created = _when(inc.get("created_at"))
    age = human_duration((now - created).total_seconds()) if created else "-"
    lines = [f"incident {inc['id']}  {paint(inc['state'], inc['state'], colour)}  "
             f"playbook {inc['playbook']}  {target_text(inc.get('target'))}  (opened {age} ago)"]
    if inc.get("summary"):
        lines.append(f"  {inc['summary']}")
    lines.append(f"alerts: {inc.get('firing_count', 0)} firing of {inc.get('alert_count', 0)}")
    for alert in inc.get("alerts", [])[:5]:
        labels = alert.get("labels", {})
        lines.append(f"  {alert.get('status')}  {labels.get('alertname', '?')}  "
                     + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                                 if k != "alertname")[:120])
    lines += findings_lines((inc.get("context") or {}).get("diagnosis"))
    steps = [s for s in inc.get("steps", []) if not str(s.get("action")).startswith("escalate:")]
    escalations = [s for s in inc.get("steps", []) if str(s.get("action")).startswith("escalate:")]
    if steps:
        lines += ["steps:", *_step_lines(steps, colour)]
    if escalations:
        lines += ["escalation:", *_step_lines(escalations, colour)]
    if inc.get("timeline"):
        lines.append("timeline:")
        for entry in inc["timeline"]:
            at = _when(entry.get("at"))
            offset = f"+{human_duration((at - created).total_seconds())}" \
                if at and created else ""
            lines.append(f"  {offset:>9}  {entry['kind']:<9} {entry['message']}")
    return "\n".join(lines)
