"""Can this data root hold overlay layers?  Ask the kernel with a real mount."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                mnt = fields[4].replace("\\040", " ")
                inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, kind = mnt, right.split()[0]
    except OSError:
        return ""
    return kind


def overlay_supported(root: Path) -> tuple[bool, str]:
    """Mount a tiny overlay (relative lowerdir, as containers use) in a temp dir under
    ``root``, inside a throwaway mount namespace so nothing can leak; returns
    ``(ok, reason)``.  A data root on overlayfs (or another filesystem overlayfs cannot
    use as upper) fails here."""
    from sdk.runtime import linux

    if os.geteuid() != 0:
        return False, "overlay mounts need root"
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".overlay-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        for d in ("lower", "upper", "work", "merged"):
            (probe / d).mkdir(parents=True)
        (probe / "lower" / "file").write_bytes(b"x")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:    # child: only syscalls, then _exit
            code = 0
            try:
                os.close(r)
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                os.chdir(probe)
                linux.mount("overlay", str(probe / "merged"), "overlay", 0,
                            f"lowerdir=lower,upperdir={probe}/upper,workdir={probe}/work")
                os.unlink(probe / "merged" / "file")    # needs whiteouts in the upper
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                os.write(w, str(exc).encode()[:4000])
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            reason = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return True, ""
        kind = fs_type(root)
        where = f" (data root {root} is on {kind})" if kind else ""
        return False, f"overlay mount failed{where}: {reason or 'unknown error'}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
