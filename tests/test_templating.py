"""Sandboxed templates: rendering, strictness, the sandbox failing closed, name checks."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.errors import TemplateError
from remediator.model.alerts import Alert, fingerprint
from remediator.templating import (
    CONTEXT_NAMES,
    MAX_OUTPUT,
    build_context,
    compile_template,
    is_template,
    render_name,
    render_namespace,
    render_value,
    static_check,
)

LABELS = {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "api",
          "severity": "critical"}
ALERT = Alert(status="firing", labels=LABELS, annotations={"summary": "5xx above 5%"},
              startsAt=datetime(2026, 8, 1, 10, tzinfo=UTC), fingerprint=fingerprint(LABELS))
CTX: dict[str, Any] = {**build_context(ALERT),
                       "target": {"kind": "Deployment", "namespace": "shop", "name": "api"},
                       "incident": {"id": "inc-1", "attempt": 2}}


def render(source: str, context: dict[str, Any] | None = None) -> str:
    return compile_template(source).render(CTX if context is None else context)


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ labels.namespace }}/{{ labels.deployment }}", "shop/api"),
    ('{{ labels["severity"] | upper }}', "CRITICAL"),
    ("{{ annotations.summary }}", "5xx above 5%"),
    ("{{ alert.status }} {{ alert.labels.alertname }} {{ alert.startsAt }}",
     "firing HighErrorRate 2026-08-01T10:00:00Z"),
    ("{{ target.kind }} {{ target.namespace }}/{{ target.name }}", "Deployment shop/api"),
    ("{{ incident.id }}#{{ incident.attempt + 1 }}", "inc-1#3"),
    ('{{ labels.team | default("sre") }}', "sre"),
    ('{{ labels.get("team", "none") }}', "none"),
    ("{% if labels.severity == 'critical' %}page{% else %}ticket{% endif %}", "page"),
    ("{{ labels | dictsort | map('first') | join(',') }}",
     "alertname,deployment,namespace,severity"),
    ('{{ "%s-%02d" | format(labels.deployment, 7) }}', "api-07"),
    ('{{ "{}:{}".format(labels.namespace, 1) }}', "shop:1"),
    ("{{ labels.deployment ~ '-' ~ range(3) | join('') }}", "api-012"),
    ("{{ '=' * 5 }}", "====="),
    ("line\n", "line\n"),                                   # trailing newline kept
    ("{# comment #}x", "x"),
])
def test_render(source: str, expected: str) -> None:
    assert render(source) == expected


def test_compile_is_cached() -> None:
    assert compile_template("{{ labels.namespace }}") is compile_template("{{ labels.namespace }}")


# --------------------------------------------------------------- compile errors

@pytest.mark.parametrize(("source", "message"), [
    ("{{ lables.namespace }}",
     "undefined variable 'lables' (known: alert, annotations, incident, labels, target; "
     "did you mean 'labels'?)"),
    ("{{ namespace }}", "undefined variable 'namespace' (known: alert, annotations, incident, "
                        "labels, target)"),
    ("{{ labels.namespace", "line 1: unexpected end of template"),
    ("ok\n{% if labels.x %}\nno end", "line 2: Unexpected end of template"),
    ("{{ labels.x | nosuchfilter }}", "line 1: No filter named 'nosuchfilter'"),
    ("{{ labels.x is nosuchtest }}", "line 1: No test named 'nosuchtest'"),
    ('{% include "x.j2" %}', "'{% include %}' is not allowed"),
    ('{% import "x.j2" as x %}', "'{% import %}' is not allowed"),
    ("{% macro f() %}{% endmacro %}", "'{% macro %}' is not allowed"),
    ("{{ lipsum() }}", "undefined variable 'lipsum'"),
    ("{{ cycler }}", "undefined variable 'cycler'"),
])
def test_compile_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=r"^template ") as err:
        compile_template(source)
    assert message in str(err.value)


def test_static_check_lists_every_problem() -> None:
    assert static_check("{{ lables.x }}{{ labels.__class__ }}{% include 'x' %}") == [
        "undefined variable 'lables' (known: alert, annotations, incident, labels, target; "
        "did you mean 'labels'?)",
        "line 1: access to '__class__' is not allowed",
        "line 1: '{% include %}' is not allowed in playbook templates",
    ]
    assert static_check("{{ labels.namespace }}") == []
    assert static_check("{% for k, v in labels.items() %}{{ k }}{% endfor %}") == []


# ------------------------------------------------------------- strict undefined

@pytest.mark.parametrize(("source", "message"), [
    ("{{ labels.deployment_name }}", "label 'deployment_name' is not set on the alert "
                                     "(labels: alertname, deployment, namespace, severity)"),
    ('{{ labels["pod"] }}', "label 'pod' is not set on the alert"),
    ("{{ annotations.runbook_url }}", "annotation 'runbook_url' is not set on the alert "
                                      "(annotations: summary)"),
    ("{{ alert.labels.pod }}", "label 'pod' is not set on the alert"),
    ("{{ alert.severity }}", "the alert has no field 'severity'"),
    ("{{ target.replicas }}", "target has no field 'replicas'"),
    ("{{ incident.opened }}", "incident has no field 'opened'"),
    ("{{ labels.missing | upper }}", "label 'missing' is not set on the alert"),
    ("{% if labels.missing %}x{% endif %}", "label 'missing' is not set on the alert"),
    ("{{ labels.missing ~ 'x' }}", "label 'missing' is not set on the alert"),
])
def test_strict_undefined_names_the_missing_key(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(source)
    assert message in str(err.value)
    assert repr(source) in str(err.value)


def test_context_name_not_available_yet() -> None:
    with pytest.raises(TemplateError, match="'incident' is not available here"):
        render("{{ incident.id }}", build_context(ALERT))


def test_unknown_context_keys_are_not_visible() -> None:
    with pytest.raises(TemplateError, match="undefined variable 'secret'"):
        compile_template("{{ secret }}")
    assert render("{{ labels.namespace }}", {**CTX, "secret": "x"}) == "shop"


def test_pydantic_models_in_the_context_become_plain_data() -> None:
    assert render("{{ alert.fingerprint }}", {"alert": ALERT}) == ALERT.fingerprint


def test_runtime_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}")
    with pytest.raises(TemplateError, match="TypeError"):
        render("{{ labels.namespace + 1 }}")


# --------------------------------------------------------- the sandbox fails closed

@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ labels.__class__.__mro__ }}",
    "{{ labels.__init__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ labels['__class__'] }}",
    "{{ labels['_' ~ '_class__'] }}",
    "{{ alert.labels.__dict__ }}",
    "{{ range.__globals__ }}",
])
def test_dunder_access_is_refused_at_compile_time(source: str) -> None:
    with pytest.raises(TemplateError, match="is not allowed"):
        compile_template(source)


@pytest.mark.parametrize("source", [
    "{{ labels | attr('__class__') }}",
    "{{ labels._item }}",                               # private attribute of our own wrapper
    "{% set n = '__cla' ~ labels.x | default('ss__') %}{{ labels[n] }}",
    "{{ labels.namespace.format_map }}{{ ''.format.__self__ }}",
    "{{ labels.pop('namespace') }}",                    # no mutation of the context
    "{{ labels.update({'a': 'b'}) }}",
    "{{ alert.labels.clear() }}",
])
def test_unsafe_access_is_refused_at_render_time(source: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(source)
    assert "unsafe" in str(err.value) or "not allowed" in str(err.value) \
        or "not set" in str(err.value)
    assert CTX["labels"]["namespace"] == "shop"


@pytest.mark.parametrize("source", [
    "{{ 'x' * 100000 }}",
    "{{ [1] * 100000 }}",
    "{{ 10 ** 100000 }}",
    "{{ 'x'.ljust(1000000) }}",
    "{{ labels.namespace | center(1000000) }}",
    "{{ '{:>1000000}'.format(1) }}",
    "{{ '%1000000d' % 1 }}",
    "{{ '%*d' % (1000000, 1) }}",
    "{{ '%1000000s' | format('x') }}",
    "{{ labels.namespace.replace('', 'y' * 60000) }}",
    "{{ labels.namespace | replace('', 'y' * 60000) }}",
    "{{ range(100000) | join('xx') }}",
    "{{ 'xx'.join(range(100000)|map('string')) }}",
    "{{ range(10) | batch(1000000, 'x') | list }}",
    "{{ range(10) | slice(1000000) | list }}",
    "{{ labels | tojson(indent=100000) }}",
    "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}",
    "{% for i in range(1000) %}{{ 'y' * 60000 }}{% endfor %}",
])
def test_huge_outputs_are_refused(source: str) -> None:
    with pytest.raises(TemplateError, match=rf"(above the limit|exceeds {MAX_OUTPUT}|not allowed)"):
        render(source)


def test_output_just_under_the_cap_is_fine() -> None:
    assert len(render(f"{{{{ 'x' * {MAX_OUTPUT} }}}}")) == MAX_OUTPUT


def test_range_is_sandboxed() -> None:
    with pytest.raises(TemplateError, match="Range too big"):
        render("{{ range(10 ** 7) | list | length }}")


# ---------------------------------------------------------------- render_value

def test_render_value_recurses_and_leaves_non_strings_alone() -> None:
    value = {"name": "{{ labels.deployment }}", "replicas": 3, "enabled": True, "none": None,
             "list": ["{{ labels.namespace }}", 1.5, {"deep": "{{ incident.id }}"}],
             "tuple": ("{{ target.kind }}",), "{{ keys }}": "plain {not a template}"}
    assert render_value(value, CTX) == {
        "name": "api", "replicas": 3, "enabled": True, "none": None,
        "list": ["shop", 1.5, {"deep": "inc-1"}], "tuple": ("Deployment",),
        "{{ keys }}": "plain {not a template}"}


def test_render_value_does_not_re_render_label_values() -> None:
    ctx = {"labels": {"x": "{{ labels.__class__ }}"}}
    assert render_value("{{ labels.x }}", ctx) == "{{ labels.__class__ }}"


def test_is_template() -> None:
    assert is_template("{{ a }}")
    assert is_template("{% if a %}{% endif %}")
    assert is_template("{# c #}")
    assert not is_template("plain { text }")
    assert not is_template(3)


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("bad", ["../../x", "a b", "API", "A", "", "-api", "api-", "a/b",
                                 "a_b", "x" * 254, "api\n"])
def test_render_name_rejects(bad: str) -> None:
    with pytest.raises(TemplateError) as err:
        render_name("{{ labels.deployment }}", {"labels": {"deployment": bad}})
    assert repr(bad) in str(err.value)
    assert "not a valid DNS-1123 subdomain" in str(err.value)
    assert "rendered from '{{ labels.deployment }}'" in str(err.value)


@pytest.mark.parametrize("bad", ["../../x", "a b", "Shop", "", "a.b", "x" * 64])
def test_render_namespace_rejects(bad: str) -> None:
    with pytest.raises(TemplateError, match="not a valid DNS-1123 label"):
        render_namespace("{{ labels.namespace }}", {"labels": {"namespace": bad}})


def test_render_name_and_namespace_accept() -> None:
    assert render_name("{{ labels.deployment }}-v2.canary", CTX) == "api-v2.canary"
    assert render_name("x" * 253, CTX) == "x" * 253
    assert render_namespace("{{ labels.namespace }}", CTX) == "shop"
    assert render_namespace("x" * 63, CTX) == "x" * 63
    assert render_name("static-name", {}) == "static-name"


def test_render_name_what_appears_in_the_message() -> None:
    with pytest.raises(TemplateError, match=r"^target name 'A b'"):
        render_name("A b", {}, what="target name")


# ---------------------------------------------------------------- properties

safe_text = st.text(max_size=40)


@given(safe_text)
def test_label_values_are_data_never_code(value: str) -> None:
    assert render("{{ labels.x }}", {"labels": {"x": value}}) == value


@given(st.text(max_size=60))
def test_compile_raises_only_template_error(source: str) -> None:
    with contextlib.suppress(TemplateError):
        compile_template(source)


def test_context_names_are_the_five() -> None:
    assert set(CONTEXT_NAMES) == {"labels", "annotations", "alert", "incident", "target"}


@pytest.mark.parametrize("source", ["{{ labels.namespace }}", "{{labels.namespace}}",
                                    "{{ labels['namespace'] }}", '{{ annotations["summary"] }}'])
def test_plain_lookups_render_like_jinja(source: str) -> None:
    from remediator.templating import _ENV, Template
    fast = compile_template(source)
    assert fast._lookup is not None                      # the dictionary fast path
    slow = Template(source + "{{ '' }}", _ENV.from_string(source + "{{ '' }}"))
    ctx = {"labels": {"namespace": "prod"}, "annotations": {"summary": "s"}}
    assert fast.render(ctx) == slow.render(ctx)
    with pytest.raises(TemplateError) as fast_err:
        fast.render({"labels": {"x": "1"}, "annotations": {"x": "1"}})
    with pytest.raises(TemplateError) as slow_err:
        slow.render({"labels": {"x": "1"}, "annotations": {"x": "1"}})
    assert str(fast_err.value).split(" (in ")[0] == str(slow_err.value).split(" (in ")[0]


# -- the CPU bound: a loop budget per render --------------------------------------------

def test_nested_range_loops_fail_fast_naming_the_template() -> None:
    import time

    from remediator.templating import MAX_LOOP_ITERATIONS
    source = "{% for i in range(60000) %}{% for j in range(60000) %}{% endfor %}{% endfor %}"
    t0 = time.perf_counter()
    with pytest.raises(TemplateError) as info:
        compile_template(source).render({})
    assert time.perf_counter() - t0 < 0.5
    assert f"more than {MAX_LOOP_ITERATIONS} loop iterations" in str(info.value)
    assert "{% for i in range(60000) %}" in str(info.value)


def test_a_slow_loop_body_hits_the_render_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few iterations, each expensive (sorting a 64 KiB label's parts): the deadline."""
    import time

    from remediator import templating
    monkeypatch.setattr(templating, "MAX_LOOP_ITERATIONS", 10**9)
    source = ("{% for i in range(5000) %}{% set s = labels.big.split(',') | sort %}"
              "{% endfor %}done")
    big = ",".join(str(n) for n in range(12000))
    t0 = time.perf_counter()
    with pytest.raises(TemplateError, match="took more than"):
        compile_template(source).render({"labels": {"big": big}})
    assert time.perf_counter() - t0 < 1.0


def test_the_budget_is_per_render_and_loops_still_work() -> None:
    t = compile_template("{% for k, v in labels | dictsort %}{{ loop.index }}/{{ loop.length }}"
                         " {{ k }}={{ v }};{% else %}none{% endfor %}")
    labels = {f"l{i:04d}": "v" for i in range(3000)}
    for _ in range(5):                      # 5 × 3,000 iterations: each render has its own
        out = t.render({"labels": labels})
        assert out.startswith("1/3000 l0000=v;")
    assert t.render({"labels": {}}) == "none"


def test_nested_loops_are_warned_about_not_refused() -> None:
    from remediator.templating import template_warnings
    nested = "{% for a in labels %}{% for b in labels %}{{ a }}{{ b }}{% endfor %}{% endfor %}"
    assert static_check(nested) == []
    [warning] = template_warnings(nested)
    assert warning.startswith("line 1: a loop inside the loop of line 1")
    assert template_warnings("{% for a in labels %}{{ a }}{% endfor %}") == []
