"""Classic-BPF code generation for a resolved seccomp :class:`Policy`.

Program layout::

    ld  [arch]            ; seccomp_data.arch
    jeq AUDIT_ARCH, +1    ; any other ABI (i386 int 0x80, ...) -> KILL_PROCESS
    ret KILL_PROCESS
    ld  [nr]
    <decision tree>

The decision tree is a balanced binary search (``jge``) over the syscall-number line cut
into intervals that share one outcome, so runs of allowed syscalls cost a single leaf and
a lookup takes about log2(intervals) comparisons. Intervals above the last syscall the
profile names return ENOSYS (runc's stub, so libc falls back from syscalls newer than the
profile), x32 numbers (bit 30 set) are killed as libseccomp does for an absent ABI, and
nr == -1 (a tracer skipping the call) gets the default action.

A leaf is a ``ret`` or, for syscalls with argument conditions, the rules in order, each
ANDing 64-bit comparisons done on the hi and lo 32-bit halves of the argument.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from sdk.runtime.seccomp_parse import (
    ENOSYS,
    RET_ERRNO,
    RET_KILL_PROCESS,
    Condition,
    Policy,
    SyscallPolicy,
)

# classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JGE_K = 0x35
JMP_JSET_K = 0x45
RET_K = 0x06

BPF_MAXINSNS = 4096
MAX_JUMP = 255  # jt/jf are u8

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
U32 = 0xFFFFFFFF

# struct seccomp_data offsets
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16

BAD_ARCH_ACTION = RET_KILL_PROCESS

_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter, host byte order


@dataclass(frozen=True, slots=True)
class Insn:
    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0


def ret(value: int) -> Insn:
    return Insn(RET_K, k=value)


class _Block:
    """Straight-line code whose forward jumps name labels, resolved by ``assemble``."""

    def __init__(self) -> None:
        self._ops: list[tuple[int, str | None, str | None, int]] = []
        self._labels: dict[str, int] = {}
        self._fresh = itertools.count()

    def fresh(self) -> str:
        return f"L{next(self._fresh)}"

    def label(self, name: str) -> None:
        self._labels[name] = len(self._ops)

    def stmt(self, code: int, k: int = 0) -> None:
        self._ops.append((code, None, None, k))

    def jump(self, code: int, k: int, jt: str | None = None, jf: str | None = None) -> None:
        """Conditional jump; a None target means the next instruction."""
        self._ops.append((code, jt, jf, k))

    def ja(self, target: str) -> None:
        self._ops.append((JMP_JA, target, None, 0))

    def assemble(self) -> list[Insn]:
        out: list[Insn] = []
        for pc, (code, jt, jf, k) in enumerate(self._ops):
            if code == JMP_JA:
                out.append(Insn(code, k=self._offset(pc, jt)))
            elif code & 0x07 == 0x05:
                out.append(Insn(code, self._offset(pc, jt), self._offset(pc, jf), k))
            else:
                out.append(Insn(code, k=k))
        return out

    def _offset(self, pc: int, target: str | None) -> int:
        if target is None:
            return 0
        off = self._labels[target] - pc - 1
        if not 0 <= off <= MAX_JUMP:
            raise AssertionError(f"seccomp: jump offset {off} out of range in a rule block")
        return off


def _condition(b: _Block, c: Condition, fail: str) -> None:
    """Fall through when the 64-bit comparison holds, else jump to ``fail``."""
    lo_off = OFF_ARGS + 8 * c.index
    hi_off = lo_off + 4  # little-endian: the high word follows the low one
    v_lo, v_hi = c.value & U32, c.value >> 32
    ok = b.fresh()
    if c.op == "SCMP_CMP_MASKED_EQ":
        mask, datum = c.value, c.value_two
        if datum & ~mask:  # bits outside the mask can never equal the datum
            b.ja(fail)
            return
        for off, m, d in ((hi_off, mask >> 32, datum >> 32), (lo_off, mask & U32, datum & U32)):
            if m == 0:
                continue  # (arg & 0) == 0 always holds
            b.stmt(LD_W_ABS, off)
            if m != U32:
                b.stmt(ALU_AND_K, m)
            b.jump(JMP_JEQ_K, d, None, fail)
    elif c.op == "SCMP_CMP_EQ":
        b.stmt(LD_W_ABS, hi_off)
        b.jump(JMP_JEQ_K, v_hi, None, fail)
        b.stmt(LD_W_ABS, lo_off)
        b.jump(JMP_JEQ_K, v_lo, None, fail)
    elif c.op == "SCMP_CMP_NE":
        b.stmt(LD_W_ABS, hi_off)
        b.jump(JMP_JEQ_K, v_hi, None, ok)
        b.stmt(LD_W_ABS, lo_off)
        b.jump(JMP_JEQ_K, v_lo, fail, None)
    elif c.op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        b.stmt(LD_W_ABS, hi_off)
        b.jump(JMP_JGT_K, v_hi, ok, None)
        b.jump(JMP_JEQ_K, v_hi, None, fail)
        b.stmt(LD_W_ABS, lo_off)
        b.jump(JMP_JGT_K if c.op == "SCMP_CMP_GT" else JMP_JGE_K, v_lo, None, fail)
    elif c.op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        b.stmt(LD_W_ABS, hi_off)
        b.jump(JMP_JGT_K, v_hi, fail, None)
        b.jump(JMP_JEQ_K, v_hi, None, ok)
        b.stmt(LD_W_ABS, lo_off)
        b.jump(JMP_JGE_K if c.op == "SCMP_CMP_LT" else JMP_JGT_K, v_lo, fail, None)
    else:  # parse_profile only lets OPS through
        raise AssertionError(f"unknown seccomp op {c.op}")
    b.label(ok)


def _syscall_code(sp: SyscallPolicy) -> list[Insn]:
    """Each conditional rule in order (first match wins), then the fallback action."""
    if not sp.conditional:
        return [ret(sp.fallback)]
    b = _Block()
    for conds, action in sp.conditional:
        fail = b.fresh()
        for c in conds:
            _condition(b, c, fail)
        b.stmt(RET_K, action)
        b.label(fail)
    b.stmt(RET_K, sp.fallback)
    return b.assemble()


def _intervals(policy: Policy) -> list[tuple[int, list[Insn]]]:
    """Cut [0, 2^32) into (start, code) intervals; equal neighbours are merged."""
    out: list[tuple[int, list[Insn]]] = []

    def add(start: int, code: list[Insn]) -> None:
        if not out or out[-1][1] != code:
            out.append((start, code))

    default = [ret(policy.default_action)]
    pos = 0
    for nr in sorted(policy.syscalls):
        if nr > pos:
            add(pos, default)
        add(nr, _syscall_code(policy.syscalls[nr]))
        pos = nr + 1
    if policy.enosys_above is not None:
        if pos <= policy.enosys_above:
            add(pos, default)
        add(policy.enosys_above + 1, [ret(RET_ERRNO | ENOSYS)])
    elif pos < X32_SYSCALL_BIT:
        add(pos, default)
    add(X32_SYSCALL_BIT, [ret(BAD_ARCH_ACTION)])
    add(U32, default)  # nr == -1: a tracer cancelled the syscall
    return out


def _tree(segs: list[tuple[int, list[Insn]]], lo: int, hi: int) -> list[Insn]:
    """Binary search over segs[lo:hi]; the accumulator holds the syscall number."""
    if hi - lo == 1:
        return segs[lo][1]
    mid = (lo + hi) // 2
    left, right = _tree(segs, lo, mid), _tree(segs, mid, hi)
    pivot = segs[mid][0]
    if len(left) <= MAX_JUMP:
        return [Insn(JMP_JGE_K, len(left), 0, pivot), *left, *right]
    # too far for a u8 offset: jge falls onto a ja (32-bit offset) over the left half
    return [Insn(JMP_JGE_K, 0, 1, pivot), Insn(JMP_JA, k=len(left)), *left, *right]


def generate(policy: Policy) -> list[Insn]:
    segs = _intervals(policy)
    return [
        Insn(LD_W_ABS, k=OFF_ARCH),
        Insn(JMP_JEQ_K, 1, 0, AUDIT_ARCH[policy.arch]),
        ret(BAD_ARCH_ACTION),
        Insn(LD_W_ABS, k=OFF_NR),
        *_tree(segs, 0, len(segs)),
    ]


def encode(program: list[Insn]) -> bytes:
    """The ``struct sock_filter`` array the kernel takes."""
    return b"".join(_SOCK_FILTER.pack(i.code, i.jt, i.jf, i.k) for i in program)


def decode(raw: bytes) -> list[Insn]:
    return [Insn(*f) for f in _SOCK_FILTER.iter_unpack(raw)]


__all__ = ["Insn", "generate", "encode", "decode", "AUDIT_ARCH", "BPF_MAXINSNS",
           "BAD_ARCH_ACTION", "X32_SYSCALL_BIT"]
