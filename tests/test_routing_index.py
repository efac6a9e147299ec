"""The router's playbook index (issue #20): ``Router.select`` tries only the playbooks
whose indexed equality matcher can hold, and must choose exactly what trying every
playbook in load order chooses (first match, ``continue`` lets later ones see it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.engine.routing import Router
from remediator.loader import load
from remediator.model.playbook import Playbook

# (name, matchers, continue): every operator, literal alternations, regexes that are not
# literal, empty values (absent labels), per-alert labels, and several playbooks sharing
# an indexed value
SPECS: list[tuple[str, list[str], bool]] = [
    ("inst-a", ['alertname="Lat"', 'instance="10.0.0.1:80"'], False),
    ("inst-b", ['instance="10.0.0.2:80"'], True),
    ("sev", ['alertname="Lat"', 'severity=~"critical|page"'], True),
    ("sev-esc", ['severity=~"warn\\.x|info"'], False),
    ("sev-re", ['severity=~"crit.*"', 'namespace!="kube-system"'], True),
    ("ci", ['alertname=~"(?i)disk"'], False),
    ("neg-only", ['namespace!~"kube-.*"', 'deployment!=""'], True),
    ("absent", ['team=""', 'alertname="Lat"'], False),
    ("group", ['alertname=~"(Lat|Err)"'], True),
    ("empty-alt", ['pod=~"p1|"'], True),
    ("err", ['alertname="Err"'], True),
    ("err-2", ['alertname="Err"', 'namespace="shop"'], False),
    ("catch-all", ['alertname!="never"'], False),
]

TEMPLATE = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: {name}}}
spec:
  match: {match}
  continue: {cont}
  escalate: [{{action: slack.notify, with: {{text: x}}}}]
"""


def playbooks(specs: Sequence[tuple[str, list[str], bool]]) -> list[Playbook]:
    docs = [TEMPLATE.format(name=name, match=[m for m in match], cont=str(cont).lower())
            for name, match, cont in specs]
    return load("---\n".join(docs))


def linear(pbs: Sequence[Playbook], labels: Mapping[str, str]) -> list[str]:
    """The selection before the index: every playbook tried in load order."""
    chosen: list[str] = []
    for pb in pbs:
        if all(m.matches(labels) for m in pb.matchers):
            chosen.append(pb.name)
            if not pb.spec.continue_:
                break
    return chosen


ALL = playbooks(SPECS)
WITHOUT_CATCH_ALL = playbooks(SPECS[:-1])

CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"alertname": "Lat", "instance": "10.0.0.1:80"}, ["inst-a"]),
    ({"alertname": "Lat", "instance": "10.0.0.2:80", "severity": "page",
      "namespace": "shop"}, ["inst-b", "sev", "absent"]),
    ({"alertname": "Lat", "severity": "critical", "namespace": "kube-system"},
     ["sev", "absent"]),
    ({"severity": "warn.x"}, ["sev-esc"]),
    ({"severity": "warnXx"}, ["empty-alt", "catch-all"]),
    ({"alertname": "DISK"}, ["ci"]),
    ({"alertname": "Lat", "team": "core"}, ["group", "empty-alt", "catch-all"]),
    ({"alertname": "Err", "namespace": "shop", "pod": "p1"},
     ["group", "empty-alt", "err", "err-2"]),
    ({"alertname": "Err", "namespace": "shop", "pod": "p2"}, ["group", "err", "err-2"]),
    ({"alertname": "Err", "namespace": "ops", "deployment": "d", "pod": "p2"},
     ["neg-only", "group", "err", "catch-all"]),
    ({}, ["empty-alt", "catch-all"]),
]


@pytest.mark.parametrize(("labels", "expected"), CASES)
def test_index_selects_what_the_linear_scan_selects(labels: dict[str, str],
                                                    expected: list[str]) -> None:
    assert linear(ALL, labels) == expected
    router = Router(ALL)
    assert [pb.name for pb in router.select(labels)] == expected
    assert [pb.name for pb in router.select(labels)] == expected      # from the memo


def test_only_candidates_are_tried() -> None:
    router = Router(ALL)
    positions = router._candidates({"alertname": "Err", "instance": "10.0.0.2:80"})
    names = [ALL[p].name for p in positions]
    assert names == sorted(names, key=[pb.name for pb in ALL].index)      # load order
    assert not {"inst-a", "sev", "sev-esc"} & set(names)
    # err-2 is indexed under err-2's rarer namespace="shop"; absent under team=""
    assert {"inst-b", "err", "group", "neg-only", "ci", "catch-all", "absent"} <= set(names)


values = st.sampled_from(["", "Lat", "Err", "DISK", "disk", "critical", "page", "warn.x",
                          "info", "kube-system", "shop", "10.0.0.1:80", "10.0.0.2:80",
                          "p1", "d", "core"])
label_sets = st.dictionaries(
    st.sampled_from(["alertname", "instance", "severity", "namespace", "deployment",
                     "team", "pod"]), values, max_size=7)


@settings(max_examples=400, deadline=None)
@given(st.lists(label_sets, min_size=1, max_size=30), st.booleans())
def test_index_equals_linear_scan_on_any_labels(alerts: list[dict[str, str]],
                                                catch_all: bool) -> None:
    pbs = ALL if catch_all else WITHOUT_CATCH_ALL
    router = Router(pbs)
    for labels in alerts + alerts:
        assert [pb.name for pb in router.select(labels)] == linear(pbs, labels)


def test_many_playbooks_on_a_per_alert_label() -> None:
    specs = [(f"pb{i}", [f'alertname="A{i % 7}"', f'instance="10.0.{i}.1"'], i % 3 == 0)
             for i in range(500)]
    pbs = playbooks(specs)
    router = Router(pbs)
    for i in range(0, 500, 7):
        labels = {"alertname": f"A{i % 7}", "instance": f"10.0.{i}.1"}
        assert [pb.name for pb in router.select(labels)] == linear(pbs, labels) == [f"pb{i}"]
        assert len(router._candidates(labels)) <= 2
