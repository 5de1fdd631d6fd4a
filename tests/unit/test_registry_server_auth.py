"""htpasswd Basic auth, the built-in token endpoint, anonymous access."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.unit.registry_helpers import Client, error_code, running

bcrypt = pytest.importorskip("bcrypt")


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    p = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode()
    p.write_text(f"# users\nalice:{hashed}\n")
    return p


@pytest.fixture
def basic_reg(tmp_path: Path, htpasswd: Path) -> Iterator[str]:
    with running(tmp_path / "root", htpasswd_path=str(htpasswd), realm="test-realm") as s:
        yield s.url


def test_basic_challenge_and_login(basic_reg: str) -> None:
    r = requests.get(basic_reg + "/v2/", timeout=10)
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"] == 'Basic realm="test-realm"'
    assert requests.get(basic_reg + "/v2/", auth=("alice", "wrong"), timeout=10).status_code == 401
    assert requests.get(basic_reg + "/v2/", auth=("mallory", "s3cret"),
                        timeout=10).status_code == 401
    assert requests.get(basic_reg + "/v2/", auth=("alice", "s3cret"), timeout=10).status_code == 200


def test_basic_push_pull_and_no_anonymous(basic_reg: str) -> None:
    c = Client(basic_reg, auth=("alice", "s3cret"))
    d, _ = c.push_image("auth/img", "v1")
    anon = Client(basic_reg)
    r = anon.req("GET", "/v2/auth/img/manifests/v1")
    assert r.status_code == 401
    r = anon.req("POST", "/v2/auth/img/blobs/uploads/")
    assert r.status_code == 401
    assert anon.req("GET", "/v2/_catalog").status_code == 401
    assert c.req("GET", "/v2/_catalog").json()["repositories"] == ["auth/img"]


def test_anonymous_pull_when_configured(tmp_path: Path, htpasswd: Path) -> None:
    with running(tmp_path / "root", htpasswd_path=str(htpasswd), anonymous_pull=True) as s:
        Client(s.url, auth=("alice", "s3cret")).push_image("pub/img", "v1")
        anon = Client(s.url)
        assert anon.req("GET", "/v2/pub/img/manifests/v1").status_code == 200
        assert anon.req("POST", "/v2/pub/img/blobs/uploads/").status_code == 401


def _token(url: str, scope: str, auth: tuple[str, str] | None) -> requests.Response:
    return requests.get(f"{url}/auth/token", params={"service": "reg", "scope": scope},
                        auth=auth, timeout=10)


def test_token_flow(tmp_path: Path, htpasswd: Path) -> None:
    with running(tmp_path / "root", htpasswd_path=str(htpasswd), token_enabled=True,
                 token_expiration=60.0) as s:
        r = requests.get(s.url + "/v2/", timeout=10)
        assert r.status_code == 401
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{s.url}/auth/token",service=')
        r = requests.get(s.url + "/v2/tok/img/tags/list", timeout=10)
        assert 'scope="repository:tok/img:pull"' in r.headers["WWW-Authenticate"]
        assert _token(s.url, "repository:tok/img:pull,push", ("alice", "bad")).status_code == 401
        doc = _token(s.url, "repository:tok/img:pull,push", ("alice", "s3cret")).json()
        assert doc["token"] == doc["access_token"] and doc["expires_in"] == 60
        claims = json.loads(base64.urlsafe_b64decode(doc["token"].split(".")[1] + "=="))
        assert claims["access"] == [{"type": "repository", "name": "tok/img",
                                     "actions": ["pull", "push"]}]
        bearer = {"Authorization": f"Bearer {doc['token']}"}
        c = Client(s.url)
        c.s.headers.update(bearer)
        c.push_image("tok/img", "v1")
        # the same token is not good for another repository
        r = c.req("GET", "/v2/tok/other/tags/list")
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        # a tampered token is refused
        t = doc["token"]
        forged = t[:-2] + ("AA" if not t.endswith("AA") else "BB")
        r = requests.get(s.url + "/v2/tok/img/tags/list", timeout=10,
                         headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        # anonymous token requests get nothing (no anonymous access configured)
        doc = _token(s.url, "repository:tok/img:pull", None).json()
        r = requests.get(s.url + "/v2/tok/img/tags/list", timeout=10,
                         headers={"Authorization": f"Bearer {doc['token']}"})
        assert r.status_code == 401


def test_expired_token_is_refused(htpasswd: Path) -> None:
    from sdk.registry.auth import Authenticator, Scope, load_htpasswd

    a = Authenticator(load_htpasswd(str(htpasswd)), b"k" * 32, token_ttl=-10)
    tok = a.issue("alice", "svc", [Scope("repository", "x", frozenset({"pull"}))])["token"]
    assert a.verify_token(str(tok)) is None
    b = Authenticator(load_htpasswd(str(htpasswd)), b"k" * 32, token_ttl=60)
    good = str(b.issue("alice", "svc", [])["token"])
    assert b.verify_token(good) is not None
    assert Authenticator({}, b"other" * 8).verify_token(good) is None


def test_unknown_user_costs_a_bcrypt_check(htpasswd: Path) -> None:
    from sdk.registry.auth import Authenticator, load_htpasswd

    a = Authenticator(load_htpasswd(str(htpasswd)))
    t0 = time.perf_counter()
    assert not a.check_password("nobody", "x")
    unknown = time.perf_counter() - t0
    assert unknown > 0.02                    # the dummy hash (cost 10) was checked
    assert a.check_password("alice", "s3cret")
    assert a.check_password("alice", "s3cret")      # cached
    assert not a.check_password("alice", "S3cret")


def test_htpasswd_rejects_non_bcrypt(tmp_path: Path) -> None:
    from sdk.errors import ConfigError
    from sdk.registry.auth import load_htpasswd

    p = tmp_path / "h"
    p.write_text("bob:{SHA}abc\n")
    with pytest.raises(ConfigError, match="only bcrypt"):
        load_htpasswd(str(p))
