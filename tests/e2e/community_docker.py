"""community.docker, fetched once for tests that prove berth against it.

The collection ships inside the ``ansible`` package on PyPI (the only registry these machines
reach besides Debian's), so the wheel is downloaded once (about 50 MB, no dependencies) and
just ``ansible_collections/community/docker`` is extracted into the test cache. Nothing of it
is committed. The version is pinned so every run proves the same code.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from sdk._internal.testimages import CACHE

ANSIBLE_PACKAGE = "ansible==10.7.0"  # carries community.docker 3.13.x; needs ansible-core 2.17
PREFIX = "ansible_collections/community/docker/"


def community_docker(cache: Path = CACHE) -> Path:
    """A collections directory holding ``ansible_collections/community/docker`` (add it to
    ANSIBLE_COLLECTIONS_PATH next to berth's)."""
    root = cache / "community-docker"
    done = root / ".complete"
    if done.exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".community-docker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return root
        wheels = cache / "ansible-wheel"
        if not any(wheels.glob("ansible-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            ANSIBLE_PACKAGE, "-d", str(wheels)], check=True)
        wheel = next(wheels.glob("ansible-*.whl"))
        staging = cache / "community-docker.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(staging, [n for n in zf.namelist() if n.startswith(PREFIX)])
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        done.touch()
    return root
