"""Name resolution on user networks: hosts files follow members as they come and go.

A start appends its entry to the other members' hosts files and a stop removes it, each
under the file's lock; parallel starts must all see each other exactly once.  Traffic
goes only to containers these tests start.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.errors import NetworkNotFound
from tests.root.conftest import BERTH, Cli

pytestmark = pytest.mark.root
PARENT = "berth-nettest-names"


@pytest.fixture(scope="module", autouse=True)
def _private_cgroup_parent() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / PARENT).rmdir()
        except OSError:
            pass


def _run(engine: Engine, *args: Any, **kw: Any) -> Any:
    kw.setdefault("cgroup_parent", PARENT)
    return engine.containers.run(*args, **kw)


def _entries(engine: Engine, name: str) -> list[str]:
    """The peers listed in ``name``'s hosts file (first name of each line, its own entry
    (its hostname) left out), sorted; duplicates stay visible."""
    c = engine.containers.get(name)
    text = Path(c.attrs["HostsPath"]).read_text()
    first = [ln.split("\t")[1].split()[0] for ln in text.splitlines()
             if ln.startswith("10.213.")]
    assert first.count(c.id[:12]) == 1, text
    return sorted(n for n in first if n != c.id[:12])


def _until(get: Any, limit: float = 5.0) -> Any:
    """``get()`` once it has one entry (the exit is released right after the status)."""
    deadline = time.monotonic() + limit
    while len(value := get()) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def _wait_exited(engine: Engine, name: str) -> None:
    deadline = time.monotonic() + 10
    while engine.containers.get(name).status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_hosts_follow_members(engine: Engine, busybox: str) -> None:
    name = "bn" + secrets.token_hex(3)
    engine.networks.create(name, ipam={"Config": [{"Subnet": "10.213.11.0/24"}]})
    try:
        for n in ("na", "nb", "nc"):
            _run(engine, "busybox", ["sleep", "60"], detach=True, name=n, network=name,
                 network_aliases=[f"{n}-alias"] if n == "nb" else None)
        # each file: its own entry, then the two others exactly once
        assert _entries(engine, "na") == ["nb", "nc"]
        assert _entries(engine, "nb") == ["na", "nc"]
        assert _entries(engine, "nc") == ["na", "nb"]
        a = engine.containers.get("na")
        assert a.exec_run(["ping", "-c1", "-W2", "nb-alias"]).exit_code == 0
        # b dies: its line leaves a's and c's files (the supervisor releases it)
        engine.containers.get("nb").kill()
        _wait_exited(engine, "nb")
        assert _until(lambda: _entries(engine, "na")) == ["nc"]
        assert _entries(engine, "nc") == ["na"]
        # back again, at the same or another address: listed once, reachable by name
        engine.containers.get("nb").start()
        assert _entries(engine, "na") == ["nb", "nc"]
        assert _entries(engine, "nc") == ["na", "nb"]
        assert a.exec_run(["ping", "-c1", "-W2", "nb"]).exit_code == 0
        # disconnected from its only network and connected back while running (docker
        # allows both): out of the others' files, then in again, reachable by name
        engine.networks.service.disconnect(name, "nb")
        assert _entries(engine, "na") == ["nc"]
        engine.networks.service.connect(name, "nb")
        assert _entries(engine, "na") == ["nb", "nc"]
        assert a.exec_run(["ping", "-c1", "-W2", "nb"]).exit_code == 0
        # removal of a running member (force) withdraws it too
        engine.containers.get("nc").remove(force=True)
        assert _entries(engine, "na") == ["nb"]
        assert _entries(engine, "nb") == ["na"]
        # a created container disconnected from its only network starts without one
        nd = engine.containers.create("busybox", ["sleep", "60"], name="nd", network=name,
                                      cgroup_parent=PARENT)
        engine.networks.service.disconnect(name, "nd")
        nd.start()
        assert "eth0" not in nd.exec_run(["ip", "link"]).output.decode()
        assert _entries(engine, "na") == ["nb"]
    finally:
        for c in engine.containers.list(all=True):
            c.remove(force=True)
        engine.networks.get(name).remove()


def test_parallel_starts_see_each_other(berth: Cli, engine: Engine) -> None:
    name = "bp" + secrets.token_hex(3)
    engine.networks.create(name, ipam={"Config": [{"Subnet": "10.213.12.0/24"}]})
    names = [f"p{i}" for i in range(8)]

    def start(n: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BERTH, "run", "-d", "--name", n, "--network", name,
                               "--cgroup-parent", PARENT, "busybox", "sleep", "60"],
                              capture_output=True, text=True, env=berth.env, timeout=60)

    try:
        with ThreadPoolExecutor(len(names)) as pool:
            results = list(pool.map(start, names))
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        for n in names:
            assert _entries(engine, n) == [m for m in names if m != n], n
    finally:
        for c in engine.containers.list(all=True):
            c.remove(force=True)
        engine.networks.get(name).remove()


def test_create_with_unknown_network_fails_at_create(berth: Cli, engine: Engine) -> None:
    r = berth("create", "--network", "nosuchnet", "busybox")
    assert r.returncode != 0
    # docker: "Error response from daemon: network nosuchnet not found"; berth's CLI
    # prefixes every error with "berth: "
    assert r.stderr.strip() == "berth: network nosuchnet not found"
    with pytest.raises(NetworkNotFound, match="network nosuchnet not found"):
        engine.containers.create("busybox", network="nosuchnet")
    assert engine.containers.list(all=True) == []
    assert list(engine.container_store.root.glob("*")) == []
