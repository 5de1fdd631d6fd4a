"""Docker's default seccomp profile and its compiled BPF, checked by running the program
in a small classic-BPF interpreter on synthetic ``struct seccomp_data``."""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence

import pytest

from sdk.runtime import seccomp
from sdk.runtime.defaults import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from sdk.runtime.seccomp import SeccompProgram, compile_profile, default_profile
from sdk.runtime.seccomp_syscalls import AARCH64, X86_64

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
EPERM = 0x00050000 | 1
ENOSYS = 0x00050000 | 38
KERNEL = (6, 18)


def run_filter(program: SeccompProgram | bytes, nr: int, args: Sequence[int] = (),
               arch: int = AUDIT_ARCH_X86_64) -> int:
    """Execute a seccomp classic-BPF program; return the SECCOMP_RET_* value."""
    raw = program.filter if isinstance(program, SeccompProgram) else program
    insns = list(struct.iter_unpack("=HBBI", raw))
    full = [*args, *([0] * (6 - len(args)))]
    data = struct.pack("=II Q 6Q", nr & 0xFFFFFFFF, arch, 0x401000, *full)
    acc, pc, steps = 0, 0, 0
    while True:
        assert 0 <= pc < len(insns), f"pc {pc} out of the program"
        steps += 1
        assert steps <= len(insns), "a seccomp program only jumps forward"
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):
            cond = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if cond else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def check_well_formed(raw: bytes) -> None:
    insns = list(struct.iter_unpack("=HBBI", raw))
    assert 0 < len(insns) <= 4096
    for pc, (code, jt, jf, k) in enumerate(insns):
        if code == 0x05:
            assert pc + 1 + k < len(insns)
        elif code & 0x07 == 0x05:
            assert pc + 1 + max(jt, jf) < len(insns)
    assert insns[-1][0] == 0x06, "the program must end with a ret"


def nr(name: str) -> int:
    return X86_64[name]


@pytest.fixture(scope="module")
def docker() -> SeccompProgram:
    return compile_profile(default_profile(), capabilities=DEFAULT_CAPABILITIES, kernel=KERNEL)


@pytest.fixture(scope="module")
def admin() -> SeccompProgram:
    caps = DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"}
    return compile_profile(default_profile(), capabilities=caps, kernel=KERNEL)


# --- the profile as data -----------------------------------------------------------------

def _rules_naming(name: str) -> list[dict]:
    return [r for r in default_profile()["syscalls"] if name in r["names"]]


def test_profile_shape() -> None:
    p = default_profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert {"architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]} in p["archMap"]
    unconditional = p["syscalls"][0]
    assert unconditional["action"] == "SCMP_ACT_ALLOW" and "args" not in unconditional
    assert 355 <= len(unconditional["names"]) <= 365
    assert default_profile() is not p  # a fresh copy each call
    p["syscalls"].clear()
    assert default_profile()["syscalls"]


def test_profile_blocks_what_docker_blocks() -> None:
    allowed = set(default_profile()["syscalls"][0]["names"])
    for name in ("mount", "umount2", "unshare", "setns", "pivot_root", "bpf", "perf_event_open",
                 "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load",
                 "kexec_file_load", "open_by_handle_at", "io_uring_setup", "io_uring_enter",
                 "io_uring_register", "fsopen", "fsmount", "move_mount", "open_tree", "clone",
                 "clone3", "ptrace", "personality", "socket", "reboot", "init_module",
                 "swapon", "lsm_set_self_attr"):
        assert name not in allowed, name


def test_mount_needs_cap_sys_admin() -> None:
    (rule,) = _rules_naming("mount")
    assert rule["includes"] == {"caps": ["CAP_SYS_ADMIN"]}


def test_clone_namespace_flags_condition() -> None:
    rules = _rules_naming("clone")
    conditional = [r for r in rules if r.get("args")]
    assert len(conditional) == 2  # the s390 variant checks arg 1
    native = next(r for r in conditional if "includes" not in r)
    assert native["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    assert native["excludes"] == {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}
    (clone3,) = [r for r in _rules_naming("clone3") if r["action"] == "SCMP_ACT_ERRNO"]
    assert clone3["errnoRet"] == 38 and clone3["excludes"] == {"caps": ["CAP_SYS_ADMIN"]}


def test_ptrace_rules() -> None:
    rules = _rules_naming("ptrace")
    # Docker allows ptrace on kernels >= 4.8 (seccomp runs after the tracer there) and
    # otherwise only with CAP_SYS_PTRACE, which also unlocks kcmp and pidfd_getfd.
    assert {"minKernel": "4.8"} in [r.get("includes") for r in rules]
    (gated,) = [r for r in rules if r.get("includes", {}).get("caps")]
    assert gated["includes"]["caps"] == ["CAP_SYS_PTRACE"]
    assert {"kcmp", "pidfd_getfd", "process_madvise"} <= set(gated["names"])


def test_personality_values() -> None:
    rules = _rules_naming("personality")
    values = sorted(r["args"][0]["value"] for r in rules)
    assert values == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(r["args"][0]["op"] == "SCMP_CMP_EQ" and r["args"][0]["index"] == 0
               for r in rules)


def test_syscall_tables() -> None:
    assert (X86_64["read"], X86_64["execve"], X86_64["seccomp"], X86_64["clone3"]) == (
        0, 59, 317, 435)
    assert (AARCH64["openat"], AARCH64["clone"], AARCH64["seccomp"]) == (56, 220, 277)
    assert "open" not in AARCH64 and X86_64["listns"] == AARCH64["listns"] == 470
    assert len(set(X86_64.values())) == len(X86_64)


# --- the compiled program ----------------------------------------------------------------

def test_program_size_and_form(docker: SeccompProgram, admin: SeccompProgram) -> None:
    for prog in (docker, admin):
        check_well_formed(prog.filter)
        assert prog.instructions < 400  # interval tree: far below the 4096 limit
        assert prog.flags == 0
    aarch64 = compile_profile(default_profile(), capabilities=DEFAULT_CAPABILITIES,
                              arch="aarch64", kernel=KERNEL)
    check_well_formed(aarch64.filter)


@pytest.mark.parametrize("name", [
    "read", "write", "openat", "close", "mmap", "execve", "exit_group", "getpid", "futex",
    "rt_sigaction", "arch_prctl", "modify_ldt", "chown", "mknod", "setuid", "capset",
    "clock_gettime", "fchmodat2", "statx", "landlock_create_ruleset", "ptrace",
    "process_vm_readv", "chroot", "name_to_handle_at", "seccomp", "prctl", "mseal",
])
def test_allowed(docker: SeccompProgram, name: str) -> None:
    assert run_filter(docker, nr(name)) == ALLOW


@pytest.mark.parametrize("name", [
    "mount", "umount2", "unshare", "setns", "pivot_root", "bpf", "perf_event_open", "keyctl",
    "add_key", "request_key", "userfaultfd", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen",
    "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "reboot",
    "init_module", "finit_module", "delete_module", "swapon", "syslog", "settimeofday",
    "clock_settime", "kcmp", "pidfd_getfd", "iopl", "ioperm", "acct", "vhangup", "mbind",
    "sethostname", "setdomainname", "quotactl", "lookup_dcookie", "fanotify_init",
    "lsm_set_self_attr", "uselib", "_sysctl", "migrate_pages", "move_pages",
])
def test_blocked_with_eperm(docker: SeccompProgram, name: str) -> None:
    assert run_filter(docker, nr(name)) == EPERM


def test_sys_admin_unlocks(docker: SeccompProgram, admin: SeccompProgram) -> None:
    for name in ("mount", "umount2", "unshare", "setns", "sethostname", "fsopen", "bpf",
                 "perf_event_open", "syslog", "clone3", "lsm_get_self_attr"):
        assert run_filter(admin, nr(name)) == ALLOW, name
    for name in ("pivot_root", "keyctl", "kexec_load", "reboot", "init_module"):
        assert run_filter(admin, nr(name)) == EPERM, name  # other caps or never


def test_cap_gated_syscalls() -> None:
    for cap, names in {"CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
                       "CAP_SYS_TIME": ("settimeofday", "clock_settime"),
                       "CAP_SYS_BOOT": ("reboot",), "CAP_SYS_MODULE": ("init_module",),
                       "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
                       "CAP_SYS_NICE": ("mbind", "set_mempolicy_home_node"),
                       "CAP_BPF": ("bpf",), "CAP_PERFMON": ("perf_event_open",)}.items():
        prog = compile_profile(default_profile(), capabilities=DEFAULT_CAPABILITIES | {cap},
                               kernel=KERNEL)
        for name in names:
            assert run_filter(prog, nr(name)) == ALLOW, (cap, name)
    without_chroot = compile_profile(default_profile(), kernel=KERNEL,
                                     capabilities=DEFAULT_CAPABILITIES - {"CAP_SYS_CHROOT"})
    assert run_filter(without_chroot, nr("chroot")) == EPERM


def test_ptrace_needs_cap_on_old_kernels() -> None:
    old = compile_profile(default_profile(), capabilities=DEFAULT_CAPABILITIES, kernel=(4, 4))
    assert run_filter(old, nr("ptrace")) == EPERM
    assert run_filter(old, nr("process_vm_writev")) == EPERM
    traced = compile_profile(default_profile(), kernel=(4, 4),
                             capabilities=DEFAULT_CAPABILITIES | {"CAP_SYS_PTRACE"})
    assert run_filter(traced, nr("ptrace")) == ALLOW


def test_clone_namespace_flags(docker: SeccompProgram, admin: SeccompProgram) -> None:
    sigchld, thread = 17, 0x003D0F00  # fork(), pthread_create()
    for flags in (sigchld, thread, 0x00100000 | sigchld, 1 << 32):
        assert run_filter(docker, nr("clone"), [flags]) == ALLOW, hex(flags)
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                 0x40000000):
        assert run_filter(docker, nr("clone"), [flag | sigchld]) == EPERM, hex(flag)
        assert run_filter(admin, nr("clone"), [flag | sigchld]) == ALLOW, hex(flag)
    assert run_filter(docker, nr("clone3")) == ENOSYS
    assert run_filter(admin, nr("clone3")) == ALLOW


def test_personality_args(docker: SeccompProgram) -> None:
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run_filter(docker, nr("personality"), [value]) == ALLOW, hex(value)
    for value in (1, 0x0040000, 0x0400000, 0xFFFFFFFE, 0x1_0000_0000, 0xFFFFFFFF_FFFFFFFF):
        assert run_filter(docker, nr("personality"), [value]) == EPERM, hex(value)


def test_socket_refuses_vsock_only(docker: SeccompProgram) -> None:
    for family in (1, 2, 10, 16, 17, 39, 41, 40 | 1 << 32):
        assert run_filter(docker, nr("socket"), [family, 1, 0]) == ALLOW, family
    assert run_filter(docker, nr("socket"), [40, 1, 0]) == EPERM  # AF_VSOCK


def test_arch_and_abi_checks(docker: SeccompProgram) -> None:
    assert run_filter(docker, nr("getpid"), arch=AUDIT_ARCH_I386) == KILL_PROCESS
    assert run_filter(docker, nr("getpid"), arch=AUDIT_ARCH_AARCH64) == KILL_PROCESS
    assert run_filter(docker, 0x40000000 | nr("getpid")) == KILL_PROCESS  # x32
    assert run_filter(docker, 0x7FFFFFFF) == KILL_PROCESS
    assert run_filter(docker, -1) == EPERM  # a tracer skipping the syscall


def test_newer_syscalls_get_enosys(docker: SeccompProgram) -> None:
    # runc's stub: numbers past the last one the profile names answer ENOSYS (so libc
    # falls back); holes below it keep the default EPERM.
    last = max(X86_64[n] for r in default_profile()["syscalls"] for n in r["names"]
               if n in X86_64 and not r.get("includes", {}).get("caps"))
    assert run_filter(docker, last) == ALLOW
    for number in (last + 1, 500, 1000, 0x3FFFFFFF):
        assert run_filter(docker, number) == ENOSYS, number
    assert run_filter(docker, 400) == EPERM  # the 337..423 hole


def test_every_x86_64_syscall_matches_the_profile(docker: SeccompProgram) -> None:
    allowed = set(default_profile()["syscalls"][0]["names"]) | {
        "arch_prctl", "modify_ldt", "ptrace", "process_vm_readv", "process_vm_writev",
        "chroot"}
    conditional = {"clone", "clone3", "personality", "socket"}
    last = max(X86_64[n] for n in allowed if n in X86_64)
    for name, number in X86_64.items():
        if name in conditional:
            continue
        expected = ALLOW if name in allowed else EPERM if number <= last else ENOSYS
        assert run_filter(docker, number) == expected, name


def test_aarch64_program() -> None:
    prog = compile_profile(default_profile(), capabilities=DEFAULT_CAPABILITIES,
                           arch="aarch64", kernel=KERNEL)
    run = lambda name, *args: run_filter(prog, AARCH64[name], args,  # noqa: E731
                                         arch=AUDIT_ARCH_AARCH64)
    assert run("openat") == run("execve") == run("getpid") == ALLOW
    assert run("mount") == run("unshare") == run("keyctl") == EPERM
    assert run("clone", 0x10000000) == EPERM and run("clone", 17) == ALLOW
    assert run("clone3") == ENOSYS
    assert run_filter(prog, 39, arch=AUDIT_ARCH_X86_64) == KILL_PROCESS


def test_all_capabilities_program() -> None:
    prog = compile_profile(default_profile(), capabilities=ALL_CAPABILITIES, kernel=KERNEL)
    for name in ("mount", "unshare", "ptrace", "reboot", "bpf", "init_module", "kcmp"):
        assert run_filter(prog, nr(name)) == ALLOW, name
    for name in ("keyctl", "kexec_load", "userfaultfd", "io_uring_setup", "swapon"):
        assert run_filter(prog, nr(name)) == EPERM, name


def test_compile_is_fast_and_cached() -> None:
    caps = frozenset(DEFAULT_CAPABILITIES | {"CAP_NET_ADMIN"})
    t0 = time.perf_counter()
    first = seccomp.default_program(caps)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = seccomp.default_program(set(caps))
    warm = time.perf_counter() - t0
    assert again is first
    assert cold < 0.25 and warm < 0.005
    assert seccomp.build(caps) == first.filter
    p1 = compile_profile(default_profile(), capabilities=caps)
    assert compile_profile(default_profile(), capabilities=caps) is p1
    assert p1.filter == first.filter
    # capability names with or without the CAP_ prefix, any case
    assert seccomp.default_program([c.removeprefix("CAP_").lower() for c in caps]) is first
