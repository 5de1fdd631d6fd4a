"""Authentication: htpasswd (bcrypt) Basic auth and built-in HMAC-signed bearer tokens.

* Only bcrypt entries are accepted, like distribution.  Unknown users are checked
  against a dummy hash so the answer takes as long as for a known user.
* Verified credentials are cached under an HMAC of ``user:password`` (keyed by a
  per-process secret) so clients sending Basic on every request do not pay bcrypt's
  ~50 ms each time; the cache holds no password.
* Tokens are compact JWTs (HS256) carrying ``access: [{type, name, actions}]`` and
  ``exp``; scopes are checked on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sdk.errors import ConfigError


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """``repository:foo/bar:pull,push`` (several space- or param-separated)."""
    out = []
    for value in values:
        for item in value.split():
            typ, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if typ and name:
                out.append(Scope(typ, name, frozenset(a for a in actions.split(",") if a)))
    return out


def load_htpasswd(path: str) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"registry config: auth.htpasswd.path: cannot read {path}: "
                          f"{exc.strerror}")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"registry config: {path}:{n}: only bcrypt entries are "
                              "supported (htpasswd -B)")
        users[user] = hashed.replace("$2y$", "$2b$", 1).encode()
    return users


class Authenticator:
    def __init__(self, users: dict[str, bytes], secret: bytes | None = None,
                 token_ttl: float = 300.0, issuer: str = "berth-registry") -> None:
        import bcrypt

        self._bcrypt = bcrypt
        self.users = users
        self.secret = secret or secrets.token_bytes(32)
        self.token_ttl = token_ttl
        self.issuer = issuer
        self._dummy = bcrypt.hashpw(b"berth-dummy-password", bcrypt.gensalt(10))
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}

    # ---- basic ------------------------------------------------------------------
    def check_password(self, user: str, password: str) -> bool:
        key = hmac.new(self._cache_key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        hit = self._verified.get(key)
        if hit is not None and hit > time.monotonic():
            return True
        hashed = self.users.get(user)
        try:
            ok = self._bcrypt.checkpw(password.encode(), hashed if hashed else self._dummy)
        except ValueError:
            ok = False
        ok = ok and hashed is not None
        if ok:
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified[key] = time.monotonic() + 300.0
        return ok

    def basic(self, header: str) -> str | None:
        """The user name if ``Authorization: Basic ...`` is valid."""
        try:
            raw = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        return user if self.check_password(user, password) else None

    # ---- tokens -----------------------------------------------------------------
    def issue(self, subject: str, service: str, access: list[Scope]) -> dict[str, object]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": service, "iat": now,
                  "nbf": now - 5, "exp": now + int(self.token_ttl),
                  "jti": secrets.token_hex(8),
                  "access": [{"type": s.type, "name": s.name, "actions": sorted(s.actions)}
                             for s in access]}
        token = self._sign(claims)
        return {"token": token, "access_token": token, "expires_in": int(self.token_ttl),
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    def _sign(self, claims: dict[str, object]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(sig)}"

    def verify_token(self, token: str) -> dict[str, object] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        want = hmac.new(self.secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(parts[2])):
                return None
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        if header.get("alg") != "HS256" or not isinstance(claims, dict):
            return None
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return None
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 5:
            return None
        return claims


def token_allows(claims: dict[str, object], typ: str, name: str, actions: set[str]) -> bool:
    granted: set[str] = set()
    for entry in claims.get("access") or []:  # type: ignore[attr-defined]
        if isinstance(entry, dict) and entry.get("type") == typ and entry.get("name") == name:
            granted |= set(entry.get("actions") or [])
    return "*" in granted or actions <= granted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_from(value: str) -> bytes | None:
    return value.encode() if value else (os.environ.get("BERTH_REGISTRY_SECRET", "").encode()
                                         or None)
