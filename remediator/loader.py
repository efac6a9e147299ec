"""Loading playbooks: YAML text → validated ``Playbook`` objects, or every problem
with its file, line and field (``playbooks/api.yaml:14: steps[1].with.factor: must be > 1``).

``load(text, source=…)`` is pure; ``load_paths(paths)`` reads files and
directories (``*.yaml``/``*.yml``, sorted by name; several documents per file
allowed) and also checks rules across files (duplicate names).

Everything that can be known before an alert arrives is checked here: the
schema, unknown actions, each action's params against its own model, what an
action needs of the target, durations, matcher syntax and regexes, and template
syntax and variables.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from remediator.actions import registry
from remediator.actions.params import DrainParams
from remediator.errors import ConfigError, Problem, TemplateError
from remediator.located import (
    Loc,
    documents,
    format_loc,
    line_for,
    phrase,
    validation_problems,
)
from remediator.matching import MatcherError, parse_matchers
from remediator.model.names import check_dns1123_label, check_dns1123_subdomain
from remediator.model.playbook import Playbook, Step
from remediator.templating import compile_template, is_template, template_warnings

# --- rules beyond the schema -------------------------------------------------------

def _walk_strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_strings(v, (*loc, i))


Found = list[tuple[Loc, str]]


def _check_semantics(pb: Playbook, raw: dict[str, Any], warned: Found) -> Found:
    """Problems as (loc, message); loc is relative to the document root. Warnings (legal
    but risky) go to ``warned``."""
    found: Found = []
    _check_matchers(pb, found)
    _check_templates(pb, raw, found, warned)
    _check_target_names(pb, found)
    _check_actions(pb, found)
    _check_steps(pb, found)
    _check_grouping(pb, found)
    return found


def _check_grouping(pb: Playbook, found: Found) -> None:
    """``group_by`` groups alerts that have no target: with a target it would be ignored."""
    if pb.spec.group_by is not None and pb.spec.target is not None:
        found.append((("spec", "group_by"),
                      "group_by applies to playbooks without a target (with a target, the "
                      "incident is the target's: one per target); remove one of them"))


def _check_matchers(pb: Playbook, found: Found) -> None:
    matchers = []
    for i, text in enumerate(pb.spec.match):
        try:
            matchers.extend(parse_matchers(text))
        except MatcherError as exc:
            found.append((("spec", "match", i), f"bad matcher {text!r}: {exc}"))
    pb._matchers = matchers


def _check_templates(pb: Playbook, raw: dict[str, Any], found: Found, warned: Found) -> None:
    """Templates: syntax and variables, everywhere a string may be rendered; nested loops
    are warned about."""
    spec = pb.spec
    template_sites: list[tuple[Loc, str]] = []
    if spec.target is not None:
        template_sites += [(("spec", "target", "namespace"), spec.target.namespace),
                           (("spec", "target", "name"), spec.target.name),
                           (("spec", "target", "cluster"), spec.target.cluster)]
    for i, step in enumerate(spec.steps):
        template_sites += _walk_strings(raw["spec"]["steps"][i].get("with", {}),
                                        ("spec", "steps", i, "with"))
        if step.verify and step.verify.promql:
            template_sites.append((("spec", "steps", i, "verify", "promql"), step.verify.promql))
    for i, esc in enumerate(spec.escalate):
        if esc.policy is not None:
            continue
        template_sites += _walk_strings(raw["spec"]["escalate"][i].get("with", {}),
                                        ("spec", "escalate", i, "with"))
    for loc, text in template_sites:
        if is_template(text):
            try:
                compile_template(text)
            except TemplateError as exc:
                found.append((loc, str(exc)))
                continue
            warned.extend((loc, f"template: {w}") for w in template_warnings(text))


def _check_target_names(pb: Playbook, found: Found) -> None:
    """Literal target names must already be valid Kubernetes names."""
    target = pb.spec.target
    if target is None:
        return
    if target.namespace and not is_template(target.namespace):
        try:
            check_dns1123_label(target.namespace, "namespace")
        except ValueError as exc:
            found.append((("spec", "target", "namespace"), str(exc)))
    if target.cluster and not is_template(target.cluster):
        try:
            check_dns1123_label(target.cluster, "cluster name")
        except ValueError as exc:
            found.append((("spec", "target", "cluster"), str(exc)))
    if not is_template(target.name):
        try:
            check_dns1123_subdomain(target.name, "name")
        except ValueError as exc:
            found.append((("spec", "target", "name"), str(exc)))


def _check_call(loc: Loc, action: str, params: Any, found: Found) -> Any:
    """One action call: known, params valid. Returns its spec (None if unknown)."""
    try:
        action_spec = registry.get(action)
    except KeyError as exc:
        close = difflib.get_close_matches(action, list(registry.CATALOGUE), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        found.append(((*loc, "action"), f"{exc.args[0]}{hint}"))
        return None
    try:
        action_spec.params.model_validate(params)
    except ValidationError as exc:
        for err in exc.errors():
            found.append(((*loc, "with", *err["loc"]), phrase(err, action_spec.params)))
    return action_spec


def _check_actions(pb: Playbook, found: Found) -> None:
    """Actions: known, params valid, target present and of a kind they act on."""
    spec = pb.spec
    calls: list[tuple[Loc, str, dict[str, Any]]] = [
        (("spec", "steps", i), s.action, s.params) for i, s in enumerate(spec.steps)]
    calls += [(("spec", "escalate", i), e.action, e.params) for i, e in enumerate(spec.escalate)
              if e.policy is None]
    for loc, action, params in calls:
        action_spec = _check_call(loc, action, params, found)
        if action_spec is None:
            continue
        if action_spec.needs_target:
            if spec.target is None:
                found.append(((*loc, "action"),
                              f"{action} acts on 'spec.target', which this playbook lacks"))
            elif action_spec.target_kinds and spec.target.kind not in action_spec.target_kinds:
                why = action_spec.refusal_of(spec.target.kind)
                found.append(((*loc, "action"),
                              f"{action} cannot act on a {spec.target.kind} "
                              f"(it acts on: {', '.join(action_spec.target_kinds)})"
                              + (f": {why}" if why else "")))


def _check_steps(pb: Playbook, found: Found) -> None:
    """Step names are unique; verification fits its own timeout and its target."""
    spec = pb.spec
    first_seen: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in first_seen:
            found.append((("spec", "steps", i, "name"),
                          f"step name {step.name!r} is used twice "
                          f"(first at steps[{first_seen[step.name]}])"))
        first_seen.setdefault(step.name, i)
        v = step.verify
        if v is not None and v.hold_for >= v.timeout:
            found.append((("spec", "steps", i, "verify", "for"),
                          f"'for' must be shorter than 'timeout' "
                          f"({v.hold_for:g}s >= {v.timeout:g}s)"))
        if v is not None and step.timeout is not None and step.timeout < v.timeout:
            found.append((("spec", "steps", i, "timeout"),
                          f"the step's timeout ({step.timeout:g}s) is shorter than its "
                          f"verify.timeout ({v.timeout:g}s): it bounds the action, its retries "
                          "and the verification together, so the verification could never "
                          "finish; raise it, or leave it out (2m plus verify.timeout)"))
        for field in ("when", "skip_if"):
            if getattr(step, field) is not None and spec.target is None:
                found.append((("spec", "steps", i, field),
                              f"'{field}' steers the step by the diagnosis of the target: "
                              "the playbook needs a target"))
        _check_drain_fits(step, i, found)
        if v is not None and v.rollout and (spec.target is None
                                           or spec.target.kind in ("Pod", "Node")):
            found.append((("spec", "steps", i, "verify", "rollout"),
                          "'rollout: complete' needs a Deployment, StatefulSet or DaemonSet "
                          "target"))


def _check_drain_fits(step: Step, i: int, found: Found) -> None:
    """kubernetes.drain waits out PodDisruptionBudgets for its ``timeout``: that wait must
    fit in the step's own timeout, or the step would be cut off first."""
    if step.action != "kubernetes.drain":
        return
    try:
        drain_timeout = DrainParams.model_validate(step.params).timeout
    except ValueError:
        return                          # already reported by the params check
    room = step.effective_timeout - (step.verify.timeout if step.verify else 0.0)
    if drain_timeout >= room:
        found.append((("spec", "steps", i, "with", "timeout"),
                      f"the drain's timeout ({drain_timeout:g}s) does not fit in the step's "
                      f"time for its action ({room:g}s): raise the step's 'timeout' or lower "
                      "this one"))


def _check_raw(data: dict[str, Any], schema_errors: set[Loc]) -> Found:
    """When the schema fails, the rules it does not cover that can still be checked on
    the raw document (matcher syntax, actions and their params, template syntax), so that
    one run of ``check`` reports every error. ``schema_errors`` are the schema's locations:
    nothing already reported there is checked again."""
    found: Found = []
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return found

    def reported(loc: Loc) -> bool:
        return any(err[:len(loc)] == loc or loc[:len(err)] == err for err in schema_errors)

    match = spec.get("match")
    for i, text in enumerate(match if isinstance(match, list) else []):
        if isinstance(text, str) and not reported(("spec", "match", i)):
            try:
                parse_matchers(text)
            except MatcherError as exc:
                found.append((("spec", "match", i), f"bad matcher {text!r}: {exc}"))
    for key in ("steps", "escalate"):
        items = spec.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            loc: Loc = ("spec", key, i)
            if not isinstance(item, dict) or not isinstance(item.get("action"), str) \
                    or reported((*loc, "action")) or reported((*loc, "with")):
                continue
            _check_call(loc, item["action"], item.get("with") or {}, found)
            for where, text in _walk_strings(item.get("with") or {}, (*loc, "with")):
                if is_template(text):
                    try:
                        compile_template(text)
                    except TemplateError as exc:
                        found.append((where, str(exc)))
    return found


# --- what a playbook needs at run time -------------------------------------------------

def playbook_needs(pb: Playbook) -> dict[str, list[str]]:
    """The outside systems ``pb`` needs, each with the parts that need it, in order:
    ``prometheus`` (promql checks), ``kubernetes`` (cluster actions, rollout checks),
    ``slack`` (approvals, slack.* actions), ``jira`` (jira.incident)."""
    needs: dict[str, list[str]] = {}

    def need(what: str, part: str) -> None:
        if part not in needs.setdefault(what, []):
            needs[what].append(part)

    def action(name: str, part: str) -> None:
        if name.startswith("kubernetes."):
            need("kubernetes", part)
        elif name.startswith("slack."):
            need("slack", part)
        elif name == "jira.incident":
            need("jira", part)

    for step in pb.spec.steps:
        part = f"step {step.name!r}"
        action(step.action, part)
        if step.verify is not None and step.verify.promql:
            need("prometheus", f"{part} (promql)")
        if step.verify is not None and step.verify.rollout:
            need("kubernetes", f"{part} (rollout)")
        if step.approval is not None:
            need("slack", f"{part} (approval)")
    for esc in pb.spec.escalate:
        if esc.policy is not None:
            need("slack", f"escalation policy {esc.policy!r}")
        else:
            action(esc.action, f"escalation {esc.action}")
    return needs


# --- entry points ------------------------------------------------------------------

def load(text: str, source: str = "<string>") -> list[Playbook]:
    """Parse every playbook in ``text``. Raises ``ConfigError`` with every problem found."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    for data, lines, first_line in documents(text, source):
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(Problem(source, first_line,
                                    f"a playbook must be a mapping, not {type(data).__name__}"))
            continue
        try:
            pb = Playbook.model_validate(data)
        except ValidationError as exc:
            problems += validation_problems(exc, Playbook, source, lines, (), first_line)
            schema_errors = {tuple(err["loc"]) for err in exc.errors()}
            problems += [Problem(source, line_for(lines, loc, first_line),
                                 f"{format_loc(loc)}: {message}")
                         for loc, message in _check_raw(data, schema_errors)]
            continue
        pb._source, pb._line = source, first_line
        pb._name_line = lines.get(("metadata", "name"), first_line)
        pb._policy_refs = [(esc.policy, line_for(lines, ("spec", "escalate", i, "policy"),
                                                 first_line), i)
                           for i, esc in enumerate(pb.spec.escalate) if esc.policy is not None]
        warned: Found = []
        for loc, message in _check_semantics(pb, data, warned):
            where = format_loc(loc)
            problems.append(Problem(source, line_for(lines, loc, first_line),
                                    f"{where}: {message}"))
        pb._warnings = [Problem(source, line_for(lines, loc, first_line),
                                f"{format_loc(loc)}: {message}") for loc, message in warned]
        playbooks.append(pb)
    if problems:
        raise ConfigError(problems)
    return playbooks


def check_policies(playbooks: Iterable[Playbook], known: Iterable[str]) -> list[Problem]:
    """Every ``escalate: - policy: NAME`` must name a policy of ``escalation.policies``:
    the problems (file, line, field) of those that do not."""
    names = sorted(known)
    problems = []
    for pb in playbooks:
        for name, line, index in pb._policy_refs:
            if name in names:
                continue
            close = difflib.get_close_matches(name, names, n=1)
            hint = (f" (did you mean {close[0]!r}?)" if close else
                    f" (known: {', '.join(names)})" if names else
                    " (no escalation.policies are configured)")
            problems.append(Problem(pb.source, line, f"spec.escalate[{index}].policy: unknown "
                                                     f"escalation policy {name!r}{hint}"))
    return problems


def warnings(playbooks: Iterable[Playbook]) -> list[Problem]:
    """What ``remediator check`` warns about in loaded playbooks (not errors: they load)."""
    return [w for pb in playbooks for w in pb.warnings]


def playbook_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (``*.yaml``/``*.yml``, sorted) in the order given."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir()
                            if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def load_paths(paths: Sequence[str | Path]) -> list[Playbook]:
    """Load every playbook under ``paths``; raises ``ConfigError`` listing every problem
    in every file (one bad file does not hide the others)."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    for path in playbook_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(Problem(str(path), None, f"cannot read: {exc.strerror or exc}"))
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(path), None, f"not UTF-8 text: {exc.reason}"))
            continue
        try:
            playbooks += load(text, source=str(path))
        except ConfigError as exc:
            problems += exc.problems
    seen: dict[str, Playbook] = {}
    for pb in playbooks:
        if pb.name in seen:
            first = seen[pb.name]
            problems.append(Problem(pb.source, pb._name_line,
                                    f"metadata.name: playbook {pb.name!r} is already defined "
                                    f"at {first.source}:{first._name_line}"))
        else:
            seen[pb.name] = pb
    if problems:
        raise ConfigError(problems)
    return playbooks
