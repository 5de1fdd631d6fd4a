"""Registry credentials in docker's ``config.json`` format, shared with docker and skopeo.

File: ``$BERTH_AUTH_CONFIG``, else ``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``.  ``auths`` maps a server to ``{"auth": base64(user:pass)}``
(Docker Hub's key is ``https://index.docker.io/v1/``); ``credHelpers`` (per server) or
``credsStore`` (all servers) delegate to ``docker-credential-<name> get|store|erase``
exchanging ``{"ServerURL","Username","Secret"}`` JSON.  Other keys of the file are kept
as they are; writes are atomic and the file is mode 0600.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sdk.errors import FailedPrecondition, InvalidArgument

HUB_KEY = "https://index.docker.io/v1/"
HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
IDENTITY_TOKEN_USER = "<token>"


def default_path() -> Path:
    env = os.environ.get("BERTH_AUTH_CONFIG")
    if env:
        return Path(env)
    docker_config = os.environ.get("DOCKER_CONFIG")
    if docker_config:
        return Path(docker_config) / "config.json"
    return Path.home() / ".docker" / "config.json"


def normalize_server(server: str) -> str:
    """``https://host:5000/v2/`` -> ``host:5000``; the Hub's names -> ``docker.io``."""
    s = server.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    s = s.split("/", 1)[0].lower()
    if not s:
        raise InvalidArgument(f"invalid registry address {server!r}")
    return "docker.io" if s in HUB_HOSTS else s


def store_key(server: str) -> str:
    host = normalize_server(server)
    return HUB_KEY if host == "docker.io" else host


class CredentialStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    # ---- file ---------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise FailedPrecondition(f"cannot read credentials file {self.path}: {exc}")
        if not text.strip():
            return {}
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"credentials file {self.path} is not valid JSON: {exc}")
        if not isinstance(doc, dict):
            raise InvalidArgument(f"credentials file {self.path} is not a JSON object")
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _helper(self, doc: dict[str, Any], host: str) -> str | None:
        helpers = doc.get("credHelpers") or {}
        for key in (host, store_key(host)):
            if isinstance(helpers, dict) and helpers.get(key):
                return str(helpers[key])
        store = doc.get("credsStore")
        return str(store) if store else None

    # ---- operations -----------------------------------------------------------------
    def get(self, registry: str) -> tuple[str, str] | None:
        """``(username, secret)`` for a registry host, or None."""
        host = normalize_server(registry)
        doc = self._load()
        helper = self._helper(doc, host)
        if helper:
            out = _run_helper(helper, "get", store_key(host) if host == "docker.io" else host)
            if out is None:
                return None
            try:
                got = json.loads(out)
                return str(got.get("Username", "")), str(got.get("Secret", ""))
            except ValueError:
                raise FailedPrecondition(f"docker-credential-{helper} returned invalid JSON")
        auths = doc.get("auths") or {}
        for key, entry in auths.items() if isinstance(auths, dict) else []:
            try:
                if normalize_server(key) != host:
                    continue
            except InvalidArgument:
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return IDENTITY_TOKEN_USER, str(entry["identitytoken"])
            if entry.get("auth"):
                try:
                    user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise InvalidArgument(f"credentials file {self.path}: invalid auth for "
                                          f"{key}")
                return user, secret
            if entry.get("username"):
                return str(entry["username"]), str(entry.get("password", ""))
        return None

    def store(self, registry: str, username: str, secret: str) -> str:
        """Save credentials; returns where (the file or the helper's name)."""
        host = normalize_server(registry)
        doc = self._load()
        helper = self._helper(doc, host)
        key = store_key(host)
        if helper:
            payload = json.dumps({"ServerURL": key, "Username": username, "Secret": secret})
            _run_helper(helper, "store", payload, required=True)
            auths = doc.setdefault("auths", {})
            auths[key] = {}          # docker keeps an empty entry so `logout` knows it
            self._save(doc)
            return f"docker-credential-{helper}"
        auths = doc.setdefault("auths", {})
        auths[key] = {"auth": base64.b64encode(f"{username}:{secret}".encode()).decode()}
        self._save(doc)
        return str(self.path)

    def erase(self, registry: str) -> bool:
        """Forget a registry's credentials; False when there were none."""
        host = normalize_server(registry)
        doc = self._load()
        helper = self._helper(doc, host)
        found = False
        if helper:
            found = _run_helper(helper, "erase", store_key(host), required=False) is not None
        auths = doc.get("auths") or {}
        for key in list(auths):
            try:
                same = normalize_server(key) == host
            except InvalidArgument:
                same = False
            if same:
                del auths[key]
                found = True
        if found:
            self._save(doc)
        return found


def _run_helper(name: str, action: str, payload: str, *,
                required: bool = False) -> str | None:
    """Run ``docker-credential-NAME ACTION`` with ``payload`` on stdin.

    ``get``/``erase`` of unknown credentials return None (the helpers' "credentials not
    found" answer); other failures raise naming the helper.
    """
    if "/" in name or not name:
        raise InvalidArgument(f"invalid credential helper name {name!r}")
    prog = f"docker-credential-{name}"
    try:
        proc = subprocess.run([prog, action], input=payload, capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise FailedPrecondition(f"credential helper {prog} is configured but not installed")
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"credential helper {prog} {action} timed out")
    if proc.returncode != 0:
        msg = (proc.stdout.strip() or proc.stderr.strip() or f"exit {proc.returncode}")
        if "credentials not found" in msg.lower() and not required:
            return None
        raise FailedPrecondition(f"credential helper {prog} {action} failed: {msg}")
    return proc.stdout
