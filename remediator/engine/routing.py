"""Which playbooks own an alert, what target they act on, and the incident key.

First matching playbook in load order owns the alert; ``continue: true`` lets
the following ones see it too (Alertmanager route semantics). The incident key
is ``playbook/Kind/namespace/name``: repeats and sibling alerts for the same
object fold into one incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from remediator.errors import TemplateError
from remediator.model.incident import TargetRef
from remediator.model.playbook import Playbook
from remediator.store.base import Routing
from remediator.templating import render_name, render_namespace


class Router:
    """``select_playbooks`` and ``route`` over a fixed list of playbooks, with what does not
    change between alerts (parsed matchers, the notify config) worked out once."""

    def __init__(self, playbooks: Sequence[Playbook]) -> None:
        self._table = [(pb, tuple(pb.matchers), pb.spec.continue_) for pb in playbooks]
        self._notify = {pb.name: pb.spec.notify.model_dump(exclude_none=True)
                        for pb in playbooks}

    def select(self, labels: Mapping[str, str]) -> list[Playbook]:
        chosen: list[Playbook] = []
        for pb, matchers, keep_going in self._table:
            if all(m.matches(labels) for m in matchers):
                chosen.append(pb)
                if not keep_going:
                    break
        return chosen

    def route(self, pb: Playbook, labels: Mapping[str, str], annotations: Mapping[str, str],
              alert: Mapping[str, Any], *, dry_run: bool, fingerprint: str) -> Routing:
        return route(pb, labels, annotations, alert, dry_run=dry_run, fingerprint=fingerprint,
                     notify=self._notify[pb.name])


def select_playbooks(playbooks: Sequence[Playbook], labels: Mapping[str, str]) -> list[Playbook]:
    """The playbooks that own an alert: the first match, and the ones after it while
    ``continue: true`` lets the evaluation go on (Alertmanager route semantics)."""
    return Router(playbooks).select(labels)


def template_context(labels: Mapping[str, str], annotations: Mapping[str, str],
                     alert: Mapping[str, Any], *, incident: Mapping[str, Any] | None = None,
                     target: TargetRef | None = None) -> dict[str, Any]:
    """The names a template may use: labels, annotations, alert, incident, target."""
    return {
        "labels": dict(labels),
        "annotations": dict(annotations),
        "alert": dict(alert),
        "incident": dict(incident or {}),
        "target": target.model_dump() if target else {},
    }


def render_target(pb: Playbook, context: Mapping[str, Any]) -> TargetRef | None:
    """The playbook's target for this alert; TemplateError when a name is missing or unsafe."""
    t = pb.spec.target
    if t is None:
        return None
    return TargetRef(kind=t.kind,
                     namespace=render_namespace(t.namespace, context),
                     name=render_name(t.name, context, f"{t.kind} name"))


def route(pb: Playbook, labels: Mapping[str, str], annotations: Mapping[str, str],
          alert: Mapping[str, Any], *, dry_run: bool, fingerprint: str,
          notify: dict[str, Any] | None = None) -> Routing:
    context = template_context(labels, annotations, alert)
    if notify is None:
        notify = pb.spec.notify.model_dump(exclude_none=True)
    try:
        target = render_target(pb, context)
    except TemplateError as exc:
        # The alert is still recorded and the incident escalates: a human must look.
        return Routing(pb.name, f"{pb.name}/invalid/{fingerprint}", None,
                       dry_run or pb.spec.guards.dry_run, notify,
                       error=f"target not rendered: {exc}")
    # Without a target, each alert (label set) is its own incident: one disk filling up on
    # node A and another on node B are two problems, two tickets.
    key = (f"{pb.name}/alert/{fingerprint}" if target is None
           else f"{pb.name}/{target.kind}/{target.namespace}/{target.name}")
    return Routing(pb.name, key, target, dry_run or pb.spec.guards.dry_run, notify)
