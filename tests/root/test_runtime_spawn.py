"""runtime.spawn.start for real: namespaces, mounts, users, caps, terminal, errors.

Every test runs a busybox rootfs (a plain directory, or an overlay of two lowers) with
Docker's defaults and checks what the process sees from inside.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdk.errors import CommandNotExecutable, CommandNotFound, RuntimeFailure
from sdk.runtime import caps, defaults
from sdk.runtime.spawn import Started, Stdio, start
from sdk.runtime.spec import (
    Mount,
    Namespaces,
    Process,
    Rlimit,
    Rootfs,
    RuntimeSpec,
)
from sdk.runtime.spec import NamespaceMode as NS

pytestmark = pytest.mark.root

DEFAULT_CAPS = caps.to_mask(defaults.DEFAULT_CAPABILITIES)


def docker_spec(root: Path | Rootfs, *args: str, user: str = "", cwd: str = "/",
                env: tuple[str, ...] = (), mounts: tuple[Mount, ...] = (),
                terminal: bool = False, namespaces: Namespaces | None = None,
                **kw: object) -> RuntimeSpec:
    """What specgen makes for `docker run`: default mounts, devices, masks, 14 caps."""
    process_kw = {k: kw.pop(k) for k in ("no_new_privileges", "rlimits", "additional_groups",
                                         "capabilities", "seccomp", "oom_score_adj")
                  if k in kw}
    process_kw.setdefault("capabilities", defaults.DEFAULT_CAPABILITIES)
    process_kw.setdefault("seccomp", False)
    process = Process(args=args, env=("PATH=" + defaults.DEFAULT_PATH, *env), cwd=cwd,
                      user=user, terminal=terminal, **process_kw)  # type: ignore[arg-type]
    rootfs = root if isinstance(root, Rootfs) else Rootfs(path=str(root))
    privileged = bool(kw.get("privileged"))
    spec_kw: dict[str, object] = dict(
        hostname="box", mounts=defaults.default_mounts() + mounts,
        devices=defaults.DEFAULT_DEVICES,
        masked_paths=() if privileged else defaults.MASKED_PATHS,
        readonly_paths=() if privileged else defaults.READONLY_PATHS,
        namespaces=namespaces or Namespaces())
    spec_kw.update(kw)
    return RuntimeSpec(id="test", rootfs=rootfs, process=process, **spec_kw)  # type: ignore[arg-type]


def read_all(fd: int, timeout: float = 20.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:      # EIO: the pty's slave side is gone
            return out
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"timed out reading, got {out!r}")


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run(spec: RuntimeSpec, **start_kw: object) -> tuple[int, str]:
    """Start, capture stdout+stderr through a pipe, wait; (exit code, output)."""
    r, w = os.pipe()
    try:
        started = start(spec, Stdio(stdout=w, stderr=w), **start_kw)  # type: ignore[arg-type]
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


def host_mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def processes_in(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root").startswith(str(root)):
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def rootfs(busybox_rootfs: Path) -> Iterator[Path]:
    """The busybox rootfs; afterwards nothing of it may be mounted or running."""
    yield busybox_rootfs
    assert host_mounts_mentioning(str(busybox_rootfs)) == []
    assert processes_in(busybox_rootfs) == []


@pytest.fixture
def overlay(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Rootfs]:
    """busybox as the bottom layer, a second lower on top, short relative names."""
    layers = tmp_path / "layers"
    (layers / "l1").mkdir(parents=True)
    busybox_rootfs.rename(layers / "l1" / "diff")
    top = layers / "l2" / "diff"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "os-release").write_text("NAME=top-layer\n")
    (top / "etc" / "motd").write_text("from the top lower\n")
    for d in ("upper", "work", "merged"):
        (tmp_path / "c" / d).mkdir(parents=True)
    yield Rootfs(path=str(tmp_path / "c" / "merged"), lowerdirs=("l2/diff", "l1/diff"),
                 upperdir=str(tmp_path / "c" / "upper"), workdir=str(tmp_path / "c" / "work"),
                 chdir=str(layers))
    assert host_mounts_mentioning(str(tmp_path)) == []


# ---- basics ---------------------------------------------------------------------------
def test_exit_code_and_stdout(rootfs: Path) -> None:
    assert run(docker_spec(rootfs, "sh", "-c", "echo hello; echo err >&2; exit 3")) == \
        (3, "hello\nerr\n")


def test_pid_one_hostname_and_fds(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "sh", "-c",
                                "echo $$; hostname; ls /proc/self/fd | tr '\\n' ' '"))
    assert code == 0
    pid, host, fds = out.splitlines()
    assert pid == "1" and host == "box"
    assert fds.split() == ["0", "1", "2", "3"]    # 3 is ls's own directory fd


def test_start_returns_direct_child_and_calls_on_created(rootfs: Path) -> None:
    seen: list[tuple[int, str]] = []

    def created(pid: int) -> None:
        with open(f"/proc/{pid}/status") as f:
            ppid = next(line.split()[1] for line in f if line.startswith("PPid:"))
        seen.append((pid, ppid))

    started = start(docker_spec(rootfs, "true"), Stdio(), on_created=created)
    assert wait(started.pid) == 0
    assert seen == [(started.pid, str(os.getpid()))]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()   # our mask is restored


def test_on_created_failure_kills_and_reaps_child(rootfs: Path) -> None:
    pids: list[int] = []

    def boom(pid: int) -> None:
        pids.append(pid)
        raise ValueError("cgroup said no")

    with pytest.raises(ValueError, match="cgroup said no"):
        start(docker_spec(rootfs, "sleep", "100"), Stdio(), on_created=boom)
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)


def test_capabilities_are_dockers_14_inheritable_empty(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "cat", "/proc/self/status"))
    assert code == 0
    sets = caps.parse_status(out)
    assert sets.effective == sets.permitted == sets.bounding == DEFAULT_CAPS
    assert sets.inheritable == 0 and sets.ambient == 0
    status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert int(status["SigIgn"], 16) == 0 and int(status["SigBlk"], 16) == 0
    assert status["NoNewPrivs"].strip() == "0"


def test_no_new_privileges_and_seccomp(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "cat", "/proc/self/status", no_new_privileges=True,
                                seccomp=True))
    assert code == 0
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines()
                                        if ":" in line)}
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


# ---- hardening ----------------------------------------------------------------------------
def test_masked_and_readonly_paths(rootfs: Path) -> None:
    script = """
        wc -c < /proc/keys
        ls /sys/firmware | wc -l
        echo 1 > /proc/sys/kernel/domainname && echo wrote-proc-sys
        touch /sys/kernel/x 2>/dev/null && echo wrote-sys
        grep -E ' /proc/sys | /sys ' /proc/self/mountinfo | awk '{print $5, $6}'
    """
    code, out = run(docker_spec(rootfs, "sh", "-c", script))
    lines = out.splitlines()
    assert lines[0].strip() == "0" and lines[1].strip() == "0"
    assert "wrote-proc-sys" not in out and "wrote-sys" not in out
    assert "Read-only file system" in out
    opts = dict(line.split() for line in lines if line.startswith("/"))
    assert opts["/proc/sys"].startswith("ro,") and opts["/sys"].startswith("ro,")


def test_devices_and_dev_symlinks(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "sh", "-c",
                                "stat -c '%n %t:%T %a' /dev/null /dev/zero /dev/tty; "
                                "for l in ptmx fd stdin; do readlink /dev/$l; done; ls /dev/pts"))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["/dev/null 1:3 666", "/dev/zero 1:5 666", "/dev/tty 5:0 666"]
    assert lines[3:6] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]
    assert lines[6] == "ptmx"


def test_magic_link_to_host_binary_is_refused(rootfs: Path) -> None:
    with pytest.raises(CommandNotExecutable, match="magic link"):
        run(docker_spec(rootfs, "/proc/self/exe"))
    script = rootfs / "evil.sh"
    script.write_text("#!/proc/self/exe\nprint('escaped')\n")
    script.chmod(0o755)
    with pytest.raises(CommandNotExecutable, match="magic link"):
        run(docker_spec(rootfs, "/evil.sh"))


# ---- users ------------------------------------------------------------------------------
def test_user_by_name_gets_supplementary_groups_and_home(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "sh", "-c", "id; echo $HOME; grep CapEff "
                                "/proc/self/status", user="app"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
    assert lines[1] == "/home/app"
    assert lines[2].split()[1] == "0000000000000000"     # non-root: no effective caps


def test_user_uid_gid_and_group_add(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "id", user="1000:50", additional_groups=("tty",)))
    assert (code, out.strip()) == (0, "uid=1000(app) gid=50(staff) groups=5(tty),50(staff)")
    code, out = run(docker_spec(rootfs, "sh", "-c", "id; echo $HOME", user="4242"))
    assert (code, out.splitlines()) == (0, ["uid=4242 gid=0(root) groups=0(root)", "/"])


def test_unknown_user(rootfs: Path) -> None:
    with pytest.raises(RuntimeFailure,
                       match="unable to find user nosuch: no matching entries in passwd file"):
        run(docker_spec(rootfs, "id", user="nosuch"))


# ---- commands -----------------------------------------------------------------------------
def test_command_not_found(rootfs: Path) -> None:
    with pytest.raises(CommandNotFound) as info:
        run(docker_spec(rootfs, "nosuchcmd"))
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "nosuchcmd": executable file not found in $PATH'
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        run(docker_spec(rootfs, "/bin/nosuchcmd"))


def test_command_not_executable(rootfs: Path) -> None:
    with pytest.raises(CommandNotExecutable) as info:
        run(docker_spec(rootfs, "/etc/passwd"))
    assert info.value.exit_code == 126
    assert str(info.value) == 'exec: "/etc/passwd": permission denied'


def test_script_with_shebang_and_env(rootfs: Path) -> None:
    script = rootfs / "usr" / "local" / "bin" / "hello"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh -e\necho \"$0 $1 $GREETING $PATH\"\n")
    script.chmod(0o755)
    code, out = run(docker_spec(rootfs, "hello", "world", env=("GREETING=hi",)))
    assert (code, out) == (0, f"/usr/local/bin/hello world hi {defaults.DEFAULT_PATH}\n")


def test_cwd_is_created(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "pwd", cwd="/work/dir"))
    assert (code, out) == (0, "/work/dir\n")
    assert (rootfs / "work" / "dir").is_dir()


# ---- mounts -------------------------------------------------------------------------------
def test_bind_mounts_rw_ro_file_and_dir(rootfs: Path, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "data").write_text("ro-data\n")
    conf = tmp_path / "app.conf"
    conf.write_text("key=value\n")
    mounts = (Mount("/data/rw", source=str(rw)), Mount("/data/ro", source=str(ro),
                                                       readonly=True),
              Mount("/etc/app.conf", source=str(conf), readonly=True))
    script = """
        echo written > /data/rw/new && echo rw-ok
        touch /data/ro/x 2>/dev/null || echo ro-refused
        cat /data/ro/data /etc/app.conf
        (echo x >> /etc/app.conf) 2>/dev/null || echo file-ro-refused
    """
    code, out = run(docker_spec(rootfs, "sh", "-c", script, mounts=mounts))
    assert out.splitlines() == ["rw-ok", "ro-refused", "ro-data", "key=value",
                                "file-ro-refused"]
    assert (rw / "new").read_text() == "written\n"
    assert (rootfs / "etc" / "app.conf").is_file()        # created as a file, not a dir


def test_bind_source_missing(rootfs: Path) -> None:
    with pytest.raises(RuntimeFailure) as info:
        run(docker_spec(rootfs, "true", mounts=(Mount("/data", source="/nope"),)))
    assert str(info.value) == "mount /data: source /nope: no such file or directory"


def test_bind_target_symlink_stays_inside_root(rootfs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("m\n")
    (rootfs / "escape").symlink_to(outside)              # absolute, points at the host
    (rootfs / "dangling").symlink_to("/made/by/runtime")
    mounts = (Mount("/escape", source=str(src)), Mount("/dangling", source=str(src)))
    code, out = run(docker_spec(rootfs, "sh", "-c", "ls /escape /dangling; readlink -f "
                                "/escape", mounts=mounts))
    assert code == 0, out
    assert out.splitlines() == ["/dangling:", "marker", "", "/escape:", "marker",
                                str(outside)]
    assert list(outside.iterdir()) == []                 # the host dir was never touched
    assert (rootfs / str(outside).lstrip("/")).is_dir()  # created inside the root
    assert (rootfs / "made" / "by" / "runtime").is_dir()


def test_tmpfs_mount_with_options(rootfs: Path) -> None:
    mounts = (Mount("/scratch", kind="tmpfs", source="tmpfs", options=("size=1m", "mode=1770"),
                    flags=("nosuid", "nodev")),)
    code, out = run(docker_spec(rootfs, "sh", "-c", "touch /scratch/f && stat -c %a /scratch "
                                "&& grep ' /scratch ' /proc/self/mountinfo", mounts=mounts))
    assert code == 0, out
    mode, info = out.splitlines()
    assert mode == "1770"
    assert "size=1024k" in info and "nosuid" in info and "nodev" in info


def test_readonly_rootfs(rootfs: Path) -> None:
    spec = docker_spec(rootfs, "sh", "-c", "touch /x 2>/dev/null || echo refused; "
                       "touch /dev/shm/ok && echo shm-ok; pwd", cwd="/new/workdir")
    spec = replace(spec, rootfs=replace(spec.rootfs, readonly=True))
    assert run(spec) == (0, "refused\nshm-ok\n/new/workdir\n")
    assert not (rootfs / "x").exists()


def test_overlay_rootfs(overlay: Rootfs) -> None:
    code, out = run(docker_spec(overlay, "sh", "-c", "cat /etc/os-release /etc/motd; "
                                "echo new > /etc/created; grep ' / ' /proc/self/mountinfo"))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["NAME=top-layer", "from the top lower"]
    assert " overlay " in lines[2]
    assert (Path(overlay.upperdir) / "etc" / "created").read_text() == "new\n"
    assert not os.path.ismount(overlay.path)


# ---- namespaces, limits --------------------------------------------------------------------
def test_network_none_has_only_lo_up(rootfs: Path) -> None:
    code, out = run(docker_spec(rootfs, "sh", "-c", "ls /sys/class/net; "
                                "cat /sys/class/net/lo/flags"))
    assert (code, out.split()) == (0, ["lo", "0x9"])     # IFF_UP | IFF_LOOPBACK


def test_host_network_sees_host_interfaces(rootfs: Path) -> None:
    ns = Namespaces(net=NS.HOST)
    code, out = run(docker_spec(rootfs, "ls", "/sys/class/net", namespaces=ns))
    assert code == 0
    assert sorted(out.split()) == sorted(os.listdir("/sys/class/net"))


def test_join_network_namespace(rootfs: Path, tmp_path: Path) -> None:
    first = start(docker_spec(rootfs, "sleep", "30"), Stdio())
    try:
        ns = Namespaces(net=NS.JOIN, net_path=f"/proc/{first.pid}/ns/net")
        code, out = run(docker_spec(rootfs, "readlink", "/proc/self/ns/net", namespaces=ns))
        assert (code, out.strip()) == (0, os.readlink(f"/proc/{first.pid}/ns/net"))
    finally:
        os.kill(first.pid, signal.SIGKILL)
        wait(first.pid)


def test_shared_pid_namespaces(rootfs: Path) -> None:
    first = start(docker_spec(rootfs, "sleep", "30"), Stdio())
    try:
        joined = Namespaces(pid=NS.JOIN, pid_path=f"/proc/{first.pid}/ns/pid",
                            ipc=NS.JOIN, ipc_path=f"/proc/{first.pid}/ns/ipc")
        script = "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/ipc"
        code, out = run(docker_spec(rootfs, "sh", "-c", script, namespaces=joined))
        assert code == 0, out
        pid, init, ipc = out.splitlines()
        assert pid != "1" and init.strip() == "sleep 30"
        assert ipc == os.readlink(f"/proc/{first.pid}/ns/ipc")
        host = Namespaces(pid=NS.HOST)
        code, out = run(docker_spec(rootfs, "sh", "-c", f"test -d /proc/{os.getpid()} && "
                                    "echo sees-host", namespaces=host))
        assert (code, out) == (0, "sees-host\n")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        wait(first.pid)
    # the caller's own pid namespace for children was restored
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    base = Path("/sys/fs/cgroup/pids")
    if not base.is_dir() or os.path.islink(base):
        pytest.skip("needs the cgroup v1 pids hierarchy")
    cg = base / f"berth-runtime-test-{os.getpid()}"
    cg.mkdir()
    yield cg
    cg.rmdir()


@pytest.mark.parametrize("cgroupns", [NS.NEW, NS.HOST])
def test_cgroup_mounts_show_only_the_container(rootfs: Path, pids_cgroup: Path,
                                               cgroupns: NS) -> None:
    def join(pid: int) -> None:
        (pids_cgroup / "cgroup.procs").write_text(str(pid))

    script = "grep pids /proc/self/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs | wc -l; " \
             "touch /sys/fs/cgroup/pids/x 2>/dev/null || echo ro"
    code, out = run(docker_spec(rootfs, "sh", "-c", script,
                                namespaces=Namespaces(cgroup=cgroupns)), on_created=join)
    assert code == 0, out
    line, count, ro = out.split()
    assert line.endswith(":/" if cgroupns == NS.NEW else f":/{pids_cgroup.name}")
    assert int(count) <= 3 and ro == "ro"       # sh, cat and wc: not the host's processes


def test_rlimits_sysctls_oom_score(rootfs: Path) -> None:
    spec = docker_spec(rootfs, "sh", "-c", "ulimit -n; ulimit -Hn; "
                       "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj",
                       rlimits=(Rlimit("nofile", 100, 200),), oom_score_adj=500,
                       sysctls=(("net.ipv4.ip_forward", "1"),))
    assert run(spec) == (0, "100\n200\n1\n500\n")


def test_terminal(rootfs: Path) -> None:
    started = start(docker_spec(rootfs, "sh", "-c", "tty; test -t 0 && echo stdin-tty; "
                                "stat -c %t:%T /dev/console", terminal=True), Stdio())
    assert isinstance(started, Started) and started.pty_master is not None
    try:
        out = read_all(started.pty_master).decode().replace("\r", "")
    finally:
        os.close(started.pty_master)
    assert wait(started.pid) == 0
    assert out.splitlines() == ["/dev/pts/0", "stdin-tty", "88:0"]


def test_privileged_gets_all_caps_and_host_devices(rootfs: Path) -> None:
    spec = docker_spec(rootfs, "sh", "-c", "grep CapEff /proc/self/status; ls /dev",
                       privileged=True, capabilities=defaults.ALL_CAPABILITIES)
    code, out = run(spec)
    assert code == 0
    lines = out.split()
    assert int(lines[1], 16) == caps.current().permitted & caps.kernel_mask()
    host = {d for d in os.listdir("/dev") if os.path.exists(f"/dev/{d}") and
            not os.path.isdir(f"/dev/{d}") and d not in ("console", "ptmx")}
    assert "null" in lines and (host & {"loop0", "kmsg", "tty0"}) <= set(lines)


def test_dies_with_its_parent(rootfs: Path, tmp_path: Path) -> None:
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from tests.root.test_runtime_spawn import docker_spec
from sdk.runtime.spawn import start, Stdio
started = start(docker_spec({str(rootfs)!r}, "sleep", "100"), Stdio())
print(started.pid, flush=True)
os._exit(0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    pid = int(out.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the container outlived its parent")
