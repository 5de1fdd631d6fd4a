"""Device cgroup rules: ``devices.allow``/``devices.deny`` lines on v1, eBPF on v2.

cgroup v2 has no device files; the kernel asks a ``BPF_PROG_TYPE_CGROUP_DEVICE``
program attached to the cgroup instead (it works on any cgroup2 directory, with or
without controllers, so the empty unified hierarchy of a hybrid host accepts it too).

The program must give the same answers as v1 would for the same rule list, so the
rules are first folded the way the v1 kernel folds them (``emulate``): an "a" rule
resets to allow-all or deny-all, and every other rule adds or removes an exception.
The program then tests each exception and returns the opposite of the default when
one matches.  Matching follows the kernel: in deny-all mode a request is allowed only
if *all* its access bits are in an exception; in allow-all mode it is denied if *any*
bit is (``match_exception`` vs ``match_exception_partial`` in security/device_cgroup.c).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sdk.errors import InvalidArgument, RuntimeFailure
from sdk.runtime.spec import DeviceRule

ACCESS_BITS = {"m": 1, "r": 2, "w": 4}     # BPF_DEVCG_ACC_MKNOD / READ / WRITE
TYPE_BITS = {"b": 1, "c": 2}               # BPF_DEVCG_DEV_BLOCK / CHAR


def validate_rules(rules: Sequence[DeviceRule]) -> None:
    for rule in rules:
        if rule.kind not in ("a", "b", "c"):
            raise InvalidArgument(f"invalid device rule {rule_line(rule)!r}: type must be "
                                  "a, b or c")
        if not rule.access or set(rule.access) - set("rwm"):
            raise InvalidArgument(f"invalid device rule {rule_line(rule)!r}: access must be "
                                  "a combination of r, w and m")
        if rule.major < -1 or rule.minor < -1:
            raise InvalidArgument(f"invalid device rule {rule_line(rule)!r}: negative "
                                  "device number (use -1 for '*')")


def rule_line(rule: DeviceRule) -> str:
    """The v1 line: "a", or "c 1:3 rwm" with -1 written as "*"."""
    if rule.kind == "a":
        return "a"
    major = "*" if rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor < 0 else str(rule.minor)
    return f"{rule.kind} {major}:{minor} {rule.access}"


def v1_writes(rules: Sequence[DeviceRule]) -> list[tuple[str, str]]:
    """(file, line) pairs: deny everything first, then each rule in order."""
    if not rules:
        return []
    out = [("devices.deny", "a")]
    out += [("devices.allow" if r.allow else "devices.deny", rule_line(r)) for r in rules]
    return out


# ---- v1 semantics -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DevException:
    kind: int          # TYPE_BITS value
    major: int         # -1 = any
    minor: int
    access: int        # ACCESS_BITS mask


@dataclass(frozen=True, slots=True)
class DevicePolicy:
    default_allow: bool
    exceptions: tuple[DevException, ...]

    def allows(self, kind: str, major: int, minor: int, access: str) -> bool:
        """What the v1 kernel answers for one request (used to test the program)."""
        acc = _mask(access)
        for ex in self.exceptions:
            if ex.kind != TYPE_BITS[kind] or ex.major not in (-1, major) or \
                    ex.minor not in (-1, minor):
                continue
            if self.default_allow and acc & ex.access:
                return False
            if not self.default_allow and not acc & ~ex.access:
                return True
        return self.default_allow


def _mask(access: str) -> int:
    return sum(ACCESS_BITS[c] for c in set(access))


def emulate(rules: Sequence[DeviceRule]) -> DevicePolicy:
    """Fold ``v1_writes(rules)`` the way the v1 kernel does (devcgroup_update_access)."""
    default_allow = not rules            # v1_writes starts with "deny a" when there are rules
    table: dict[tuple[int, int, int], int] = {}      # (type, major, minor) -> access
    for rule in rules:
        if rule.kind == "a":
            default_allow, table = rule.allow, {}
            continue
        key = (TYPE_BITS[rule.kind], rule.major, rule.minor)
        acc = _mask(rule.access)
        if rule.allow == default_allow:              # remove (part of) an exception
            left = table.get(key, 0) & ~acc
            if left:
                table[key] = left
            else:
                table.pop(key, None)
        else:
            table[key] = table.get(key, 0) | acc
    return DevicePolicy(default_allow, tuple(DevException(k, ma, mi, a)
                                             for (k, ma, mi), a in table.items()))


# ---- the eBPF program -------------------------------------------------------------------
# struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major, minor; }

R0, R1, R2, R3, R4, R5 = range(6)
LDXW = 0x61          # BPF_LDX | BPF_MEM | BPF_W
AND32_K = 0x54       # BPF_ALU | BPF_AND | BPF_K
RSH32_K = 0x74       # BPF_ALU | BPF_RSH | BPF_K
MOV32_X = 0xBC       # BPF_ALU | BPF_MOV | BPF_X
MOV64_K = 0xB7       # BPF_ALU64 | BPF_MOV | BPF_K
JEQ_K = 0x15         # BPF_JMP | BPF_JEQ | BPF_K
JNE_K = 0x55
JNE_X = 0x5D
EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_SKIP = -1           # placeholder jump offset: "to the end of this exception's block"


def _exception_block(ex: DevException, default_allow: bool) -> list[bytes]:
    """Tests that jump past the block on a mismatch, then return the non-default."""
    ops: list[tuple[int, int, int, int, int]] = [(JNE_K, R2, 0, _SKIP, ex.kind)]
    if ex.access != 7:                               # rwm: every request matches
        ops += [(MOV32_X, R1, R3, 0, 0), (AND32_K, R1, 0, 0, ex.access)]
        ops.append((JEQ_K, R1, 0, _SKIP, 0) if default_allow   # no bit in common
                   else (JNE_X, R1, R3, _SKIP, 0))              # a bit outside it
    if ex.major >= 0:
        ops.append((JNE_K, R4, 0, _SKIP, ex.major))
    if ex.minor >= 0:
        ops.append((JNE_K, R5, 0, _SKIP, ex.minor))
    ops += [(MOV64_K, R0, 0, 0, 0 if default_allow else 1), (EXIT, 0, 0, 0, 0)]
    return [_insn(code, dst, src, len(ops) - i - 1 if off == _SKIP else off, imm)
            for i, (code, dst, src, off, imm) in enumerate(ops)]


def assemble(policy: DevicePolicy) -> bytes:
    """The program for ``policy``: returns 1 (allow) or 0 (deny)."""
    prog = [
        _insn(LDXW, R2, R1, 0), _insn(AND32_K, R2, imm=0xFFFF),   # r2 = type
        _insn(LDXW, R3, R1, 0), _insn(RSH32_K, R3, imm=16),       # r3 = access
        _insn(LDXW, R4, R1, 4),                                   # r4 = major
        _insn(LDXW, R5, R1, 8),                                   # r5 = minor
    ]
    for ex in policy.exceptions:
        prog += _exception_block(ex, policy.default_allow)
    prog += [_insn(MOV64_K, R0, imm=1 if policy.default_allow else 0), _insn(EXIT)]
    return b"".join(prog)


# ---- loading and attaching --------------------------------------------------------------

_NR_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "ppc64le": 361, "s390x": 351,
           "riscv64": 280, "loongarch64": 280}
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: bytes) -> int:
    nr = _NR_BPF.get(os.uname().machine)
    if nr is None:
        raise RuntimeFailure(f"device cgroup eBPF: unknown bpf(2) number on "
                             f"{os.uname().machine}")
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def load_program(code: bytes) -> int:
    """BPF_PROG_LOAD; the fd of the loaded program.  The verifier log goes in errors."""
    if sys.byteorder != "little":
        raise RuntimeFailure("device cgroup eBPF: big-endian hosts are not supported")
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(65536)
    for level in (0, 1):
        attr = struct.pack(
            "<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
            ctypes.addressof(insns), ctypes.addressof(license_), level,
            len(log) if level else 0, ctypes.addressof(log) if level else 0, 0, 0,
            b"berth_devices", 0, BPF_CGROUP_DEVICE)
        try:
            return _bpf(BPF_PROG_LOAD, attr)
        except OSError as exc:
            if level == 0 and exc.errno == errno.EACCES:
                continue                       # verifier rejected it: rerun for the log
            hint = " (needs CAP_SYS_ADMIN or CAP_BPF)" if exc.errno == errno.EPERM else ""
            text = log.value.decode(errors="replace").strip()
            raise RuntimeFailure(f"loading the device cgroup eBPF program failed: "
                                 f"{exc.strerror}{hint}" + (f": {text}" if text else ""))
    raise AssertionError("unreachable")


def attach_device_filter(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup2 dir ``cgroup_dir``.

    Attached with BPF_F_ALLOW_MULTI, so programs of ancestors (systemd's, say) still run
    and all must allow.  The attachment holds the program; it goes away with the cgroup.
    """
    validate_rules(rules)
    prog = load_program(assemble(emulate(rules)))
    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", dirfd, prog, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI, 0))
        except OSError as exc:
            raise RuntimeFailure(f"attaching the device cgroup eBPF program to {cgroup_dir} "
                                 f"failed: {exc.strerror}") from None
        finally:
            os.close(dirfd)
    finally:
        os.close(prog)
