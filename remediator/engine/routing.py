"""Which playbooks own an alert, what target they act on, and the incident key.

First matching playbook in load order owns the alert; ``continue: true`` lets
the following ones see it too (Alertmanager route semantics). The incident key
is ``playbook/Kind/namespace/name``: repeats and sibling alerts for the same
object fold into one incident. A playbook without a target groups its alerts as
an Alertmanager route does, by ``group_by``: ``playbook/group/{a="x",b="y"}``
(``[]``: ``playbook/group/{}``, one incident for the playbook); without
``group_by`` (or with ``['...']``, every label) each alert is its own incident,
``playbook/alert/<fingerprint>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from remediator.errors import TemplateError
from remediator.matching import Matcher
from remediator.model.alerts import Alert
from remediator.model.incident import TargetRef
from remediator.model.playbook import GROUP_BY_ALL, Playbook
from remediator.ports.store import Routing
from remediator.re2 import literal_alternatives
from remediator.templating import (
    compile_template,
    is_template,
    render_cluster,
    render_name,
    render_namespace,
)

#: memo entries kept before a memo is emptied and refilled (bounds memory whatever the
#: cardinality of the labels that matter)
MEMO_SIZE = 8192
#: longest ``{label="value",…}`` part of a group's incident key; longer ones are hashed
MAX_GROUP_KEY = 512


class Router:
    """``select`` and ``route`` over a fixed list of playbooks, with what does not change
    between alerts (parsed matchers, the notify config) worked out once.

    Both are memoized on the label values they depend on: ``select`` on the labels the
    matchers name, ``routes`` (per playbook) on the labels its target's templates read,
    when those templates are constants or plain ``{{ labels.x }}`` lookups. An alert
    storm (thousands of alerts for a few hundred targets, each sent by every
    Alertmanager replica) is then routed with a few dict lookups per alert. Routings
    that name the alert itself (no target, or a target that did not render) are never
    memoized.
    """

    def __init__(self, playbooks: Sequence[Playbook]) -> None:
        self._table = [(pb, tuple(pb.matchers), pb.spec.continue_) for pb in playbooks]
        self._notify = {pb.name: pb.spec.notify.model_dump(exclude_none=True)
                        for pb in playbooks}
        self._select_inputs = tuple(sorted({m.name for _, matchers, _ in self._table
                                            for m in matchers}))
        self._selected: dict[tuple[str | None, ...], list[Playbook]] = {}
        self._index, self._unindexed = _match_index(self._table)
        self._route_inputs = {pb.name: _target_inputs(pb) for pb in playbooks}
        self._routed: dict[tuple[Any, ...], Routing] = {}

    def select(self, labels: Mapping[str, str]) -> list[Playbook]:
        key = tuple([labels.get(name) for name in self._select_inputs])
        chosen = self._selected.get(key)
        if chosen is None:
            chosen = []
            table = self._table
            for position in self._candidates(labels):
                pb, matchers, keep_going = table[position]
                if all(m.matches(labels) for m in matchers):
                    chosen.append(pb)
                    if not keep_going:
                        break
            if len(self._selected) >= MEMO_SIZE:
                self._selected.clear()
            self._selected[key] = chosen
        return chosen

    def _candidates(self, labels: Mapping[str, str]) -> list[int]:
        """Positions (load order) of the playbooks that may match ``labels``: the ones
        whose indexed label has the alert's value (absent counts as ""), and the rest."""
        found = self._unindexed
        extra: list[int] = []
        for name, by_value in self._index.items():
            hit = by_value.get(labels.get(name, ""))
            if hit:
                extra += hit
        if not extra:
            return found
        return sorted(found + extra) if found else sorted(extra)

    def route(self, pb: Playbook, labels: Mapping[str, str], annotations: Mapping[str, str],
              alert: Mapping[str, Any], *, dry_run: bool, fingerprint: str) -> Routing:
        return route(pb, labels, annotations, alert, dry_run=dry_run, fingerprint=fingerprint,
                     notify=self._notify[pb.name])

    def routes(self, alert: Alert, *, dry_run: bool) -> tuple[Routing, ...]:
        """Where a firing alert goes: one ``Routing`` per playbook that owns it."""
        labels = alert.labels
        out: list[Routing] = []
        alert_dict: dict[str, Any] | None = None
        for pb in self.select(labels):
            inputs = self._route_inputs[pb.name]
            key = None if inputs is None else (pb.name, dry_run,
                                               *[labels.get(name) for name in inputs])
            routing = self._routed.get(key) if key is not None else None
            if routing is None:
                if alert_dict is None:
                    alert_dict = {"fingerprint": alert.fingerprint, "status": alert.status,
                                  "startsAt": alert.startsAt.isoformat(),
                                  "generatorURL": alert.generatorURL}
                routing = self.route(pb, labels, alert.annotations, alert_dict,
                                     dry_run=dry_run, fingerprint=alert.fingerprint)
                if key is not None and routing.error is None:
                    if len(self._routed) >= MEMO_SIZE:
                        self._routed.clear()
                    self._routed[key] = routing
            out.append(routing)
        return tuple(out)


def _index_entries(matchers: Sequence[Matcher]) -> list[tuple[str, tuple[str, ...]]]:
    """Each (label, values) one of ``matchers`` requires the label to be in: ``name="v"``
    (``""``: absent or empty) and ``name=~"a|b"`` of plain literals (anchored, so it holds
    for exactly those values)."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    for m in matchers:
        if m.op == "=":
            entries.append((m.name, (m.value,)))
        elif m.op == "=~":
            literals = literal_alternatives(m.value)
            if literals is not None:
                entries.append((m.name, tuple(dict.fromkeys(literals))))
    return entries


def _match_index(table: Sequence[tuple[Playbook, tuple[Matcher, ...], bool]]
                 ) -> tuple[dict[str, dict[str, list[int]]], list[int]]:
    """label → value → positions of the playbooks indexed under it; positions of the
    playbooks that require no label to hold given values. Each playbook is indexed under
    one of its entries, the one fewest playbooks share (an ``instance="…"`` rather than an
    ``alertname`` common to many), so a lookup yields few candidates."""
    options = [_index_entries(matchers) for _, matchers, _ in table]
    shared: dict[tuple[str, str], int] = {}
    for entries in options:
        for name, wanted in entries:
            for value in wanted:
                shared[name, value] = shared.get((name, value), 0) + 1
    index: dict[str, dict[str, list[int]]] = {}
    unindexed: list[int] = []
    for position, entries in enumerate(options):
        if not entries:
            unindexed.append(position)
            continue
        name, wanted = min(entries, key=lambda e: sum(shared[e[0], v] for v in e[1]))
        by_value = index.setdefault(name, {})
        for value in wanted:
            by_value.setdefault(value, []).append(position)
    return index, unindexed


def _target_inputs(pb: Playbook) -> tuple[str, ...] | None:
    """The labels a playbook's incident key is made of, when it depends on nothing else
    (constants and plain ``{{ labels.x }}`` lookups in the target, or the ``group_by``
    labels); None when it may (or names the alert itself)."""
    target = pb.spec.target
    if target is None:
        group_by = pb.spec.group_by
        if group_by is None or GROUP_BY_ALL in group_by:
            return None
        return tuple(group_by)
    names: list[str] = []
    for source in (target.namespace, target.name, target.cluster):
        if not is_template(source):
            continue
        try:
            name = compile_template(source).label_lookup
        except TemplateError:
            return None
        if name is None:
            return None
        names.append(name)
    return tuple(names)


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
                     namespace=render_namespace(t.namespace, context) if t.namespace else "",
                     name=render_name(t.name, context, f"{t.kind} name"),
                     cluster=render_cluster(t.cluster, context))


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
    key = (group_key(pb, labels, fingerprint) if target is None
           else f"{pb.name}/{target.kind}/{target.namespace}/{target.name}"
           + (f"@{target.cluster}" if target.cluster else ""))
    return Routing(pb.name, key, target, dry_run or pb.spec.guards.dry_run, notify)


def group_key(pb: Playbook, labels: Mapping[str, str], fingerprint: str) -> str:
    """The incident key of an alert for a playbook without a target, by ``group_by``
    (Alertmanager's group key spelling: a missing label counts as empty)."""
    group_by = pb.spec.group_by
    if group_by is None or GROUP_BY_ALL in group_by:
        return f"{pb.name}/alert/{fingerprint}"
    values = ",".join(f"{name}={_quote(labels.get(name, ''))}" for name in sorted(group_by))
    if len(values) > MAX_GROUP_KEY:       # label values are data from outside: bounded
        digest = hashlib.sha256(values.encode()).hexdigest()[:32]
        return f"{pb.name}/group/sha256:{digest}"
    return f"{pb.name}/group/{{{values}}}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
