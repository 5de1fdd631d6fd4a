"""Fixtures for tests that run the real engine as root: a private data root per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine

BERTH = str(Path(sys.executable).with_name("berth"))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    root = tmp_path / "berth-root"
    eng = Engine(root=root, config=tmp_path / "daemon.json")
    yield eng
    close_engine(eng)


def close_engine(eng: Engine) -> None:
    """Leave nothing behind: kill and remove every container of ``eng``, repair (any
    bridge, rule or mount it made), close it."""
    for doc in eng.tasks.all():
        try:
            eng.tasks.remove(doc["Id"], force=True, volumes=True)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
    eng.repair()
    eng.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[object]:
    """A CNCF distribution registry on 127.0.0.1 (``test_registry_client.Registry``)."""
    from tests.root.test_registry_client import start_registry, stop_registry

    reg = start_registry(tmp_path / "registry")
    yield reg
    stop_registry(reg)


@pytest.fixture
def other_engine(tmp_path: Path) -> Iterator[Engine]:
    """A second engine on its own data root (the other side of a transfer)."""
    eng = Engine(root=tmp_path / "other-root", config=tmp_path / "daemon.json")
    yield eng
    close_engine(eng)


@pytest.fixture
def worker_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The staging dirs unpacked through ``sdk.diff.worker.apply_in_worker`` (the real
    one runs; this only counts)."""
    from sdk.diff import worker

    calls: list[Path] = []
    real = worker.apply_in_worker

    def counting(stream, target, **kw):  # type: ignore[no-untyped-def]
        calls.append(target)
        return real(stream, target, **kw)

    monkeypatch.setattr(worker, "apply_in_worker", counting)
    return calls


@pytest.fixture
def busybox(engine: Engine, busybox_tar: Path) -> str:
    img = engine.images.import_image(str(busybox_tar), repository="busybox", tag="latest",
                                     changes=['CMD ["sh"]'])
    return img.id


class Cli:
    def __init__(self, engine: Engine) -> None:
        self.env = dict(os.environ, BERTH_ROOT=str(engine.root),
                        BERTH_CONFIG=str(engine.config_path))

    def __call__(self, *args: str, input: bytes | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BERTH, *args], capture_output=True, text=True, env=self.env,
                              input=input.decode() if input is not None else None,
                              timeout=timeout)


@pytest.fixture
def berth(engine: Engine, busybox: str) -> Cli:
    return Cli(engine)


def count_berth_mounts() -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if "berth" in line)


def berth_cgroups(parent: str = "berth") -> list[str]:
    found = []
    for hier in Path("/sys/fs/cgroup").iterdir():
        d = hier / parent
        if d.is_dir():
            found += [f"{hier.name}/{c.name}" for c in d.iterdir() if c.is_dir()]
    return found


@pytest.fixture(scope="session", autouse=True)
def _remove_empty_parent_cgroups() -> Iterator[None]:
    """The engine keeps its parent cgroup (as Docker keeps "docker"); the test session
    created it (and the private parents some tests use, e.g. "berth-ansible-test"), so
    the session removes them again when nothing is left inside."""
    def parents() -> set[Path]:
        return {d for h in Path("/sys/fs/cgroup").iterdir() if h.is_dir()
                for d in h.iterdir() if d.is_dir() and d.name.startswith("berth")}

    existed = parents()
    yield
    for parent in parents() - existed:
        try:
            parent.rmdir()          # fails (and stays) when a cgroup is still inside
        except OSError:
            pass
