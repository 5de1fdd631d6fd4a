"""Registry authentication: WWW-Authenticate challenges, Basic, and Bearer tokens.

A registry answers 401 with ``WWW-Authenticate: Bearer realm="...",service="...",
scope="..."`` (token flow) or ``Basic realm="..."``.  ``Authenticator`` turns a
challenge into an ``Authorization`` header: Basic from stored credentials, Bearer by
asking the realm for a token (with Basic credentials when we have some, anonymously
otherwise), cached per (realm, service, scopes) until it expires.  A 401 on a cached
token drops it and asks once more (refresh).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sdk.errors import PermissionDenied

#: tokens without ``expires_in`` live 60 s (the distribution token spec's default)
DEFAULT_TOKEN_LIFETIME = 60


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str                        # lower-case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def parse_challenges(header: str) -> list[Challenge]:
    """RFC 7235 ``WWW-Authenticate``: one or more ``scheme k=v, k="quoted"`` challenges.

    Quoted strings may contain commas and ``\\"`` escapes; scheme names and parameter
    names are case-insensitive (returned lower-case).
    """
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        i = _skip_spaces(header, i)
        if i >= n:
            break
        if header[i] == ",":
            i += 1
            continue
        start = i
        while i < n and header[i] not in " \t=,":
            i += 1
        token = header[start:i]
        j = _skip_spaces(header, i)
        if j < n and header[j] == "=" and current is not None and \
                not header[j:].startswith("=="):
            i = _skip_spaces(header, j + 1)
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                current.params[token.lower()] = "".join(value)
            else:
                start = i
                while i < n and header[i] not in " \t,":
                    i += 1
                current.params[token.lower()] = header[start:i]
            continue
        current = Challenge(token.lower(), {})
        out.append(current)
        i = j
    return out


class CredentialSource(Protocol):
    def get(self, registry: str) -> tuple[str, str] | None: ...


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Per-registry auth state shared by the threads of one pull or push.

    ``fetch_token(url, params, headers)`` performs the token request and returns the
    decoded JSON (the transport supplies it, keeping this module free of ``requests``).
    """

    def __init__(self, registry: str, credentials: tuple[str, str] | None,
                 fetch_token: Any) -> None:
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch_token
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._challenge: Challenge | None = None

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def learn(self, header: str) -> None:
        """Remember the registry's challenge (from /v2/ or a 401)."""
        for ch in parse_challenges(header):
            if ch.scheme in ("bearer", "basic"):
                self._challenge = ch
                return

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value for a request needing ``scopes`` (None: anonymous)."""
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return basic_header(*self.credentials) if self.credentials else None
        key = (ch.params.get("realm", ""), ch.params.get("service", ""), " ".join(scopes))
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.monotonic():
                return "Bearer " + tok.value
            tok = self._request_token(ch, scopes)
            self._tokens[key] = tok
            return "Bearer " + tok.value

    def invalidate(self, scopes: tuple[str, ...]) -> None:
        ch = self._challenge
        if ch is None:
            return
        key = (ch.params.get("realm", ""), ch.params.get("service", ""), " ".join(scopes))
        with self._lock:
            self._tokens.pop(key, None)

    def _request_token(self, ch: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = ch.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise PermissionDenied(f"registry {self.registry} sent a token realm that is not "
                                   f"an http(s) URL: {realm!r}")
        params: list[tuple[str, str]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        params += [("scope", s) for s in scopes]
        headers = {}
        if self.credentials:
            headers["Authorization"] = basic_header(*self.credentials)
        doc = self._fetch(realm, params, headers)
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise PermissionDenied(f"token server {realm} of registry {self.registry} "
                                   "returned no token")
        try:
            lifetime = int(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        # renew a little early so a token never expires in flight
        return _Token(value, time.monotonic() + max(lifetime - 5, 1))


def scope_for(repository: str, actions: str) -> str:
    """``repository:library/busybox:pull`` (``actions`` like ``pull`` or ``pull,push``)."""
    return f"repository:{repository}:{actions}"
