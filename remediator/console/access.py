"""Who is looking at the console, and whether a form post is theirs.

A request is someone's when it carries a session cookie from ``POST /login`` (the
user's token, checked like an API bearer token), or comes from the trusted SSO proxy
(``server.auth.sso``) with its user header. With no auth configured at all the
console is open (``anonymous``, every right) and every page says so in a banner.
Every form POST carries a CSRF token: the session's own, else (SSO, open console) a
random value also set in a SameSite=Strict cookie; a missing or wrong one is a 403.
Errors on console pages are HTML pages, not the API's JSON.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from remediator.server.auth import ANONYMOUS, Principal, Right, Session, Sessions, same_token
from remediator.server.http import Api

log = logging.getLogger("remediator.console")
COOKIE = "remediator_session"
CSRF_COOKIE = "remediator_csrf"
NOT_CONSOLE = ("/api/", "/healthz", "/readyz", "/metrics", "/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WHO: web.RequestKey[Principal] = web.RequestKey("console_who", Principal)
CONTEXT: web.RequestKey[dict[str, Any]] = web.RequestKey("console_context", dict)
NEW_CSRF: web.RequestKey[str] = web.RequestKey("console_new_csrf", str)


def page(name: str, request: web.Request, context: dict[str, Any],
         status: int = 200) -> web.Response:
    """A console template with what every page gets (``Access.context``) under ``context``."""
    return aiohttp_jinja2.render_template(name, request, {**request.get(CONTEXT, {}), **context},
                                          status=status)


def see_other(location: str) -> web.Response:
    """A 303 to ``location`` (returned, not raised: the API's error middleware turns
    raised HTTP exceptions into JSON)."""
    return web.Response(status=303, headers={"Location": location})


class Access:
    def __init__(self, api: Api) -> None:
        self.api = api
        cfg = api.config
        self.sso = cfg.sso
        self.sessions = Sessions(cfg.session_ttl)
        self.secure_cookie = cfg.secure_cookie

    @property
    def open(self) -> bool:
        """No auth configured: everyone is ``anonymous`` with every right."""
        return not self.api.auth.configured and not self.sso.configured

    def session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def who(self, request: web.Request) -> Principal | None:
        if self.open:
            return ANONYMOUS
        session = self.session(request)
        if session is not None:
            return session.principal
        return self.sso.identify(request.remote, request.headers.get(self.sso.header))

    def session_principal(self, request: web.Request) -> Principal | None:
        """For the read APIs (the event stream): a console session or the SSO user."""
        return None if self.open else self.who(request)

    def csrf(self, request: web.Request) -> str:
        session = self.session(request)
        if session is not None:
            return session.csrf
        token = request.cookies.get(CSRF_COOKIE) or request.get(NEW_CSRF)
        if not token:
            token = request[NEW_CSRF] = secrets.token_urlsafe(32)
        return str(token)

    async def check(self, request: web.Request, right: Right) -> tuple[Principal, Any]:
        """The form of a POST, when its CSRF token is right and its sender may ``right``;
        else 403 (a page)."""
        form = await request.post()
        session = self.session(request)
        expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
        if expected is None or not same_token(str(form.get("csrf", "")), expected):
            raise web.HTTPForbidden(reason="missing or wrong CSRF token: reload the page "
                                           "and try again")
        who = self.who(request)
        if who is None:
            raise web.HTTPForbidden(reason="not logged in")
        if not who.may(right):
            raise web.HTTPForbidden(reason=f"{who.name} (role {who.role}) may not "
                                           f"{right.value}")
        return who, form

    def secure(self, request: web.Request) -> bool:
        if self.secure_cookie != "auto":
            return self.secure_cookie == "always"
        return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(NOT_CONSOLE):
            return await handler(request)
        public = request.path in ("/login", "/logout")
        who = self.who(request)
        if who is None and not public:
            if request.method == "GET":
                return see_other(f"/login?next={quote(request.path_qs, safe='')}")
            return await self.error_page(request, 403, "not logged in")
        if who is not None and not who.may(Right.READ) and not public:
            return await self.error_page(request, 403, f"{who.name} (role {who.role}) may "
                                                       "not read the console")
        if who is not None:
            request[WHO] = who
        # the templates' context, here rather than in aiohttp_jinja2's context-processor
        # middleware, which would run on every request of the app (each webhook too)
        request[CONTEXT] = await self.context(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = await self.error_page(request, exc.status, exc.reason)
        new = request.get(NEW_CSRF)
        if new and isinstance(response, web.Response):
            response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="Strict",
                                secure=self.secure(request), path="/")
        return response

    async def context(self, request: web.Request) -> dict[str, Any]:
        """What every console template gets: the request, who is looking, this object,
        the CSRF token (set by ``middleware`` for console paths only: the API, probes and
        metrics render no template, and a CSRF token drawn per webhook cost 1% of the
        intake)."""
        who = request.get(WHO)
        return {"request": request, "who": who, "access": self, "csrf": self.csrf(request),
                "may_operate": bool(who and who.may(Right.OPERATE))}

    async def error_page(self, request: web.Request, status: int,
                         message: str) -> web.Response:
        return page(
            "error.html", request, {"status": status, "message": message}, status=status)

    # --- login -----------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        return page("login.html", request, {
            "next": _local(request.query.get("next", "/")), "error": ""})

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        target = _local(str(form.get("next", "/")))
        expected = request.cookies.get(CSRF_COOKIE)
        if expected is None or not same_token(str(form.get("csrf", "")), expected):
            raise web.HTTPForbidden(reason="missing or wrong CSRF token: reload the page")
        token = str(form.get("token", "")).strip()
        who = self.api.auth.identify(f"Bearer {token}") if token else None
        if who is None or who is ANONYMOUS or not who.may(Right.READ):
            log.warning("console login refused from %s", request.remote)
            return page("login.html", request, {
                "next": target, "error": "That token is not a console user's token."},
                status=401)
        sid, _ = self.sessions.create(who)
        log.info("console login: %s (%s) from %s", who.name, who.role, request.remote)
        response = see_other(target)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict",
                            secure=self.secure(request), max_age=int(self.sessions.ttl),
                            path="/")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self.session(request)
        form = await request.post()
        if session is not None:
            if not same_token(str(form.get("csrf", "")), session.csrf):
                raise web.HTTPForbidden(reason="missing or wrong CSRF token")
            self.sessions.drop(request.cookies.get(COOKIE))
        response = see_other("/login")
        response.del_cookie(COOKIE, path="/")
        return response


def _local(target: str) -> str:
    """Only a path on this server (no open redirect to another host)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


ACCESS: web.AppKey[Access] = web.AppKey("console_access", Access)
