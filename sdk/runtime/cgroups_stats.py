"""``docker stats`` numbers from a cgroup's files, v1 or v2.

Missing files count as zero: a hierarchy without a controller (the unified dir of a
hybrid host, a v2 parent that did not delegate ``memory``) still yields a record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from sdk.runtime import cgroups_fs as fs


@dataclass(frozen=True, slots=True)
class CgroupStats:
    cpu_usage_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    online_cpus: int
    memory_usage: int
    memory_limit: int          # host RAM when unlimited (as Docker reports it)
    memory_cache: int
    pids_current: int
    pids_limit: int            # 0 = unlimited
    blkio_read_bytes: int
    blkio_write_bytes: int


def host_memory() -> int:
    for line in fs.read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def online_cpus() -> int:
    """Docker reports sysconf(_SC_NPROCESSORS_ONLN), not the container's cpuset."""
    try:
        return int(os.sysconf("SC_NPROCESSORS_ONLN"))
    except (ValueError, OSError):
        return os.cpu_count() or 1


def _memory_limit(limit: int) -> int:
    host = host_memory()
    return min(limit, host) if limit > 0 and host else (limit or host)


def _pids_limit(text: str) -> int:
    text = text.strip()
    return 0 if text in ("", "max") else fs.as_int(text)


def read_v1(dir_of: Callable[[str], str]) -> CgroupStats:
    """``dir_of(controller)`` is this cgroup's dir in that controller's hierarchy."""
    acct = dir_of("cpuacct")
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    times = fs.keyed(fs.read(f"{acct}/cpuacct.stat"))
    mem = dir_of("memory")
    mstat = fs.keyed(fs.read(f"{mem}/memory.stat"))
    limit_text = fs.read(f"{mem}/memory.limit_in_bytes").strip()
    blk = dir_of("blkio")
    rd = wr = 0
    for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive"):
        text = fs.read(f"{blk}/{name}")
        if not text:
            continue
        for line in text.splitlines():           # "8:0 Read 4096"
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                n = fs.as_int(parts[2])
                rd, wr = (rd + n, wr) if parts[1] == "Read" else (rd, wr + n)
        break
    pids = dir_of("pids")
    return CgroupStats(
        cpu_usage_ns=fs.as_int(fs.read(f"{acct}/cpuacct.usage", "0")),
        cpu_user_ns=fs.as_int(times.get("user", "0")) * tick_ns,
        cpu_system_ns=fs.as_int(times.get("system", "0")) * tick_ns,
        online_cpus=online_cpus(),
        memory_usage=fs.as_int(fs.read(f"{mem}/memory.usage_in_bytes", "0")),
        memory_limit=_memory_limit(fs.as_int(limit_text) if limit_text else 0),
        memory_cache=fs.as_int(mstat.get("total_cache", mstat.get("cache", "0"))),
        pids_current=fs.as_int(fs.read(f"{pids}/pids.current", "0")),
        pids_limit=_pids_limit(fs.read(f"{pids}/pids.max")),
        blkio_read_bytes=rd, blkio_write_bytes=wr)


def read_v2(d: str) -> CgroupStats:
    cpu = fs.keyed(fs.read(f"{d}/cpu.stat"))     # core file: there even without "cpu"
    mstat = fs.keyed(fs.read(f"{d}/memory.stat"))
    limit_text = fs.read(f"{d}/memory.max").strip()
    rd = wr = 0
    for line in fs.read(f"{d}/io.stat").splitlines():    # "8:0 rbytes=1 wbytes=2 ..."
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                rd += fs.as_int(value)
            elif key == "wbytes":
                wr += fs.as_int(value)
    return CgroupStats(
        cpu_usage_ns=fs.as_int(cpu.get("usage_usec", "0")) * 1000,
        cpu_user_ns=fs.as_int(cpu.get("user_usec", "0")) * 1000,
        cpu_system_ns=fs.as_int(cpu.get("system_usec", "0")) * 1000,
        online_cpus=online_cpus(),
        memory_usage=fs.as_int(fs.read(f"{d}/memory.current", "0")),
        memory_limit=_memory_limit(0 if limit_text in ("", "max") else fs.as_int(limit_text)),
        memory_cache=fs.as_int(mstat.get("file", "0")),
        pids_current=fs.as_int(fs.read(f"{d}/pids.current", "0")),
        pids_limit=_pids_limit(fs.read(f"{d}/pids.max")),
        blkio_read_bytes=rd, blkio_write_bytes=wr)
