"""Reliability: many run/rm cycles leave the host exactly as they found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdk import Engine

from .conftest import berth_cgroups, count_berth_mounts

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _netns_count() -> int:
    return len({os.readlink(f"/proc/{p}/ns/net") for p in os.listdir("/proc") if p.isdigit()
                and os.path.exists(f"/proc/{p}/ns/net")})


def test_200_cycles_leave_nothing(engine: Engine, busybox: str) -> None:
    def snapshot() -> tuple[int, int, int, int]:
        import gc

        gc.collect()   # fds of earlier tests' unreachable objects close now, not mid-test
        return (count_berth_mounts(), len(berth_cgroups()), len(os.listdir("/proc/self/fd")),
                _netns_count())

    engine.containers.run("busybox", ["true"], remove=True)   # warm caches
    before = snapshot()
    for i in range(200):
        if i % 2:
            engine.containers.run("busybox", ["true"], remove=True)
        else:
            c = engine.containers.create("busybox", ["true"])
            c.start()
            c.wait(timeout=10)
            c.remove()
    assert snapshot() == before
    assert list((engine.root / "containers").iterdir()) == []
    assert not list(Path(engine.root, "storage", "containers").glob("*")) if Path(
        engine.root, "storage", "containers").exists() else True
