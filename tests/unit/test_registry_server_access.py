"""Per-repository permissions (``auth.access``): parsing, matching, and the server's answers
to Basic and token clients."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sdk.errors import ConfigError
from sdk.registry import load_config
from sdk.registry.access import parse_access
from sdk.registry.config import config_from_dict
from tests.unit.registry_helpers import Client, error_code, running

bcrypt = pytest.importorskip("bcrypt")

ACCESS = {
    "alice": {"**": ["*"]},
    "bob": {"team/*": ["pull"], "bob/**": ["pull", "push", "delete"]},
    "*": {"{user}/**": ["pull", "push"], "public": "pull"},
}


def test_pattern_semantics() -> None:
    amap = parse_access(ACCESS)
    assert amap.actions("alice", "any/deep/name") == {"pull", "push", "delete"}
    assert amap.actions("bob", "team/app") == {"pull"}
    assert amap.actions("bob", "team/app/sub") == set()           # * stays in one component
    assert amap.actions("bob", "teamx/app") == set()
    assert amap.actions("bob", "bob/a/b") == {"pull", "push", "delete"}
    assert amap.actions("carol", "carol/x") == {"pull", "push"}   # "*" with {user}
    assert amap.actions("carol", "bob/x") == set()
    assert amap.actions("carol", "public") == {"pull"}
    assert amap.actions("carol", "public/x") == set()
    assert amap.allows("bob", "team/app", {"pull"})
    assert not amap.allows("bob", "team/app", {"pull", "push"})
    assert not amap.allows("bob", "team/app", set())
    assert amap.users() == {"alice", "bob"}


@pytest.mark.parametrize("access, message", [
    ([], "auth.access: expected a mapping"),
    ({"bob": ["x"]}, "auth.access.bob: expected a mapping"),
    ({"bob": {"Team/*": ["pull"]}}, "invalid repository pattern 'Team/*'"),
    ({"bob": {"a/***": ["pull"]}}, "invalid repository pattern 'a/***'"),
    ({"bob": {"team/*": ["pul"]}}, "auth.access.bob.team/*: unknown action 'pul'"),
    ({"bob": {"team/*": []}}, "auth.access.bob.team/*: expected a list of actions"),
    ({"a:b": {"x": ["pull"]}}, "invalid user name 'a:b'"),
])
def test_bad_access_is_one_clear_error(access: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        config_from_dict({"auth": {"htpasswd": {"path": "/x"}, "access": access}})


def test_access_needs_htpasswd(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auth.access needs auth.htpasswd.path"):
        config_from_dict({"auth": {"access": {"bob": {"x": ["pull"]}}}})
    cfg = load_config(overrides={"root": str(tmp_path), "addr": "127.0.0.1:0",
                                 "access": {"bob": {"x": ["pull"]}}})
    from sdk.registry.app import RegistryApp

    with pytest.raises(ConfigError, match="auth.access needs auth.htpasswd.path"):
        RegistryApp(cfg)


def test_yaml_config_loads_access(tmp_path: Path) -> None:
    p = tmp_path / "config.yml"
    p.write_text("auth:\n  htpasswd: {path: /etc/htpasswd}\n  access:\n"
                 "    bob: {'team/*': [pull, push]}\n")
    assert load_config(p).access == {"bob": {"team/*": ["pull", "push"]}}


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    p = tmp_path / "htpasswd"
    p.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n"
                         for u in ("alice", "bob", "carol")))
    return p


@pytest.fixture
def scoped(tmp_path: Path, htpasswd: Path) -> Iterator[str]:
    with running(tmp_path / "root", htpasswd_path=str(htpasswd), access=ACCESS,
                 token_enabled=True, delete_enabled=True) as s:
        yield s.url


def test_basic_auth_follows_the_access_map(scoped: str) -> None:
    alice, bob = Client(scoped, auth=("alice", "pw")), Client(scoped, auth=("bob", "pw"))
    alice.push_image("team/app", "v1")
    alice.push_image("other/app", "v1")
    bob.push_image("bob/tool", "v1")
    # bob may pull team/*, not push there; nothing at all on other/*
    assert bob.req("GET", "/v2/team/app/manifests/v1").status_code == 200
    r = bob.req("POST", "/v2/team/app/blobs/uploads/")
    assert r.status_code == 403 and error_code(r) == "DENIED"
    r = bob.req("GET", "/v2/other/app/manifests/v1")
    assert r.status_code == 403 and error_code(r) == "DENIED"
    assert bob.req("GET", "/v2/other/app/tags/list").status_code == 403
    # the catalog lists only what the user may pull
    assert bob.req("GET", "/v2/_catalog").json()["repositories"] == ["bob/tool", "team/app"]
    assert alice.req("GET", "/v2/_catalog").json()["repositories"] == [
        "bob/tool", "other/app", "team/app"]
    page = bob.req("GET", "/").text
    assert "team/app" in page and "other/app" not in page
    # delete needs the delete action
    d = bob.req("HEAD", "/v2/team/app/manifests/v1").headers["Docker-Content-Digest"]
    assert bob.req("DELETE", f"/v2/team/app/manifests/{d}").status_code == 403
    d = bob.req("HEAD", "/v2/bob/tool/manifests/v1").headers["Docker-Content-Digest"]
    assert bob.req("DELETE", f"/v2/bob/tool/manifests/{d}").status_code == 202
    # a mount from a repository bob cannot read is a plain upload (202), never a 201
    layer = alice.push_blob("other/app", b"secret layer")
    r = bob.req("POST", f"/v2/bob/tool/blobs/uploads/?mount={layer}&from=other/app")
    assert r.status_code == 202
    carol = Client(scoped, auth=("carol", "pw"))
    carol.push_image("carol/own", "v1")
    assert carol.req("POST", "/v2/bob/x/blobs/uploads/").status_code == 403


def _token(url: str, user: str, scope: str) -> dict[str, object]:
    r = requests.get(f"{url}/auth/token", params={"service": "t", "scope": scope},
                     auth=(user, "pw"), timeout=10)
    assert r.status_code == 200
    payload = r.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {"token": r.json()["token"], "access": claims["access"]}


def test_token_endpoint_grants_only_allowed_actions(scoped: str) -> None:
    Client(scoped, auth=("alice", "pw")).push_image("team/app", "v1")
    got = _token(scoped, "bob", "repository:team/app:pull,push")
    assert got["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert _token(scoped, "bob", "repository:other/app:pull")["access"] == []
    assert _token(scoped, "bob", "repository:bob/x:*")["access"] == [
        {"type": "repository", "name": "bob/x", "actions": ["delete", "pull", "push"]}]
    hdr = {"Authorization": f"Bearer {got['token']}"}
    assert requests.get(f"{scoped}/v2/team/app/manifests/v1", headers=hdr,
                        timeout=10).status_code == 200
    r = requests.post(f"{scoped}/v2/team/app/blobs/uploads/", headers=hdr, timeout=10)
    assert r.status_code == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    cat = _token(scoped, "bob", "registry:catalog:*")["token"]
    r = requests.get(f"{scoped}/v2/_catalog", headers={"Authorization": f"Bearer {cat}"},
                     timeout=10)
    assert r.json()["repositories"] == ["team/app"]
