"""Table-driven tests of every action's params model (``remediator.actions.params``):
what each accepts, what it refuses and with which message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions import registry
from remediator.actions.params import (
    CordonParams,
    DeletePodParams,
    DrainParams,
    HttpPostParams,
    IsolatePodParams,
    JiraIncidentParams,
    NetworkIsolateParams,
    RestartParams,
    RollbackParams,
    ScaleParams,
    SlackNotifyParams,
    SlackPageParams,
    UncordonParams,
    WaitParams,
)
from remediator.engine.contract import Params

OK: list[tuple[type[Params], dict[str, Any], dict[str, Any]]] = [
    # model, params, expected attributes
    (RestartParams, {}, {"reason": None}),
    (RestartParams, {"reason": "crash loop in {{ labels.pod }}"},
     {"reason": "crash loop in {{ labels.pod }}"}),
    (ScaleParams, {"to": 6}, {"to": 6, "by": None, "factor": None, "min_replicas": 1}),
    (ScaleParams, {"to": 0}, {"to": 0}),
    (ScaleParams, {"to": 10, "max_replicas": 10}, {"to": 10, "max_replicas": 10}),
    (ScaleParams, {"by": 2, "max_replicas": 12}, {"by": 2, "max_replicas": 12}),
    (ScaleParams, {"by": -1}, {"by": -1, "max_replicas": None}),   # scaling in needs no cap
    (ScaleParams, {"by": -2, "min_replicas": 2}, {"by": -2, "min_replicas": 2}),
    (ScaleParams, {"factor": 2, "max_replicas": 20}, {"factor": 2.0}),
    (ScaleParams, {"factor": 1.5, "max_replicas": 20, "min_replicas": 20}, {"factor": 1.5}),
    (ScaleParams, {"factor": 2, "max_replicas": 4, "allow_hpa": True}, {"allow_hpa": True}),
    (RollbackParams, {}, {"revision": "previous"}),
    (RollbackParams, {"revision": "previous"}, {"revision": "previous"}),
    (RollbackParams, {"revision": 1}, {"revision": 1}),
    (RollbackParams, {"revision": 42}, {"revision": 42}),
    (DeletePodParams, {}, {"pod": None, "selector": None, "max_pods": 1, "force": False}),
    (DeletePodParams, {"pod": "{{ labels.pod }}"}, {"pod": "{{ labels.pod }}"}),
    (DeletePodParams, {"selector": {"app": "{{ labels.app }}"}, "max_pods": 5},
     {"selector": {"app": "{{ labels.app }}"}, "max_pods": 5}),
    (DeletePodParams, {"selector": {"app.kubernetes.io/name": "api"}}, {"max_pods": 1}),
    (DeletePodParams, {"max_pods": 50, "grace_period_seconds": 0}, {"grace_period_seconds": 0}),
    (DeletePodParams, {"force": True}, {"force": True}),
    (JiraIncidentParams, {"project": "OPS"},
     {"project": "OPS", "issue_type": "Incident", "priority": None, "labels": []}),
    (JiraIncidentParams, {"project": "OPS", "summary": "{{ labels.alertname }}",
                          "priority": "{{ labels.severity }}", "labels": ["a"]},
     {"summary": "{{ labels.alertname }}", "labels": ["a"]}),
    (SlackNotifyParams, {"text": "hi"}, {"channel": None, "text": "hi"}),
    (SlackNotifyParams, {"channel": "#ops", "text": "{{ labels.alertname }}"}, {"channel": "#ops"}),
    (SlackPageParams, {"channel": "#oncall", "mention": "<!subteam^S0ONCALL>"}, {"text": None}),
    (HttpPostParams, {"url": "https://hooks.example.com/x"},
     {"timeout": 10.0, "expect_status": [200, 201, 202, 204], "json_body": {}}),
    (HttpPostParams, {"url": "http://svc.ns:8080/hook", "json": {"ns": "{{ labels.namespace }}"},
                      "timeout": "30s", "headers": {"X-Token": "static"}},
     {"timeout": 30.0, "json_body": {"ns": "{{ labels.namespace }}"}}),
    (WaitParams, {"duration": "90s"}, {"duration": 90.0}),
    (WaitParams, {"duration": "1h"}, {"duration": 3600.0}),
    (WaitParams, {"duration": "500ms"}, {"duration": 0.5}),
    (WaitParams, {"duration": 30}, {"duration": 30.0}),
    (CordonParams, {"min_ready_nodes": 2}, {"min_ready_nodes": 2, "min_ready_percent": None}),
    (CordonParams, {"min_ready_percent": 67}, {"min_ready_percent": 67}),
    (UncordonParams, {}, {}),
    (IsolatePodParams, {}, {"pod": None, "keep_for": 3600.0, "max_isolated": 1}),
    (IsolatePodParams, {"pod": "{{ labels.pod }}", "keep_for": "24h", "max_isolated": 2},
     {"keep_for": 86400.0, "max_isolated": 2}),
    (NetworkIsolateParams, {"pod": "{{ labels.instance_pod }}"},
     {"pod": "{{ labels.instance_pod }}"}),
    (DrainParams, {"min_ready_nodes": 3, "timeout": "5m", "delete_emptydir_data": True},
     {"timeout": 300.0, "retry_interval": 5.0, "delete_emptydir_data": True, "force": False}),
]

BAD: list[tuple[type[Params], dict[str, Any], tuple[Any, ...], str]] = [
    # model, params, error location, message fragment
    (RestartParams, {"reasn": "x"}, ("reasn",), "Extra inputs are not permitted"),
    # scale: exactly one mode
    (ScaleParams, {}, (), "give exactly one of 'to', 'by' or 'factor'"),
    (ScaleParams, {"to": 3, "by": 2, "max_replicas": 9}, (),
     "give exactly one of 'to', 'by' or 'factor'"),
    (ScaleParams, {"to": 3, "factor": 2, "max_replicas": 9}, (),
     "give exactly one of 'to', 'by' or 'factor'"),
    (ScaleParams, {"by": 1, "factor": 2, "max_replicas": 9}, (),
     "give exactly one of 'to', 'by' or 'factor'"),
    # scale: values
    (ScaleParams, {"factor": 1, "max_replicas": 9}, ("factor",), "must be > 1"),
    (ScaleParams, {"factor": 0.5, "max_replicas": 9}, ("factor",), "must be > 1"),
    (ScaleParams, {"by": 0, "max_replicas": 9}, ("by",), "must not be 0"),
    (ScaleParams, {"to": -1}, ("to",), "greater than or equal to 0"),
    (ScaleParams, {"to": 3, "min_replicas": -1}, ("min_replicas",), "greater than or equal to 0"),
    (ScaleParams, {"to": 3, "max_replicas": 0}, ("max_replicas",),
     "greater than or equal to 1"),
    # scale: caps
    (ScaleParams, {"factor": 2}, (),
     "'max_replicas' is required when scaling up by 'by' or 'factor'"),
    (ScaleParams, {"by": 3}, (), "'max_replicas' is required when scaling up by 'by' or 'factor'"),
    (ScaleParams, {"by": 2, "max_replicas": 4, "min_replicas": 5}, (),
     "'min_replicas' must not exceed 'max_replicas'"),
    (ScaleParams, {"to": 30, "max_replicas": 20}, (), "'to' (30) exceeds 'max_replicas' (20)"),
    # numbers are never templates: limits are checked at load time
    (ScaleParams, {"to": "{{ labels.replicas }}"}, ("to",), "valid integer"),
    (ScaleParams, {"by": 2, "max_replicas": "{{ labels.max }}"}, ("max_replicas",),
     "valid integer"),
    # rollback
    (RollbackParams, {"revision": 0}, ("revision",), "'previous' or a revision number >= 1"),
    (RollbackParams, {"revision": -3}, ("revision",), "'previous' or a revision number >= 1"),
    (RollbackParams, {"revision": "last"}, ("revision", "literal['previous']"),
     "Input should be 'previous'"),
    # delete_pod
    (DeletePodParams, {"pod": "a", "selector": {"app": "a"}}, (),
     "give at most one of 'pod' or 'selector'"),
    (DeletePodParams, {"selector": {}}, ("selector",), "must not be empty"),
    (DeletePodParams, {"selector": {"{{ labels.key }}": "x"}}, ("selector",),
     "a selector key must be a fixed value, not a template"),
    (DeletePodParams, {"selector": {"bad key!": "x"}}, ("selector",),
     "selector key 'bad key!' is not a valid Kubernetes label name"),
    (DeletePodParams, {"max_pods": 0}, ("max_pods",), "greater than or equal to 1"),
    (DeletePodParams, {"max_pods": 51}, ("max_pods",), "less than or equal to 50"),
    (DeletePodParams, {"grace_period_seconds": -1}, ("grace_period_seconds",),
     "greater than or equal to 0"),
    # nodes
    (CordonParams, {}, (), "give exactly one of 'min_ready_nodes' or 'min_ready_percent'"),
    (CordonParams, {"min_ready_nodes": 1, "min_ready_percent": 50}, (), "give exactly one"),
    (CordonParams, {"min_ready_percent": 101}, ("min_ready_percent",),
     "less than or equal to 100"),
    (UncordonParams, {"min_ready_nodes": 1}, ("min_ready_nodes",),
     "Extra inputs are not permitted"),
    (DrainParams, {"min_ready_nodes": -1}, ("min_ready_nodes",), "greater than or equal to 0"),
    (DrainParams, {"min_ready_nodes": 1, "timeout": "2h"}, ("timeout",), "at most 1h"),
    (DrainParams, {"min_ready_nodes": 1, "retry_interval": 0}, ("retry_interval",),
     "more than 0s"),
    (IsolatePodParams, {"keep_for": "8d"}, ("keep_for",), "must be between 0s and 7d"),
    (IsolatePodParams, {"max_isolated": 0}, ("max_isolated",), "greater than or equal to 1"),
    (IsolatePodParams, {"max_isolated": 11}, ("max_isolated",), "less than or equal to 10"),
    (NetworkIsolateParams, {"selector": {"a": "b"}}, ("selector",),
     "Extra inputs are not permitted"),
    # jira
    (JiraIncidentParams, {}, ("project",), "Field required"),
    (JiraIncidentParams, {"project": ""}, ("project",), "at least 1 character"),
    (JiraIncidentParams, {"project": "{{ labels.team }}"}, ("project",),
     "project must be a fixed value, not a template"),
    (JiraIncidentParams, {"project": "OPS", "priorty": "High"}, ("priorty",),
     "Extra inputs are not permitted"),
    # slack
    (SlackNotifyParams, {}, ("text",), "Field required"),
    (SlackNotifyParams, {"text": ""}, ("text",), "at least 1 character"),
    (SlackPageParams, {"channel": "#oncall"}, ("mention",), "Field required"),
    (SlackPageParams, {"channel": "", "mention": "<@U1>"}, ("channel",), "at least 1 character"),
    # http.post
    (HttpPostParams, {}, ("url",), "Field required"),
    (HttpPostParams, {"url": "ftp://example.com/x"}, ("url",),
     "must start with http:// or https://"),
    (HttpPostParams, {"url": "example.com/hook"}, ("url",), "must start with http:// or https://"),
    (HttpPostParams, {"url": "https://{{ labels.host }}/hook"}, ("url",),
     "url must be a fixed value, not a template"),
    (HttpPostParams, {"url": "{% if true %}https://x{% endif %}"}, ("url",),
     "url must be a fixed value, not a template"),
    (HttpPostParams, {"url": "https://x", "timeout": "ten seconds"}, ("timeout",),
     "bad duration 'ten seconds'"),
    # wait
    (WaitParams, {}, ("duration",), "Field required"),
    (WaitParams, {"duration": 0}, ("duration",), "must be more than 0s and at most 1h"),
    (WaitParams, {"duration": "1h1s"}, ("duration",), "must be more than 0s and at most 1h"),
    (WaitParams, {"duration": "2d"}, ("duration",), "must be more than 0s and at most 1h"),
    (WaitParams, {"duration": "-5s"}, ("duration",), "bad duration '-5s'"),
    (WaitParams, {"duration": -5}, ("duration",), "must not be negative"),
    (WaitParams, {"duration": True}, ("duration",), "bad duration True"),
    (WaitParams, {"duration": "5 minutes"}, ("duration",), "bad duration '5 minutes'"),
]


def _id(model: type[Params], params: dict[str, Any]) -> str:
    return f"{model.__name__}-{params}"


@pytest.mark.parametrize(("model", "params", "expected"), OK,
                         ids=[_id(m, p) for m, p, _ in OK])
def test_accepts(model: type[Params], params: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = model.model_validate(params)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize(("model", "params", "loc", "fragment"), BAD,
                         ids=[_id(m, p) for m, p, _, _ in BAD])
def test_refuses(model: type[Params], params: dict[str, Any], loc: tuple[Any, ...],
                 fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(params)
    errors = info.value.errors()
    assert any(tuple(e["loc"]) == loc and fragment in e["msg"] for e in errors), errors


def test_every_catalogue_model_is_covered() -> None:
    covered = {m for m, _, _ in OK} | {m for m, _, _, _ in BAD}
    assert {spec.params for spec in registry.CATALOGUE.values()} <= covered


MODELS = sorted({s.params for s in registry.CATALOGUE.values()}, key=lambda m: m.__name__)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_model_forbids_unknown_fields_and_is_frozen(model: type[Params]) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True


def test_params_are_immutable() -> None:
    parsed = ScaleParams.model_validate({"to": 3})
    with pytest.raises(ValidationError):
        parsed.to = 4  # type: ignore[misc]


def test_http_post_json_alias_and_static_headers_are_kept() -> None:
    parsed = HttpPostParams.model_validate({"url": "https://x/y", "json": {"a": 1},
                                            "expect_status": [200]})
    assert parsed.json_body == {"a": 1}
    assert parsed.expect_status == [200]
    # The field name is not accepted in place of the alias.
    with pytest.raises(ValidationError):
        HttpPostParams.model_validate({"url": "https://x/y", "json_body": {"a": 1}})
