"""The CLI's side of a running daemon's HTTP API: what ``remediator incidents``,
``fire``, ``approve`` and ``reject`` send and how a failure reads.

One request at a time with the standard library (no event loop for a command that makes
two calls). Every failure becomes a ``CliError`` holding one line for a person: the
daemon is not reachable, the credential is missing or may not do this, what the API
said. No argument parsing (``cli``) and no formatting of incidents (``cli_views``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from remediator.model.alerts import (
    WebhookError,
    fingerprint,
    format_time,
    parse_alerts_document,
)

#: Where the commands look for the daemon unless ``--url`` says otherwise.
URL_ENV = "REMEDIATOR_URL"
DEFAULT_URL = "http://127.0.0.1:8080"
#: States an incident leaves only by itself (``fire --wait`` waits them out).
WORKING = ("open", "remediating")


class CliError(Exception):
    """A failure the CLI reports as one line and exit status 1."""


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


@dataclass(frozen=True)
class Client:
    """The daemon at ``url``, called with an optional bearer ``token``."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_args(cls, url: str | None, token_file: str | None) -> Client:
        token = None
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CliError(f"{token_file}: cannot read the token: {exc.strerror}") from exc
        return cls((url or default_url()).rstrip("/"), token)

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def text(self, path: str) -> str:
        """The text answer of ``GET path`` (Markdown, …); raises ``CliError`` with one line."""
        return self._send("GET", path, None).decode("utf-8", "replace")

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of ``method path``; raises ``CliError`` with one line."""
        return json.loads(self._send(method, path, body))

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                answer: bytes = resp.read()
                return answer
        except urllib.error.HTTPError as exc:
            raise CliError(self._refusal(exc)) from exc
        except OSError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CliError(f"cannot connect to remediator at {self.url}: {reason} (is "
                           "'remediator serve' running there? see --url)") from exc

    def _refusal(self, exc: urllib.error.HTTPError) -> str:
        text = exc.read().decode(errors="replace")
        try:
            said = json.loads(text).get("error") or json.loads(text).get("text") or text
        except (ValueError, AttributeError):
            said = text
        if exc.code == 401:
            hint = ("pass --token-file FILE" if not self.token
                    else "the token in --token-file is not accepted")
            return f"{self.url}: HTTP 401: this daemon requires a credential: {hint}"
        return f"{self.url}: HTTP {exc.code}: {str(said).strip()[:300]}"


# --- approvals ------------------------------------------------------------------------

def pending_approval(client: Client, ident: str) -> str:
    """The approval id for ``ident``: an approval id as is, or an incident's pending one."""
    if ident.startswith("apr-"):
        return ident
    try:
        incident = client.get(f"/api/v1/incidents/{quote(ident, safe='')}")
    except CliError as exc:
        if "HTTP 404" in str(exc):
            raise CliError(f"no incident {ident!r} at {client.url}") from exc
        raise
    approval = (incident.get("context") or {}).get("approval") or {}
    if incident.get("state") != "awaiting_approval" or not approval.get("id") \
            or approval.get("decision"):
        raise CliError(f"incident {ident} has no pending approval (it is "
                       f"{incident.get('state')})")
    return str(approval["id"])


def decide(client: Client, ident: str, approve: bool, reason: str | None = None) -> str:
    """Approve or reject the pending approval of ``ident``; what the daemon answered."""
    approval = pending_approval(client, ident)
    verb = "approve" if approve else "reject"
    try:
        answer = client.call("POST", f"/api/v1/approvals/{quote(approval, safe='')}/{verb}",
                             {"comment": reason} if reason else {})
    except CliError as exc:
        if "HTTP 404" in str(exc):
            raise CliError(f"no approval {approval!r} at {client.url}") from exc
        if "HTTP 409" in str(exc):
            raise CliError(f"approval {approval} is no longer pending: "
                           f"{str(exc).split('HTTP 409: ', 1)[1]}") from exc
        raise
    return f"{approval}: {answer.get('text', verb + 'd')}"


def handoff(client: Client, incident_id: str, verb: str) -> str:
    """``ack`` or ``release`` an incident; one line saying who and when."""
    try:
        answer = client.call("POST", f"/api/v1/incidents/{quote(incident_id, safe='')}/{verb}",
                             {})
    except CliError as exc:
        if "HTTP 404" in str(exc):
            raise CliError(f"no incident {incident_id!r} at {client.url}") from exc
        raise
    if verb == "ack":
        if answer.get("already"):
            return f"{incident_id}: already acknowledged by {answer['by']} at {answer['at']}"
        return (f"{incident_id}: acknowledged by {answer['by']} at {answer['at']}; "
                "escalation stopped, automation keeps off the target until it is resolved "
                f"or released (remediator release {incident_id})")
    return f"{incident_id}: released by {answer['by']} at {answer['at']}"


# --- firing a demo alert --------------------------------------------------------------

def _stamp(t: datetime) -> str:
    return format_time(t)


def webhook_from_file(path: str, now: datetime,
                      starts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An Alertmanager webhook (version 4) for the alerts in ``path`` (a webhook payload,
    one alert object or a list): each firing with ``startsAt`` ``now`` and the fingerprint
    of its labels, or, for fingerprints in ``starts``, resolved now (with the
    ``startsAt`` of the episode it ends)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        alerts = parse_alerts_document(text, now=now)
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror}") from exc
    except WebhookError as exc:
        raise CliError(f"{path}: {exc}") from exc
    out: list[dict[str, Any]] = []
    for a in alerts:
        labels = dict(a.labels)
        fp = fingerprint(labels)
        resolved = starts is not None
        started = (starts or {}).get(fp) or _stamp(now)
        out.append({"status": "resolved" if resolved else "firing", "labels": labels,
                    "annotations": dict(a.annotations), "startsAt": started,
                    "endsAt": _stamp(now) if resolved else "0001-01-01T00:00:00Z",
                    "generatorURL": a.generatorURL, "fingerprint": fp})
    common = _common([a["labels"] for a in out])
    return {"version": "4", "groupKey": "{}:" + json.dumps(common, sort_keys=True),
            "truncatedAlerts": 0, "status": "resolved" if starts is not None else "firing",
            "receiver": "remediator", "groupLabels": {}, "commonLabels": common,
            "commonAnnotations": {}, "externalURL": "", "alerts": out}


def _common(label_sets: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not label_sets:
        return {}
    first = dict(label_sets[0])
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in label_sets[1:])}


def incident_rows(client: Client, *, state: str | None = None, playbook: str | None = None,
                  limit: int = 100, follow: bool = False) -> tuple[list[dict[str, Any]], bool]:
    """Incident summaries (no alerts, steps, timeline), newest first: one page of at most
    ``limit``, or with ``follow`` every page (``limit`` a page) by their cursors; and
    whether more remain after what was returned."""
    query = {"limit": str(limit), **({"state": state} if state else {}),
             **({"playbook": playbook} if playbook else {})}
    rows: list[dict[str, Any]] = []
    while True:
        page = client.get(f"/api/v1/incidents?{urlencode(query)}")
        rows += page["incidents"]
        cursor = page.get("next_cursor")
        if cursor is None or not follow:
            return rows, cursor is not None
        query["cursor"] = cursor


def _full(client: Client, rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The full view (alerts included) of each listed incident, fetched one at a time."""
    for row in rows:
        yield client.get(f"/api/v1/incidents/{quote(str(row['id']), safe='')}")


def firing_starts(client: Client, fingerprints: set[str]) -> dict[str, str]:
    """``startsAt`` of each firing alert with one of ``fingerprints`` in an incident (what a
    resolved notification must carry to end that episode). Looks at the newest 1,000
    incidents, and into those with an alert still firing."""
    starts: dict[str, str] = {}
    rows, _ = incident_rows(client, limit=1000)
    for inc in _full(client, (r for r in rows if r.get("firing_count", 1))):
        for a in inc.get("alerts", []):
            if a.get("fingerprint") in fingerprints and a.get("status") == "firing":
                starts.setdefault(a["fingerprint"], _stamp(datetime.fromisoformat(
                    a["startsAt"].replace("Z", "+00:00"))))
    return starts


def incident_of(client: Client, payload: Mapping[str, Any], *,
                newest: int = 100) -> dict[str, Any] | None:
    """The newest incident holding one of the payload's alert episodes, among the
    ``newest`` incidents (each looked into newest first, until one holds it)."""
    episodes = {(a["fingerprint"], a["startsAt"]) for a in payload["alerts"]}
    rows, _ = incident_rows(client, limit=newest)
    for inc in _full(client, rows):
        for a in inc.get("alerts", []):
            started = _stamp(datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")))
            if (a.get("fingerprint"), started) in episodes:
                return dict(inc)
    return None
