"""The compiled default profile loaded into a real kernel: forked children set
no_new_privs (so no root is needed), install the filter, then try syscalls through
ctypes and report back over a pipe."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from sdk.errors import RuntimeFailure
from sdk.runtime import seccomp
from sdk.runtime.defaults import DEFAULT_CAPABILITIES
from sdk.runtime.seccomp_syscalls import TABLES

pytestmark = pytest.mark.skipif(not seccomp.supported(), reason="no syscall table for this arch")

PR_SET_NO_NEW_PRIVS = 38
PR_GET_SECCOMP = 21
CLONE_NEWNS = 0x00020000
AF_UNIX, AF_VSOCK, SOCK_STREAM = 1, 40, 1
AT_FDCWD = -100

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int
SYS = TABLES[seccomp.host_arch()]


def sys(name: str | int, *args: int | bytes | None) -> tuple[int, int]:
    """Raw syscall: (return value, errno)."""
    number = SYS[name] if isinstance(name, str) else name
    cargs = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(number), *cargs)
    return rc, ctypes.get_errno() if rc == -1 else 0


def in_child(body: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Run ``body`` in a forked child; return what it reported and its wait status."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            out = body()
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            out, code = {"error": repr(e)}, 1
        os.write(w, json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    return (json.loads(data) if data else {}), status


def confine(caps: frozenset[str] = DEFAULT_CAPABILITIES) -> None:
    assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    seccomp.install(seccomp.default_program(caps))


def test_default_profile_in_the_kernel() -> None:
    def body() -> dict[str, Any]:
        before = sys("unshare", 0)  # a no-op unshare is allowed before the filter
        confine()
        res: dict[str, Any] = {"before": before, "mode": libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0)}
        res["unshare"] = sys("unshare", CLONE_NEWNS)
        res["mount"] = sys("mount", b"none", b"/tmp", b"tmpfs", 0, None)
        res["umount2"] = sys("umount2", b"/tmp", 0)
        res["keyctl"] = sys("keyctl", 0, -3, 0)
        res["setns"] = sys("setns", 0, 0)
        res["bpf"] = sys("bpf", 0, 0, 0)
        res["clone3"] = sys("clone3", 0, 0)
        res["fchmodat2"] = sys("fchmodat2", AT_FDCWD, b"/nonexistent-berth", 0, 0)
        res["file_getattr"] = sys("file_getattr", AT_FDCWD, b"/", 0, 0, 0)
        res["getpid"] = sys("getpid")
        res["pid"] = os.getpid()
        res["personality_query"] = sys("personality", 0xFFFFFFFF)
        res["personality_set"] = sys("personality", 0x0040000)
        res["vsock"] = sys("socket", AF_VSOCK, SOCK_STREAM, 0)
        unix = sys("socket", AF_UNIX, SOCK_STREAM, 0)
        res["unix"] = unix[0] >= 0
        child = os.fork()  # clone without namespace flags
        if child == 0:
            os._exit(7)
        res["fork"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        return res

    res, status = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0, res
    assert res["before"] == [0, 0]
    assert res["mode"] == 2  # SECCOMP_MODE_FILTER
    for name in ("unshare", "mount", "umount2", "keyctl", "setns", "bpf", "personality_set",
                 "vsock"):
        assert res[name] == [-1, errno.EPERM], name
    assert res["clone3"] == [-1, errno.ENOSYS]
    assert res["fchmodat2"] == [-1, errno.ENOENT]  # allowed: the kernel answers
    assert res["file_getattr"] == [-1, errno.ENOSYS]  # newer than the profile: libc falls back
    assert res["getpid"] == [res["pid"], 0]
    assert res["personality_query"][1] == 0
    assert res["unix"] and res["fork"] == 7


def test_exec_after_install() -> None:
    target = ["/bin/busybox", "true"] if os.path.exists("/bin/busybox") else ["/bin/true"]

    def body() -> dict[str, Any]:
        confine()
        os.execv(target[0], target)
        return {}  # not reached

    res, status = in_child(body)
    assert res == {} and os.waitstatus_to_exitcode(status) == 0


def test_x32_syscall_kills() -> None:
    def body() -> dict[str, Any]:
        confine()
        sys(0x40000000 | 39)  # x32 getpid: not an ABI the container may use
        return {"survived": True}

    res, status = in_child(body)
    assert res == {} and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_sys_admin_program_allows_namespaces() -> None:
    def body() -> dict[str, Any]:
        confine(DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"})
        return {"keyctl": sys("keyctl", 0, -3, 0), "clone3": sys("clone3", 0, 0)}

    res, status = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0, res
    assert res["keyctl"] == [-1, errno.EPERM]  # never allowed
    assert res["clone3"][1] != errno.ENOSYS  # reaches the kernel (EFAULT/EINVAL)


def test_kernel_rejection_is_a_runtime_failure() -> None:
    def body() -> dict[str, Any]:
        assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        bad = seccomp.SeccompProgram(filter=bytes([0x15, 0, 9, 0, 0, 0, 0, 0]) * 2)
        try:
            seccomp.install(bad)  # a jump past the end
        except RuntimeFailure as e:
            return {"error": str(e)}
        return {"installed": True}

    res, _ = in_child(body)
    assert "Invalid argument" in res.get("error", ""), res


@pytest.mark.root
def test_install_without_no_new_privs_as_root() -> None:
    """The runtime installs while it still holds CAP_SYS_ADMIN, without no_new_privs."""
    def body() -> dict[str, Any]:
        seccomp.install(seccomp.build(DEFAULT_CAPABILITIES))
        return {"nnp": libc.prctl(39, 0, 0, 0, 0), "unshare": sys("unshare", CLONE_NEWNS)}

    res, status = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0, res
    assert res == {"nnp": 0, "unshare": [-1, errno.EPERM]}
