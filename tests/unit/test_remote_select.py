"""``Engine.from_env()``'s choice between the embedded engine and the engine service."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument
from sdk.remote import RemoteEngine, selection
from sdk.remote.selection import choose

ENV_KEYS = ("BERTH_ROOT", "BERTH_CONFIG", "BERTH_HOST", "DOCKER_HOST")


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Path]:
    """A unix socket a process accepts connections on (the service is there)."""
    path = tmp_path / "live.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    yield path
    srv.close()


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    """A socket file left behind by a daemon that died: connecting is refused."""
    path = tmp_path / "stale.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.close()
    assert path.exists()
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_default_socket_reachable_means_remote(listening: Path) -> None:
    choice = choose({}, str(listening))
    assert choice.host == f"unix://{listening}"


def test_stale_or_missing_socket_means_embedded(stale: Path, tmp_path: Path) -> None:
    assert choose({}, str(stale)).host is None
    assert choose({}, str(tmp_path / "absent.sock")).host is None
    assert choose({"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"}, str(stale)).host is None


def test_data_root_wins_over_everything(listening: Path) -> None:
    for env in ({"BERTH_ROOT": "/tmp/r"}, {"BERTH_CONFIG": "/tmp/d.json"},
                {"BERTH_ROOT": "/tmp/r", "BERTH_HOST": f"unix://{listening}",
                 "DOCKER_HOST": "tcp://127.0.0.1:2376"}):
        assert choose(env, str(listening)).host is None, env


def test_hosts_from_the_environment(stale: Path) -> None:
    assert choose({"BERTH_HOST": "unix:///x/y.sock"}, str(stale)).host == "unix:///x/y.sock"
    assert choose({"BERTH_HOST": "tcp://h:2376", "DOCKER_HOST": "tcp://o:1"},
                  str(stale)).host == "tcp://h:2376"
    assert choose({"DOCKER_HOST": "tcp://127.0.0.1:2376"},
                  str(stale)).host == "tcp://127.0.0.1:2376"
    with pytest.raises(InvalidArgument, match="BERTH_HOST='ssh://h'"):
        choose({"BERTH_HOST": "ssh://h"}, str(stale))


def test_from_env_follows_the_choice(clean_env: pytest.MonkeyPatch, listening: Path,
                                     stale: Path, tmp_path: Path) -> None:
    clean_env.setattr(selection, "DEFAULT_SOCKET", str(listening))
    eng = Engine.from_env()
    assert isinstance(eng, RemoteEngine) and eng.base_url == f"unix://{listening}"
    clean_env.setattr(selection, "DEFAULT_SOCKET", str(stale))
    assert isinstance(Engine.from_env(), Engine)
    clean_env.setattr(selection, "DEFAULT_SOCKET", str(listening))
    clean_env.setenv("BERTH_ROOT", str(tmp_path / "root"))
    eng = Engine.from_env()
    assert isinstance(eng, Engine) and eng.root == tmp_path / "root"


def test_the_cli_engine_is_always_embedded(clean_env: pytest.MonkeyPatch,
                                           listening: Path, tmp_path: Path) -> None:
    """The CLI also runs inside the daemon's helper: it must never call the service."""
    from sdk.cli.common import engine

    clean_env.setattr(selection, "DEFAULT_SOCKET", str(listening))
    clean_env.setenv("BERTH_HOST", f"unix://{listening}")
    assert type(engine()) is Engine
    clean_env.setenv("BERTH_ROOT", str(tmp_path / "root"))
    clean_env.setenv("BERTH_CONFIG", str(tmp_path / "daemon.json"))
    eng = engine()
    assert type(eng) is Engine and eng.root == tmp_path / "root"
    assert eng.config_path == tmp_path / "daemon.json"


def test_remote_package_stays_off_the_cli_start_path() -> None:
    import subprocess
    import sys

    code = ("import sys, sdk.cli.main; "
            "print([m for m in sys.modules if m.startswith('sdk.remote')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])),
                         check=True)
    assert out.stdout.strip() == "[]"
