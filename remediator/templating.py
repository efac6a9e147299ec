"""Sandboxed Jinja2 templates for playbooks, and the checks on what they render.

Holds ``compile_template`` (cached, checked statically), ``Template.render``,
``render_value`` (every string in a nested structure), ``render_name`` and
``render_namespace`` (a rendered Kubernetes name must be DNS-1123 valid before
it can reach an API path), ``static_check`` and ``build_context``.

The context has exactly five names: ``labels``, ``annotations``, ``alert``,
``incident`` and ``target``. Every failure is a ``TemplateError`` written for an
operator ("label 'deployment' is not set on the alert").

Threat model. Alert labels are data from outside: they are substituted, never
rendered as templates, and a rendered name is validated before use. Templates
themselves are operator configuration: the environment is Jinja2's
``ImmutableSandboxedEnvironment`` (no private or dunder attributes, no mutation
of lists and dicts, no loader), undefined names fail (``StrictUndefined``),
macros/includes/imports are refused, output is capped at ``MAX_OUTPUT`` and the
obvious amplifiers (``*``, ``**``, padding widths, ``replace``, ``join``,
``indent``, ``center``, format widths) are bounded before they allocate.
CPU time is bounded too: every ``{% for %}`` iterates through a budget shared by
the whole render (``MAX_LOOP_ITERATIONS`` iterations and ``MAX_RENDER_SECONDS``),
so nested loops over ``range`` fail their render at once with a ``TemplateError``
instead of freezing the event loop; ``template_warnings`` names nested loops so
that ``remediator check`` can warn about them. Templates without a loop (most
of them) pay nothing for it.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import operator
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing, pass_eval_context
from jinja2.visitor import NodeTransformer
from pydantic import BaseModel

from remediator.errors import TemplateError
from remediator.model.names import check_dns1123_label, check_dns1123_subdomain

if TYPE_CHECKING:
    from jinja2.nodes import EvalContext

    from remediator.model.alerts import Alert

__all__ = [
    "CONTEXT_NAMES",
    "MAX_OUTPUT",
    "Template",
    "build_context",
    "compile_template",
    "is_template",
    "render_name",
    "render_namespace",
    "render_value",
    "static_check",
    "template_warnings",
]

CONTEXT_NAMES: tuple[str, ...] = ("alert", "annotations", "incident", "labels", "target")
#: The most characters one render may produce (and the most any one operation may build).
MAX_OUTPUT = 64 * 1024
#: The longest string value (a label, an annotation) a template sees as is: longer ones
#: are cut to this with a visible marker ("… [truncated 61,440 characters]"), so that a
#: huge label makes a shorter message instead of a failed render.
MAX_VALUE = 4096
#: The most loop iterations one render may run, all its loops together (a template that
#: lists an incident's alerts or labels needs hundreds).
MAX_LOOP_ITERATIONS = 10_000
#: The most seconds (real CPU time of the event loop) a render with loops may take.
MAX_RENDER_SECONDS = 0.2

_ALLOWED_GLOBALS = ("range", "dict")
_FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro", nodes.CallBlock: "call", nodes.Include: "include",
    nodes.Import: "import", nodes.FromImport: "from … import", nodes.Extends: "extends",
}


# -------------------------------------------------------------- the context

class _Data(dict[str, Any]):
    """A context mapping that knows what it is, so that a missing key reads well."""

    __slots__ = ("_item", "_owner")

    def __init__(self, data: Mapping[str, Any], item: str, owner: str) -> None:
        super().__init__(data)
        self._item = item        # "label", "annotation", "field", "key"
        self._owner = owner      # "the alert", "target", "alert.labels" …

    def missing_message(self, name: Any) -> str:
        have = ", ".join(sorted(self)) or "none"
        if self._item in ("label", "annotation"):
            return f"{self._item} {name!r} is not set on the alert ({self._item}s: {have})"
        return f"{self._owner} has no {self._item} {name!r} ({self._item}s: {have})"


def clip_value(value: str) -> str:
    """``value`` cut to ``MAX_VALUE`` characters with a marker saying how much was cut."""
    if len(value) <= MAX_VALUE:
        return value
    return f"{value[:MAX_VALUE]}… [truncated {len(value) - MAX_VALUE:,} characters]"


def _wrap(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return clip_value(value) if len(value) > MAX_VALUE else value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("labels", "annotations"):
            item, owner = leaf[:-1], "the alert"
        elif name in ("alert", "incident", "target"):
            item, owner = "field", ("the alert" if name == "alert" else name)
        else:
            item, owner = "key", name
        return _Data({str(k): _wrap(v, f"{name}.{k}") for k, v in value.items()}, item, owner)
    if isinstance(value, list | tuple):
        return [_wrap(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


class _Undefined(StrictUndefined):
    """StrictUndefined whose message names the missing label, annotation or field."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if isinstance(self._undefined_obj, _Data):
            return self._undefined_obj.missing_message(self._undefined_name)
        if self._undefined_obj is missing:
            name = self._undefined_name
            if name in CONTEXT_NAMES:
                return f"{name!r} is not available here"
            return f"undefined variable {name!r} (known: {', '.join(CONTEXT_NAMES)})"
        return str(super()._undefined_message)


def build_context(alert: Alert | None = None, *, incident: Any = None,
                  target: Any = None) -> dict[str, Any]:
    """The render context for one alert (plus the incident and target once known)."""
    ctx: dict[str, Any] = {}
    if alert is not None:
        ctx["labels"] = dict(alert.labels)
        ctx["annotations"] = dict(alert.annotations)
        ctx["alert"] = alert.model_dump(mode="json")
    if incident is not None:
        ctx["incident"] = incident
    if target is not None:
        ctx["target"] = target
    return ctx


# ------------------------------------------------------------- the sandbox

def _limit(n: Any, what: str) -> None:
    if isinstance(n, int) and not isinstance(n, bool) and abs(n) > MAX_OUTPUT:
        raise SecurityError(f"{what} {n} is above the limit of {MAX_OUTPUT}")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*:([^{}]*)\}")


def _check_format(fmt: Any, args: Iterable[Any]) -> None:
    """Refuse format strings whose widths would build a huge string."""
    if not isinstance(fmt, str):
        return
    for m in _PRINTF_SPEC.finditer(fmt):
        for group in m.groups():
            if group == "*":
                raise SecurityError("'*' widths are not allowed in format strings")
            if group:
                _limit(int(group), "format width")
    for m in _FORMAT_FIELD.finditer(fmt):
        for digits in re.findall(r"\d+", m.group(1)):
            _limit(int(digits), "format width")
    for arg in args:
        _limit(arg, "format argument")


def _guarded_binop(op: str, left: Any, right: Any) -> Any:
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int):
                _limit(len(seq) * max(n, 0), "repeated length")
        return operator.mul(left, right)
    if op == "**":
        if isinstance(right, int) and isinstance(left, int) and abs(left) > 1 and right > 256:
                raise SecurityError(f"exponent {right} is above the limit of 256")
        return operator.pow(left, right)
    # "%": printf-style formatting of a string
    if isinstance(left, str):
        _check_format(left, right if isinstance(right, tuple) else (right,))
    return operator.mod(left, right)


_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def _check_str_method(method: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Bound the str methods that can build large strings; may materialise ``join``'s input."""
    owner = getattr(method, "__self__", None)
    if not isinstance(method, types.BuiltinMethodType) or not isinstance(owner, str):
        return args
    name = method.__name__
    if name in _PADDING_METHODS:
        for arg in args:
            _limit(arg, f"{name} width")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            count = owner.count(old) if old else len(owner) + 1
            _limit(len(owner) + count * max(len(new) - len(old), 0), "replace result length")
    elif name == "join" and args:
        items = list(args[0])
        _limit(sum(_size(x) for x in items) + len(owner) * max(len(items) - 1, 0),
               "join result length")
        args = (items, *args[1:])
    return args


def _center(value: Any, width: int = 80) -> str:
    _limit(width, "center width")
    return str(FILTERS["center"](value, width))


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    step = len(width) if isinstance(width, str) else width
    _limit((text.count("\n") + 1) * max(step, 0) + len(text), "indent result length")
    return str(FILTERS["indent"](s, width, first, blank))


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(value, (*args, *kwargs.values()))
    return str(FILTERS["format"](value, *args, **kwargs))


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> Any:
    text, old_s, new_s = str(s), str(old), str(new)
    hits = text.count(old_s) if old_s else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _limit(len(text) + hits * max(len(new_s) - len(old_s), 0), "replace result length")
    return FILTERS["replace"](eval_ctx, s, old, new, count)


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> Any:
    items = list(value)
    if attribute is None:
        _limit(sum(len(str(x)) for x in items) + len(str(d)) * max(len(items) - 1, 0),
               "join result length")
    return FILTERS["join"](eval_ctx, items, d, attribute)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _limit(linecount, "batch size")
    return FILTERS["batch"](value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _limit(slices, "slice count")
    return FILTERS["slice"](value, slices, fill_with)


@pass_eval_context
def _tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
    if indent is not None and indent > 16:
        raise SecurityError(f"tojson indent {indent} is above the limit of 16")
    return FILTERS["tojson"](eval_ctx, value, indent)


class _LoopBudget:
    """What is left of one render's loop iterations, and its deadline (monotonic)."""

    __slots__ = ("deadline", "left")

    def __init__(self) -> None:
        self.left = MAX_LOOP_ITERATIONS
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS


_BUDGET: contextvars.ContextVar[_LoopBudget | None] = contextvars.ContextVar(
    "remediator_template_budget", default=None)
_BUDGET_FILTER = "remediator_loop_budget"


def _budgeted(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: each item spends one iteration of the
    render's budget (a fresh one outside ``Template.render``)."""
    budget = _BUDGET.get() or _LoopBudget()
    for item in iterable:
        budget.left -= 1
        if budget.left < 0:
            raise SecurityError(f"the render ran more than {MAX_LOOP_ITERATIONS} loop "
                                "iterations (nested loops?)")
        if time.monotonic() > budget.deadline:
            raise SecurityError(f"the render took more than {MAX_RENDER_SECONDS:g}s "
                                "of loops")
        yield item


class _CountLoops(NodeTransformer):
    """Wrap the iterable of every ``{% for %}`` in the loop budget filter."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _BUDGET_FILTER, [], [], None, None,
                                 lineno=node.lineno)
        return node


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        result = _CountLoops().visit(tree)
        assert isinstance(result, nodes.Template)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _guarded_binop(operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        args = _check_str_method(__obj, args)
        for value in kwargs.values():
            _limit(value, "argument")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, (*args, *kwargs.values()))
            return str(wrapper(*args, **kwargs))
        return checked


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=_Undefined, autoescape=False, loader=None,
                   keep_trailing_newline=True, auto_reload=False, cache_size=0)
    env.globals = {name: env.globals[name] for name in _ALLOWED_GLOBALS}
    env.filters.pop("random", None)
    env.filters.update({"center": _center, "indent": _indent, "format": _format,
                        "replace": _replace, "join": _join, "batch": _batch,
                        "slice": _slice, "tojson": _tojson, _BUDGET_FILTER: _budgeted})
    return env


_ENV = _make_env()


# ------------------------------------------------------------- the templates

def is_template(text: Any) -> bool:
    """Whether a string holds Jinja syntax (otherwise it renders as itself)."""
    return isinstance(text, str) and ("{{" in text or "{%" in text or "{#" in text)


_LOOKUP = re.compile(r"\{\{\s*(labels|annotations)\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)"
                     r"|\[\s*(['\"])([A-Za-z_][A-Za-z0-9_]*)\3\s*\])\s*\}\}")


def _short(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def static_check(source: str) -> list[str]:
    """Every problem found without rendering (syntax, unknown names, forbidden tags)."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [f"line {exc.lineno}: {exc.message}"]
    problems: list[str] = []
    known = ", ".join(CONTEXT_NAMES)
    try:
        undeclared = meta.find_undeclared_variables(ast)   # compiles: finds unknown filters
    except jinja2.TemplateSyntaxError as exc:
        return [f"line {exc.lineno}: {exc.message}"]
    for name in sorted(undeclared - set(CONTEXT_NAMES) - set(_ENV.globals)):
        close = difflib.get_close_matches(name, CONTEXT_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"undefined variable {name!r} (known: {known}{hint})")
    for getattr_node in ast.find_all(nodes.Getattr):
        if getattr_node.attr.startswith("__"):
            problems.append(f"line {getattr_node.lineno}: access to {getattr_node.attr!r} "
                            "is not allowed")
    for getitem_node in ast.find_all(nodes.Getitem):
        key = getitem_node.arg
        if isinstance(key, nodes.Const) and isinstance(key.value, str) \
                and key.value.startswith("__"):
            problems.append(f"line {getitem_node.lineno}: access to {key.value!r} "
                            "is not allowed")
    for kind, word in _FORBIDDEN_NODES.items():
        problems.extend(f"line {node.lineno}: '{{% {word} %}}' is not allowed in playbook "
                        "templates" for node in ast.find_all(kind))
    if not problems:
        try:
            _ENV.compile(ast)
        except jinja2.TemplateSyntaxError as exc:     # unknown filter or test
            problems.append(f"line {exc.lineno}: {exc.message}")
    return problems


class Template:
    """A compiled, checked template. ``render`` never raises anything but TemplateError."""

    __slots__ = ("_lookup", "_loops", "_names", "_template", "source")

    def __init__(self, source: str, template: jinja2.Template,
                 names: Iterable[str] = CONTEXT_NAMES) -> None:
        self.source = source
        self._template = template
        # a render with loops gets a loop budget of its own
        self._loops = "{%" in source and "for" in source
        # Only the context names the template mentions are wrapped on each render (wrapping
        # copies the whole alert: it was most of the cost of routing an alert).
        self._names = tuple(n for n in CONTEXT_NAMES if n in set(names))
        # ``{{ labels.x }}`` alone (most targets) is a dictionary lookup: done without
        # Jinja, with the same result and the same error for a missing label.
        m = _LOOKUP.fullmatch(source)
        key = m and (m.group(2) or m.group(4))
        self._lookup = (m.group(1), key) if m and key and not hasattr(dict, key) else None

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    @property
    def label_lookup(self) -> str | None:
        """The label this template reads when it is only ``{{ labels.x }}``, else None."""
        if self._lookup is not None and self._lookup[0] == "labels":
            return self._lookup[1]
        return None

    def render(self, context: Mapping[str, Any]) -> str:
        if self._lookup is not None:
            group, key = self._lookup
            data = context.get(group)
            if isinstance(data, Mapping):
                value = data.get(key)
                if isinstance(value, str):
                    return value if len(value) <= MAX_VALUE else clip_value(value)
                if value is None:
                    item = group[:-1]
                    have = ", ".join(sorted(map(str, data))) or "none"
                    raise TemplateError(f"{item} {key!r} is not set on the alert "
                                        f"({item}s: {have}) (in {_short(self.source)})")
        ctx = {name: _wrap(context[name], name) for name in self._names if name in context}
        if not self._loops:
            return self._generate(ctx)
        token = _BUDGET.set(_LoopBudget())
        try:
            return self._generate(ctx)
        finally:
            _BUDGET.reset(token)

    def _generate(self, ctx: dict[str, Any]) -> str:
        chunks: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(ctx):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"output of {_short(self.source)} exceeds "
                                        f"{MAX_OUTPUT} characters")
                chunks.append(chunk)
        except TemplateError:
            raise
        except SecurityError as exc:
            raise TemplateError(f"not allowed: {exc} (in {_short(self.source)})") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{exc} (in {_short(self.source)})") from exc
        except Exception as exc:
            raise TemplateError(f"rendering {_short(self.source)} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        return "".join(chunks)


@functools.lru_cache(maxsize=2048)
def compile_template(source: str) -> Template:
    """Compile (once per source) and check a template; TemplateError lists the problems."""
    if not isinstance(source, str):
        raise TemplateError(f"a template must be a string, got {type(source).__name__}")
    problems = static_check(source)
    if problems:
        raise TemplateError(f"template {_short(source)}: " + "; ".join(problems))
    try:
        template = _ENV.from_string(source)
        names = meta.find_undeclared_variables(_ENV.parse(source))
    except jinja2.TemplateSyntaxError as exc:   # already caught by _problems; belt and braces
        raise TemplateError(f"template {_short(source)}: line {exc.lineno}: {exc.message}") \
            from exc
    return Template(source, template, names)


def template_warnings(source: str) -> list[str]:
    """What deserves a warning without being an error: nested loops (each render may run
    up to ``MAX_LOOP_ITERATIONS`` iterations, then fails)."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return []                      # an error, reported by static_check
    warnings: list[str] = []
    for outer in ast.find_all(nodes.For):
        inner = next(iter(outer.find_all(nodes.For)), None)
        if inner is not None:
            warnings.append(f"line {inner.lineno}: a loop inside the loop of line "
                            f"{outer.lineno}: a render fails past {MAX_LOOP_ITERATIONS:,} "
                            f"iterations or {MAX_RENDER_SECONDS:g}s; keep loops flat and "
                            "short")
    return warnings


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside dicts and lists; keys and non-strings are untouched."""
    if isinstance(value, str):
        return compile_template(value).render(context) if is_template(value) else value
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(render_value(v, context) for v in value)
    return value


def _render_checked(source: str, context: Mapping[str, Any], what: str,
                    check: Callable[[str, str], str]) -> str:
    value = render_value(source, context)
    try:
        return check(value, what)
    except ValueError as exc:
        raise TemplateError(f"{exc}; rendered from {_short(source)}") from None


def render_name(source: str, context: Mapping[str, Any], what: str = "name") -> str:
    """Render a Kubernetes object name and insist it is a DNS-1123 subdomain."""
    return _render_checked(source, context, what, check_dns1123_subdomain)


def render_namespace(source: str, context: Mapping[str, Any], what: str = "namespace") -> str:
    """Render a namespace and insist it is a DNS-1123 label (at most 63 characters)."""
    return _render_checked(source, context, what, check_dns1123_label)


def render_cluster(source: str, context: Mapping[str, Any]) -> str:
    """Render a target's cluster name: empty means the default cluster, anything else
    must be a DNS-1123 label (a name under kubernetes.clusters)."""
    return _render_checked(source, context, "cluster name",
                           lambda value, what: value and check_dns1123_label(value, what))
