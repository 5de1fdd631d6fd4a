"""berth.engine.registry's host side: config text, htpasswd plans (bcrypt, no plaintext),
the systemd unit, and the pid-file check of the supervised process."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    base = tmp_path_factory.mktemp("coll")
    (base / "ansible_collections" / "berth").mkdir(parents=True)
    (base / "ansible_collections" / "berth" / "engine").symlink_to(REPO)
    sys.path.insert(0, str(base))
    yield importlib.import_module(
        "ansible_collections.berth.engine.plugins.module_utils.registry_host")
    sys.path.remove(str(base))
    for name in [n for n in sys.modules if n.startswith("ansible_collections")]:
        del sys.modules[name]


PARAMS = {"storage_path": "/srv/reg", "delete_enabled": True, "listen_address": "127.0.0.1",
          "port": 5000, "tls_cert": None, "tls_key": None, "users": None, "realm": None,
          "proxy_remote_url": None, "readonly": False}


def test_config_is_stable_and_loads(rh: ModuleType, tmp_path: Path) -> None:
    from sdk.registry.config import load_config

    text = rh.render_config(PARAMS, "/etc/x/htpasswd")
    assert text == rh.render_config(dict(PARAMS), "/etc/x/htpasswd")    # deterministic
    path = tmp_path / "config.yml"
    path.write_text(text)
    cfg = load_config(path)
    assert (cfg.root, cfg.addr, cfg.delete_enabled, cfg.htpasswd_path) == \
        ("/srv/reg", "127.0.0.1:5000", True, "")
    with_auth = rh.render_config({**PARAMS, "users": [{"username": "a", "password": "b"}],
                                  "proxy_remote_url": "https://up", "proxy_username": "u",
                                  "proxy_password": "secret"}, "/etc/x/htpasswd")
    path.write_text(with_auth)
    cfg = load_config(path)
    assert cfg.htpasswd_path == "/etc/x/htpasswd" and cfg.proxy_password == "secret"
    assert "secret" not in rh.masked(with_auth)
    assert json.loads(rh.masked(with_auth))["proxy"]["username"] == "u"


def test_htpasswd_keeps_matching_hashes(rh: ModuleType) -> None:
    import bcrypt

    users = [{"username": "bob", "password": "pw1"}, {"username": "al", "password": "x"}]
    text, changes = rh.htpasswd_plan(users, "", bcrypt)
    assert changes == ["add al", "add bob"]
    assert "pw1" not in text and text.startswith("al:$2")
    again, none = rh.htpasswd_plan(users, text, bcrypt)
    assert (again, none) == (text, [])                      # same hashes: no change
    users[0]["password"] = "pw2"
    newer, changed = rh.htpasswd_plan(users[:1], text, bcrypt)
    assert changed == ["password bob", "remove al"]
    assert bcrypt.checkpw(b"pw2", rh.parse_htpasswd(newer)["bob"].encode())
    # htpasswd -B writes $2y$: accepted as the same hash
    y = text.replace("$2b$", "$2y$")
    assert rh.htpasswd_plan(users[1:], y.splitlines()[0] + "\n", bcrypt)[1] == []


def test_unit_text(rh: ModuleType) -> None:
    unit = rh.unit_text("main", "/usr/bin/berth", "/etc/berth/registry/main/config.yml")
    assert "ExecStart=/usr/bin/berth registry serve --config " \
        "/etc/berth/registry/main/config.yml" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit


def test_pid_file_names_the_supervisor(rh: ModuleType, tmp_path: Path) -> None:
    pidfile = tmp_path / "r.pid"
    assert rh.supervisor_pid("x", str(pidfile)) is None          # no file
    pidfile.write_text(f"{os.getpid()}\n")
    assert rh.supervisor_pid("x", str(pidfile)) is None          # a recycled pid
    pid = rh.start_supervised(sys.executable, "x", str(pidfile), str(tmp_path / "log"),
                              [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert rh.supervisor_pid("x", str(pidfile)) == pid
        assert rh.supervisor_pid("y", str(pidfile)) is None
    finally:
        rh.stop_supervised(pid, str(pidfile), timeout=10)
    assert not pidfile.exists()
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
