"""Talking HTTP to one registry: endpoints, TLS, auth, redirects, and clear errors.

Endpoint rules (dockerd's):

* ``docker.io`` is served by ``https://registry-1.docker.io``; ``registry-mirrors`` from
  daemon.json come first for docker.io only, falling back to the Hub.
* A registry is *insecure* when it is listed in ``insecure-registries`` (``host[:port]``
  exactly, or a CIDR matched against its addresses) or resolves into ``127.0.0.0/8`` /
  ``::1``.  Insecure registries are tried over HTTPS without certificate checks, then
  over plain HTTP.  Every other registry gets verified TLS, with an extra CA from
  ``/etc/berth/certs.d/HOST[:PORT]/ca.crt`` when there is one.
* Redirects are followed by hand, and ``Authorization`` is dropped whenever the target
  host differs (blob storage, CDNs): credentials never leave the registry.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from sdk.distribution.auth import Authenticator
from sdk.errors import FailedPrecondition, ImageNotFound, PermissionDenied, SdkError

if TYPE_CHECKING:
    import requests

HUB = "docker.io"
HUB_ENDPOINT = "https://registry-1.docker.io"
CERTS_DIR = Path("/etc/berth/certs.d")
DEFAULT_INSECURE = ("127.0.0.0/8", "::1/128")
TIMEOUT = (15.0, 120.0)
USER_AGENT = "berth/0.1 (python-requests)"
MAX_REDIRECTS = 5


class RegistryError(SdkError):
    """A registry answered with an error we cannot work around."""

    exit_code = 1


class RateLimited(RegistryError):
    pass


class Unreachable(FailedPrecondition):
    pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str                     # scheme://host[:port], no trailing slash
    verify: bool | str           # requests' verify: True, False or a CA bundle path
    mirror: bool = False

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc


def _host_ips(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    name = host
    if name.startswith("["):
        name = name[1:name.index("]")]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return out


def is_insecure(host: str, entries: Iterable[str] = ()) -> bool:
    """dockerd's rule: listed host[:port], or an address inside a listed/default CIDR."""
    host = host.lower()
    nets = []
    for entry in (*entries, *DEFAULT_INSECURE):
        if "/" in entry:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        elif entry.lower() == host:
            return True
    if not nets:
        return False
    return any(ip in net for ip in _host_ips(host) for net in nets
               if ip.version == net.version)


def ca_bundle(host: str, certs_dir: Path = CERTS_DIR) -> str | None:
    d = certs_dir / host
    if (d / "ca.crt").is_file():
        return str(d / "ca.crt")
    try:
        crts = sorted(p for p in d.glob("*.crt") if p.is_file())
    except OSError:
        return None
    return str(crts[0]) if crts else None


def endpoints_for(host: str, *, insecure: Iterable[str] = (), mirrors: Iterable[str] = (),
                  certs_dir: Path = CERTS_DIR, push: bool = False) -> list[Endpoint]:
    """Where to reach registry ``host`` (a reference domain), in the order to try."""
    out: list[Endpoint] = []
    insecure = tuple(insecure)
    if host == HUB:
        if not push:
            for m in mirrors:
                netloc = urlsplit(m).netloc
                verify: bool | str = ca_bundle(netloc, certs_dir) or True
                if is_insecure(netloc, insecure):
                    verify = False
                out.append(Endpoint(m.rstrip("/"), verify, mirror=True))
        out.append(Endpoint(HUB_ENDPOINT, ca_bundle("registry-1.docker.io", certs_dir) or True))
        return out
    if is_insecure(host, insecure):
        return [Endpoint(f"https://{host}", False), Endpoint(f"http://{host}", False)]
    return [Endpoint(f"https://{host}", ca_bundle(host, certs_dir) or True)]


def _error_detail(resp: requests.Response) -> tuple[str, str]:
    """(code, message) of a registry error body, or ("", "") when it has none."""
    try:
        doc = resp.json()
    except ValueError:
        return "", ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")), str(errors[0].get("message", ""))
    return "", ""


class RegistryClient:
    """One registry host: picks an endpoint, authenticates, maps failures to errors."""

    def __init__(self, host: str, *, insecure: Iterable[str] = (),
                 mirrors: Iterable[str] = (), credentials: tuple[str, str] | None = None,
                 push: bool = False, pool: int = 8, certs_dir: Path = CERTS_DIR,
                 config_path: str = "daemon.json") -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.host = host
        self.config_path = config_path
        self.endpoints = endpoints_for(host, insecure=insecure, mirrors=mirrors,
                                       certs_dir=certs_dir, push=push)
        self.insecure = is_insecure(host, tuple(insecure)) if host != HUB else False
        if any(ep.verify is False for ep in self.endpoints):
            # the user asked for unverified TLS (insecure-registries): no warning per request
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._index = 0
        self.session = requests.Session()
        self.session.trust_env = False      # no proxies from the environment for loopback
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.auth = Authenticator(host, credentials, self._fetch_token)
        self._connected = False
        self._lock = threading.Lock()

    # ---- endpoints ------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints[self._index]

    @property
    def on_mirror(self) -> bool:
        return self.endpoint.mirror

    def next_endpoint(self) -> bool:
        """Move past a failing mirror; False when none is left."""
        if self._index + 1 >= len(self.endpoints):
            return False
        self._index += 1
        self._connected = False
        # another host: forget the mirror's challenge and tokens
        self.auth = Authenticator(self.host, self.auth.credentials, self._fetch_token)
        return True

    def connect(self) -> None:
        """Ping ``/v2/`` on each endpoint in turn; keep the first that answers."""
        import requests

        with self._lock:
            if self._connected:
                return
            last: BaseException | None = None
            while True:
                ep = self.endpoint
                try:
                    resp = self.session.get(ep.url + "/v2/", verify=ep.verify,
                                            timeout=TIMEOUT, allow_redirects=True)
                except requests.exceptions.SSLError as exc:
                    last = exc
                except (requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout) as exc:
                    last = exc
                else:
                    if resp.status_code == 401:
                        self.auth.learn(resp.headers.get("WWW-Authenticate", ""))
                    if resp.status_code in (200, 401):
                        self._connected = True
                        return
                    if resp.status_code == 429:
                        raise self._rate_limited(resp)
                    last = RegistryError(f"{ep.url}/v2/ answered HTTP {resp.status_code}: "
                                         "not a registry (API v2)")
                if self._index + 1 >= len(self.endpoints):
                    raise self._connect_error(last)
                self._index += 1

    def _connect_error(self, exc: BaseException | None) -> SdkError:
        import requests

        if isinstance(exc, SdkError):
            return exc
        if isinstance(exc, requests.exceptions.SSLError):
            return FailedPrecondition(
                f"TLS handshake with registry {self.host} failed ({_short(exc)}): if it uses "
                f"a private CA put it in {CERTS_DIR}/{self.host}/ca.crt, or add "
                f"\"{self.host}\" to insecure-registries in {self.config_path}")
        return Unreachable(f"cannot reach registry {self.host} ({self.endpoint.url}): "
                           f"{_short(exc)}; check that it runs and the address is right")

    def _rate_limited(self, resp: requests.Response) -> RateLimited:
        after = resp.headers.get("Retry-After")
        hint = f"retry after {after} s" if after else "retry later"
        return RateLimited(f"registry {self.host} refused the request: 429 Too Many "
                           f"Requests (rate limit reached); {hint} or log in with "
                           "`berth login`")

    # ---- requests -------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.endpoint.url + path

    def _fetch_token(self, realm: str, params: list[tuple[str, str]],
                     headers: dict[str, str]) -> Any:
        import requests

        verify: bool | str = True
        if urlsplit(realm).netloc == self.endpoint.netloc:
            verify = self.endpoint.verify
        try:
            resp = self.session.get(realm, params=params, headers=headers, verify=verify,
                                    timeout=TIMEOUT)
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"cannot reach the token server {realm} of registry "
                              f"{self.host}: {_short(exc)}")
        if resp.status_code in (401, 403):
            raise PermissionDenied(f"registry {self.host}: login refused by token server "
                                   f"{realm}: unauthorized (check the user name and "
                                   "password, `berth login`)")
        if resp.status_code == 429:
            raise self._rate_limited(resp)
        if resp.status_code != 200:
            raise RegistryError(f"token server {realm} of registry {self.host} answered "
                                f"HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise RegistryError(f"token server {realm} of registry {self.host} answered "
                                "something that is not JSON")

    def request(self, method: str, path: str, *, scopes: tuple[str, ...] = (),
                headers: dict[str, str] | None = None,
                data: bytes | Callable[[], Any] | None = None, stream: bool = False,
                params: dict[str, str] | None = None) -> requests.Response:
        """Send a request (path relative to the endpoint, or an absolute URL).

        Authenticates on demand (a 401 teaches the challenge, a 401 on a cached token
        refreshes it once), follows redirects without leaking credentials, and raises
        for network failures and 429.  Other statuses are returned to the caller.
        ``data`` may be a callable returning a fresh body, for a resend after a 401.
        """
        self.connect()
        url = path if path.startswith(("http://", "https://")) else self.url(path)
        for attempt in range(2):
            hdrs = dict(headers or {})
            auth = self.auth.header(scopes) if urlsplit(url).netloc == \
                self.endpoint.netloc else None
            if auth:
                hdrs["Authorization"] = auth
            body = data() if callable(data) else data
            resp = self._send(method, url, hdrs, body, stream, params)
            if resp.status_code == 401 and attempt == 0:
                self.auth.learn(resp.headers.get("WWW-Authenticate", ""))
                self.auth.invalidate(scopes)
                if self.auth.challenge is not None:
                    resp.close()
                    continue
            if resp.status_code == 429:
                raise self._rate_limited(resp)
            return resp
        return resp

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any, stream: bool,
              params: dict[str, str] | None) -> requests.Response:
        import requests

        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            same_host = urlsplit(url).netloc == origin
            verify = self.endpoint.verify if same_host else True
            try:
                resp = self.session.request(method, url, headers=headers, data=body,
                                            stream=stream, params=params, verify=verify,
                                            timeout=TIMEOUT, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise self._connect_error(exc)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                raise Unreachable(f"cannot reach registry {self.host} ({url.split('?')[0]}): "
                                  f"{_short(exc)}")
            if resp.status_code not in (301, 302, 303, 307, 308) or \
                    "Location" not in resp.headers:
                return resp
            resp.close()
            url = urljoin(url, resp.headers["Location"])
            params = None
            if urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status_code == 303 or (resp.status_code in (301, 302)
                                           and method not in ("GET", "HEAD")):
                method, body = "GET", None
        raise RegistryError(f"registry {self.host}: too many redirects for {url}")

    # ---- error mapping ----------------------------------------------------------------
    def fail(self, resp: requests.Response, *, repository: str, what: str,
             action: str = "pull") -> SdkError:
        """One clear error for a failed answer about ``what`` in ``repository``."""
        code, message = _error_detail(resp)
        status = resp.status_code
        name = repository if self.host == HUB else f"{self.host}/{repository}"
        detail = f": {code.lower()}: {message}" if code else ""
        if status in (401, 403):
            if action == "push":
                return PermissionDenied(f"push access to {name} on registry {self.host} "
                                        f"denied{detail} (log in with `berth login "
                                        f"{self.host}`)")
            return PermissionDenied(f"{action} access denied for {name} on registry "
                                    f"{self.host}, repository does not exist or may require "
                                    f"'berth login'{detail}")
        if status == 404:
            if code == "NAME_UNKNOWN":
                return ImageNotFound(f"repository {name} not found on registry {self.host}"
                                     f"{detail}")
            return ImageNotFound(f"{what} not found on registry {self.host}"
                                 f"{detail or ': manifest unknown'}")
        if status == 429:
            return self._rate_limited(resp)
        return RegistryError(f"registry {self.host} answered HTTP {status} for {what}"
                             f"{detail}")

    def close(self) -> None:
        self.session.close()


def _short(exc: BaseException | None) -> str:
    """A one-line reason from requests' nested exception text."""
    if exc is None:
        return "no endpoint answered"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "certificate verify failed", "wrong version number",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__
