"""Container cgroups on v1, v2 and hybrid hosts, with Docker's flag semantics.

Hybrid hosts (v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified) get a
directory in every v1 hierarchy *and* in the unified one: controllers enforce limits
on v1, while the unified dir tracks every process and offers ``cgroup.kill``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from sdk.errors import InvalidArgument, RuntimeFailure
from sdk.runtime.spec import DeviceRule, Resources, ThrottleDevice

ROOT = "/sys/fs/cgroup"


class CgroupMode(StrEnum):
    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"


@lru_cache(maxsize=4)
def _mounts(root: str) -> tuple[tuple[str, str, frozenset[str]], ...]:
    """(mountpoint, fstype, options) of cgroup filesystems under ``root``."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts = left.split()
            fstype, _src, superopts = right.split()[:3]
            mountpoint = parts[4]
            if fstype in ("cgroup", "cgroup2") and (mountpoint == root or
                                                    mountpoint.startswith(root + "/")):
                out.append((mountpoint, fstype, frozenset(superopts.split(","))))
    return tuple(out)


def detect_mode(root: str = ROOT) -> CgroupMode:
    mounts = _mounts(root)
    if any(mp == root and fs == "cgroup2" for mp, fs, _ in mounts):
        return CgroupMode.V2
    if any(fs == "cgroup2" for _, fs, _ in mounts):
        return CgroupMode.HYBRID
    return CgroupMode.V1


@lru_cache(maxsize=4)
def _layout(root: str) -> tuple[CgroupMode, dict[str, str], str]:
    """mode, v1 controller -> mountpoint, and the cgroup2 mountpoint ('' if none)."""
    mode = detect_mode(root)
    v1: dict[str, str] = {}
    unified = ""
    for mp, fs, opts in _mounts(root):
        if fs == "cgroup2":
            unified = mp
            continue
        for opt in opts:
            if opt in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                       "pids", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma",
                       "misc") or opt == "name=systemd":
                v1[opt] = mp
    return mode, v1, unified


@dataclass(frozen=True, slots=True)
class CgroupStats:
    cpu_usage_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    online_cpus: int
    memory_usage: int
    memory_limit: int
    memory_cache: int
    pids_current: int
    pids_limit: int
    blkio_read_bytes: int
    blkio_write_bytes: int


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), the log-quadratic fit where
    the default 1024 maps to the default 100 (runc/moby since 2025)."""
    if shares <= 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    return int(math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0)))


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) * 1024


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidArgument(f"{os.path.basename(path)} is not supported by this kernel "
                              f"(no {path})") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise InvalidArgument(f"cannot set {os.path.basename(path)} to {value.strip()!r}: "
                              f"{exc.strerror}") from None
    finally:
        os.close(fd)


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _throttle_lines(devices: Sequence[ThrottleDevice]) -> list[str]:
    return [f"{d.major}:{d.minor} {d.rate}" for d in devices]


class Cgroup:
    def __init__(self, path: str, root: str = ROOT) -> None:
        self.path = path.strip("/")
        self.root = root
        self.mode, self.v1, self.unified = _layout(root)

    def _dir(self, controller: str) -> str:
        if self.mode == CgroupMode.V2:
            return f"{self.root}/{self.path}"
        return f"{self.v1[controller]}/{self.path}" if controller in self.v1 else ""

    def dirs(self) -> list[str]:
        if self.mode == CgroupMode.V2:
            return [f"{self.root}/{self.path}"]
        out = sorted({f"{mp}/{self.path}" for mp in self.v1.values()})
        if self.unified:
            out.append(f"{self.unified}/{self.path}")
        return out

    # ---- lifecycle ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str, resources: Resources, device_rules: Sequence[DeviceRule] = (),
               *, root: str = ROOT) -> Cgroup:
        cg = cls(path, root)
        try:
            if cg.mode == CgroupMode.V2:
                cg._enable_v2_controllers()
            for d in cg.dirs():
                cg._mkdir(d)
            cg.update(resources)
            cg._devices(device_rules)
        except BaseException:
            cg.remove()
            raise
        return cg

    @classmethod
    def open(cls, path: str, *, root: str = ROOT) -> Cgroup:
        return cls(path, root)

    def _mkdir(self, d: str) -> None:
        parts = d[len(self.root):].strip("/").split("/")
        current = self.root
        for part in parts:
            parent = current
            current = f"{current}/{part}"
            if os.path.isdir(current):
                continue
            try:
                os.mkdir(current)
            except FileExistsError:
                continue
            # v1 cpuset needs cpus/mems before any task can join: copy the parent's
            if os.path.exists(f"{current}/cpuset.cpus") and "cpuset" in self.v1 and \
                    current.startswith(self.v1["cpuset"]):
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(f"{current}/{knob}").strip():
                        _write(f"{current}/{knob}", _read(f"{parent}/{knob}").strip())

    def _enable_v2_controllers(self) -> None:
        available = set(_read(f"{self.root}/cgroup.controllers").split())
        wanted = " ".join("+" + c for c in ("cpu", "cpuset", "io", "memory", "pids")
                          if c in available)
        current = self.root
        for part in self.path.split("/")[:-1]:
            try:
                _write(f"{current}/cgroup.subtree_control", wanted)
            except InvalidArgument:
                pass
            current = f"{current}/{part}"
            os.makedirs(current, exist_ok=True)
        try:
            _write(f"{current}/cgroup.subtree_control", wanted)
        except InvalidArgument:
            pass

    def add(self, pid: int) -> None:
        for d in self.dirs():
            try:
                _write(f"{d}/cgroup.procs", str(pid))
            except InvalidArgument as exc:
                raise RuntimeFailure(f"joining cgroup {d}: {exc}") from None

    def procs(self) -> list[int]:
        d = f"{self.unified}/{self.path}" if self.unified and self.mode == CgroupMode.HYBRID \
            else (self._dir("pids") or self._dir("memory") or self.dirs()[0])
        return [int(p) for p in _read(f"{d}/cgroup.procs").split()]

    def populated(self) -> bool:
        return bool(self.procs())

    # ---- limits ---------------------------------------------------------------------
    def update(self, r: Resources) -> None:
        if self.mode == CgroupMode.V2:
            self._update_v2(r)
        else:
            self._update_v1(r)

    def _update_v1(self, r: Resources) -> None:
        mem = self._dir("memory")
        if mem:
            if r.memory:
                _write(f"{mem}/memory.limit_in_bytes", str(r.memory))
                memsw = f"{mem}/memory.memsw.limit_in_bytes"
                if os.path.exists(memsw):
                    swap = r.memory * 2 if r.memory_swap == 0 else r.memory_swap
                    _write(memsw, str(swap if swap > 0 else -1))
            if r.memory_reservation:
                _write(f"{mem}/memory.soft_limit_in_bytes", str(r.memory_reservation))
            if r.oom_kill_disable:
                _write(f"{mem}/memory.oom_control", "1")
        cpu = self._dir("cpu")
        if cpu:
            if r.cpu_shares:
                _write(f"{cpu}/cpu.shares", str(r.cpu_shares))
            period, quota = r.cpu_period, r.cpu_quota
            if r.nano_cpus:
                period = 100000
                quota = r.nano_cpus * period // 1_000_000_000
            if period:
                _write(f"{cpu}/cpu.cfs_period_us", str(period))
            if quota:
                _write(f"{cpu}/cpu.cfs_quota_us", str(quota))
        cs = self._dir("cpuset")
        if cs:
            if r.cpuset_cpus:
                self._cpuset(f"{cs}/cpuset.cpus", r.cpuset_cpus, "cpuset-cpus")
            if r.cpuset_mems:
                self._cpuset(f"{cs}/cpuset.mems", r.cpuset_mems, "cpuset-mems")
        pids = self._dir("pids")
        if pids and r.pids_limit:
            _write(f"{pids}/pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max")
        blk = self._dir("blkio")
        if blk:
            if r.blkio_weight:
                for name in ("blkio.weight", "blkio.bfq.weight"):
                    if os.path.exists(f"{blk}/{name}"):
                        _write(f"{blk}/{name}", str(r.blkio_weight))
                        break
                else:
                    raise InvalidArgument("--blkio-weight is not supported here: the "
                                          "kernel's block IO scheduler has no weight knob")
            for knob, devs in (("read_bps_device", r.device_read_bps),
                               ("write_bps_device", r.device_write_bps),
                               ("read_iops_device", r.device_read_iops),
                               ("write_iops_device", r.device_write_iops)):
                for line in _throttle_lines(devs):
                    _write(f"{blk}/blkio.throttle.{knob}", line)

    def _cpuset(self, path: str, value: str, flag: str) -> None:
        parent = _read(os.path.join(os.path.dirname(os.path.dirname(path)),
                                    os.path.basename(path))).strip()
        try:
            _write(path, value)
        except InvalidArgument:
            raise InvalidArgument(f"invalid --{flag} {value!r}: available are "
                                  f"{parent or 'unknown'}") from None

    def _update_v2(self, r: Resources) -> None:
        d = self.dirs()[0]
        if r.memory:
            _write(f"{d}/memory.max", str(r.memory))
            if os.path.exists(f"{d}/memory.swap.max"):
                if r.memory_swap == -1:
                    _write(f"{d}/memory.swap.max", "max")
                else:
                    swap = r.memory * 2 if r.memory_swap == 0 else r.memory_swap
                    _write(f"{d}/memory.swap.max", str(max(swap - r.memory, 0)))
        if r.memory_reservation:
            _write(f"{d}/memory.low", str(r.memory_reservation))
        if r.cpu_shares:
            _write(f"{d}/cpu.weight", str(shares_to_weight(r.cpu_shares)))
        period, quota = r.cpu_period or 100000, r.cpu_quota
        if r.nano_cpus:
            period = 100000
            quota = r.nano_cpus * period // 1_000_000_000
        if quota:
            _write(f"{d}/cpu.max", f"{quota if quota > 0 else 'max'} {period}")
        if r.cpuset_cpus:
            self._cpuset(f"{d}/cpuset.cpus", r.cpuset_cpus, "cpuset-cpus")
        if r.cpuset_mems:
            self._cpuset(f"{d}/cpuset.mems", r.cpuset_mems, "cpuset-mems")
        if r.pids_limit:
            _write(f"{d}/pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max")
        if r.blkio_weight:
            weight = 1 + (r.blkio_weight - 10) * 9999 // 990
            if os.path.exists(f"{d}/io.bfq.weight"):
                _write(f"{d}/io.bfq.weight", str(r.blkio_weight))
            else:
                _write(f"{d}/io.weight", f"default {weight}")
        io_max: dict[str, dict[str, int]] = {}
        for key, devs in (("rbps", r.device_read_bps), ("wbps", r.device_write_bps),
                          ("riops", r.device_read_iops), ("wiops", r.device_write_iops)):
            for dev in devs:
                io_max.setdefault(f"{dev.major}:{dev.minor}", {})[key] = dev.rate
        for dev, limits in io_max.items():
            _write(f"{d}/io.max", dev + " " + " ".join(f"{k}={v}" for k, v in limits.items()))

    def _devices(self, rules: Sequence[DeviceRule]) -> None:
        d = self._dir("devices") if self.mode != CgroupMode.V2 else ""
        if not d or not rules:
            return
        for rule in rules:
            major = "*" if rule.major < 0 else str(rule.major)
            minor = "*" if rule.minor < 0 else str(rule.minor)
            line = "a" if rule.kind == "a" else f"{rule.kind} {major}:{minor} {rule.access}"
            _write(f"{d}/devices.{'allow' if rule.allow else 'deny'}", line)

    # ---- freezing and killing -------------------------------------------------------
    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def frozen(self) -> bool:
        if self.mode == CgroupMode.V2:
            return "frozen 1" in _read(f"{self.dirs()[0]}/cgroup.events")
        return _read(f"{self._dir('freezer')}/freezer.state").strip() == "FROZEN"

    def _set_frozen(self, frozen: bool) -> None:
        if self.mode == CgroupMode.V2:
            _write(f"{self.dirs()[0]}/cgroup.freeze", "1" if frozen else "0")
        else:
            _write(f"{self._dir('freezer')}/freezer.state", "FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 5
        while self.frozen() != frozen and time.monotonic() < deadline:
            time.sleep(0.001)

    def kill_all(self, sig: int = signal.SIGKILL, *, timeout: float = 5.0) -> None:
        kill_file = ""
        if self.mode == CgroupMode.V2:
            kill_file = f"{self.dirs()[0]}/cgroup.kill"
        elif self.unified:
            kill_file = f"{self.unified}/{self.path}/cgroup.kill"
        if sig == signal.SIGKILL and kill_file and os.path.exists(kill_file):
            _write(kill_file, "1")
        else:
            frozen = self.mode != CgroupMode.V2 and bool(self._dir("freezer")) and \
                os.path.isdir(self._dir("freezer"))
            if frozen:
                self._set_frozen(True)
            for pid in self.procs():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if frozen:
                self._set_frozen(False)
        if sig != signal.SIGKILL:
            return
        deadline = time.monotonic() + timeout
        while self.populated() and time.monotonic() < deadline:
            time.sleep(0.002)

    def oom_killed(self) -> bool:
        if self.mode == CgroupMode.V2:
            events = _read(f"{self.dirs()[0]}/memory.events")
        else:
            events = _read(f"{self._dir('memory')}/memory.oom_control")
        for line in events.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def stats(self) -> CgroupStats:
        online = os.cpu_count() or 1
        if self.mode == CgroupMode.V2:
            d = self.dirs()[0]
            cpu = dict(line.split() for line in _read(f"{d}/cpu.stat").splitlines()
                       if len(line.split()) == 2)
            mem_stat = dict(line.split() for line in _read(f"{d}/memory.stat").splitlines()
                            if len(line.split()) == 2)
            limit = _read(f"{d}/memory.max", "max").strip()
            pmax = _read(f"{d}/pids.max", "max").strip()
            rd = wr = 0
            for line in _read(f"{d}/io.stat").splitlines():
                for item in line.split()[1:]:
                    k, _, v = item.partition("=")
                    rd += int(v) if k == "rbytes" else 0
                    wr += int(v) if k == "wbytes" else 0
            return CgroupStats(
                int(cpu.get("usage_usec", 0)) * 1000, int(cpu.get("user_usec", 0)) * 1000,
                int(cpu.get("system_usec", 0)) * 1000, online,
                int(_read(f"{d}/memory.current", "0") or 0),
                _host_memory() if limit == "max" else int(limit),
                int(mem_stat.get("file", 0)), int(_read(f"{d}/pids.current", "0") or 0),
                0 if pmax == "max" else int(pmax), rd, wr)
        acct = self._dir("cpuacct")
        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        st = dict(line.split() for line in _read(f"{acct}/cpuacct.stat").splitlines()
                  if len(line.split()) == 2)
        mem = self._dir("memory")
        limit = int(_read(f"{mem}/memory.limit_in_bytes", "0") or 0)
        host = _host_memory()
        mstat = dict(line.split() for line in _read(f"{mem}/memory.stat").splitlines()
                     if len(line.split()) == 2)
        pids = self._dir("pids")
        pmax = _read(f"{pids}/pids.max", "max").strip()
        rd = wr = 0
        for line in _read(f"{self._dir('blkio')}/blkio.throttle.io_service_bytes"
                          ).splitlines():
            parts = line.split()
            if len(parts) == 3:
                rd += int(parts[2]) if parts[1] == "Read" else 0
                wr += int(parts[2]) if parts[1] == "Write" else 0
        return CgroupStats(
            int(_read(f"{acct}/cpuacct.usage", "0") or 0),
            int(st.get("user", 0)) * tick_ns, int(st.get("system", 0)) * tick_ns, online,
            int(_read(f"{mem}/memory.usage_in_bytes", "0") or 0),
            min(limit, host) if limit else host, int(mstat.get("cache", 0)),
            int(_read(f"{pids}/pids.current", "0") or 0),
            0 if pmax in ("max", "") else int(pmax), rd, wr)

    def remove(self) -> None:
        if any(os.path.isdir(d) for d in self.dirs()) and self.populated():
            self.kill_all(signal.SIGKILL)
        for d in self.dirs():
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def cleanup_stale(parent: str, keep: Container[str], *, root: str = ROOT) -> list[str]:
    mode, v1, unified = _layout(root)
    bases = [f"{root}/{parent}"] if mode == CgroupMode.V2 else \
        [f"{mp}/{parent}" for mp in set(v1.values())] + ([f"{unified}/{parent}"]
                                                         if unified else [])
    names: set[str] = set()
    for base in bases:
        if os.path.isdir(base):
            names |= {e.name for e in os.scandir(base) if e.is_dir()}
    removed = []
    for name in sorted(names):
        if name not in keep:
            Cgroup(f"{parent}/{name}", root).remove()
            removed.append(name)
    return removed
