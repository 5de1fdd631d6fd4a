"""The docker-config.json-compatible credential store, with credential helpers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sdk.distribution.credentials import (
    HUB_KEY,
    CredentialStore,
    default_path,
    normalize_server,
)
from sdk.errors import FailedPrecondition, InvalidArgument


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "a.json"))
    assert default_path() == tmp_path / "a.json"
    monkeypatch.delenv("BERTH_AUTH_CONFIG")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    assert default_path() == tmp_path / "d" / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".docker" / "config.json"


def test_normalize_server() -> None:
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("registry-1.docker.io") == "docker.io"
    assert normalize_server("http://Reg.Example:5000/v2/") == "reg.example:5000"
    with pytest.raises(InvalidArgument):
        normalize_server("https:///")


def test_store_get_erase_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://other:5000/v2/": {"auth": "eDp5"}},
                                "psFormat": "table {{.ID}}"}))
    store = CredentialStore(path)
    assert store.get("other:5000") == ("x", "y")
    assert store.get("docker.io") is None
    assert store.store("docker.io", "me", "pw:with:colons") == str(path)
    assert store.store("127.0.0.1:5000", "alice", "s3cret") == str(path)
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "table {{.ID}}"
    assert HUB_KEY in doc["auths"] and "127.0.0.1:5000" in doc["auths"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get("index.docker.io") == ("me", "pw:with:colons")
    assert store.get("127.0.0.1:5000") == ("alice", "s3cret")
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert store.get("127.0.0.1:5000") is None
    assert list(tmp_path.iterdir()) == [path]           # no temp files left


def test_identity_token_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg": {"identitytoken": "tok"}}}))
    assert CredentialStore(path).get("reg") == ("<token>", "tok")
    path.write_text("{nope")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        CredentialStore(path).get("reg")


HELPER = """#!/bin/sh
# a docker-credential-* helper keeping one secret in a file next to it
dir=$(dirname "$0")
case "$1" in
  store) cat > "$dir/stored.json" ;;
  get) read server; if [ -f "$dir/stored.json" ]; then
         echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"bob\\",\\"Secret\\":\\"hs\\"}";
       else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) if [ -f "$dir/stored.json" ]; then rm "$dir/stored.json";
         else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"""


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {"reg.example": "fake"},
                                "credsStore": "missing-helper"}))
    store = CredentialStore(path)
    assert store.get("reg.example") is None
    assert store.store("reg.example", "bob", "hs") == "docker-credential-fake"
    stored = json.loads((bindir / "stored.json").read_text())
    assert stored == {"ServerURL": "reg.example", "Username": "bob", "Secret": "hs"}
    assert "auth" not in json.loads(path.read_text())["auths"]["reg.example"]
    assert store.get("reg.example") == ("bob", "hs")
    assert store.erase("reg.example") is True
    assert not (bindir / "stored.json").exists()
    # credsStore applies to every other registry; a missing helper is a clear error
    with pytest.raises(FailedPrecondition, match="docker-credential-missing-helper"):
        store.get("elsewhere:5000")
