"""WWW-Authenticate parsing, Basic/Bearer, token cache and refresh, redirects without
credentials: against a small in-process HTTP registry fake (loopback only)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sdk.distribution.auth import Authenticator, basic_header, parse_challenges, scope_for
from sdk.errors import PermissionDenied


def test_parse_bearer_challenge() -> None:
    [ch] = parse_challenges('Bearer realm="https://auth.docker.io/token",'
                            'service="registry.docker.io",scope="repository:library/busybox:'
                            'pull"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.docker.io/token",
                         "service": "registry.docker.io",
                         "scope": "repository:library/busybox:pull"}


def test_parse_quoting_case_and_multiple_challenges() -> None:
    chs = parse_challenges('Basic realm="a, \\"quoted\\" realm", '
                           'BEARER Realm=https://x/token , error="insufficient_scope"')
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].params == {"realm": 'a, "quoted" realm'}
    assert chs[1].params == {"realm": "https://x/token", "error": "insufficient_scope"}
    assert parse_challenges("") == []
    assert parse_challenges("Negotiate")[0].scheme == "negotiate"


def test_basic_header_and_scope() -> None:
    assert basic_header("alice", "s:cret") == "Basic " + base64.b64encode(
        b"alice:s:cret").decode()
    assert scope_for("library/busybox", "pull,push") == "repository:library/busybox:pull,push"


def test_token_cache_expiry_and_invalidate() -> None:
    calls: list[tuple[str, list, dict]] = []

    def fetch(url: str, params: list, headers: dict) -> Any:
        calls.append((url, params, headers))
        return {"token": f"t{len(calls)}", "expires_in": 300}

    auth = Authenticator("reg", ("u", "p"), fetch)
    assert auth.header(("s",)) is None            # no challenge yet: anonymous
    auth.learn('Bearer realm="https://r/token",service="svc"')
    assert auth.header(("s",)) == "Bearer t1"
    assert auth.header(("s",)) == "Bearer t1"     # cached
    assert calls[0][1] == [("service", "svc"), ("scope", "s")]
    assert calls[0][2]["Authorization"] == basic_header("u", "p")
    assert auth.header(("s", "other")) == "Bearer t2"    # another scope set
    auth.invalidate(("s",))
    assert auth.header(("s",)) == "Bearer t3"


def test_token_server_without_token_and_bad_realm() -> None:
    auth = Authenticator("reg", None, lambda *_: {"nothing": 1})
    auth.learn('Bearer realm="https://r/token"')
    with pytest.raises(PermissionDenied, match="no token"):
        auth.header(())
    auth2 = Authenticator("reg", None, lambda *_: {"token": "x"})
    auth2.learn('Bearer realm="file:///etc/passwd"')
    with pytest.raises(PermissionDenied, match="not an http"):
        auth2.header(())


def test_basic_challenge_uses_stored_credentials() -> None:
    auth = Authenticator("reg", ("a", "b"), lambda *_: {})
    auth.learn('Basic realm="x"')
    assert auth.header(("s",)) == basic_header("a", "b")
    assert Authenticator("reg", None, lambda *_: {}).header(()) is None


# ------------------------------------------------------------------ a fake registry

class _State:
    def __init__(self) -> None:
        self.tokens_issued = 0
        self.valid: set[str] = set()
        self.blob_auth: list[str | None] = []
        self.token_auth: list[str | None] = []
        self.port = 0
        self.blob_port = 0


def _server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


BLOB = b"layer-bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def fake() -> Iterator[_State]:
    state = _State()

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's API
            if self.path.startswith("/token"):
                state.token_auth.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != basic_header("alice", "pw"):
                    return self._send(401)
                state.tokens_issued += 1
                tok = f"tok{state.tokens_issued}"
                state.valid = {tok}                 # older tokens stop working (refresh)
                return self._send(200, json.dumps({"token": tok}).encode())
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in state.valid:
                return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                    "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{state.port}/token"'
                                        ',service="fake"'})
            if self.path == "/v2/":
                return self._send(200, b"{}")
            if self.path == "/v2/repo/tags/list":
                return self._send(200, b'{"name":"repo","tags":["a"]}', {
                    "Link": '</v2/repo/tags/list?last=a&n=1>; rel="next"'})
            if self.path.startswith("/v2/repo/tags/list?last=a"):
                return self._send(200, b'{"name":"repo","tags":["b"]}')
            if self.path == f"/v2/repo/blobs/{BLOB_DIGEST}":
                return self._send(307, b"", {
                    "Location": f"http://127.0.0.1:{state.blob_port}/storage/blob"})
            return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}')

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            state.blob_auth.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)

    reg, storage = _server(Registry), _server(Storage)
    state.port, state.blob_port = reg.server_address[1], storage.server_address[1]
    yield state
    reg.shutdown()
    storage.shutdown()
    reg.server_close()
    storage.server_close()


def test_bearer_flow_cache_refresh_and_redirect(fake: _State) -> None:
    pytest.importorskip("requests")
    from sdk.distribution.pull import list_tags
    from sdk.distribution.transport import RegistryClient

    host = f"127.0.0.1:{fake.port}"
    client = RegistryClient(host, credentials=("alice", "pw"))
    try:
        assert client.endpoint.url.startswith("https://")      # loopback: insecure
        assert list_tags(client, "repo") == ["a", "b"]          # pagination via Link
        assert fake.tokens_issued == 1                          # one token, cached
        fake.valid = set()                                      # the registry forgets it
        resp = client.request("GET", f"/v2/repo/blobs/{BLOB_DIGEST}",
                              scopes=("repository:repo:pull",))
        assert resp.content == BLOB
        assert fake.tokens_issued == 2                          # refreshed after a 401
        assert fake.blob_auth == [None]                         # never sent to storage
        missing = client.request("GET", "/v2/nope/manifests/x", scopes=())
        err = client.fail(missing, repository="nope", what="manifest for nope:x")
        assert "repository" in str(err) and host in str(err)
    finally:
        client.close()


def test_bearer_wrong_password_is_one_clear_error(fake: _State) -> None:
    pytest.importorskip("requests")
    from sdk.distribution.transport import RegistryClient

    client = RegistryClient(f"127.0.0.1:{fake.port}", credentials=("alice", "bad"))
    try:
        with pytest.raises(PermissionDenied, match="unauthorized"):
            client.request("GET", "/v2/repo/tags/list", scopes=("repository:repo:pull",))
    finally:
        client.close()
