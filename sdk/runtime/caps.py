"""Capabilities: names <-> numbers, and the five sets of the calling process.

The container process ends with bounding = permitted = effective = the requested set,
inheritable empty and ambient cleared (CVE-2022-24769 class: a non-empty inheritable
set lets file capabilities give more than the container was granted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sdk.runtime import linux

# linux/capability.h
CAP_NUMBERS: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_NAMES: dict[int, str] = {v: k for k, v in CAP_NUMBERS.items()}
ALL_CAPABILITIES = frozenset(CAP_NUMBERS)


def normalize(name: str) -> str:
    """'chown', 'CHOWN', 'cap_chown' -> 'CAP_CHOWN' (docker accepts all of them)."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def to_mask(names: Iterable[str]) -> int:
    """Bit mask of capability names; ValueError for a name the kernel does not define."""
    mask = 0
    for raw in names:
        name = normalize(raw)
        if name not in CAP_NUMBERS:
            raise ValueError(f"unknown capability {raw!r}")
        mask |= 1 << CAP_NUMBERS[name]
    return mask


def from_mask(mask: int) -> frozenset[str]:
    return frozenset(CAP_NAMES.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1)


def kernel_mask() -> int:
    """Every capability the running kernel knows (0..cap_last_cap)."""
    return (1 << (linux.last_cap() + 1)) - 1


@dataclass(frozen=True, slots=True)
class CapSets:
    effective: int
    permitted: int
    inheritable: int
    bounding: int = 0
    ambient: int = 0


def parse_status(text: str) -> CapSets:
    """The Cap* lines of /proc/PID/status."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap") and value.strip():
            found[key] = int(value.strip(), 16)
    return CapSets(effective=found.get("CapEff", 0), permitted=found.get("CapPrm", 0),
                   inheritable=found.get("CapInh", 0), bounding=found.get("CapBnd", 0),
                   ambient=found.get("CapAmb", 0))


def current() -> CapSets:
    """The caller's effective/permitted/inheritable sets (capget, no /proc needed)."""
    eff, prm, inh = linux.capget()
    return CapSets(eff, prm, inh)


def grantable(requested: Iterable[str], *, privileged: bool = False) -> int:
    """The mask a container gets: what it asked for (everything when privileged),
    clipped to what the engine itself holds (a process cannot grant caps it lacks)."""
    wanted = kernel_mask() if privileged else to_mask(requested) & kernel_mask()
    return wanted & current().permitted


def drop_bounding(keep: int) -> None:
    """Drop every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(linux.last_cap() + 1):
        if not keep >> cap & 1:
            linux.prctl(linux.PR_CAPBSET_DROP, cap)


def apply(keep: int) -> None:
    """permitted = effective = ``keep``, inheritable empty, ambient cleared.

    Call after setuid with PR_SET_KEEPCAPS set: ``keep`` must be within permitted."""
    linux.capset(keep, keep, 0)
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:   # kernels before 4.3 have no ambient set
        pass
