"""Who is calling, and what they may do: credentials with roles.

A credential is a name, a role and a secret (a bearer token, or the one Basic user).
Roles grant rights:

=========  =====================================================================
webhook    ``POST /api/v1/alerts`` only (what Alertmanager holds)
viewer     the read APIs (incidents, alerts, status)
operator   the read APIs and the acts: pause, resume, approve, reject, retry, close,
           acknowledge, release
admin      everything; the legacy single ``server.auth.token``/``token_file`` and
           the Basic user, so that configs written before roles keep working
=========  =====================================================================

The web console uses the same roles. A person logs in with their user's token and
gets a session (``Sessions``: a random id in an HttpOnly cookie, in this process's
memory, expiring after ``session_ttl``; a restart logs everyone out), with a CSRF
token that every form POST must carry. An SSO proxy's user header (``Sso``) is
believed only from its configured source addresses, and mapped to a role.

Tokens are compared in constant time against *every* configured token (the time
does not tell which one, or whether any, matched). With no credential configured
at all, every caller is ``anonymous`` with full rights (the daemon warns at start).
Who performed an act is the credential's name, never a field of the request body.

Not here: the routes (``server/http.py``), reading secrets from files (``app.py``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


class Right(Enum):
    POST_ALERTS = "post alerts"
    READ = "read"
    OPERATE = "pause, resume, approve, reject, retry, close, acknowledge or release"


ROLES: dict[str, frozenset[Right]] = {
    "webhook": frozenset({Right.POST_ALERTS}),
    "viewer": frozenset({Right.READ}),
    "operator": frozenset({Right.READ, Right.OPERATE}),
    "admin": frozenset(Right),
}


@dataclass(frozen=True)
class Credential:
    """One configured bearer token (``secret``) or Basic user (``password``)."""

    name: str
    role: str
    secret: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r} (one of {', '.join(ROLES)})")


@dataclass(frozen=True)
class Principal:
    """The caller of one request, once authenticated."""

    name: str
    role: str

    def may(self, right: Right) -> bool:
        return right in ROLES[self.role]


ANONYMOUS = Principal("anonymous", "admin")


class Authenticator:
    """Maps an ``Authorization`` header to a ``Principal`` (or None: 401)."""

    def __init__(self, tokens: Sequence[Credential] = (),
                 basic: Credential | None = None) -> None:
        names = [c.name for c in tokens]
        if len(set(names)) != len(names):
            raise ValueError("credential names must be unique")
        self.tokens = tuple(tokens)
        self.basic = basic

    @property
    def configured(self) -> bool:
        return bool(self.tokens or self.basic)

    @property
    def only_full_rights(self) -> bool:
        """One credential with every right is all there is (Alertmanager holds it)."""
        creds = [*self.tokens, *([self.basic] if self.basic else [])]
        return len(creds) == 1 and creds[0].role == "admin"

    def identify(self, header: str) -> Principal | None:
        if not self.configured:
            return ANONYMOUS
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.tokens:
            return self._bearer(value.strip().encode())
        if scheme == "basic" and self.basic is not None:
            return self._basic(value.strip())
        return None

    def _bearer(self, presented: bytes) -> Principal | None:
        found: Credential | None = None
        for cred in self.tokens:            # no early exit: every token is compared
            if hmac.compare_digest(presented, cred.secret.encode()) and found is None:
                found = cred
        return Principal(found.name, found.role) if found else None

    def _basic(self, value: str) -> Principal | None:
        assert self.basic is not None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        ok_user = hmac.compare_digest(user.encode(), self.basic.name.encode())
        ok_pw = hmac.compare_digest(password.encode(), self.basic.secret.encode())
        return Principal(self.basic.name, self.basic.role) if ok_user and ok_pw else None


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Sso:
    """A trusted SSO proxy: its user header, believed only from ``sources``."""

    header: str = "X-Forwarded-User"
    sources: tuple[IpNetwork, ...] = ()
    roles: Mapping[str, str] = field(default_factory=dict)
    default_role: str | None = None

    @classmethod
    def of(cls, header: str, sources: Sequence[str], roles: Mapping[str, str],
           default_role: str | None) -> Sso:
        return cls(header, tuple(ipaddress.ip_network(s, strict=False) for s in sources),
                   dict(roles), default_role)

    @property
    def configured(self) -> bool:
        return bool(self.sources)

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.sources:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.sources)

    def identify(self, peer: str | None, user: str | None) -> Principal | None:
        """The proxy's user with their role; None if the peer is not the proxy, no user
        was given, or the user has no role."""
        if not user or not self.trusts(peer):
            return None
        role = self.roles.get(user, self.default_role)
        return Principal(user, role) if role in ROLES else None


@dataclass
class Session:
    principal: Principal
    csrf: str
    expires: float


class Sessions:
    """Console login sessions, in memory: id → who, their CSRF token, when it ends."""

    def __init__(self, ttl: float, now: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.now = now
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal) -> tuple[str, Session]:
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), self.now() + self.ttl)
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        if session.expires <= self.now():
            del self._sessions[sid]
            return None
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self.now()
        for sid in [k for k, v in self._sessions.items() if v.expires <= now]:
            del self._sessions[sid]


def same_token(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(presented) and hmac.compare_digest((presented or "").encode(), expected.encode())
