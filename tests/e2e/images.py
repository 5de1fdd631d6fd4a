"""The Debian image role tests and Molecule instances run in (debootstrap, cached).

`sdk._internal.testimages.debian_tar()` makes a minbase rootfs without Python; Ansible
needs python3 on the managed host, and the engine role must run offline in tests, so this
variant includes python3 and every package roles/engine installs (its apt task then finds
them present and needs no mirror). Built once, cached beside the other test images.

    python -m tests.e2e.images        # build (or find) it and print the tarball's path
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sdk._internal.testimages import CACHE

SUITE = "bookworm"
# python3 (+ python3-apt, which ansible's apt module needs) for Ansible; the rest
# is what roles/engine (vars/Debian.yml) and roles/registry install on Debian
# (python3-requests and python3-zstandard: pull and push, the "remote" extra);
# debootstrap does not resolve virtual packages, so python3-bcrypt's cffi backend
# (it depends on python3-cffi-backend-api-*) is named explicitly
PACKAGES = ("python3", "python3-apt", "python3-venv", "python3-aiohttp", "python3-pyroute2",
            "python3-requests", "python3-zstandard", "python3-bcrypt", "python3-cffi-backend",
            "python3-yaml", "iptables", "nftables", "kmod", "procps", "iproute2",
            "ca-certificates", "openssl")
# the package list is part of the name: changing it builds a new image
NAME = f"debian-{SUITE}-ansible-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:8]}.tar"
IMAGE_REF = "berth-test/debian-ansible:12"


def debian_ansible_tar(cache: Path = CACHE) -> Path:
    """The cached tarball, built with debootstrap on first use (a few minutes)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / NAME
    if path.exists():
        return path
    # parallel test sessions share the cache: one builds, the others wait for it
    with open(cache / f"{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            _build(path)
    return path


def _build(path: Path) -> None:
    work = path.with_name(f"{path.stem}-rootfs")
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    SUITE, str(work)], check=True, stdout=subprocess.DEVNULL)
    # like Docker's debian images: no downloaded .debs nor package lists
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(work / d, ignore_errors=True)
        (work / d / "partial").mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "--xattrs", "-cf", str(tmp), "."],
                   check=True)
    tmp.replace(path)
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    start = time.monotonic()
    path = debian_ansible_tar()
    print(path)
    print(f"{time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
