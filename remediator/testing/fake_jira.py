"""A fake Jira REST v2 server: an in-process aiohttp app driven by the real ``jira`` client.

It answers what pycontribs ``jira`` 3.10 sends for the calls remediator makes:

* ``GET /rest/api/2/serverInfo`` (Cloud: ``deploymentType: Cloud``; Data Center:
  ``Server``), ``GET /rest/api/2/field``;
* search: ``GET /rest/api/2/search`` (Data Center; Cloud answers 410 as the real
  one does) and ``GET|POST /rest/api/2/search/jql`` (Cloud only), with a JQL
  subset: ``field = "v"`` / ``field != v`` clauses on ``labels``, ``project``,
  ``status``, ``key`` joined by ``AND``; ``ORDER BY`` is accepted and ignored;
* ``POST /rest/api/2/issue`` (201 ``{id, key, self}``, Jira's validation of
  summary, labels, description), ``GET /rest/api/2/issue/{key}``;
* ``GET|POST /rest/api/2/issue/{key}/comment`` (201 with the comment; 400 for an
  empty body or one over 32,767 characters, as Jira answers);
* ``GET|POST /rest/api/2/issue/{key}/transitions`` over a small workflow
  (Open → In Progress → Done → Reopen);
* ``POST /rest/api/2/issue/{key}/attachments``: multipart ``file`` parts, only with
  ``X-Atlassian-Token: no-check`` (else 403 "XSRF check failed", as Jira answers);
  200 with the list of attachments made.

Auth: Cloud wants basic ``email:api_token``; Data Center a bearer PAT (basic
also accepted). Faults: ``fail(times, status, retry_after)`` and
``down()``/``up()`` (connection refused, state kept).
"""

from __future__ import annotations

import base64
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import BodyPartReader, web

from remediator.testing.server import FakeServer

Flavour = Literal["cloud", "datacenter"]

# transition id → (name, from statuses, to status)
_WORKFLOW: dict[str, tuple[str, tuple[str, ...], str]] = {
    "11": ("Start Progress", ("Open",), "In Progress"),
    "21": ("Done", ("Open", "In Progress"), "Done"),
    "31": ("Reopen", ("Done",), "Open"),
}
_CATEGORY = {"Open": "new", "In Progress": "indeterminate", "Done": "done"}
_FIELDS = ("summary", "description", "labels", "status", "project", "issuetype", "priority",
           "components", "created", "updated", "resolutiondate")
_CLAUSE = re.compile(r'^\s*(\w+)\s*(!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([\w.-]+))\s*$')


@dataclass
class FakeAttachment:
    id: str
    filename: str
    mime_type: str
    data: bytes


@dataclass
class FakeIssue:
    id: str
    key: str
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)     # names of transitions applied
    attachments: list[FakeAttachment] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.fields["status"]["name"])


class FakeJira(FakeServer):
    """One Jira site with a few projects, a fixed workflow and one set of credentials."""

    def __init__(
        self,
        *,
        flavour: Flavour = "cloud",
        email: str = "bot@example.com",
        api_token: str = "api-token",
        pat: str = "personal-access-token",
        projects: tuple[str, ...] = ("OPS",),
        issue_types: tuple[str, ...] = ("Incident", "Task", "Bug"),
    ) -> None:
        super().__init__()
        self.flavour = flavour
        self.email, self.api_token, self.pat = email, api_token, pat
        self.projects = {key: str(10000 + i) for i, key in enumerate(projects)}
        self.issue_types = issue_types
        self.issues: dict[str, FakeIssue] = {}
        self.requests: list[tuple[str, str]] = []
        self.now = datetime(2026, 8, 1, 10, 0, 0, tzinfo=UTC)   # tests may move it
        self._ids = itertools.count(10001)
        self._numbers: dict[str, itertools.count[int]] = {}
        self._failures: list[tuple[int, int | None]] = []

    # -- lifecycle -------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/rest/api/2/serverInfo", self._server_info)
        r.add_get("/rest/api/2/field", self._fields)
        r.add_get("/rest/api/2/search", self._search_v2)
        r.add_post("/rest/api/2/search", self._search_v2)
        r.add_get("/rest/api/2/search/jql", self._search_jql)
        r.add_post("/rest/api/2/search/jql", self._search_jql)
        r.add_post("/rest/api/2/issue", self._create)
        r.add_get("/rest/api/2/issue/{key}", self._get)
        r.add_get("/rest/api/2/issue/{key}/comment", self._comments)
        r.add_post("/rest/api/2/issue/{key}/comment", self._add_comment)
        r.add_get("/rest/api/2/issue/{key}/transitions", self._transitions)
        r.add_post("/rest/api/2/issue/{key}/transitions", self._transition)
        r.add_post("/rest/api/2/issue/{key}/attachments", self._attach)
        return app

    # -- faults ----------------------------------------------------------------------
    def fail(self, times: int = 1, status: int = 503, retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``)."""
        self._failures.extend([(status, retry_after)] * times)

    # -- inspection ------------------------------------------------------------------
    def issue(self, key: str) -> FakeIssue:
        return self.issues[key]

    def with_label(self, label: str) -> list[FakeIssue]:
        return [i for i in self.issues.values() if label in i.fields["labels"]]

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    # -- plumbing --------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return web.json_response({"errorMessages": [f"fake failure {status}"], "errors": {}},
                                     status=status, headers=headers)
        if not self._authorised(request.headers.get("Authorization", "")):
            return web.json_response(
                {"errorMessages": ["You are not authenticated. Authentication required."],
                 "errors": {}}, status=401)
        try:
            response: web.StreamResponse = await handler(request)
        except _JiraError as exc:
            return web.json_response({"errorMessages": [exc.message], "errors": {}},
                                     status=exc.status)
        return response

    def _authorised(self, header: str) -> bool:
        if header.startswith("Bearer "):
            return self.flavour == "datacenter" and header[7:] == self.pat
        if header.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == self.email and secret == self.api_token
        return False

    def _url(self, path: str) -> str:
        return f"{self.base_url}/rest/api/2/{path}"

    def _find(self, key: str) -> FakeIssue:
        issue = self.issues.get(key) or next(
            (i for i in self.issues.values() if i.id == key), None)
        if issue is None:
            raise _json_error(404, "Issue does not exist or you do not have permission to see it.")
        return issue

    def _wire(self, issue: FakeIssue, wanted: list[str] | None = None) -> dict[str, Any]:
        fields = issue.fields
        if wanted and "*all" not in wanted and "*navigable" not in wanted:
            fields = {k: v for k, v in fields.items() if k in wanted}
        return {"expand": "", "id": issue.id, "self": self._url(f"issue/{issue.id}"),
                "key": issue.key, "fields": fields}

    # -- endpoints -------------------------------------------------------------------
    async def _server_info(self, request: web.Request) -> web.Response:
        if self.flavour == "cloud":
            info = {"version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0],
                    "deploymentType": "Cloud", "buildNumber": 100281}
        else:
            info = {"version": "9.12.8", "versionNumbers": [9, 12, 8],
                    "deploymentType": "Server", "buildNumber": 9120008}
        return web.json_response({"baseUrl": self.base_url, "serverTitle": "Fake Jira",
                                  "serverTime": self.now.isoformat(), **info})

    async def _fields(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"id": name, "key": name, "name": name.capitalize(), "custom": False,
             "navigable": True, "searchable": True, "clauseNames": [name]}
            for name in _FIELDS
        ])

    async def _search_v2(self, request: web.Request) -> web.Response:
        if self.flavour == "cloud":
            raise _json_error(410, "The requested API has been removed. "
                                   "Please migrate to the /rest/api/3/search/jql API.")
        params = await _search_params(request)
        found = self._query(str(params.get("jql", "")))
        start = int(params.get("startAt", 0))
        limit = int(params.get("maxResults", 50))
        page = found[start:start + limit]
        return web.json_response({
            "expand": "schema,names", "startAt": start, "maxResults": limit,
            "total": len(found), "issues": [self._wire(i, _wanted(params)) for i in page]})

    async def _search_jql(self, request: web.Request) -> web.Response:
        if self.flavour != "cloud":
            raise _json_error(404, "null for uri: " + str(request.url))
        params = await _search_params(request)
        found = self._query(str(params.get("jql", "")))
        start = int(params.get("nextPageToken") or 0)
        limit = int(params.get("maxResults", 50))
        page = found[start:start + limit]
        body: dict[str, Any] = {"issues": [self._wire(i, _wanted(params)) for i in page]}
        if start + limit < len(found):
            body["nextPageToken"] = str(start + limit)
            body["isLast"] = False
        else:
            body["isLast"] = True
        return web.json_response(body)

    def _query(self, jql: str) -> list[FakeIssue]:
        where = re.split(r"\border\s+by\b", jql, maxsplit=1, flags=re.IGNORECASE)[0]
        clauses = [c for c in re.split(r"\bAND\b", where, flags=re.IGNORECASE) if c.strip()]
        tests: list[tuple[str, str, str]] = []
        for clause in clauses:
            m = _CLAUSE.match(clause)
            if m is None or m.group(1).lower() not in ("labels", "project", "status", "key"):
                raise _json_error(400, f"Error in the JQL Query: cannot parse {clause.strip()!r}.")
            value = m.group(3) if m.group(3) is not None else m.group(4)
            tests.append((m.group(1).lower(), m.group(2), re.sub(r"\\(.)", r"\1", value)))

        def holds(issue: FakeIssue, name: str, op: str, value: str) -> bool:
            f = issue.fields
            if name == "labels":
                hit = value in f["labels"]
            elif name == "project":
                hit = value in (f["project"]["key"], f["project"]["id"])
            elif name == "status":
                hit = value.lower() == issue.status.lower()
            else:
                hit = value == issue.key
            return hit if op == "=" else not hit

        return [i for i in self.issues.values() if all(holds(i, *t) for t in tests)]

    async def _create(self, request: web.Request) -> web.Response:
        data = await _body(request)
        fields = data.get("fields")
        if not isinstance(fields, dict):
            raise _json_error(400, "Can not deserialize instance of fields")
        errors: dict[str, str] = {}
        project = fields.get("project") or {}
        pkey = project.get("key") or next(
            (k for k, v in self.projects.items() if v == str(project.get("id"))), None)
        if pkey not in self.projects:
            errors["project"] = "valid project is required"
        itype = (fields.get("issuetype") or {}).get("name")
        if itype not in self.issue_types:
            errors["issuetype"] = "valid issue type is required"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        elif _jlen(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        description = fields.get("description") or ""
        if _jlen(str(description)) > 32_767:
            errors["description"] = "The entered text is too long. It exceeds the allowed " \
                                    "limit of 32,767 characters."
        labels = fields.get("labels") or []
        for label in labels:
            if not isinstance(label, str) or not label or " " in label or _jlen(label) > 255:
                errors["labels"] = f"The label '{label}' contains spaces or is too long."
        if errors:
            return web.json_response({"errorMessages": [], "errors": errors}, status=400)
        assert pkey is not None
        number = next(self._numbers.setdefault(pkey, itertools.count(1)))
        issue = FakeIssue(id=str(next(self._ids)), key=f"{pkey}-{number}", fields={
            "summary": summary, "description": description, "labels": list(labels),
            "status": _status("Open"),
            "project": {"id": self.projects[pkey], "key": pkey, "name": pkey},
            "issuetype": {"name": itype},
            "priority": fields.get("priority"),
            "components": fields.get("components") or [],
            "created": _jtime(self.now), "updated": _jtime(self.now), "resolutiondate": None,
        })
        self.issues[issue.key] = issue
        return web.json_response({"id": issue.id, "key": issue.key,
                                  "self": self._url(f"issue/{issue.id}")}, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        wanted = request.query.get("fields")
        return web.json_response(self._wire(issue, wanted.split(",") if wanted else None))

    async def _comments(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        return web.json_response({"startAt": 0, "maxResults": len(issue.comments),
                                  "total": len(issue.comments), "comments": issue.comments})

    async def _add_comment(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        body = (await _body(request)).get("body")
        if not isinstance(body, str) or not body.strip():
            return web.json_response({"errorMessages": [],
                                      "errors": {"comment": "Comment body can not be empty!"}},
                                     status=400)
        if _jlen(body) > 32_767:
            return web.json_response({"errorMessages": [], "errors": {
                "comment": "The entered text is too long. It exceeds the allowed limit of "
                           "32,767 characters."}}, status=400)
        comment = self._comment(issue, body)
        return web.json_response(comment, status=201)

    async def _attach(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            return web.Response(status=403, text="XSRF check failed", content_type="text/plain")
        if not request.content_type.startswith("multipart/"):
            raise _json_error(415, "the request must be multipart/form-data")
        made = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = bytes(await part.read())
            attachment = FakeAttachment(str(next(self._ids)), part.filename or "file",
                                        part.headers.get("Content-Type",
                                                         "application/octet-stream"), data)
            issue.attachments.append(attachment)
            made.append({"self": self._url(f"attachment/{attachment.id}"), "id": attachment.id,
                         "filename": attachment.filename, "size": len(data),
                         "mimeType": attachment.mime_type, "created": _jtime(self.now),
                         "content": self._url(f"attachment/content/{attachment.id}")})
        if not made:
            raise _json_error(400, "no file part named 'file'")
        return web.json_response(made)

    def _comment(self, issue: FakeIssue, body: str) -> dict[str, Any]:
        cid = str(next(self._ids))
        comment = {"id": cid, "self": self._url(f"issue/{issue.id}/comment/{cid}"),
                   "body": body, "author": {"displayName": "remediator"},
                   "created": _jtime(self.now), "updated": _jtime(self.now)}
        issue.comments.append(comment)
        issue.fields["updated"] = _jtime(self.now)
        return comment

    async def _transitions(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        return web.json_response({"expand": "transitions", "transitions": [
            {"id": tid, "name": name, "to": _status(to), "hasScreen": False}
            for tid, (name, sources, to) in _WORKFLOW.items() if issue.status in sources]})

    async def _transition(self, request: web.Request) -> web.Response:
        issue = self._find(request.match_info["key"])
        data = await _body(request)
        tid = str((data.get("transition") or {}).get("id"))
        step = _WORKFLOW.get(tid)
        if step is None or issue.status not in step[1]:
            raise _json_error(400, f"Transition id '{tid}' is not valid for this issue.")
        name, _, to = step
        issue.fields["status"] = _status(to)
        issue.fields["resolutiondate"] = _jtime(self.now) if to == "Done" else None
        issue.fields["updated"] = _jtime(self.now)
        issue.transitions.append(name)
        for update in (data.get("update") or {}).get("comment", []):
            self._comment(issue, str(update.get("add", {}).get("body", "")))
        return web.Response(status=204)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise _json_error(400, "Unexpected character: the body is not JSON.") from None
    if not isinstance(data, dict):
        raise _json_error(400, "The body must be a JSON object.")
    return data


async def _search_params(request: web.Request) -> dict[str, Any]:
    if request.method == "POST":
        return await _body(request)
    params: dict[str, Any] = dict(request.query)
    params["fields"] = [f for v in request.query.getall("fields", []) for f in v.split(",")]
    return params


def _wanted(params: dict[str, Any]) -> list[str] | None:
    value = params.get("fields")
    if isinstance(value, str):
        return value.split(",")
    return list(value) if value else None


def _status(name: str) -> dict[str, Any]:
    return {"name": name, "id": str(list(_CATEGORY).index(name) + 1),
            "statusCategory": {"key": _CATEGORY[name], "name": name}}


def _jtime(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000%z")


def _jlen(text: str) -> int:
    """Jira (Java) counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class _JiraError(Exception):
    """Raised by a handler; the middleware answers Jira's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_error(status: int, message: str) -> _JiraError:
    return _JiraError(status, message)
