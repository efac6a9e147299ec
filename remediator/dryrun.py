"""What a playbook would do for an alert, computed without side effects or network,
and the text renderings used by the CLI (plans and incident timelines)."""

from __future__ import annotations

from typing import Any

from remediator.actions import registry
from remediator.engine.routing import render_target, route, template_context
from remediator.engine.verification import promql_context
from remediator.errors import TemplateError
from remediator.matching import first_failure
from remediator.model.alerts import Alert
from remediator.model.incident import TargetRef
from remediator.model.playbook import Playbook, Verify
from remediator.templating import compile_template, render_value


def _verify(verify: Verify | None, context: dict[str, Any]) -> dict[str, Any] | None:
    if verify is None:
        return None
    out: dict[str, Any] = {"timeout": f"{verify.timeout:g}s", "interval": f"{verify.interval:g}s"}
    if verify.promql:
        out["promql"] = compile_template(verify.promql).render(promql_context(context))
        if verify.hold_for:
            out["for"] = f"{verify.hold_for:g}s"
    if verify.rollout:
        out["rollout"] = verify.rollout
    if verify.alert_resolved:
        out["alert_resolved"] = True
    return out


def plan_for_alert(pb: Playbook, alert: Alert, source: str) -> dict[str, Any]:
    """The rendered plan as plain data. Raises TemplateError / ValidationError."""
    failed = first_failure(pb.matchers, alert.labels)
    plan: dict[str, Any] = {"source": source, "alert": {
        "labels": dict(alert.labels), "status": alert.status, "fingerprint": alert.fingerprint}}
    if failed is not None:
        value = alert.labels.get(failed.name)
        plan["matches"] = False
        plan["failed_matcher"] = str(failed)
        plan["reason"] = (f"matcher {failed} does not hold: label {failed.name!r} is "
                          + (f"{value!r}" if value is not None else "not set"))
        return plan
    plan["matches"] = True
    alert_dict = {"fingerprint": alert.fingerprint, "status": alert.status,
                  "startsAt": alert.startsAt.isoformat(), "generatorURL": alert.generatorURL}
    context = template_context(alert.labels, alert.annotations, alert_dict)
    target = render_target(pb, context)
    plan["target"] = target.model_dump() if target else None
    plan["incident_key"] = route(pb, alert.labels, alert.annotations, alert_dict,
                                 dry_run=False, fingerprint=alert.fingerprint).incident_key
    context = template_context(alert.labels, alert.annotations, alert_dict,
                               incident={"id": "(dry-run)", "playbook": pb.name}, target=target)
    steps = []
    for step in pb.spec.steps:
        spec = registry.get(step.action)
        params = spec.params.model_validate(render_value(step.params, context))
        steps.append({
            "name": step.name, "action": step.action,
            "params": params.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "changes_cluster": spec.mutates_cluster,
            "retries": step.retries, "timeout": f"{step.effective_timeout:g}s",
            "approval": (step.approval.model_dump(mode="json") if step.approval else None),
            "verify": _verify(step.verify, context)})
    plan["steps"] = steps
    g = pb.spec.guards
    plan["guards"] = {"cooldown": f"{g.cooldown:g}s", "max_runs_per_hour": g.max_runs_per_hour,
                      "dry_run": g.dry_run}
    escalate: list[dict[str, Any]] = []
    for esc in pb.spec.escalate:
        if esc.policy is not None:
            escalate.append({"policy": esc.policy})
            continue
        spec = registry.get(esc.action)
        params = spec.params.model_validate(render_value(esc.params, context))
        escalate.append({"action": esc.action,
                         "params": params.model_dump(mode="json", by_alias=True,
                                                     exclude_defaults=True)})
    plan["escalate"] = escalate
    return plan


def render_text(pb: Playbook, plans: list[dict[str, Any]]) -> str:
    lines = [f"playbook {pb.name} ({pb.source}:{pb.line})"]
    if pb.metadata.description:
        lines.append(f"  {pb.metadata.description.strip().splitlines()[0]}")
    for plan in plans:
        lines.append("")
        lines.append(f"alert from {plan['source']}")
        if "error" in plan:
            lines.append(f"  ERROR: {plan['error']}")
            continue
        labels = plan["alert"]["labels"]
        lines.append("  labels: " + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())))
        if not plan["matches"]:
            lines.append(f"  does NOT match: {plan['reason']}")
            continue
        lines.append("  matches")
        t = plan["target"]
        lines.append(f"  target: {TargetRef.model_validate(t)}" if t else "  target: (none)")
        lines.append(f"  incident key: {plan['incident_key']}" + (
            "" if t else f" (group_by: {_grouping(pb)})"))
        g = plan["guards"]
        lines.append(f"  guards: cooldown {g['cooldown']}, max runs/hour "
                     f"{g['max_runs_per_hour'] or 'unlimited'}"
                     + (", dry-run" if g["dry_run"] else ""))
        for i, step in enumerate(plan["steps"], 1):
            params = ", ".join(f"{k}={v}" for k, v in step["params"].items()) or "no params"
            mark = " [changes the cluster]" if step["changes_cluster"] else ""
            lines.append(f"  step {i}: {step['name']}: {step['action']} ({params}){mark}")
            if step["approval"]:
                a = step["approval"]
                lines.append(f"      approval: Slack {a['slack']['channel']}, ttl {a['ttl']}")
            v = step["verify"]
            if v:
                checks = []
                if "promql" in v:
                    checks.append(f"promql `{v['promql']}`" + (f" for {v['for']}"
                                                               if "for" in v else ""))
                if "rollout" in v:
                    checks.append("rollout complete")
                if v.get("alert_resolved"):
                    checks.append("alert resolved")
                lines.append(f"      verify: {' and '.join(checks)} "
                             f"(every {v['interval']}, timeout {v['timeout']})")
            else:
                lines.append("      verify: none (the ladder goes on to the next step)")
        for esc in plan["escalate"]:
            params = ", ".join(f"{k}={v}" for k, v in esc["params"].items())
            lines.append(f"  escalate: {esc['action']} ({params})")
    return "\n".join(lines)


def _grouping(pb: Playbook) -> str:
    group_by = pb.spec.group_by
    if group_by is None:
        return "not set, one incident per alert"
    if not group_by:
        return "[], one incident for the playbook"
    return "[" + ", ".join(group_by) + "]"


def render_incident(data: dict[str, Any]) -> str:
    target = data.get("target")
    where = str(TargetRef.model_validate(target)) if target else "-"
    lines = [f"incident {data['id']}  {data['state']}  playbook {data['playbook']}  {where}"]
    if data.get("summary"):
        lines.append(f"  {data['summary']}")
    for entry in data.get("timeline", []):
        lines.append(f"  {entry['at'][11:19]}  {entry['kind']:<9} {entry['message']}")
    return "\n".join(lines)


__all__ = ["TemplateError", "plan_for_alert", "render_incident", "render_text"]
