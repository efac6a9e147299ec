"""The ``remediator`` command: serve | check | dry-run | simulator | demo | incidents |
fire | approve | reject | ack | release | diagnose."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from remediator.cli_client import DEFAULT_URL, URL_ENV, Client, CliError
from remediator.cli_views import STATES
from remediator.errors import ConfigError, PermanentError, TemplateError

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="remediator", description=(
        "Auto-remediation for Alertmanager alerts on Kubernetes: verified, guarded, audited."))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the daemon")
    s.add_argument("--config", metavar="FILE", help="YAML settings (see config/)")
    s.add_argument("--listen", metavar="HOST:PORT")
    s.add_argument("--playbooks", metavar="DIR", action="append",
                   help="playbook file or directory (repeatable)")
    s.add_argument("--store", metavar="PATH", help="SQLite file or postgresql:// URL")
    s.add_argument("--auth-token-file", metavar="FILE", help="bearer token for the webhook")
    s.add_argument("--dry-run", action="store_true", default=None,
                   help="journal every action as 'would do'; change nothing")
    s.add_argument("--simulator", action="store_true",
                   help="start the simulated Kubernetes cluster in-process and act on it")
    s.add_argument("--kubeconfig", metavar="FILE")
    s.add_argument("--context", metavar="NAME")
    s.add_argument("--prometheus", metavar="URL")

    c = sub.add_parser("check", help="validate playbooks (and a config file)")
    c.add_argument("paths", nargs="*", default=["playbooks"], metavar="PATH")
    c.add_argument("--config", metavar="FILE")

    d = sub.add_parser("dry-run", help="show what a playbook would do for an alert")
    d.add_argument("playbook", metavar="PLAYBOOK.yaml")
    d.add_argument("--alert", action="append", default=[], metavar="FILE",
                   help="a webhook payload or an alert object (JSON); repeatable")
    d.add_argument("--output", choices=["text", "json"], default="text")

    sub.add_parser("simulator", add_help=False,
                   help="run the simulated Kubernetes API server (see: simulator --help)")

    demo = sub.add_parser("demo", help="a scripted tour: one real incident on the simulator")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo's state in DIR")

    inc = sub.add_parser("incidents", help="list incidents of a running daemon")
    _daemon_flags(inc)
    inc.add_argument("id", nargs="?", help="one incident's story: alerts, steps, timeline")
    inc.add_argument("--state", choices=STATES, help="only incidents in this state")
    inc.add_argument("--playbook", metavar="NAME", help="only this playbook's incidents")
    inc.add_argument("--limit", type=int, default=100, metavar="N",
                     help="at most N incidents, the newest (a page: 1 to 1000)")
    inc.add_argument("--all", action="store_true",
                     help="every incident: page after page of --limit")
    inc.add_argument("--output", choices=["table", "json"], default="table")
    inc.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    inc.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                     help="with --watch: seconds between refreshes")
    inc.add_argument("--iterations", type=int, default=0, metavar="N",
                     help="with --watch: stop after N refreshes (0: never)")
    _client_parsers(sub)
    _diagnose_parser(sub)
    return p


def _diagnose_parser(sub: Any) -> None:
    diag = sub.add_parser("diagnose", help="diagnose a live target (read-only): what changed, "
                                           "what its pods, nodes and autoscalers say")
    diag.add_argument("target", metavar="NAMESPACE/KIND/NAME",
                      help="e.g. prod/Deployment/api (kind: Deployment, StatefulSet, "
                           "DaemonSet, Pod)")
    diag.add_argument("--kubeconfig", metavar="FILE")
    diag.add_argument("--context", metavar="NAME")
    diag.add_argument("--window", default="30m", metavar="DURATION",
                      help="a rollout this long ago is a recent change (default 30m)")
    diag.add_argument("--output", choices=["text", "json"], default="text")


def _daemon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, metavar="URL",
                   help=f"the daemon (default: ${URL_ENV}, else {DEFAULT_URL})")
    p.add_argument("--token-file", metavar="FILE", help="a bearer token for the API")


def _client_parsers(sub: Any) -> None:
    fire = sub.add_parser("fire", help="post an alert file to a running daemon as "
                                       "Alertmanager would (startsAt now)")
    fire.add_argument("alert", metavar="FILE",
                      help="a webhook payload, one alert object or a list (JSON)")
    _daemon_flags(fire)
    fire.add_argument("--resolve", action="store_true",
                      help="send these alerts resolved (ends the firing episode)")
    fire.add_argument("--wait", action="store_true",
                      help="wait for the incident to close and print its story")
    fire.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                      help="with --wait: give up after this long")
    pm = sub.add_parser("postmortem", help="a postmortem draft of an incident (Markdown)")
    pm.add_argument("id", metavar="ID", help="the incident id")
    pm.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    _daemon_flags(pm)
    for verb, what in (("approve", "approve"), ("reject", "reject")):
        a = sub.add_parser(verb, help=f"{what} a step that waits for a human")
        a.add_argument("id", metavar="ID", help="an incident id (its pending approval) or "
                                                 "an approval id (apr-…)")
        a.add_argument("--reason", metavar="TEXT", help="journaled with the decision")
        _daemon_flags(a)
    for verb, what in (("ack", "acknowledge an incident: stop its escalation and keep "
                               "automation off its target until resolved or released"),
                       ("release", "release an acknowledged incident back to automation")):
        h = sub.add_parser(verb, help=what)
        h.add_argument("id", metavar="ID", help="an incident id")
        _daemon_flags(h)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:       # its own flags: handed over whole
        from remediator.simulator.__main__ import main as sim_main
        return sim_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "dry-run":
            return _dry_run(args)
        if args.command == "demo":
            from remediator.demo import run_demo
            return asyncio.run(run_demo(args.keep))
        if args.command == "incidents":
            return _incidents(args)
        if args.command in ("fire", "approve", "reject", "ack", "release", "postmortem"):
            return _client_command(args)
        if args.command == "diagnose":
            return asyncio.run(_diagnose(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _serve(args: argparse.Namespace) -> int:
    from remediator.app import serve, setup_logging
    from remediator.settings import load_settings
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides.setdefault("server", {})["listen"] = args.listen
    if args.auth_token_file:
        overrides.setdefault("server", {}).setdefault("auth", {})["token_file"] = \
            args.auth_token_file
    if args.playbooks:
        overrides["playbooks"] = args.playbooks
    if args.store:
        overrides.setdefault("store", {})["path"] = args.store
    if args.dry_run:
        overrides.setdefault("engine", {})["dry_run"] = True
    if args.simulator:
        overrides.setdefault("kubernetes", {})["mode"] = "simulator"
    if args.kubeconfig:
        overrides.setdefault("kubernetes", {}).update(mode="kubeconfig",
                                                       kubeconfig=args.kubeconfig)
    if args.context:
        overrides.setdefault("kubernetes", {})["context"] = args.context
    if args.prometheus:
        overrides.setdefault("prometheus", {})["url"] = args.prometheus
    settings = load_settings(args.config, overrides)
    setup_logging(settings.log.level, settings.log.format)
    try:
        return run_loop(serve(settings), settings.server.event_loop)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        print(f"cannot listen on {settings.server.listen}: {exc.strerror} (is another "
              "remediator running? set server.listen or --listen)", file=sys.stderr)
        return 1


def run_loop(main: Coroutine[Any, Any, T], event_loop: str = "auto") -> T:
    """Run ``main`` on the configured event loop: uvloop's (libuv) or the standard one."""
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                main.close()
                raise SystemExit("server.event_loop is uvloop, but uvloop is not installed "
                                 "(pip install uvloop, or set server.event_loop: asyncio)"
                                 ) from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _check(args: argparse.Namespace) -> int:
    from remediator.loader import check_policies, load_paths, warnings
    from remediator.settings import load_settings
    problems: list[Any] = []
    policies: Any = {}             # without --config: the defaults, which have none
    if args.config:
        try:
            settings = load_settings(args.config)
            policies = settings.escalation.policies
            _warn_full_rights(settings)
            problems += _secret_problems(settings, args.config)
        except ConfigError as exc:
            problems += exc.problems
            policies = None        # unreadable settings: their policies are unknown
    count = 0
    try:
        playbooks = load_paths(args.paths)
        count = len(playbooks)
        if policies is not None:
            problems += check_policies(playbooks, policies)
        for warning in warnings(playbooks):
            print(f"warning: {warning}")
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found",
              file=sys.stderr)
        return 1
    print(f"OK: {count} playbook{'s' if count != 1 else ''}")
    return 0


def _secret_problems(settings: Any, source: str) -> list[Any]:
    """Every secret file the config names that cannot be read, with its field (an unset
    one is not a problem: that integration is simply not configured)."""
    from remediator.errors import Problem
    s = settings
    fields: list[tuple[str, Any]] = [
        ("server.auth.token_file", s.server.auth.token_file),
        ("server.auth.basic_password_file", s.server.auth.basic_password_file),
        *[(f"server.auth.users[{i}].token_file", u.token_file)
          for i, u in enumerate(s.server.auth.users)],
        ("slack.token_file", s.slack.token_file),
        ("slack.signing_secret_file", s.slack.signing_secret_file),
        ("jira.api_token_file", s.jira.api_token_file), ("jira.pat_file", s.jira.pat_file),
        ("diagnosis_model.api_key_file", s.diagnosis_model.api_key_file)]
    problems = []
    for name, path in fields:
        if path is None:
            continue
        try:
            Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            problems.append(Problem(source, None, f"{name}: cannot read the secret file "
                                                  f"{path}: {why}"))
    return problems


def _warn_full_rights(settings: Any) -> None:
    """Warn (on stderr, not a problem) when one full-rights credential is all there is:
    whoever holds Alertmanager's token could then pause automation and approve steps."""
    auth = settings.server.auth
    legacy = [x for x in (auth.token or auth.token_file, auth.basic_user) if x]
    if len(legacy) == 1 and not auth.users:
        print("warning: server.auth has a single full-rights credential (token/token_file "
              "or basic_user): give Alertmanager a webhook-only one and operators their own "
              "(server.auth.users with roles webhook, viewer, operator)", file=sys.stderr)


def _dry_run(args: argparse.Namespace) -> int:
    from remediator.dryrun import plan_for_alert, render_text
    from remediator.loader import load_paths
    from remediator.matching import example_labels
    from remediator.model.alerts import WebhookError, parse_alerts_document
    playbooks = load_paths([args.playbook])
    if not playbooks:
        print(f"{args.playbook}: no playbook here", file=sys.stderr)
        return 1
    if Path(args.playbook).is_dir():
        return _dry_run_directory(args, playbooks)
    pb = playbooks[0]
    alerts: list[tuple[str, Any]] = []
    ok = True
    if args.alert:
        for path in args.alert:
            try:
                text = Path(path).read_text(encoding="utf-8")
                for alert in parse_alerts_document(text, now=_now()):
                    alerts.append((path, alert))
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
                ok = False
            except WebhookError as exc:
                print(f"{path}: {exc}", file=sys.stderr)
                ok = False
    else:
        labels = example_labels(pb.matchers)
        # Labels the templates use but no matcher fixes get a placeholder value.
        import re
        text = Path(args.playbook).read_text(encoding="utf-8")
        for name in re.findall(r"labels\.([A-Za-z_][A-Za-z0-9_]*)", text):
            labels.setdefault(name, f"example-{name.replace('_', '-')}")
        for alert in parse_alerts_document({"labels": labels,
                                           "annotations": {"summary": "example alert"}},
                                          now=_now()):
            alerts.append(("example alert derived from the matchers", alert))
    plans = []
    for source, alert in alerts:
        try:
            plans.append(plan_for_alert(pb, alert, source))
        except (TemplateError, ValidationError) as exc:
            plans.append({"source": source, "error": str(exc)})
            ok = False
    if args.output == "json":
        print(json.dumps({"playbook": pb.name, "file": pb.source, "plans": plans}, indent=2,
                         default=str))
    else:
        print(render_text(pb, plans))
    return 0 if ok and all("error" not in p for p in plans) else 1


def _dry_run_directory(args: argparse.Namespace, playbooks: list[Any]) -> int:
    """``dry-run DIR --alert FILE``: route each alert as the daemon would (first match,
    then ``continue``), and show the plan of every playbook that owns it."""
    from remediator.dryrun import plan_for_alert, render_text
    from remediator.engine.routing import select_playbooks
    from remediator.model.alerts import WebhookError, parse_alerts_document
    if not args.alert:
        print(f"{args.playbook}: a directory needs --alert FILE (which of its "
              f"{len(playbooks)} playbooks owns an alert depends on the alert)",
              file=sys.stderr)
        return 1
    ok, out = True, []
    for path in args.alert:
        try:
            alerts = parse_alerts_document(Path(path).read_text(encoding="utf-8"), now=_now())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            return 1
        except WebhookError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 1
        for alert in alerts:
            owners = select_playbooks(playbooks, alert.labels)
            if not owners:
                out.append({"source": path, "labels": alert.labels, "playbooks": []})
                if args.output != "json":
                    print(f"{path}: no playbook in {args.playbook} matches "
                          f"{dict(alert.labels)}: the alert would be recorded as unmatched")
            for pb in owners:
                try:
                    plan = plan_for_alert(pb, alert, path)
                except (TemplateError, ValidationError) as exc:
                    plan, ok = {"source": path, "error": str(exc)}, False
                out.append({"source": path, "playbook": pb.name, "file": pb.source,
                            "plan": plan})
                if args.output != "json":
                    print(render_text(pb, [plan]))
    if args.output == "json":
        print(json.dumps(out, indent=2, default=str))
    return 0 if ok else 1


async def _diagnose(args: argparse.Namespace) -> int:
    """``remediator diagnose NAMESPACE/KIND/NAME``: collect, analyze, print (read-only)."""
    from remediator.adapters.k8s_inspect import KubernetesInspector
    from remediator.adapters.kubernetes import KubernetesCluster
    from remediator.cli_views import findings_lines
    from remediator.diagnosis import analyze
    from remediator.diagnosis.collector import collect
    from remediator.model.durations import parse_duration
    from remediator.model.incident import TargetRef
    parts = args.target.split("/")
    try:
        if len(parts) != 3 or not all(parts):
            raise ValueError("give NAMESPACE/KIND/NAME, e.g. prod/Deployment/api")
        if parts[1] not in ("Deployment", "StatefulSet", "DaemonSet", "Pod"):
            raise ValueError(f"kind {parts[1]!r}: one of Deployment, StatefulSet, DaemonSet, "
                             "Pod")
        target = TargetRef(namespace=parts[0], kind=parts[1], name=parts[2])
        window = parse_duration(args.window)
    except (ValueError, ValidationError) as exc:
        print(f"remediator diagnose: {args.target!r}: {exc}", file=sys.stderr)
        return 2
    try:
        cluster = await KubernetesCluster.connect(kubeconfig=args.kubeconfig,
                                                  context=args.context)
    except PermanentError as exc:
        print(f"remediator diagnose: {exc}", file=sys.stderr)
        return 1
    try:
        snap = await collect(cluster, KubernetesInspector(cluster), target, [], _now(),
                             window_seconds=window)
    finally:
        await cluster.close()
    findings = [f.to_dict() for f in analyze(snap)]
    record = {"moment": f"{target}, now", "findings": findings, "problems": list(snap.problems)}
    print(json.dumps(record, indent=2) if args.output == "json"
          else "\n".join(findings_lines(record)))
    return 0


def _now() -> Any:
    from datetime import UTC, datetime
    return datetime.now(UTC)


def _fetch(args: argparse.Namespace, path: str) -> Any:
    """GET ``path`` from the daemon; raises ``CliError`` with one line on failure."""
    return Client.from_args(args.url, args.token_file).get(path)


def _list(args: argparse.Namespace) -> tuple[list[dict[str, Any]], bool]:
    """The incidents asked for (``--state``, ``--playbook``, ``--limit``, ``--all``)."""
    from remediator.cli_client import incident_rows
    client = Client.from_args(args.url, args.token_file)
    return incident_rows(client, state=args.state, playbook=args.playbook,
                         limit=min(1000, max(1, args.limit)), follow=args.all)


def _client_command(args: argparse.Namespace) -> int:
    """``fire``, ``approve``, ``reject``, ``ack`` and ``release``: one line on failure,
    exit status 1."""
    try:
        client = Client.from_args(args.url, args.token_file)
        if args.command == "fire":
            return _fire(args, client)
        if args.command in ("ack", "release"):
            from remediator.cli_client import handoff
            print(handoff(client, args.id, args.command))
            return 0
        if args.command == "postmortem":
            return _postmortem(args, client)
        from remediator.cli_client import decide
        print(decide(client, args.id, args.command == "approve", args.reason))
        return 0
    except CliError as exc:
        print(f"remediator {args.command}: {exc}", file=sys.stderr)
        return 1


def _postmortem(args: argparse.Namespace, client: Client) -> int:
    from urllib.parse import quote
    try:
        text = client.text(f"/api/v1/incidents/{quote(args.id, safe='')}/postmortem")
    except CliError as exc:
        if "HTTP 404" in str(exc):
            raise CliError(f"no incident {args.id!r} at {client.url}") from exc
        raise
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{args.output}: cannot write: {exc.strerror}") from exc
        print(f"wrote the postmortem draft of {args.id} to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _fire(args: argparse.Namespace, client: Client) -> int:
    from remediator.cli_client import firing_starts, incident_of, webhook_from_file
    now = _now()
    starts = None
    if args.resolve:
        fps = {a["fingerprint"] for a in webhook_from_file(args.alert, now)["alerts"]}
        starts = firing_starts(client, fps)
    payload = webhook_from_file(args.alert, now, starts)
    answer = client.call("POST", "/api/v1/alerts", payload)
    print(f"posted {len(payload['alerts'])} {payload['status']} alert"
          f"{'s' if len(payload['alerts']) != 1 else ''} to {client.url}: "
          f"{json.dumps(answer.get('alerts', answer))}")
    if not args.wait:
        return 0
    return _wait_for_incident(args, client, lambda: incident_of(client, payload))


def _wait_for_incident(args: argparse.Namespace, client: Client,
                       find: Any) -> int:
    """Poll until the incident leaves its working states; print its story."""
    import time

    from remediator.cli_client import WORKING
    from remediator.cli_views import incident_story
    deadline = time.monotonic() + args.timeout
    said_approval = False
    while True:
        inc = find()
        if inc is not None and inc["state"] == "awaiting_approval" and not said_approval:
            print(f"incident {inc['id']} waits for a human: remediator approve {inc['id']} "
                  f"(or reject)", flush=True)
            said_approval = True
        if inc is not None and inc["state"] not in (*WORKING, "awaiting_approval"):
            print(incident_story(client.get(f"/api/v1/incidents/{inc['id']}"), _now()))
            return 0 if inc["state"] in ("recovered", "resolved") else 1
        if time.monotonic() >= deadline:
            where = f"incident {inc['id']} is still {inc['state']}" if inc else \
                "no incident holds the alert (did a playbook match it? remediator dry-run)"
            print(f"remediator fire: gave up after {args.timeout:g}s: {where}",
                  file=sys.stderr)
            return 1
        time.sleep(1.0)


def _incidents_once(args: argparse.Namespace) -> str:

    from remediator.cli_views import incident_story, incidents_table, use_colour
    colour = use_colour(sys.stdout) and args.output == "table"
    if args.id:
        data = _fetch(args, f"/api/v1/incidents/{args.id}")
        if args.output == "json":
            return json.dumps(data, indent=2)
        return incident_story(data, _now(), colour=colour)
    incidents, more = _list(args)
    if args.output == "json":
        return json.dumps(incidents, indent=2)
    table = incidents_table(incidents, _now(), colour=colour)
    return table + (f"\n(newest {len(incidents)} shown; --all for every one)" if more else "")


def _incidents(args: argparse.Namespace) -> int:
    import time
    shown = 0
    try:
        while True:
            text = _incidents_once(args)
            if args.watch and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")          # clear the screen
            print(text, flush=True)
            shown += 1
            if not args.watch or (args.iterations and shown >= args.iterations):
                return 0
            time.sleep(args.interval)
    except CliError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
