"""``Router``: the memoized ``select`` and ``routes`` give exactly what routing each alert
from scratch gives (``select_playbooks`` + ``route``), whatever order alerts come in, and
never memoize a routing that names the alert itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.engine import routing
from remediator.engine.routing import Router, route, select_playbooks
from remediator.loader import load, load_paths
from remediator.model.alerts import Alert, fingerprint
from remediator.ports.store import Routing

PLAYBOOKS = load_paths([Path(__file__).resolve().parent.parent / "playbooks"])
GROUPED = """
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: disk}}
spec:
  match: ['alertname="DiskFull"']
  {group_by}
  escalate: [{{action: slack.notify, with: {{text: full}}}}]
"""


def alert(labels: dict[str, str], starts: int = 0) -> Alert:
    return Alert(status="firing", labels=labels, annotations={"summary": "s"},
                 startsAt=datetime(2026, 11, 22, 1, 0, starts % 60, tzinfo=UTC),
                 fingerprint=fingerprint(labels))


def from_scratch(a: Alert, playbooks: Any = PLAYBOOKS, dry_run: bool = False
                 ) -> tuple[Routing, ...]:
    alert_dict = {"fingerprint": a.fingerprint, "status": a.status,
                  "startsAt": a.startsAt.isoformat(), "generatorURL": a.generatorURL}
    return tuple(route(pb, a.labels, a.annotations, alert_dict, dry_run=dry_run,
                       fingerprint=a.fingerprint)
                 for pb in select_playbooks(playbooks, a.labels))


values = st.sampled_from(["", "shop", "checkout", "HighErrorRate", "KubePodCrashLooping",
                          "critical", "warning", "Bad_Name", "x" * 70, "ledger-7d9c8-x2"])
label_sets = st.dictionaries(
    st.sampled_from(["alertname", "severity", "namespace", "deployment", "pod", "job",
                     "instance", "container", "persistentvolumeclaim"]),
    values, max_size=7)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(label_sets, st.booleans()), min_size=1, max_size=40))
def test_memoized_routing_equals_routing_from_scratch(
        alerts: list[tuple[dict[str, str], bool]]) -> None:
    router = Router(PLAYBOOKS)
    for labels, dry_run in alerts + alerts:             # the second pass hits the memos
        a = alert(labels)
        assert router.routes(a, dry_run=dry_run) == from_scratch(a, dry_run=dry_run)


def test_a_storm_of_one_target_is_routed_once() -> None:
    router = Router(PLAYBOOKS)
    calls: list[str] = []
    original = router.route

    def counting(*args: Any, **kwargs: Any) -> Routing:
        calls.append(kwargs["fingerprint"])
        return original(*args, **kwargs)

    router.route = counting  # type: ignore[method-assign]
    for instance in range(50):
        a = alert({"alertname": "HighErrorRate", "severity": "critical", "namespace": "shop",
                   "deployment": "checkout", "instance": f"10.0.0.{instance}:8080"})
        (r,) = router.routes(a, dry_run=False)
        assert r.incident_key == "api-error-rate/Deployment/shop/checkout"
    assert len(calls) == 1


def test_routings_that_name_the_alert_are_not_memoized() -> None:
    """No target and no group_by (one incident per alert), or a target that did not
    render: the incident key holds the alert's fingerprint, so each alert is routed for
    itself."""
    playbooks = load(GROUPED.format(group_by=""))
    router = Router(playbooks)
    for node in ("a", "b", "a"):
        a = alert({"alertname": "DiskFull", "instance": node})
        assert router.routes(a, dry_run=False) == from_scratch(a, playbooks)
        assert router.routes(a, dry_run=False)[0].incident_key == f"disk/alert/{a.fingerprint}"
    assert not router._routed
    router = Router(PLAYBOOKS)
    bad = alert({"alertname": "HighErrorRate", "severity": "critical", "namespace": "shop",
                 "deployment": "Bad_Name"})
    (r,) = router.routes(bad, dry_run=False)
    assert r.error
    assert r.incident_key == f"api-error-rate/invalid/{bad.fingerprint}"
    assert not any(key[0] == "api-error-rate" and "Bad_Name" in key
                   for key in router._routed)


def test_memos_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(routing, "MEMO_SIZE", 10)
    router = Router(PLAYBOOKS)
    for i in range(100):
        a = alert({"alertname": "HighErrorRate", "namespace": "shop",
                   "deployment": f"svc-{i}", "severity": f"s{i}"})
        assert router.routes(a, dry_run=False) == from_scratch(a)
        assert len(router._routed) <= 10
        assert len(router._selected) <= 10


def key_of(playbooks: Any, labels: dict[str, str]) -> str:
    return Router(playbooks).routes(alert(labels), dry_run=False)[0].incident_key


def test_group_by_decides_which_alerts_share_an_incident_without_a_target() -> None:
    """Alertmanager's grouping: [] one incident for the playbook; [labels] one per value
    (a missing label counts as empty); ['...'] (every label) one per alert."""
    nodes = [{"alertname": "DiskFull", "instance": f"n{i}", "dc": "x"} for i in range(50)]
    one = load(GROUPED.format(group_by="group_by: []"))
    assert {key_of(one, labels) for labels in nodes} == {"disk/group/{}"}
    by_dc = load(GROUPED.format(group_by="group_by: [dc]"))
    assert {key_of(by_dc, labels) for labels in nodes} == {'disk/group/{dc="x"}'}
    assert key_of(by_dc, {"alertname": "DiskFull"}) == 'disk/group/{dc=""}'
    per_node = load(GROUPED.format(group_by="group_by: [instance, dc]"))
    assert len({key_of(per_node, labels) for labels in nodes}) == 50
    every = load(GROUPED.format(group_by="group_by: ['...']"))
    assert {key_of(every, labels) for labels in nodes} == {
        f"disk/alert/{fingerprint(labels)}" for labels in nodes}


def test_group_keys_are_memoized_quoted_and_bounded() -> None:
    playbooks = load(GROUPED.format(group_by="group_by: [dc]"))
    router = Router(playbooks)
    for labels in ({"alertname": "DiskFull", "dc": 'a"b'}, {"alertname": "DiskFull",
                                                            "dc": "x" * 70_000}):
        a = alert(labels)
        assert router.routes(a, dry_run=False) == from_scratch(a, playbooks)
    assert key_of(playbooks, {"alertname": "DiskFull", "dc": 'a"b'}) == 'disk/group/{dc="a\\"b"}'
    assert len(key_of(playbooks, {"alertname": "DiskFull", "dc": "x" * 70_000})) < 100
    assert len(router._routed) == 2


def test_the_shipped_disk_playbook_folds_every_node_into_one_incident() -> None:
    keys = {key_of(PLAYBOOKS, {"alertname": "NodeFilesystemSpaceFillingUp",
                               "instance": f"node-{i}", "mountpoint": "/var"})
            for i in range(50)}
    assert keys == {"disk-space-jira/group/{}"}
