"""Docker's resource flags -> cgroup knob writes, for v1 and v2.  No I/O of its own.

``validate`` applies Docker's daemon checks (moby ``verifyPlatformContainerResources``)
with Docker's messages, prefixed by the flag.  ``plan_v1``/``plan_v2`` return the ordered
knob writes; the few decisions that depend on the kernel (is there swap accounting?
which io weight file? what cpus does the parent have?) ask a ``KnobReader``.

Zero fields mean "not set" and produce no write, so ``update`` with a partial
``Resources`` only touches what it names (``docker update`` semantics); the one way to
lift a pids limit is a negative ``pids_limit``, as with ``docker update --pids-limit -1``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sdk.errors import InvalidArgument
from sdk.runtime.spec import Resources, ThrottleDevice

MIN_MEMORY = 6 * 1024 * 1024
CFS_PERIOD = 100_000                 # µs; Docker's period for --cpus
V1_UNLIMITED = "-1"


@dataclass(frozen=True, slots=True)
class Knob:
    """One write: ``value`` into ``file`` of the cgroup dir that holds ``controller``."""

    controller: str                  # v1 controller / v2 controller the file belongs to
    file: str
    value: str
    flag: str                        # Docker flag the value came from, for errors


class KnobReader(Protocol):
    """What planning may ask about the cgroup being configured."""

    def has(self, controller: str, file: str) -> bool: ...
    def read(self, controller: str, file: str) -> str: ...
    def read_parent(self, controller: str, file: str) -> str: ...


# ---- conversions ------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100).

    The log-quadratic fit of opencontainers/cgroups (June 2025, runc >= 1.3.2, crun >=
    1.23): with l = log2(shares), weight = ceil(10 ** ((l*l + 125*l)/612 - 7/34)).
    It maps the minimum, default and maximum onto each other (2 -> 1, 1024 -> 100,
    262144 -> 10000); the old linear ``1 + (s-2)*9999/262142`` sent 1024 to 39, so a
    default container lost CPU share against host processes.  0 stays "unset".
    """
    if shares <= 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    return int(math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0)))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's linear map."""
    return 1 + (weight - 10) * 9999 // 990


def nano_cpus_to_quota(nano_cpus: int, period: int = CFS_PERIOD) -> int:
    return nano_cpus * period // 1_000_000_000


def parse_cpu_list(text: str) -> set[int]:
    """"0-2,4" -> {0, 1, 2, 4}; ValueError on anything else."""
    out: set[int] = set()
    text = text.strip()
    if not text:
        return out
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(part)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(part)
        out.update(range(lo, hi + 1))
    return out


def _mib(n: int) -> str:
    return f"{n} bytes" if n % (1024 * 1024) else f"{n // (1024 * 1024)}MiB"


# ---- validation -------------------------------------------------------------------------

def online_cpus() -> int:
    """CPUs this process may run on: Docker's NumCPU (Go's runtime.NumCPU)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def validate(r: Resources, *, initial: bool = True, ncpu: int | None = None) -> None:
    """Docker's checks that need no kernel; InvalidArgument naming the flag."""
    def bad(flag: str, value: object, why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid {flag} {value}: {why}")

    if r.memory and r.memory < MIN_MEMORY:
        raise bad("--memory", _mib(r.memory), "Minimum memory limit allowed is 6MB")
    if r.memory_swap < -1:
        raise bad("--memory-swap", r.memory_swap, "must be -1 (unlimited) or a size")
    if r.memory > 0 and r.memory_swap > 0 and r.memory_swap < r.memory:
        raise bad("--memory-swap", _mib(r.memory_swap),
                  "Minimum memoryswap limit should be larger than memory limit, see usage")
    if initial and r.memory == 0 and r.memory_swap > 0:
        raise bad("--memory-swap", _mib(r.memory_swap), "You should always set the Memory "
                  "limit when using Memoryswap limit, see usage")
    if r.memory_reservation and r.memory_reservation < MIN_MEMORY:
        raise bad("--memory-reservation", _mib(r.memory_reservation),
                  "Minimum memory reservation allowed is 6MB")
    if r.memory > 0 and r.memory_reservation > 0 and r.memory < r.memory_reservation:
        raise bad("--memory-reservation", _mib(r.memory_reservation),
                  "Minimum memory limit can not be less than memory reservation limit, "
                  "see usage")
    if r.cpu_shares < 0:
        raise bad("--cpu-shares", r.cpu_shares, "value must be a positive integer")
    if r.nano_cpus:
        n = online_cpus() if ncpu is None else ncpu
        if r.nano_cpus < 0 or r.nano_cpus > n * 1_000_000_000:
            raise bad("--cpus", f"{r.nano_cpus / 1e9:g}", f"Range of CPUs is from 0.01 to "
                      f"{n}.00, as there are only {n} CPUs available")
        if r.cpu_period > 0:
            raise bad("--cpus", f"{r.nano_cpus / 1e9:g}", "Conflicting options: Nano CPUs "
                      "and CPU Period cannot both be set")
        if r.cpu_quota > 0:
            raise bad("--cpus", f"{r.nano_cpus / 1e9:g}", "Conflicting options: Nano CPUs "
                      "and CPU Quota cannot both be set")
    if r.cpu_period and not 1000 <= r.cpu_period <= 1_000_000:
        raise bad("--cpu-period", r.cpu_period, "CPU cfs period can not be less than 1ms "
                  "(i.e. 1000) or larger than 1s (i.e. 1000000)")
    if r.cpu_quota < -1 or 0 < r.cpu_quota < 1000:
        raise bad("--cpu-quota", r.cpu_quota,
                  "CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if r.blkio_weight and not 10 <= r.blkio_weight <= 1000:
        raise bad("--blkio-weight", r.blkio_weight, "Range of blkio weight is from 10 to 1000")
    for flag, value in (("--cpuset-cpus", r.cpuset_cpus), ("--cpuset-mems", r.cpuset_mems)):
        try:
            parse_cpu_list(value)
        except ValueError:
            what = "cpus" if flag.endswith("cpus") else "mems"
            raise bad(flag, repr(value), f"Invalid value {value} for cpuset {what}") from None
    for flag, devs in _throttles(r):
        for d in devs:
            if d.rate < 0 or d.major < 0 or d.minor < 0:
                raise bad(flag, f"{d.major}:{d.minor}:{d.rate}",
                          "device numbers and rate must be non-negative")


def _throttles(r: Resources) -> tuple[tuple[str, Sequence[ThrottleDevice]], ...]:
    return (("--device-read-bps", r.device_read_bps),
            ("--device-write-bps", r.device_write_bps),
            ("--device-read-iops", r.device_read_iops),
            ("--device-write-iops", r.device_write_iops))


def _check_cpuset(flag: str, value: str, available: str) -> None:
    """Docker: "Requested CPUs are not available - requested 5, available: 0-1"."""
    if not value:
        return
    have = available.strip()
    if have and not parse_cpu_list(value) <= parse_cpu_list(have):
        what = "CPUs" if flag.endswith("cpus") else "memory nodes"
        raise InvalidArgument(f"invalid {flag} {value!r}: Requested {what} are not "
                              f"available - requested {value}, available: {have}")


def _no_swap_accounting(r: Resources, missing: str) -> None:
    """Without swap accounting only the default (or unlimited) swap can be honoured."""
    if r.memory_swap > 0:
        raise InvalidArgument(
            f"invalid --memory-swap {_mib(r.memory_swap)}: this kernel does not account "
            f"swap ({missing} is missing; boot with swapaccount=1 / enable "
            "CONFIG_MEMCG_SWAP), so only the default or -1 can be used")


# ---- v1 ---------------------------------------------------------------------------------

def plan_v1(r: Resources, cg: KnobReader, *, initial: bool = True) -> list[Knob]:
    out: list[Knob] = []
    out += _memory_v1(r, cg, initial)
    if r.memory_reservation:
        out.append(Knob("memory", "memory.soft_limit_in_bytes", str(r.memory_reservation),
                        "--memory-reservation"))
    if r.oom_kill_disable:
        out.append(Knob("memory", "memory.oom_control", "1", "--oom-kill-disable"))
    if r.cpu_shares:
        out.append(Knob("cpu", "cpu.shares", str(r.cpu_shares), "--cpu-shares"))
    if r.nano_cpus:
        out.append(Knob("cpu", "cpu.cfs_period_us", str(CFS_PERIOD), "--cpus"))
        out.append(Knob("cpu", "cpu.cfs_quota_us", str(nano_cpus_to_quota(r.nano_cpus)),
                        "--cpus"))
    if r.cpu_period:
        out.append(Knob("cpu", "cpu.cfs_period_us", str(r.cpu_period), "--cpu-period"))
    if r.cpu_quota:
        out.append(Knob("cpu", "cpu.cfs_quota_us", str(r.cpu_quota), "--cpu-quota"))
    for flag, file, value in (("--cpuset-cpus", "cpuset.cpus", r.cpuset_cpus),
                              ("--cpuset-mems", "cpuset.mems", r.cpuset_mems)):
        if value:
            _check_cpuset(flag, value, cg.read_parent("cpuset", file))
            out.append(Knob("cpuset", file, value, flag))
    if r.pids_limit:
        out.append(Knob("pids", "pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max",
                        "--pids-limit"))
    if r.blkio_weight:
        file = next((f for f in ("blkio.weight", "blkio.bfq.weight") if cg.has("blkio", f)),
                    "")
        if not file:
            raise InvalidArgument(
                f"invalid --blkio-weight {r.blkio_weight}: this kernel has no blkio.weight "
                "or blkio.bfq.weight (the BFQ I/O scheduler is needed for weights)")
        out.append(Knob("blkio", file, str(r.blkio_weight), "--blkio-weight"))
    names = ("read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device")
    for (flag, devs), name in zip(_throttles(r), names, strict=True):
        for d in devs:
            out.append(Knob("blkio", f"blkio.throttle.{name}", f"{d.major}:{d.minor} {d.rate}",
                            flag))
    return out


def _memory_v1(r: Resources, cg: KnobReader, initial: bool) -> list[Knob]:
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes, in an order the kernel takes.

    v1 insists on memsw >= memory at every moment, so (as runc does) raise memsw first
    when it grows and lower memory first otherwise.
    """
    memsw_file = "memory.memsw.limit_in_bytes"
    has_memsw = cg.has("memory", memsw_file)
    mem = Knob("memory", "memory.limit_in_bytes", str(r.memory), "--memory") \
        if r.memory else None
    swap = r.memory_swap
    if initial and swap == 0 and r.memory > 0:
        swap = 2 * r.memory                 # Docker's default: as much swap as memory
    if not swap:
        if mem and has_memsw:
            current = _limit(cg.read("memory", memsw_file))
            if current is not None and r.memory > current:
                raise InvalidArgument(
                    f"invalid --memory {_mib(r.memory)}: Memory limit should be smaller than "
                    f"already set memoryswap limit ({_mib(current)}), update the memoryswap "
                    "at the same time")
        return [mem] if mem else []
    if not has_memsw:
        _no_swap_accounting(r, memsw_file)
        return [mem] if mem else []
    sw = Knob("memory", memsw_file, V1_UNLIMITED if swap < 0 else str(swap), "--memory-swap")
    if mem is None:
        return [sw]
    current = _limit(cg.read("memory", memsw_file))
    if swap < 0 or (current is not None and swap > current):
        return [sw, mem]
    return [mem, sw]


def _limit(text: str) -> int | None:
    """A v1 byte limit; None when unreadable (fresh dirs read as the huge "unlimited")."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


# ---- v2 ---------------------------------------------------------------------------------

def plan_v2(r: Resources, cg: KnobReader, *, initial: bool = True) -> list[Knob]:
    out: list[Knob] = []
    if r.memory or r.memory_swap:
        swap = r.memory_swap
        if initial and swap == 0 and r.memory > 0:
            swap = 2 * r.memory
        if swap and not cg.has("memory", "memory.swap.max"):
            _no_swap_accounting(r, "memory.swap.max")
        elif swap:
            # v2 limits swap alone: Docker's memory+swap total minus memory
            value = "max" if swap < 0 else str(max(swap - (r.memory or _memory_max(cg)), 0))
            out.append(Knob("memory", "memory.swap.max", value, "--memory-swap"))
        if r.memory:
            out.append(Knob("memory", "memory.max", str(r.memory), "--memory"))
    if r.memory_reservation:
        out.append(Knob("memory", "memory.low", str(r.memory_reservation),
                        "--memory-reservation"))
    # --oom-kill-disable has no v2 knob; Docker discards it there with a warning.
    if r.cpu_shares:
        out.append(Knob("cpu", "cpu.weight", str(shares_to_weight(r.cpu_shares)),
                        "--cpu-shares"))
    if r.nano_cpus:
        out.append(Knob("cpu", "cpu.max", f"{nano_cpus_to_quota(r.nano_cpus)} {CFS_PERIOD}",
                        "--cpus"))
    elif r.cpu_quota or r.cpu_period:
        quota = str(r.cpu_quota) if r.cpu_quota > 0 else "max"
        value = f"{quota} {r.cpu_period}" if r.cpu_period else quota
        out.append(Knob("cpu", "cpu.max", value,
                        "--cpu-quota" if r.cpu_quota else "--cpu-period"))
    for flag, file, value in (("--cpuset-cpus", "cpuset.cpus", r.cpuset_cpus),
                              ("--cpuset-mems", "cpuset.mems", r.cpuset_mems)):
        if value:
            _check_cpuset(flag, value, cg.read_parent("cpuset", file + ".effective"))
            out.append(Knob("cpuset", file, value, flag))
    if r.pids_limit:
        out.append(Knob("pids", "pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max",
                        "--pids-limit"))
    if r.blkio_weight:
        if cg.has("io", "io.bfq.weight"):       # BFQ takes the v1 scale as it is
            out.append(Knob("io", "io.bfq.weight", str(r.blkio_weight), "--blkio-weight"))
        elif cg.has("io", "io.weight"):
            out.append(Knob("io", "io.weight", str(blkio_to_io_weight(r.blkio_weight)),
                            "--blkio-weight"))
        else:
            raise InvalidArgument(
                f"invalid --blkio-weight {r.blkio_weight}: this cgroup has neither "
                "io.bfq.weight nor io.weight (enable the io controller and the BFQ "
                "scheduler, or io.cost)")
    per_device: dict[str, list[str]] = {}
    flags: dict[str, str] = {}
    for (flag, devs), key in zip(_throttles(r), ("rbps", "wbps", "riops", "wiops"),
                                 strict=True):
        for d in devs:
            dev = f"{d.major}:{d.minor}"
            per_device.setdefault(dev, []).append(f"{key}={d.rate}")
            flags.setdefault(dev, flag)
    for dev, limits in per_device.items():
        out.append(Knob("io", "io.max", f"{dev} {' '.join(limits)}", flags[dev]))
    return out


def _memory_max(cg: KnobReader) -> int:
    """The current memory.max when only --memory-swap changes (docker update)."""
    text = cg.read("memory", "memory.max").strip()
    return int(text) if text.isdigit() else 0
