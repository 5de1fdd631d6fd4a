"""Shared fixtures. Tests marked ``root`` need uid 0 and the real kernel; they are
skipped elsewhere and always run in CI (CI is root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import images

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (real namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_tar() -> Path:
    return images.busybox_tar()


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    return images.busybox_rootfs(tmp_path / "rootfs")
