"""The v2 device filter: v1 rule folding, and the assembled eBPF program's answers.

``run`` interprets the few instructions ``assemble`` emits, so every request can be
checked against the v1 semantics (``DevicePolicy.allows``) and against hand-written
expectations for Docker's default rules.  The kernel side (loading, attaching,
enforcement) is covered by tests/root/test_cgroups.py on a real cgroup2 directory.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from sdk.runtime.cgroups_devices import (
    ACCESS_BITS,
    TYPE_BITS,
    DevicePolicy,
    assemble,
    emulate,
    rule_line,
    v1_writes,
)
from sdk.runtime.defaults import DEFAULT_DEVICE_RULES
from sdk.runtime.spec import DeviceRule

U32 = 0xFFFFFFFF


def run(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Interpret ``code`` on one bpf_cgroup_dev_ctx."""
    acc = sum(ACCESS_BITS[c] for c in set(access))
    ctx = struct.pack("<III", (acc << 16) | TYPE_BITS[kind], major, minor)
    regs = [0] * 11
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    pc = 0
    for _ in range(10_000):
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if op == 0x61:                                   # ldxw dst, [src+off] (src = ctx)
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] = (regs[dst] & imm) & U32
        elif op == 0x74:
            regs[dst] = (regs[dst] & U32) >> imm
        elif op == 0xBC:
            regs[dst] = regs[src] & U32
        elif op == 0xB7:
            regs[dst] = imm
        elif op in (0x15, 0x55, 0x5D):
            other = regs[src] if op == 0x5D else imm
            equal = regs[dst] == other
            if equal == (op == 0x15):
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("program did not exit")


REQUESTS = list(itertools.product(
    "bc", (1, 5, 8, 10, 136), (0, 3, 5, 229), ("r", "w", "m", "rw", "rwm", "wm")))


def check(rules: tuple[DeviceRule, ...]) -> tuple[DevicePolicy, bytes]:
    policy = emulate(rules)
    code = assemble(policy)
    assert len(code) % 8 == 0 and len(code) // 8 < 4096
    for req in REQUESTS:
        assert run(code, *req) == int(policy.allows(*req)), req
    return policy, code


def test_docker_default_rules() -> None:
    policy, code = check(tuple(DEFAULT_DEVICE_RULES))
    assert not policy.default_allow
    assert run(code, "c", 1, 3, "rw") == 1                 # /dev/null
    assert run(code, "c", 1, 5, "rwm") == 1                # /dev/zero
    assert run(code, "c", 136, 3, "rw") == 1               # /dev/pts/3
    assert run(code, "c", 10, 229, "r") == 0               # /dev/fuse: allowed then denied
    assert run(code, "b", 8, 0, "r") == 0                  # a disk
    assert run(code, "b", 8, 0, "m") == 1                  # mknod: b *:* m
    assert run(code, "c", 5, 3, "w") == 0


def test_privileged_allows_everything() -> None:
    policy, code = check((DeviceRule(True),))
    assert policy.default_allow and policy.exceptions == ()
    assert all(run(code, *req) == 1 for req in REQUESTS)


def test_deny_list_matches_any_access_bit() -> None:
    # allow-all with a read/write exception: the kernel denies a request sharing any bit
    policy, code = check((DeviceRule(True), DeviceRule(False, "c", 10, 229, "rw")))
    assert run(code, "c", 10, 229, "r") == 0
    assert run(code, "c", 10, 229, "rwm") == 0
    assert run(code, "c", 10, 229, "m") == 1
    assert run(code, "b", 10, 229, "r") == 1


def test_allow_list_needs_every_access_bit() -> None:
    policy, code = check((DeviceRule(False), DeviceRule(True, "c", 1, 5, "r")))
    assert run(code, "c", 1, 5, "r") == 1
    assert run(code, "c", 1, 5, "rw") == 0
    assert run(code, "c", 1, 5, "w") == 0


def test_folding_follows_v1() -> None:
    rules = (DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"),
             DeviceRule(False, "c", 1, 3, "w"), DeviceRule(True, "b", -1, -1, "m"))
    policy, code = check(rules)
    assert run(code, "c", 1, 3, "r") == 1
    assert run(code, "c", 1, 3, "w") == 0                  # bit removed from the exception
    assert run(code, "b", 259, 1, "m") == 1
    # a later "a" resets everything before it
    policy, _ = check(rules + (DeviceRule(True, "a"),))
    assert policy.default_allow and policy.exceptions == ()


def test_no_rules_means_no_restriction() -> None:
    assert v1_writes(()) == []
    assert emulate(()).default_allow


@pytest.mark.parametrize(("rule", "line"), [
    (DeviceRule(True), "a"), (DeviceRule(True, "c", 1, 3, "rwm"), "c 1:3 rwm"),
    (DeviceRule(True, "c", 136, -1, "rwm"), "c 136:* rwm"),
    (DeviceRule(False, "b", -1, -1, "m"), "b *:* m")])
def test_rule_lines(rule: DeviceRule, line: str) -> None:
    assert rule_line(rule) == line
