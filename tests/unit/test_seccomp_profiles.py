"""Custom Docker-format profiles: validation errors, action and operator semantics, and
a randomized comparison of the generated BPF against a direct evaluation of the rules."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from sdk.errors import InvalidArgument
from sdk.runtime.seccomp import compile_profile, load_profile_file, load_profile_json
from sdk.runtime.seccomp_parse import Condition, Policy, parse_profile, resolve
from sdk.runtime.seccomp_syscalls import X86_64
from tests.unit.test_seccomp import (
    ALLOW,
    ENOSYS,
    EPERM,
    KILL_PROCESS,
    check_well_formed,
    run_filter,
)

KERNEL = (6, 18)
U64 = (1 << 64) - 1


def compile_(profile: dict[str, Any], caps: frozenset[str] = frozenset(), **kw: Any):
    return compile_profile(profile, capabilities=caps, kernel=KERNEL, **kw)


def prof(*rules: dict[str, Any], default: str = "SCMP_ACT_ERRNO", **extra: Any) -> dict:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def rule(names: list[str], action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict:
    return {"names": names, "action": action, **extra}


# --- malformed profiles ------------------------------------------------------------------

@pytest.mark.parametrize("profile, message", [
    ([], "must be a JSON object"),
    ({"syscalls": []}, "defaultAction is missing"),
    (prof(default="SCMP_ACT_FOO"), "defaultAction: unknown action 'SCMP_ACT_FOO'"),
    (prof(defaultErrnoRet=-1), "defaultErrnoRet"),
    (prof({"action": "SCMP_ACT_ALLOW"}), "syscalls[0] has no syscall names"),
    (prof(rule([])), "syscalls[0] has no syscall names"),
    (prof(rule(["read"]), rule(["write"], "SCMP_ACT_NOPE")),
     "syscalls[1] (write): unknown action 'SCMP_ACT_NOPE'"),
    (prof({"names": ["read"]}), "syscalls[0] (read) has no action"),
    (prof(rule(["read"], name="write")), "'name' and 'names'"),
    (prof(rule(["read", 3])), "syscalls[0].names must be a list of non-empty strings"),
    (prof(rule(["read"], args=[{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}])),
     "syscalls[0] (read).args[0]: unknown op 'SCMP_CMP_XX'"),
    (prof(rule(["read"], args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])),
     "args[0].index must be an argument number 0..5"),
    (prof(rule(["read"], args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])),
     "args[0].value must be an integer"),
    (prof(rule(["read"], args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])),
     "args[0].value must be an integer"),
    (prof(rule(["read"], args=[{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}])),
     "args[0].value must be an integer"),
    (prof(rule(["read"], args={"index": 0})), "args must be a list"),
    (prof(rule(["read"], "SCMP_ACT_ERRNO", errnoRet="EPERM")), "errnoRet must be an errno"),
    (prof(rule(["read"], "SCMP_ACT_ERRNO", errnoRet=5000)), "errnoRet must be an errno"),
    (prof(rule(["read"], includes={"minKernel": "four"})), "includes.minKernel"),
    (prof(rule(["read"], includes={"caps": "CAP_SYS_ADMIN"})), "includes.caps"),
    (prof(rule(["read"], excludes=["amd64"])), "excludes must be an object"),
    (prof(rule(["read"], "SCMP_ACT_NOTIFY")), "SCMP_ACT_NOTIFY"),
    (prof(architectures=["SCMP_ARCH_X86_64"],
          archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None}]),
     "mutually exclusive"),
    (prof(architectures=["SCMP_ARCH_PDP11"]), "unknown architecture 'SCMP_ARCH_PDP11'"),
    (prof(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]), "unsupported flag"),
    (prof(syscalls={"names": ["read"]}), "syscalls must be a list"),
    (prof(rule(["read"]), rule(["read"], "SCMP_ACT_KILL")),
     "conflicting unconditional actions for syscall 'read' in syscalls[0] (read) and "
     "syscalls[1] (read)"),
])
def test_malformed(profile: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        compile_(profile)
    assert message in str(e.value)
    assert str(e.value).startswith("invalid seccomp profile: ")


def test_unsupported_arch() -> None:
    with pytest.raises(InvalidArgument, match="unsupported architecture 'mips64'"):
        compile_(prof(), arch="mips64")


def test_unknown_names_are_skipped() -> None:
    p = compile_(prof(rule(["getpid", "no_such_syscall", "mmap2", "socketcall"])))
    assert run_filter(p, X86_64["getpid"]) == ALLOW
    assert run_filter(p, X86_64["read"]) == EPERM
    assert run_filter(p, X86_64["getppid"]) == ENOSYS  # past the last named syscall
    assert compile_(prof(rule(["mmap2"]))).instructions < 10  # nothing left to allow


def test_legacy_name_field_and_architectures() -> None:
    p = compile_(prof({"name": "getpid", "action": "SCMP_ACT_ALLOW"},
                      architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
    assert run_filter(p, X86_64["getpid"]) == ALLOW


# --- actions -----------------------------------------------------------------------------

def test_actions() -> None:
    p = compile_(prof(
        rule(["getpid"]),
        rule(["getppid"], "SCMP_ACT_KILL"),
        rule(["gettid"], "SCMP_ACT_KILL_PROCESS"),
        rule(["getuid"], "SCMP_ACT_KILL_THREAD"),
        rule(["getgid"], "SCMP_ACT_TRAP"),
        rule(["geteuid"], "SCMP_ACT_LOG"),
        rule(["getegid"], "SCMP_ACT_ERRNO", errnoRet=13),
        rule(["getpgrp"], "SCMP_ACT_ERRNO"),
        rule(["getsid"], "SCMP_ACT_TRACE", errnoRet=7),
        default="SCMP_ACT_ERRNO", defaultErrnoRet=38))
    expect = {"getpid": ALLOW, "getppid": 0, "gettid": KILL_PROCESS, "getuid": 0,
              "getgid": 0x00030000, "geteuid": 0x7FFC0000, "getegid": 0x00050000 | 13,
              "getpgrp": EPERM, "getsid": 0x7FF00000 | 7, "getpgid": 0x00050000 | 38}
    for name, value in expect.items():
        assert run_filter(p, X86_64[name]) == value, name


def test_allow_by_default_denylist_has_no_enosys_stub() -> None:
    p = compile_(prof(rule(["mount", "unshare"], "SCMP_ACT_ERRNO"), default="SCMP_ACT_ALLOW"))
    assert run_filter(p, X86_64["mount"]) == EPERM
    assert run_filter(p, X86_64["getpid"]) == ALLOW
    assert run_filter(p, 999) == ALLOW
    assert run_filter(p, 0x40000000) == KILL_PROCESS


def test_default_kill_gets_enosys_stub() -> None:
    p = compile_(prof(rule(["read", "write", "exit_group"]), default="SCMP_ACT_KILL_PROCESS"))
    assert run_filter(p, X86_64["close"]) == KILL_PROCESS
    assert run_filter(p, X86_64["openat"]) == ENOSYS


def test_flags() -> None:
    p = compile_(prof(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert p.flags == 2 | 4


def test_rule_equal_to_default_is_dropped() -> None:
    p = compile_(prof(rule(["getpid"], "SCMP_ACT_ERRNO"), rule(["getpid"])))
    assert run_filter(p, X86_64["getpid"]) == ALLOW


# --- selectors ---------------------------------------------------------------------------

def test_includes_and_excludes() -> None:
    profile = prof(
        rule(["getpid"], includes={"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}),
        rule(["getppid"], excludes={"caps": ["CAP_SYS_ADMIN"]}),
        rule(["gettid"], includes={"arches": ["arm64"]}),
        rule(["getuid"], excludes={"arches": ["amd64"]}),
        rule(["getgid"], includes={"minKernel": "6.19"}),
        rule(["geteuid"], excludes={"minKernel": "5.0"}),
        rule(["getegid"], includes={"arches": ["amd64"], "caps": ["SYS_PTRACE"]}),
    )
    none = compile_(profile)
    admin = compile_(profile, frozenset({"CAP_SYS_ADMIN"}))
    both = compile_(profile, frozenset({"CAP_SYS_ADMIN", "NET_ADMIN", "sys_ptrace"}))
    assert [run_filter(none, X86_64[n]) == ALLOW for n in
            ("getpid", "getppid", "gettid", "getuid", "getgid", "geteuid", "getegid")] == [
        False, True, False, False, False, False, False]
    assert run_filter(admin, X86_64["getpid"]) == run_filter(admin, X86_64["getppid"]) == EPERM
    assert run_filter(both, X86_64["getpid"]) == run_filter(both, X86_64["getegid"]) == ALLOW
    old = compile_profile(profile, capabilities=(), kernel=(4, 19))
    assert run_filter(old, X86_64["geteuid"]) == ALLOW


# --- argument conditions -----------------------------------------------------------------

def cond(op: str, value: int, index: int = 0, value_two: int | None = None) -> dict:
    c = {"index": index, "value": value, "op": f"SCMP_CMP_{op}"}
    if value_two is not None:
        c["valueTwo"] = value_two
    return c


BOUNDARIES = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 1 << 32,
              (1 << 32) + 1, 0x1_FFFFFFFF, 1 << 63, U64 - 1, U64]


def holds(c: Condition, arg: int) -> bool:
    if c.op == "SCMP_CMP_MASKED_EQ":
        return arg & c.value == c.value_two
    return {"SCMP_CMP_EQ": arg == c.value, "SCMP_CMP_NE": arg != c.value,
            "SCMP_CMP_LT": arg < c.value, "SCMP_CMP_LE": arg <= c.value,
            "SCMP_CMP_GT": arg > c.value, "SCMP_CMP_GE": arg >= c.value}[c.op]


def evaluate(policy: Policy, number: int, args: list[int]) -> int:
    """What the rules say, computed directly (the reference for the BPF)."""
    if number >= 0x40000000:
        return policy.default_action if number == 0xFFFFFFFF else KILL_PROCESS
    sp = policy.syscalls.get(number)
    if sp is not None:
        for conds, action in sp.conditional:
            if all(holds(c, args[c.index]) for c in conds):
                return action
        return sp.fallback
    if policy.enosys_above is not None and number > policy.enosys_above:
        return ENOSYS
    return policy.default_action


@pytest.mark.parametrize("op", ["EQ", "NE", "LT", "LE", "GT", "GE"])
@pytest.mark.parametrize("value", BOUNDARIES)
def test_comparisons_on_64_bit_args(op: str, value: int) -> None:
    c = cond(op, value, index=2)
    p = compile_(prof(rule(["getpid"], args=[c])))
    for arg in BOUNDARIES:
        expected = ALLOW if holds(Condition(2, c["op"], value), arg) else EPERM
        assert run_filter(p, X86_64["getpid"], [0, 0, arg]) == expected, (op, value, arg)


@pytest.mark.parametrize("mask, datum", [
    (0x7E020000, 0), (0xFF, 0x12), (0xFFFFFFFF_00000000, 0x1_00000000), (U64, 5),
    (0xF0, 0x0F),  # datum outside the mask: never matches
])
def test_masked_eq(mask: int, datum: int) -> None:
    c = cond("MASKED_EQ", mask, index=5, value_two=datum)
    p = compile_(prof(rule(["getpid"], args=[c])))
    for arg in [*BOUNDARIES, datum, datum | 0x100, 0x12, 0x1_00000012, 0x20000]:
        expected = ALLOW if arg & mask == datum else EPERM
        assert run_filter(p, X86_64["getpid"], [0, 0, 0, 0, 0, arg]) == expected, hex(arg)


def test_conditions_on_distinct_args_are_anded() -> None:
    p = compile_(prof(rule(["getpid"], args=[cond("EQ", 1, 0), cond("EQ", 2, 1)])))
    assert run_filter(p, X86_64["getpid"], [1, 2]) == ALLOW
    assert run_filter(p, X86_64["getpid"], [1, 3]) == EPERM
    assert run_filter(p, X86_64["getpid"], [0, 2]) == EPERM


def test_repeated_arg_index_is_ored_like_runc() -> None:
    p = compile_(prof(rule(["getpid"], args=[cond("EQ", 1), cond("EQ", 7)])))
    assert run_filter(p, X86_64["getpid"], [1]) == ALLOW
    assert run_filter(p, X86_64["getpid"], [7]) == ALLOW
    assert run_filter(p, X86_64["getpid"], [2]) == EPERM


def test_conditional_exception_to_an_unconditional_rule() -> None:
    p = compile_(prof(rule(["getpid"]),
                      rule(["getpid"], "SCMP_ACT_ERRNO", errnoRet=22, args=[cond("GT", 9)])))
    assert run_filter(p, X86_64["getpid"], [3]) == ALLOW
    assert run_filter(p, X86_64["getpid"], [10]) == 0x00050000 | 22


def test_random_profiles_match_reference() -> None:
    rng = random.Random(20261124)
    ops = ["EQ", "NE", "LT", "LE", "GT", "GE", "MASKED_EQ"]
    actions = [("SCMP_ACT_ALLOW", None), ("SCMP_ACT_ERRNO", 13), ("SCMP_ACT_LOG", None),
               ("SCMP_ACT_KILL_PROCESS", None), ("SCMP_ACT_TRAP", None)]
    names = list(X86_64)

    def value() -> int:
        return rng.choice([*BOUNDARIES, rng.getrandbits(64), rng.getrandbits(32)])

    for _ in range(60):
        rules = []
        for _ in range(rng.randint(1, 40)):
            action, errno_ret = rng.choice(actions)
            r = rule(rng.sample(names, rng.randint(1, 4)), action)
            if errno_ret is not None:
                r["errnoRet"] = errno_ret
            indexes = rng.sample(range(6), rng.randint(0, 3))
            if indexes:  # conditional rules may not clash; unconditional ones could
                r["args"] = [cond(rng.choice(ops), value(), i, value()) for i in indexes]
            rules.append(r)
        default = rng.choice(["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL"])
        profile = prof(*rules, default=default)
        try:
            policy = resolve(parse_profile(profile), capabilities=frozenset(), arch="x86_64",
                             kernel=KERNEL)
        except InvalidArgument:  # two unconditional rules disagree: not a valid profile
            continue
        program = compile_(profile)
        check_well_formed(program.filter)
        probe = [n for r in rules for n in r["names"]] + rng.sample(range(0, 600), 20)
        for number in probe:
            number = X86_64.get(number, number) if isinstance(number, str) else number
            for _ in range(6):
                args = [value() for _ in range(6)]
                assert run_filter(program, number, args) == evaluate(policy, number, args)


# --- files -------------------------------------------------------------------------------

def test_load_profile_file(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text(json.dumps(prof(rule(["getpid"]))))
    doc = load_profile_file(str(good))
    assert doc["syscalls"][0]["names"] == ["getpid"]
    assert run_filter(compile_(doc), X86_64["getpid"]) == ALLOW


def test_load_profile_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"opening seccomp profile \(.*missing.json\)"):
        load_profile_file(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="decoding seccomp profile .*bad.json failed"):
        load_profile_file(str(bad))
    bad.write_text(json.dumps(prof(rule(["read"], "SCMP_ACT_MAYBE"))))
    with pytest.raises(InvalidArgument, match=r"syscalls\[0\] \(read\): unknown action"):
        load_profile_file(str(bad))
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        load_profile_json("[1, 2]")


def test_docker_profile_round_trips_through_json() -> None:
    from sdk.runtime.seccomp import default_profile

    text = json.dumps(default_profile(), indent=1)
    doc = load_profile_json(text)
    a = compile_(doc, frozenset({"CAP_CHOWN"}))
    b = compile_(default_profile(), frozenset({"CAP_CHOWN"}))
    assert a.filter == b.filter


def test_large_profile_uses_long_jumps() -> None:
    rules = [rule([name], args=[cond("EQ", number, 1)]) for name, number in X86_64.items()]
    profile = prof(*rules)
    program = compile_(profile)
    check_well_formed(program.filter)
    assert 1000 < program.instructions <= 4096
    assert any(code == 0x05 for code, *_ in struct.iter_unpack("=HBBI", program.filter))
    policy = resolve(parse_profile(profile), capabilities=frozenset(), arch="x86_64",
                     kernel=KERNEL)
    for number in [*X86_64.values(), 1000, 0x40000001]:
        for args in ([0, number], [0, number + 1], [number, 0]):
            assert run_filter(program, number, args) == evaluate(policy, number, args)


def test_profile_over_the_instruction_limit() -> None:
    # distinct per syscall, so neighbouring intervals cannot be merged
    rules = [rule([name], args=[cond("EQ", number + v, 1)])
             for name, number in X86_64.items() for v in (1, 2, 3)]
    with pytest.raises(InvalidArgument, match="over the kernel's limit of 4096"):
        compile_(prof(*rules))
