"""The last mile shared by ``start`` and ``exec_in``: from "we are inside the container's
root, still privileged" to execve.

``finalize`` resolves the user from the container's own passwd/group files, builds the
environment, enters the working directory (verified inside the root, CVE-2024-21626),
resolves the command, wires stdio or the terminal, drops privileges (bounding set,
no_new_privs, seccomp, groups/gid/uid, capabilities with inheritable and ambient empty),
closes every other fd, restores default signal handling and execs.

About the host binary (CVE-2019-5736 / 2016-9962 class): until execve this process *is*
the host's python, so it stays non-dumpable (PR_SET_DUMPABLE 0, re-applied after the
uid change, which resets it), and the command is resolved with RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS, interpreters of ``#!`` scripts included: ``/proc/self/exe``
(which would run the host's python inside the container, dumpable, its inode reachable
through /proc/PID/exe) is refused.  When other container processes may race us (exec
into a running container, shared pid namespace) the verified file itself is executed
(execveat on the fd; scripts by exec'ing their verified interpreter), so nothing can be
swapped between the check and the exec.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import select
import signal
import stat
from dataclasses import dataclass, field

from sdk.runtime import caps as capsmod
from sdk.runtime import linux, seccomp, users
from sdk.runtime.defaults import DEFAULT_PATH
from sdk.runtime.rootfs_paths import ensure_in_root, open_in_root
from sdk.runtime.spawn_errors import (
    NOT_EXECUTABLE,
    NOT_FOUND,
    SetupError,
    exec_error,
    os_text,
)
from sdk.runtime.spawn_tty import make_controlling
from sdk.runtime.spec import Process

RLIMITS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
           "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11,
           "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15}
MAX_INTERPRETER_DEPTH = 4      # the kernel's BINPRM_MAX_RECURSION
_SIGNALS = tuple(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP))


@dataclass(slots=True)
class ProcessSetup:
    process: Process
    caps: int                                 # permitted = effective = bounding
    err_fd: int
    stdio: tuple[int | None, int | None, int | None] = (None, None, None)
    devnull: int = -1                         # used for the None entries of ``stdio``
    tty_slave: int | None = None
    seccomp_filter: bytes | None = None
    parent_pidfd: int | None = None           # die_with_parent
    create_cwd: bool = True
    exec_by_fd: bool = False


@dataclass(slots=True)
class ExecTarget:
    name: str                                 # args[0], for messages
    path: str                                 # the resolved path (path-mode execve)
    fd: int                                   # verified fd of what the kernel will run
    argv: list[str] = field(default_factory=list)


# ---- pure helpers (unit tested) -----------------------------------------------------
def build_env(env: tuple[str, ...] | list[str], home: str) -> list[str]:
    """The process env plus HOME (from passwd) and PATH (docker's) when absent."""
    out = list(env)
    keys = {e.partition("=")[0] for e in out}
    if "PATH" not in keys:
        out.append(f"PATH={DEFAULT_PATH}")
    if "HOME" not in keys:
        out.append(f"HOME={home or '/'}")
    return out


def env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        if key:
            out[key] = value
    return out


def search_path(env: list[str]) -> list[str]:
    path = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
    return [d or "." for d in path.split(":")]


def parse_shebang(head: bytes) -> tuple[str, str | None] | None:
    """(interpreter, optional argument) of a ``#!`` line, split the way the kernel's
    binfmt_script does; None when ``head`` is not a script."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip(b" \t")
    if not line:
        return None
    interp, _, rest = line.replace(b"\t", b" ").partition(b" ")
    arg = rest.strip(b" ")
    return os.fsdecode(interp), (os.fsdecode(arg) if arg else None)


def rlimit_number(name: str) -> int:
    key = name.lower().removeprefix("rlimit_")
    if key not in RLIMITS:
        raise SetupError(f"setrlimit: unknown resource {name!r}")
    return RLIMITS[key]


# ---- early steps (host /proc still visible) -------------------------------------------
def apply_limits(process: Process) -> None:
    """rlimits, oom_score_adj and the SELinux exec label; done while the caller's
    procfs is still our /proc (before pivot_root or the mount namespace join)."""
    inf = resource.RLIM_INFINITY
    for lim in process.rlimits:
        number = rlimit_number(lim.name)
        soft = inf if lim.soft < 0 else lim.soft
        hard = inf if lim.hard < 0 else lim.hard
        try:
            resource.setrlimit(number, (soft, hard))
        except (ValueError, OSError) as exc:
            why = os_text(exc) if isinstance(exc, OSError) else str(exc)
            if "not allowed" in why:
                why = "operation not permitted"
            raise SetupError(f"setrlimit {lim.name} {lim.soft}:{lim.hard}: {why}") from None
    if process.oom_score_adj is not None:
        _write_proc("/proc/self/oom_score_adj", str(process.oom_score_adj),
                    f"oom_score_adj {process.oom_score_adj}")
    if process.selinux_label:
        _write_proc("/proc/thread-self/attr/exec", process.selinux_label,
                    f"selinux label {process.selinux_label}")


def _write_proc(path: str, value: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise SetupError(f"{what}: {os_text(exc)}", err=exc.errno or 0) from None


def block_signals() -> set[signal.Signals]:
    """Block every signal and return the previous mask.

    Called by the caller *before* it clones/forks: no Python handler of the caller's may
    ever run in the child (it would run caller code there).  After blocking, a Python
    call flushes handlers whose C-level signal already arrived, so their "tripped" flags
    are not copied into the child either.  The child keeps everything blocked until
    just before execve; the caller restores its mask right after the clone."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    _flush_pending_handlers()
    return old


def _flush_pending_handlers() -> None:
    """(A Python-level call: the interpreter runs pending signal handlers on entry.)"""


def restore_signals(old: set[signal.Signals]) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, old)


def default_signals() -> None:
    """execve keeps ignored signals ignored: python ignores SIGPIPE and SIGXFSZ, and
    the caller may ignore more.  The container starts with every signal at default.

    Python's handler table mirrors the real dispositions (read at startup, updated by
    signal.signal), so only the few non-default ones cost a syscall."""
    for sig in _SIGNALS:
        try:
            if signal.getsignal(sig) != signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _default_reserved_signals()


_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}


def _default_reserved_signals() -> None:
    """glibc keeps signals 32 and 33 for itself and refuses sigaction() on them, so a
    disposition inherited from whoever started the engine (CI harnesses ignore 32)
    would reach the container.  The raw rt_sigaction syscall resets them."""
    nr = _RT_SIGACTION.get(os.uname().machine)
    if nr is None:
        return
    act = (ctypes.c_ulong * 4)()          # SIG_DFL, no flags, no restorer, empty mask
    for sig in (32, 33):
        linux.libc.syscall(nr, sig, act, None, 8)


def check_parent(pidfd: int | None) -> None:
    """PR_SET_PDEATHSIG only fires for a parent death *after* it is set: a pidfd of the
    parent, readable once it exited, covers the window before."""
    if pidfd is None:
        return
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if poller.poll(0):
        os._exit(125)


def arm_parent_death(pidfd: int | None) -> None:
    if pidfd is not None:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        check_parent(pidfd)


# ---- working directory and command ----------------------------------------------------
def enter_cwd(root_fd: int, cwd: str, *, create: bool) -> None:
    path = cwd or "/"
    if not path.startswith("/"):
        path = "/" + path
    try:
        fd = ensure_in_root(root_fd, path) if create else open_in_root(root_fd, path)
        try:
            os.fchdir(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SetupError(f'chdir to cwd ("{cwd}") failed: {os_text(exc)}',
                         err=exc.errno or 0) from None
    try:   # an fd-relative chdir could still land outside the root
        os.getcwd()
    except OSError:
        raise SetupError(f'chdir to cwd ("{cwd}"): the directory is outside of the '
                         "container's root") from None


def _open_exec(root_fd: int, path: str, name: str) -> int:
    """Open ``path`` in the root for exec: magic links (/proc/self/exe...) refused."""
    try:
        return open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EXDEV) or not _through_magic_link(root_fd,
                                                                                  path):
            raise
        raise SetupError(f'exec: "{name}": refusing to run {path}: it goes through a '
                         "/proc magic link (it would run the engine's own binary)",
                         NOT_EXECUTABLE, errno.EXDEV) from None


def _through_magic_link(root_fd: int, path: str) -> bool:
    """ELOOP from RESOLVE_NO_MAGICLINKS, or a real symlink loop?  Plain RESOLVE_IN_ROOT
    (no O_NOFOLLOW games) says EXDEV only for the former."""
    try:
        os.close(linux.openat2(root_fd, path.lstrip("/"), os.O_PATH | os.O_CLOEXEC,
                               linux.RESOLVE_IN_ROOT))
    except OSError as exc:
        return exc.errno == errno.EXDEV
    return False


def _is_executable_file(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISREG(mode) and bool(mode & 0o111)


def resolve_command(root_fd: int, args: tuple[str, ...], env: list[str], cwd: str) -> ExecTarget:
    """exec.LookPath inside the root: returns the path and a verified fd."""
    name = args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd or "/", name)
        try:
            fd = _open_exec(root_fd, path, name)
        except OSError as exc:
            kind = NOT_FOUND if exc.errno in (errno.ENOENT, errno.ENOTDIR) else NOT_EXECUTABLE
            raise SetupError(f'exec: "{name}": stat {name}: {os_text(exc)}', kind,
                             exc.errno or 0) from None
        if not _is_executable_file(fd):
            os.close(fd)
            raise SetupError(f'exec: "{name}": permission denied', NOT_EXECUTABLE,
                             errno.EACCES)
        return ExecTarget(name, path, fd, list(args))
    for directory in search_path(env):
        base = directory if directory.startswith("/") else os.path.join(cwd or "/", directory)
        path = os.path.join(base, name)
        try:
            fd = _open_exec(root_fd, path, name)
        except OSError:
            continue
        if _is_executable_file(fd):
            return ExecTarget(name, path if directory.startswith("/") else
                              os.path.join(directory, name), fd, list(args))
        os.close(fd)
    raise SetupError(f'exec: "{name}": executable file not found in $PATH', NOT_FOUND,
                     errno.ENOENT)


def resolve_interpreters(root_fd: int, target: ExecTarget, cwd: str) -> ExecTarget:
    """Follow ``#!`` lines like the kernel, verifying each interpreter the same way.

    Returns the target to execveat: the innermost interpreter with the argv the kernel
    would have built ([interp, arg?, script path, args[1:]...]).  A missing interpreter
    is left for execve to report (ENOENT), as docker does."""
    current = target
    for _ in range(MAX_INTERPRETER_DEPTH):
        head = os.pread(current.fd, 256, 0)
        shebang = parse_shebang(head)
        if shebang is None:
            return current
        interp, arg = shebang
        path = interp if interp.startswith("/") else os.path.join(cwd or "/", interp)
        try:
            fd = _open_exec(root_fd, path, target.name)
        except OSError as exc:
            raise exec_error(target.name, exc) from None
        argv = [interp, *([arg] if arg else []), current.path, *current.argv[1:]]
        os.close(current.fd)
        current = ExecTarget(target.name, path, fd, argv)
    raise exec_error(target.name, OSError(errno.ELOOP, os.strerror(errno.ELOOP)))


# ---- the sequence -----------------------------------------------------------------------
def _high_dup(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _close_all_but(keep: set[int]) -> None:
    start = 3
    for fd in sorted(k for k in keep if k >= 3):
        linux.close_range(start, fd - 1)
        start = fd + 1
    linux.close_range(start, 0xFFFFFFFF)


def finalize(setup: ProcessSetup) -> None:
    """Never returns normally: execs or raises SetupError / OSError / SdkError."""
    process = setup.process
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    user = users.lookup(root, process.user, process.additional_groups)
    env = build_env(process.env, user.home)
    enter_cwd(root, process.cwd, create=setup.create_cwd)
    cwd = process.cwd or "/"
    target = resolve_command(root, process.args, env, cwd)
    # verified either way: in path mode the kernel looks the path (and any #! interpreter)
    # up again, which is only race-free while nothing else runs in the container
    checked = resolve_interpreters(root, target, cwd)
    if not setup.exec_by_fd:
        os.close(checked.fd)
    os.close(root)

    os.setsid()     # never in the caller's session: its terminal's signals are not ours
    if setup.tty_slave is not None:
        make_controlling(setup.tty_slave)
        stdio = [setup.tty_slave] * 3
    else:
        stdio = [fd if fd is not None else setup.devnull for fd in setup.stdio]
    high = [_high_dup(fd) for fd in stdio]

    capsmod.drop_bounding(setup.caps)
    nnp = process.no_new_privileges
    if nnp:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if setup.seccomp_filter is not None and not nnp:
        seccomp.install(setup.seccomp_filter)   # needs CAP_SYS_ADMIN without NNP
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    capsmod.apply(setup.caps)
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)       # a uid change resets it to suid_dumpable
    if setup.seccomp_filter is not None and nnp:
        seccomp.install(setup.seccomp_filter)   # as late as possible, like runc
    arm_parent_death(setup.parent_pidfd)        # a uid change clears the death signal

    default_signals()
    for target_fd, fd in enumerate(high):
        os.dup2(fd, target_fd, inheritable=True)
    keep = {setup.err_fd}
    if setup.exec_by_fd:
        keep.add(checked.fd)
    _close_all_but(keep)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        if setup.exec_by_fd:
            os.execve(checked.fd, checked.argv, env_map(env))
        else:
            os.execve(target.path, target.argv, env_map(env))
    except OSError as exc:
        raise exec_error(target.name, exc) from None
