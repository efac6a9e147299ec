"""Jira tickets through pycontribs ``jira``: find by label, create, comment, transition.

``JiraTickets`` implements the tracker port (``remediator.ports.tracker``) the
``jira.incident`` action and the Jira sink use. The client is synchronous
(requests), so every call runs in ``asyncio.to_thread``. The client's own retry
loop (which *sleeps in the thread* on 429/503) is set to ``max_retries=0`` by
default: the engine's retry policy is the only one. The client is built lazily on first use, because
constructing it already calls ``GET /rest/api/2/serverInfo``.

Auth: Cloud uses basic auth with ``email`` + ``api_token``; Data Center a
personal access token (``pat``, sent as a bearer token).

Errors: ``TemporaryError`` for 429 (with ``Retry-After`` as delay), 5xx,
connection errors and timeouts; ``PermanentError`` for 4xx (auth, permissions,
validation, unknown issue or transition), each with the cause chained.

The limits Jira enforces (``remediator.ports.tracker``: summary, labels,
description) are applied here too, so that a long alert never fails a create.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from remediator.errors import PermanentError, TemporaryError
from remediator.ports.tracker import (
    DESCRIPTION_LIMIT,
    Ticket,
    clean_label,
    clean_summary,
    truncate,
)

if TYPE_CHECKING:
    from jira import JIRA, JIRAError

# jira (and requests) are imported when a JiraTickets is made (at start-up, when Jira is
# configured), not with this module: without Jira it is never needed.

_FIELDS = ["summary", "labels", "status", "created", "updated", "resolutiondate"]
T = TypeVar("T")


class JiraTickets:
    """The ticket port, backed by a Jira Cloud or Data Center site."""

    def __init__(
        self,
        server: str,
        *,
        email: str | None = None,
        api_token: str | None = None,
        pat: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 0,
    ) -> None:
        """``timeout``: seconds to connect and to read each response. ``max_retries``:
        the client's own retries of 429/503 (it sleeps in a thread); keep it 0 so the
        engine's backoff rules."""
        if pat is None and (email is None or api_token is None):
            raise ValueError("give either pat (Data Center) or email and api_token (Cloud)")
        self.server = server.rstrip("/")
        self._auth: dict[str, Any] = (
            {"token_auth": pat} if pat is not None else {"basic_auth": (email, api_token)})
        self._timeout = timeout
        self._max_retries = max_retries
        self._client: JIRA | None = None
        self._client_lock = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())
        self._known: dict[str, str] = {}    # label → key: search indexes lag behind creates
        import jira  # noqa: F401  (loaded now, not on the first ticket)

    async def close(self) -> None:
        """Close the client's HTTP session (a later call connects again)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    # -- the port --------------------------------------------------------------------
    def lock(self, label: str) -> asyncio.Lock:
        """The lock that serialises find-or-create for one dedup label in this process."""
        lock = self._locks.get(label)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[label] = lock
        return lock

    def url_for(self, key: str) -> str:
        return f"{self.server}/browse/{key}"

    async def find_by_label(self, label: str, *, project: str | None = None) -> Ticket | None:
        """The most recently created issue carrying ``label`` (exact), or None."""
        label = clean_label(label)
        jql = f"labels = {_quote(label)}"
        if project:
            jql += f" AND project = {_quote(project)}"
        jql += " ORDER BY created DESC"

        def search(client: JIRA) -> dict[str, Any]:
            result: dict[str, Any] = client.search_issues(
                jql, maxResults=20, fields=list(_FIELDS), json_result=True)
            return result

        result = await self._run("search", search)
        issues = [i for i in result.get("issues", []) if isinstance(i, dict)]
        if issues:
            newest = max(issues, key=lambda i: (str(i["fields"].get("created") or ""),
                                                int(str(i.get("id", 0)) or 0)))
            return self._ticket(newest)
        known = self._known.get(label)
        return await self.get(known) if known else None

    async def get(self, key: str) -> Ticket:
        def fetch(client: JIRA) -> dict[str, Any]:
            issue = client.issue(key, fields=",".join(_FIELDS))
            return {"key": issue.key, "fields": dict(issue.raw.get("fields", {}))}

        return self._ticket(await self._run(f"get {key}", fetch))

    async def create(
        self,
        *,
        project: str,
        issue_type: str,
        summary: str,
        description: str,
        labels: Sequence[str] = (),
        priority: str | None = None,
        components: Sequence[str] = (),
    ) -> Ticket:
        """Create an issue (limits applied); returns it without an extra GET."""
        clean = [clean_label(x) for x in labels if x.strip()]
        fields: dict[str, Any] = {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": clean_summary(summary),
            "description": truncate(description, DESCRIPTION_LIMIT),
            "labels": list(dict.fromkeys(clean)),
        }
        if priority:
            fields["priority"] = {"name": priority}
        if components:
            fields["components"] = [{"name": c} for c in components]

        def create(client: JIRA) -> str:
            issue = client.create_issue(fields=fields, prefetch=False)
            return str(issue.key)

        key = await self._run(f"create in {project}", create)
        for label in clean:
            self._known[label] = key
        return Ticket(key=key, url=self.url_for(key), status="", labels=tuple(clean))

    async def comment(self, key: str, body: str) -> None:
        text = truncate(body, DESCRIPTION_LIMIT)
        await self._run(f"comment on {key}", lambda c: c.add_comment(key, text))

    async def attach(self, key: str, filename: str, content: bytes) -> None:
        """The client's ``add_attachment``: multipart, with ``X-Atlassian-Token: no-check``."""
        await self._run(f"attach {filename} to {key}", lambda c: c.add_attachment(
            key, io.BytesIO(content), filename=filename))

    async def transition(self, key: str, name: str, *, comment: str | None = None) -> bool:
        """Apply the transition called ``name`` (or leading to a status called ``name``).

        Returns False, doing nothing, when the issue is already in status ``name``;
        raises ``PermanentError`` when no such transition is available."""

        def work(client: JIRA) -> bool:
            available = client.transitions(key)
            wanted = name.casefold()
            chosen = next((t for t in available if str(t["name"]).casefold() == wanted), None)
            chosen = chosen or next(
                (t for t in available
                 if str(t.get("to", {}).get("name", "")).casefold() == wanted), None)
            if chosen is None:
                status = client.issue(key, fields="status").fields.status.name
                if str(status).casefold() == wanted:
                    return False
                names = ", ".join(str(t["name"]) for t in available) or "none"
                raise PermanentError(f"Jira {key}: no transition {name!r} from status "
                                     f"{status!r} (available: {names})")
            client.transition_issue(key, str(chosen["id"]),
                                    comment=truncate(comment, DESCRIPTION_LIMIT)
                                    if comment else None)
            return True

        return await self._run(f"transition {key} to {name!r}", work)

    # -- plumbing --------------------------------------------------------------------
    def _connect(self) -> JIRA:
        from jira import JIRA
        with self._client_lock:
            if self._client is None:
                self._client = JIRA(self.server, max_retries=self._max_retries,
                                    timeout=(self._timeout, self._timeout), logging=False,
                                    **self._auth)
            return self._client

    async def _run(self, what: str, work: Callable[[JIRA], T]) -> T:
        import requests
        from jira import JIRAError

        def call() -> T:
            return work(self._connect())

        try:
            return await asyncio.to_thread(call)
        except (TemporaryError, PermanentError):
            raise
        except JIRAError as exc:
            raise _classify(what, exc) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TemporaryError(f"Jira {what}: cannot reach {self.server}: "
                                 f"{type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise TemporaryError(f"Jira {what}: HTTP error: {exc}") from exc
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise PermanentError(f"Jira {what}: unexpected response: {exc!r}") from exc

    def _ticket(self, raw: dict[str, Any]) -> Ticket:
        f = raw.get("fields") or {}
        status = f.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        return Ticket(
            key=str(raw["key"]), url=self.url_for(str(raw["key"])),
            status=str(status.get("name", "")), done=category == "done",
            labels=tuple(f.get("labels") or ()),
            resolved_at=_parse_time(f.get("resolutiondate")),
            updated_at=_parse_time(f.get("updated")), raw_fields=dict(f))


def _classify(what: str, exc: JIRAError) -> TemporaryError | PermanentError:
    status = exc.status_code
    detail = (exc.text or "").strip() or "no detail"
    if status is None:
        return PermanentError(f"Jira {what}: {detail}")
    if status == 429 or status >= 500:
        delay = None
        response = exc.response
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            delay = float(response.headers["Retry-After"])
        return TemporaryError(f"Jira {what}: HTTP {status} ({detail})", delay=delay)
    if status in (401, 403):
        return PermanentError(f"Jira {what}: HTTP {status}, check the credentials and "
                              f"permissions ({detail})")
    return PermanentError(f"Jira {what}: HTTP {status} ({detail})")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
