"""Docker-format seccomp profiles: validation into a typed model, then resolution of the
rules that apply to one container (its capabilities, the architecture, the kernel).

The format is what ``docker run --security-opt seccomp=FILE`` accepts (moby
``api/types`` ``Seccomp``): ``defaultAction``, ``defaultErrnoRet``, ``architectures`` or
``archMap``, ``flags`` and ``syscalls`` entries with ``names``, ``action``, ``errnoRet``,
``args`` and ``includes``/``excludes`` (``caps``, ``arches``, ``minKernel``).

Resolution follows Docker (which filters entries by capabilities, Go architecture name
and kernel version) and runc/libseccomp (unknown syscall names are skipped; rules whose
action equals the default are dropped; argument conditions on distinct indexes are ANDed,
but when an index repeats each condition becomes its own rule, i.e. they are ORed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdk.errors import InvalidArgument
from sdk.runtime.seccomp_syscalls import TABLES

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF

EPERM = 1
ENOSYS = 38
MAX_ERRNO = 4095
U64_MAX = (1 << 64) - 1

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_ALLOW": RET_ALLOW,
}
# Actions that let unknown syscalls through: no ENOSYS stub for them (runc's rule).
PERMISSIVE = frozenset({RET_ALLOW, RET_LOG, RET_TRACE})

OPS = frozenset({"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                 "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"})

FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}

ARCHES = frozenset({
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
})

# Docker matches includes/excludes "arches" against Go's runtime.GOARCH.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True, slots=True)
class Condition:
    index: int  # syscall argument 0..5
    op: str  # one of OPS
    value: int  # u64; the mask for SCMP_CMP_MASKED_EQ
    value_two: int = 0  # u64; the datum for SCMP_CMP_MASKED_EQ


@dataclass(frozen=True, slots=True)
class Selector:
    """An ``includes`` or ``excludes`` block."""

    caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    where: str  # "syscalls[3]", for error messages
    names: tuple[str, ...]
    action: int  # full SECCOMP_RET_* value, errno included
    conditions: tuple[Condition, ...]
    includes: Selector
    excludes: Selector

    def applies(self, caps: frozenset[str], goarch: str, kernel: tuple[int, int]) -> bool:
        """Docker's filter: any excluded cap or arch, or a satisfied excluded minKernel,
        drops the rule; includes need every cap, one of the arches and the kernel."""
        ex, inc = self.excludes, self.includes
        if goarch in ex.arches or ex.caps & caps:
            return False
        if ex.min_kernel is not None and kernel >= ex.min_kernel:
            return False
        if inc.arches and goarch not in inc.arches:
            return False
        if not inc.caps <= caps:
            return False
        return inc.min_kernel is None or kernel >= inc.min_kernel

    def condition_sets(self) -> tuple[tuple[Condition, ...], ...]:
        """ANDed condition groups, ORed together (runc splits repeated indexes)."""
        indexes = [c.index for c in self.conditions]
        if len(set(indexes)) == len(indexes):
            return (self.conditions,)
        return tuple((c,) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Profile:
    default_action: int
    flags: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class SyscallPolicy:
    """What one syscall number gets: the first matching conditional rule, else fallback."""

    name: str
    conditional: tuple[tuple[tuple[Condition, ...], int], ...]
    fallback: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A profile resolved for one container: only this arch's numbers, no selectors."""

    arch: str
    default_action: int
    flags: int
    syscalls: dict[int, SyscallPolicy]
    enosys_above: int | None  # numbers above this (but not x32) get ERRNO(ENOSYS)


def _fail(msg: str) -> InvalidArgument:
    return InvalidArgument(f"invalid seccomp profile: {msg}")


def _u64(raw: Any, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= U64_MAX:
        raise _fail(f"{what} must be an integer between 0 and 2^64-1, got {raw!r}")
    return raw


def _errno(raw: Any, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_ERRNO:
        raise _fail(f"{what} must be an errno between 0 and {MAX_ERRNO}, got {raw!r}")
    return raw


def _strings(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise _fail(f"{what} must be a list of non-empty strings, got {raw!r}")
    return raw


def _action(raw: Any, errno_ret: int | None, what: str) -> int:
    if raw == "SCMP_ACT_NOTIFY":
        raise _fail(f"{what}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported")
    if not isinstance(raw, str) or raw not in ACTIONS:
        raise _fail(f"{what}: unknown action {raw!r} (one of {', '.join(sorted(ACTIONS))})")
    base = ACTIONS[raw]
    if base in (RET_ERRNO, RET_TRACE):
        return base | (EPERM if errno_ret is None else errno_ret)
    return base


def normalize_cap(cap: str) -> str:
    cap = cap.strip().upper()
    return cap if cap.startswith("CAP_") else f"CAP_{cap}"


def _kernel_version(raw: Any, what: str) -> tuple[int, int]:
    parts = raw.split(".") if isinstance(raw, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise _fail(f"{what} must be a kernel version like \"4.8\", got {raw!r}")
    return int(parts[0]), int(parts[1])


def _selector(raw: Any, what: str) -> Selector:
    if raw is None:
        return Selector()
    if not isinstance(raw, Mapping):
        raise _fail(f"{what} must be an object, got {raw!r}")
    mk = raw.get("minKernel")
    return Selector(
        caps=frozenset(normalize_cap(c) for c in _strings(raw.get("caps"), f"{what}.caps")),
        arches=frozenset(_strings(raw.get("arches"), f"{what}.arches")),
        min_kernel=None if mk in (None, "") else _kernel_version(mk, f"{what}.minKernel"),
    )


def _condition(raw: Any, what: str) -> Condition:
    if not isinstance(raw, Mapping):
        raise _fail(f"{what} must be an object, got {raw!r}")
    index = raw.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 5:
        raise _fail(f"{what}.index must be an argument number 0..5, got {index!r}")
    op = raw.get("op")
    if op not in OPS:
        raise _fail(f"{what}: unknown op {op!r} (one of {', '.join(sorted(OPS))})")
    return Condition(index=index, op=op, value=_u64(raw.get("value", 0), f"{what}.value"),
                     value_two=_u64(raw.get("valueTwo", 0), f"{what}.valueTwo"))


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise _fail(f"{where} must be an object, got {raw!r}")
    names = _strings(raw.get("names"), f"{where}.names")
    name = raw.get("name")
    if name not in (None, ""):
        if names:
            raise _fail(f"{where}: 'name' and 'names' were both specified, use either")
        names = _strings([name], f"{where}.name")
    if not names:
        raise _fail(f"{where} has no syscall names")
    where = f"{where} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
    if "action" not in raw:
        raise _fail(f"{where} has no action")
    errno_ret = raw.get("errnoRet")
    errno_ret = None if errno_ret is None else _errno(errno_ret, f"{where}.errnoRet")
    args = raw.get("args") or []
    if not isinstance(args, list):
        raise _fail(f"{where}.args must be a list, got {args!r}")
    return Rule(
        where=where, names=tuple(names),
        action=_action(raw["action"], errno_ret, where),
        conditions=tuple(_condition(a, f"{where}.args[{i}]") for i, a in enumerate(args)),
        includes=_selector(raw.get("includes"), f"{where}.includes"),
        excludes=_selector(raw.get("excludes"), f"{where}.excludes"),
    )


def _check_arches(doc: Mapping[str, Any]) -> None:
    arches = _strings(doc.get("architectures"), "architectures")
    arch_map = doc.get("archMap") or []
    if arches and arch_map:
        raise _fail("'architectures' and 'archMap' are mutually exclusive")
    if not isinstance(arch_map, list):
        raise _fail(f"archMap must be a list, got {arch_map!r}")
    for i, entry in enumerate(arch_map):
        if not isinstance(entry, Mapping):
            raise _fail(f"archMap[{i}] must be an object, got {entry!r}")
        arches = [*arches, *_strings([entry.get("architecture")], f"archMap[{i}].architecture"),
                  *_strings(entry.get("subArchitectures"), f"archMap[{i}].subArchitectures")]
    for arch in arches:
        if arch not in ARCHES:
            raise _fail(f"unknown architecture {arch!r}")


def parse_profile(doc: Any) -> Profile:
    """Validate a Docker-format profile; raise InvalidArgument naming the bad entry."""
    if not isinstance(doc, Mapping):
        raise _fail(f"the profile must be a JSON object, got {type(doc).__name__}")
    if "defaultAction" not in doc:
        raise _fail("defaultAction is missing")
    default_errno = doc.get("defaultErrnoRet")
    if default_errno is not None:
        default_errno = _errno(default_errno, "defaultErrnoRet")
    default = _action(doc["defaultAction"], default_errno, "defaultAction")
    _check_arches(doc)
    flags = 0
    for flag in _strings(doc.get("flags"), "flags"):
        if flag not in FLAGS:
            raise _fail(f"unsupported flag {flag!r} (one of {', '.join(sorted(FLAGS))})")
        flags |= FLAGS[flag]
    syscalls = doc.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail(f"syscalls must be a list, got {type(syscalls).__name__}")
    rules = tuple(_rule(raw, f"syscalls[{i}]") for i, raw in enumerate(syscalls))
    return Profile(default_action=default, flags=flags, rules=rules)


def resolve(profile: Profile, *, capabilities: frozenset[str], arch: str,
            kernel: tuple[int, int]) -> Policy:
    """The per-syscall decisions of ``profile`` for one container."""
    table = TABLES[arch]
    goarch = GOARCH[arch]
    default = profile.default_action
    entries: dict[int, list[tuple[tuple[Condition, ...], int, str]]] = {}
    last = -1
    for rule in profile.rules:
        if not rule.applies(capabilities, goarch, kernel):
            continue
        for name in rule.names:
            nr = table.get(name)
            if nr is None:  # not a syscall of this arch: skipped, as libseccomp does
                continue
            last = max(last, nr)
            for conds in rule.condition_sets():
                entries.setdefault(nr, []).append((conds, rule.action, rule.where))
    names = {nr: name for name, nr in table.items()}
    syscalls: dict[int, SyscallPolicy] = {}
    for nr, found in entries.items():
        unconditional: dict[int, str] = {}
        for conds, action, where in found:
            if not conds and action != default:
                unconditional.setdefault(action, where)
        if len(unconditional) > 1:
            raise _fail(f"conflicting unconditional actions for syscall {names[nr]!r} in "
                        f"{' and '.join(unconditional.values())}")
        fallback = next(iter(unconditional), default)
        conditional: list[tuple[tuple[Condition, ...], int]] = []
        for conds, action, _ in found:
            if conds and action != fallback and (conds, action) not in conditional:
                conditional.append((conds, action))
        if conditional or fallback != default:
            syscalls[nr] = SyscallPolicy(names[nr], tuple(conditional), fallback)
    stub = last >= 0 and (default & RET_ACTION_FULL) not in PERMISSIVE
    return Policy(arch=arch, default_action=default, flags=profile.flags, syscalls=syscalls,
                  enosys_above=last if stub else None)


__all__ = [
    "ACTIONS", "OPS", "FLAGS", "GOARCH", "Condition", "Selector", "Rule", "Profile",
    "SyscallPolicy", "Policy", "parse_profile", "resolve", "normalize_cap",
    "RET_KILL_PROCESS", "RET_KILL_THREAD", "RET_TRAP", "RET_ERRNO", "RET_TRACE", "RET_LOG",
    "RET_ALLOW", "EPERM", "ENOSYS",
]
