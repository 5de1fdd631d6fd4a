"""Docker's volume copy-up: on first start an empty volume receives the image's files.

The container's overlay is mounted in a throwaway mount namespace of a forked child,
so the mount can never leak on the host; the source path is resolved inside the
rootfs (openat2 RESOLVE_IN_ROOT), so a symlink in the image cannot point the copy at
host files.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

from sdk.errors import RuntimeFailure

if TYPE_CHECKING:
    from sdk.engine import Engine


def _empty(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except FileNotFoundError:
        return True


def copy_up(engine: Engine, doc: dict[str, Any], mounts: list[dict[str, Any]]) -> None:
    from sdk.containers.service import rootfs_from

    todo = [(m["Destination"], engine.volume_store.path(m["Name"])) for m in mounts
            if _empty(str(engine.volume_store.path(m["Name"])))]
    if not todo:
        return
    rootfs = rootfs_from(doc)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            _child(rootfs, todo, w)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report to the parent
            try:
                os.write(w, str(exc).encode()[:4000])
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(w)
    message = b""
    while chunk := os.read(r, 4096):
        message += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeFailure(f"copying image content into volumes failed: "
                             f"{message.decode(errors='replace')}")


def _child(rootfs: Any, todo: list[tuple[str, Any]], err_fd: int) -> None:
    from sdk.runtime import linux

    merged = rootfs.path
    if rootfs.is_overlay:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount("", "/", "", linux.MS_REC | linux.MS_PRIVATE)
        os.chdir(rootfs.chdir)
        data = f"lowerdir={':'.join(rootfs.lowerdirs)},upperdir={rootfs.upperdir}," \
               f"workdir={rootfs.workdir}"
        linux.mount("overlay", merged, "overlay", 0, data)
    root_fd = os.open(merged, os.O_PATH | os.O_DIRECTORY)
    for target, dest in todo:
        try:
            fd = linux.openat2(root_fd, target.lstrip("/") or ".",
                               os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                               linux.RESOLVE_IN_ROOT)
        except OSError:
            continue     # nothing at that path in the image (or not a directory)
        subprocess.run(["cp", "-a", "--", f"/proc/self/fd/{fd}/.", str(dest)], check=True,
                       pass_fds=(fd,), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        # Docker also copies the directory's own owner and mode
        st = os.stat(fd)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, st.st_mode & 0o7777)
        os.close(fd)
