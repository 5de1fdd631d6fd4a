"""runtime.execin.exec_in for real, into a running busybox ``sleep`` container."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk.errors import CommandNotFound, ContainerNotFound, RuntimeFailure
from sdk.runtime import caps, defaults
from sdk.runtime.execin import exec_in
from sdk.runtime.spawn import Started, Stdio, start
from sdk.runtime.spec import Process

from .test_runtime_spawn import (
    docker_spec,
    host_mounts_mentioning,
    processes_in,
    read_all,
    wait,
)

pytestmark = pytest.mark.root


@pytest.fixture
def container(busybox_rootfs: Path) -> Iterator[Started]:
    started = start(docker_spec(busybox_rootfs, "sleep", "60"), Stdio())
    yield started
    try:
        os.kill(started.pid, signal.SIGKILL)
        reap_all(started.pid)
    except (ProcessLookupError, ChildProcessError):   # the test reaped it already
        pass
    assert host_mounts_mentioning(str(busybox_rootfs)) == []
    assert processes_in(busybox_rootfs) == []


def reap_all(init: int) -> None:
    """Wait for ``init``, reaping exec'd children on the way: the kernel keeps a dying
    pid-namespace init unreapable until every process of the namespace is reaped, and
    exec'd processes are *our* children (see execin's module docstring)."""
    while True:
        pid, _ = os.waitpid(-1, 0)
        if pid == init:
            return


def process(*args: str, **kw: object) -> Process:
    kw.setdefault("capabilities", defaults.DEFAULT_CAPABILITIES)
    kw.setdefault("seccomp", False)
    return Process(args=args, env=("PATH=" + defaults.DEFAULT_PATH,), **kw)  # type: ignore[arg-type]


def run_in(target: int, proc: Process, **kw: object) -> tuple[int, str]:
    r, w = os.pipe()
    try:
        started = exec_in(target, proc, Stdio(stdout=w, stderr=w), **kw)  # type: ignore[arg-type]
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    try:
        out = read_all(r)
    finally:
        os.close(r)
    return wait(started.pid), out.decode()


def test_exec_sees_the_container(container: Started) -> None:
    script = "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; for n in pid mnt net; do " \
             "readlink /proc/self/ns/$n; done; echo $$; cat /proc/self/cgroup | head -1"
    code, out = run_in(container.pid, process("sh", "-c", script))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "box"
    assert lines[1].strip() == "sleep 60"
    for line, ns in zip(lines[2:5], ("pid", "mnt", "net"), strict=True):
        assert line == os.readlink(f"/proc/{container.pid}/ns/{ns}")
    assert int(lines[5]) > 1                       # a pid of the container's namespace


def test_exec_is_direct_child_with_container_mounts(container: Started) -> None:
    seen: list[int] = []
    r, w = os.pipe()
    started = exec_in(container.pid, process("cat", "/proc/self/mounts"),
                      Stdio(stdout=w), on_created=seen.append)
    os.close(w)
    out = read_all(r).decode()
    os.close(r)
    assert wait(started.pid) == 0 and seen == [started.pid]
    with open(f"/proc/{container.pid}/mounts") as f:
        assert out == f.read()


def test_exec_user_caps_and_cwd(container: Started) -> None:
    code, out = run_in(container.pid, process("sh", "-c", "id; pwd; grep -E 'Cap(Eff|Bnd|Inh)' "
                                              "/proc/self/status", user="app", cwd="/home/app"))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
    assert lines[1] == "/home/app"
    status = caps.parse_status("\n".join(lines[2:]))
    assert status.effective == 0 and status.inheritable == 0
    assert status.bounding == caps.to_mask(defaults.DEFAULT_CAPABILITIES)
    code, out = run_in(container.pid, process("grep", "CapEff", "/proc/self/status"))
    assert int(out.split()[1], 16) == caps.to_mask(defaults.DEFAULT_CAPABILITIES)


def test_exec_errors(container: Started) -> None:
    with pytest.raises(CommandNotFound, match='exec: "nope": executable file not found'):
        run_in(container.pid, process("nope"))
    with pytest.raises(RuntimeFailure, match=r'chdir to cwd \("/missing"\)'):
        run_in(container.pid, process("true", cwd="/missing"))
    with pytest.raises(RuntimeFailure, match="unable to find user ghost"):
        run_in(container.pid, process("true", user="ghost"))


def test_exec_into_a_dead_container(busybox_rootfs: Path) -> None:
    started = start(docker_spec(busybox_rootfs, "true"), Stdio())
    wait(started.pid)
    with pytest.raises(ContainerNotFound):
        exec_in(started.pid, process("true"), Stdio())


def test_exec_terminal(container: Started) -> None:
    started = exec_in(container.pid, process("sh", "-c", "tty; test -t 1 && echo out-tty",
                                             terminal=True), Stdio())
    assert started.pty_master is not None
    try:
        out = read_all(started.pty_master).decode().replace("\r", "")
    finally:
        os.close(started.pty_master)
    assert wait(started.pid) == 0
    lines = out.splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "out-tty"


def test_exec_script(container: Started, busybox_rootfs: Path) -> None:
    script = busybox_rootfs / "bin" / "greet"
    script.write_text("#!/bin/sh\necho \"$0 says $1\"\n")
    script.chmod(0o755)
    assert run_in(container.pid, process("greet", "hi")) == (0, "/bin/greet says hi\n")


def test_exec_on_created_failure(container: Started) -> None:
    def boom(pid: int) -> None:
        raise OSError("no cgroup for you")

    with pytest.raises(OSError, match="no cgroup for you"):
        exec_in(container.pid, process("sleep", "30"), Stdio(), on_created=boom)
    assert _children() == [container.pid]       # the exec child was killed and reaped


def _children() -> list[int]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return [int(p) for p in f.read().split()]


def test_exec_child_dies_with_the_container(container: Started) -> None:
    started = exec_in(container.pid, process("sleep", "30"), Stdio())
    os.kill(container.pid, signal.SIGKILL)
    _, status = os.waitpid(started.pid, 0)      # reap the exec'd process first...
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    _, status = os.waitpid(container.pid, 0)    # ...then init can be reaped
    assert os.WTERMSIG(status) == signal.SIGKILL
