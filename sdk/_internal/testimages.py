"""Images made on this host: busybox from Debian's busybox-static, Debian via debootstrap.

Used by the quickstart walk-through and by the test suite.

No network registry is needed: the tarballs are built once per session (cached under
/var/cache/berth-test when root, else a tmp dir) and imported into each test's engine.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
CACHE = Path(os.environ.get("BERTH_TEST_CACHE", "/var/cache/berth-test"))

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app user:/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nstaff:x:50:app\nnogroup:x:65534:\napp:x:1000:\n"


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, linkname: str = "", mtime: float | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = int(mtime if mtime is not None else time.time())
    info.linkname = linkname
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def build_busybox_tar(dest: Path) -> Path:
    """Write a minimal busybox root filesystem tarball to ``dest``."""
    if not BUSYBOX.exists():
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home",
                  "home/app", "var", "var/www", "proc", "sys", "dev", "run"):
            mode = 0o1777 if d == "tmp" else 0o755
            _add(tar, d, kind=tarfile.DIRTYPE, mode=mode)
        _add(tar, "bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)
        for applet in applets:
            if applet == "bin/busybox":
                continue
            depth = applet.count("/")
            _add(tar, applet, kind=tarfile.SYMTYPE, linkname="../" * depth + "bin/busybox")
        _add(tar, "etc/passwd", data=PASSWD.encode())
        _add(tar, "etc/group", data=GROUP.encode())
        _add(tar, "etc/os-release", data=b'NAME="BusyBox"\nID=busybox\n')
        _add(tar, "var/www/index.html", data=b"hello from berth\n")
    tmp.replace(dest)
    return dest


def busybox_tar() -> Path:
    """The cached busybox tarball, built on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "busybox-rootfs.tar"
    if not path.exists() or path.stat().st_mtime < BUSYBOX.stat().st_mtime:
        build_busybox_tar(path)
    return path


def busybox_rootfs(dest: Path) -> Path:
    """Unpack the busybox tarball into a plain directory (for runtime-level tests)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(busybox_tar()) as tar:
        tar.extractall(dest, filter="fully_trusted")
    return dest


def debian_tar() -> Path:
    """A minbase Debian 12 rootfs tarball made with debootstrap (slow, cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "debian-bookworm-minbase.tar"
    if path.exists():
        return path
    work = CACHE / "debian-rootfs"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(work)], check=True,
                   stdout=subprocess.DEVNULL)
    tmp = path.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "--xattrs", "-cf", str(tmp), "."],
                   check=True)
    tmp.replace(path)
    shutil.rmtree(work, ignore_errors=True)
    return path
